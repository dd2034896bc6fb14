"""Load a job config (YAML or TOML), apply ``key=value`` overrides, build its dataclass."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from pathlib import Path

import yaml

from mixmin_core.errors import ConfigError

#: Fields that change how a run executes, not what it computes: left out of the run id.
EXECUTION_FIELDS = ("resume", "backend", "n_workers")


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} not found; see configs/ for examples.")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse ({exc}).") from None
    if not isinstance(data, dict) or "pipeline" not in data:
        raise ConfigError(f"{path}: a config is a mapping with a 'pipeline' key; got {type(data).__name__}.")
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply dotted ``key=value`` overrides; values are parsed as YAML scalars/lists."""
    data = json.loads(json.dumps(data))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value; got {item!r}.")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section.")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def build_dataclass(cls, data: dict, where: str = ""):
    """Instantiate dataclass ``cls`` from a dict, recursing into nested dataclass fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__} must be a mapping; got {data!r}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} in {where or cls.__name__}; valid: {sorted(names)}.")
    kwargs = {}
    for key, value in data.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = build_dataclass(hint, value, f"{where}{key}.")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def run_id_for(name: str, resolved: dict) -> str:
    """``<name>-<hash>``: the same config maps to the same run, so a re-run resumes it."""
    core = {k: v for k, v in resolved.items() if k not in EXECUTION_FIELDS}
    digest = hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    return f"{safe}-{digest}"
