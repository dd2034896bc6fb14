"""Job configs: load YAML or TOML, apply ``key=value`` overrides, build and validate the dataclass.

Validation is declared once, next to each field, and read by one validator::

    trials: int = setting(3, min=1)
    backend: str = setting("local", choices=("local", "ray"))

The type hint gives the type (``int`` rejects ``2.7``, ``"abc"`` and ``True``; ``float`` takes
ints; ``list[int | str]`` checks every item), the metadata the rule (``min``/``max`` inclusive,
``gt``/``lt`` exclusive, ``choices``, ``items`` for list items). Every error names the key, the
rule and the value. Every pipeline config subclasses :class:`ExecutionConfig` (seed, trials and
how the run executes) and calls ``super().__post_init__()`` first, so a config built in code is
checked exactly like one read from a file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mixmin_core.errors import ConfigError

#: Fields that change how a run executes, not what it computes: left out of the run id.
EXECUTION_FIELDS = ("resume", "backend", "n_workers")
#: ``resume``: reuse finished units when their outputs exist, or recompute every unit.
RESUME = ("if_available", "never")
DEVICES = ("auto", "cpu", "cuda")


def setting(default, *, doc: str = "", **rule):
    """A config field with its validation rule (``min``, ``max``, ``gt``, ``lt``, ``choices``, ``items``)."""
    unknown = set(rule) - {"min", "max", "gt", "lt", "choices", "items"}
    if unknown:
        raise TypeError(f"unknown rule(s) {sorted(unknown)}")
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata={**rule, "doc": doc})
    return field(default=default, metadata={**rule, "doc": doc})


def _type_name(hint) -> str:
    if hint is typing.Any or hint is object:
        return "any value"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is list:
        args = typing.get_args(hint)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
            list: "a list", type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _matches(value, hint) -> bool:
    if hint is typing.Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if origin is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _rule_error(value, meta: dict) -> str | None:
    """The broken rule as text (None when ``value`` satisfies every rule in ``meta``)."""
    if "choices" in meta and value not in meta["choices"]:
        return f"must be one of {list(meta['choices'])}"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if value != value:
        return "must be a number, not NaN"
    for key, ok, text in (("min", lambda v, b: v >= b, ">="), ("max", lambda v, b: v <= b, "<="),
                          ("gt", lambda v, b: v > b, ">"), ("lt", lambda v, b: v < b, "<")):
        if key in meta and not ok(value, meta[key]):
            return f"must be {text} {meta[key]}"
    return None


def check_config(config) -> None:
    """Check every field of dataclass ``config`` against its type hint and declared rule.

    Raises
    ------
    ConfigError
        Naming the key, the rule and the value, e.g. ``trials: must be an integer >= 1; got 'abc'.``
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint, meta = getattr(config, f.name), hints.get(f.name, object), dict(f.metadata)
        typed = _matches(value, hint)
        rule = _rule_error(value, meta) if typed else f"must be {_type_name(hint)}"
        items = meta.get("items")
        if rule is None and items and isinstance(value, list):
            bad = [v for v in value if _rule_error(v, items)]
            rule = f"items {_rule_error(bad[0], items)}" if bad else None
        if rule is not None:
            bounds = {k: v for k, v in meta.items() if k in ("min", "max", "gt", "lt")}
            if not typed and bounds:
                rule += " " + ", ".join(f"{dict(min='>=', max='<=', gt='>', lt='<')[k]} {v}" for k, v in bounds.items())
            raise ConfigError(f"{f.name}: {rule}; got {value!r}.")


@dataclass
class ExecutionConfig:
    """The fields every pipeline shares: seeds, trials and how units execute."""

    seed: int = setting(0, min=0, doc="seeds every split, proxy and search; trial k uses [seed, k, ...]")
    trials: int = setting(3, min=1, max=100)
    resume: str = setting("if_available", choices=RESUME)
    backend: str = setting("local", choices=("local", "ray"))
    n_workers: int = setting(2, min=1, max=256, doc="parallel worker processes for units")
    device: str = setting("auto", choices=DEVICES, doc="auto: CUDA when present")

    def __post_init__(self):
        check_config(self)


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
