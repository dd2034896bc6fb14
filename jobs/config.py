"""Job configs: load YAML or TOML, apply ``key=value`` overrides, build and validate the dataclass.

Validation is declared once, next to each field, and read by one validator::

    trials: int = setting(3, min=1)
    backend: str = setting("local", choices=("local", "ray"))

The type hint gives the type (``int`` rejects ``2.7``, ``"abc"`` and ``True``; ``float`` takes
ints; ``list[int | str]`` checks every item), the metadata the rule (``min``/``max`` inclusive,
``gt``/``lt`` exclusive, ``choices``, ``items`` for list items, ``unique`` for a list that may
not repeat an item, ``keys`` for the keys, with their types, a mapping or each mapping of a list
may have, ``also`` for a field of mappings whose ``name`` entries are further choices: a run table of
your own beside the published ones). Every error names the key, the rule and the value. Every pipeline config subclasses
:class:`ExecutionConfig` (seed, trials and how the run executes) and calls
``super().__post_init__()`` first, so a config built in code is checked exactly like one read
from a file.
"""
from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import itertools
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from jobs.pipelines import PIPELINES
from mixmin_core.errors import ConfigError
from mixmin_core.runs.runner import RESUME

#: The most worker processes (or Ray CPUs) a job asks for.
MAX_WORKERS = 256
#: Fields that change how a run executes, not what it computes: left out of the run id.
EXECUTION_FIELDS = ("resume", "backend", "n_workers")
DEVICES = ("auto", "cpu", "cuda")


def setting(default, *, doc: str = "", **rule):
    """A config field with its validation rule (``min``, ``max``, ``gt``, ``lt``, ``choices``, ``items``,
    ``unique``, ``keys``, ``also``)."""
    unknown = set(rule) - {"min", "max", "gt", "lt", "choices", "items", "unique", "keys", "also"}
    if unknown:
        raise TypeError(f"unknown rule(s) {sorted(unknown)}")
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata={**rule, "doc": doc})
    return field(default=default, metadata={**rule, "doc": doc})


def _type_name(hint) -> str:
    if hint is typing.Any or hint is object:
        return "any value"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is list:
        args = typing.get_args(hint)
        return f"a list of {_plural(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
            list: "a list", type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint) -> str:
    """``hint``'s values, plural: "strings", "lists of numbers", "integers or strings"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_plural(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        args = typing.get_args(hint)
        return f"lists of {_plural(args[0])}" if args else "lists"
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans", dict: "mappings",
            list: "lists"}.get(hint) or _type_name(hint)


def _matches(value, hint) -> bool:
    if hint is typing.Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
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
        if len(meta["choices"]) == 1 and meta.get("doc"):  # a field fixed by the pipeline: say why
            return f"must be {meta['choices'][0]!r} ({meta['doc']})"
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
        also = meta.pop("also", None)
        if also:  # the names a sibling field of mappings declares are choices too
            named = getattr(config, also)
            extra = tuple(m["name"] for m in (named if isinstance(named, list) else [])
                          if isinstance(m, dict) and isinstance(m.get("name"), str))
            if "items" in meta:
                meta["items"] = dict(meta["items"])  # a copy: the field's own rule stays as declared
            for rule in (meta, meta.get("items")):
                if rule and "choices" in rule:
                    rule["choices"] = (*rule["choices"], *extra)
        counts = hint is int or (typing.get_origin(hint) in (typing.Union, types.UnionType) and int in typing.get_args(hint))
        if counts and isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)  # YAML reads 6e5 as a float; as a count it is the whole number it names
            object.__setattr__(config, f.name, value)
        as_float = _floats(value, hint)
        if as_float is not value:  # 1 and 1.0 name one number: the resolved config, and so the run id, agree
            value = as_float
            object.__setattr__(config, f.name, value)
        typed = _matches(value, hint)
        rule = _rule_error(value, meta) if typed else f"must be {_type_name(hint)}"
        if not typed and typing.get_origin(hint) is list and _matches([value], hint):  # one item, not in a list
            rule += f", e.g. [{value}]"
        items = meta.get("items")
        if rule is None and items and isinstance(value, list):
            bad = [v for v in value if _rule_error(v, items)]
            rule = f"items {_rule_error(bad[0], items)}" if bad else None
        if rule is None and meta.get("unique") and isinstance(value, list):
            repeated = [v for i, v in enumerate(value) if v in value[:i]]
            rule = f"must not repeat an item (repeated: {repeated})" if repeated else None
        if rule is None and "keys" in meta:
            _check_keys(f.name, value, meta["keys"])
        if rule is not None and also and "must be one of" in rule:  # the way to a name of one's own
            rule += f", or a name declared under `{also}:` (see the README)"
        if rule is not None:
            bounds = {k: v for k, v in meta.items() if k in ("min", "max", "gt", "lt")}
            if not typed and bounds:
                rule += " " + ", ".join(f"{dict(min='>=', max='<=', gt='>', lt='<')[k]} {v}" for k, v in bounds.items())
            raise ConfigError(f"{f.name}: {rule}; got {value!r}.")


def _floats(value, hint):
    """``value`` with the integers a ``float`` field (or a list's ``float`` items) holds as floats; ``value`` itself
    when nothing changes. A field that takes integers too (``int | float``) keeps them."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if float in args and int not in args and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return float(value)  # (a larger one is left to the field's range rule, which names it)
    if typing.get_origin(hint) is list and isinstance(value, list) and typing.get_args(hint):
        items = [_floats(v, typing.get_args(hint)[0]) for v in value]
        return items if any(a is not b for a, b in zip(items, value)) else value
    return value


def _check_keys(name: str, value, keys: dict) -> None:
    """Raise unless the mapping ``value`` (or each mapping in the list ``value``) has only ``keys``
    (``{key: type hint}``), each of its type: a mistyped key would otherwise be carried along and
    silently ignored."""
    items = [(name, value)] if isinstance(value, dict) else [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    for where, item in items:
        if not isinstance(item, dict):
            continue
        unknown = sorted(set(map(str, item)) - set(keys))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(keys)}.")
        for key, v in item.items():
            if not _matches(v, keys[key]):
                raise ConfigError(f"{where}.{key}: must be {_type_name(keys[key])}; got {v!r}.")


@dataclass
class ExecutionConfig:
    """The fields every pipeline shares: seeds, trials and how units execute."""

    seed: int = setting(0, min=0, max=2**31 - 1, doc="seeds every split, proxy and search; trial k uses [seed, k, ...]")
    trials: int = setting(3, min=1, max=100)
    resume: str = setting("if_available", choices=RESUME)
    backend: str = setting("local", choices=("local", "ray"))
    n_workers: int = setting(2, min=1, max=MAX_WORKERS, doc="parallel worker processes for units")
    device: str = setting("auto", choices=DEVICES, doc="auto: CUDA when present")
    #: What trains the pipeline's models on a GPU (named when ``device: cuda`` finds none).
    gpu_library = "PyTorch"

    def __post_init__(self):
        check_config(self)

    def cuda_available(self) -> bool:
        """Whether :attr:`gpu_library` sees a CUDA GPU on this machine (``device: cuda`` needs one locally)."""
        from mixmin_core.lm.training import pick_device

        return pick_device("auto") == "cuda"


def no_device():
    """The ``device`` field of a pipeline that trains no model: only ``auto`` (another value would change the run
    id and nothing else)."""
    return setting("auto", choices=("auto",), doc="this pipeline trains no model")


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, stricter where YAML 1.1 silently surprises: a repeated mapping key is an
    error (instead of the last one winning), and numbers are read as YAML 1.2 reads them (see below)."""

    def construct_mapping(self, node, deep=False):
        first = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if seen is not key_node:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r}, first at line {seen.start_mark.line + 1}; keep one of them",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


# Numbers as YAML 1.2 reads them: YAML 1.1 (PyYAML's) read 010 as 8 (octal), 1:30 as 90 (base 60) and 0b11 as 3,
# silently. Here an int is decimal (or 0x hex; _ separates digits), a float plain or with an exponent (1e-3
# included, which YAML 1.1 read as text), .inf or .nan; anything else stays text, which the schema then refuses by name.
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F][0-9a-fA-F_]*)$")
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))


def _construct_int(loader, node):
    """1_000_000 keeps its separators' meaning and a leading 0 is not octal; an explicit ``!!int`` tag on another
    form (``!!int 0b11``) is read as YAML 1.1 reads it."""
    if _INT.match(node.value):
        return int(node.value.replace("_", ""), 16 if node.value.startswith("0x") else 10)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)

#: Largest config file read (a config is a few hundred bytes; this stops ``/dev/zero``-style paths).
MAX_CONFIG_BYTES = 1 << 20
#: Most trees in any XGBoost model a config may ask for (proxies, finals, search runs, ladder rungs).
MAX_TREES = 10_000
#: Longest ``--set`` value (a list of a few hundred assay names fits).
MAX_OVERRIDE_CHARS = 10_000


def read_config_file(path: str | Path) -> dict:
    """The mapping in a YAML or TOML config file.

    Raises
    ------
    ConfigError
        Naming the file when it is missing, not a regular file, too large, not UTF-8 text, not
        valid YAML/TOML (a repeated key included), or not a mapping with a ``pipeline`` key.
        Messages never quote the file.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} not found; see configs/ for examples.")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a regular file; pass a .yaml or .toml file such as configs/synthetic_demo.yaml.")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is {size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,} bytes.")
    try:
        text = path.read_bytes()[:MAX_CONFIG_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; pass a .yaml or .toml config.") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror}).") from None
    try:
        if path.suffix != ".toml":
            _check_aliases(text, str(path))
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.load(text, Loader=ConfigLoader)
        _check_depth(data, str(path))
    except RecursionError:
        raise ConfigError(f"{path}: values are nested too deeply (at most {MAX_DEPTH} levels of lists and mappings).") from None
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}" if exc.problem_mark else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({exc.problem}).") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({str(exc).splitlines()[0]}).") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:  # !!int abc, !!bool maybe, 5,000 digits
        raise ConfigError(f"{path}: a value cannot be read ({type(exc).__name__}: {str(exc)[:120]}); check tagged "
                          "(!!type) and very long values.") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty (or only comments); a config is a mapping with a 'pipeline' key, "
                          "e.g. 'pipeline: synthetic'.")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping with a 'pipeline' key; got {type(data).__name__}.")
    if "pipeline" not in data:
        raise ConfigError(f"{path}: a config is a mapping with a 'pipeline' key; the 'pipeline' key is missing: "
                          f"add one naming a pipeline out of {sorted(PIPELINES)}, e.g. 'pipeline: synthetic'.")
    return {str(k): _plain(f"{path}: {k}", v) for k, v in data.items()}


#: Deepest nesting of lists and mappings a config value may have (configs use 3; 50,000 hit Python's recursion limit).
MAX_DEPTH = 32
#: Most YAML aliases (``*name``) a config file may use: a few hundred characters of aliases to aliases expand to
#: millions of elements (an alias "bomb"); 20 expand to at most a few thousand.
MAX_ALIASES = 20


def _check_depth(value, where: str) -> None:
    """A ConfigError when ``value`` nests lists and mappings deeper than :data:`MAX_DEPTH` (checked without
    recursion, before anything recurses through it)."""
    level = [value]
    for _ in range(MAX_DEPTH + 1):
        level = [v for item in level for v in (item.values() if isinstance(item, dict) else
                                              item if isinstance(item, list) else ())]
        if not level:
            return
    raise ConfigError(f"{where}: values are nested too deeply (at most {MAX_DEPTH} levels of lists and mappings).")


def _check_aliases(text: str, where: str) -> None:
    try:
        aliases = sum(isinstance(token, yaml.AliasToken) for token in yaml.scan(text))
    except yaml.YAMLError:
        return  # the parse that follows reports it, with its line
    if aliases > MAX_ALIASES:
        raise ConfigError(f"{where}: uses {aliases} YAML aliases (*name); a config may use at most {MAX_ALIASES} "
                          "(aliases of aliases can expand to millions of values). Write the values out.")


def parse_override_value(key: str, raw: str):
    """The value of ``--set key=raw``: a YAML scalar or flow list/mapping of plain data.

    YAML anchors, aliases and tags are refused (an alias "bomb" of a few hundred characters
    expands to millions of elements); so are values longer than :data:`MAX_OVERRIDE_CHARS`.
    A value YAML would read as a date stays the text it was.

    Raises
    ------
    ConfigError
        Naming ``key`` and saying what was wrong with the value.
    """
    if len(raw) > MAX_OVERRIDE_CHARS:
        raise ConfigError(f"--set {key}: the value has {len(raw):,} characters; at most {MAX_OVERRIDE_CHARS:,} are accepted.")
    if not raw.strip():  # YAML reads nothing as null: say so rather than report "got None" for a typo
        raise ConfigError(f"--set {key}: no value after '='; write one, e.g. --set {key}=3, or --set {key}=null "
                          "to clear an optional field.")
    try:
        for token in yaml.scan(raw):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken, yaml.TagToken)):
                what = {yaml.AnchorToken: "anchors (&name)", yaml.AliasToken: "aliases (*name)",
                        yaml.TagToken: "tags (!!type)"}[type(token)]
                raise ConfigError(f"--set {key}: YAML {what} are not accepted in overrides; write the value out "
                                  "in full, e.g. --set assays=[A, B].")
        value = yaml.load(raw, Loader=ConfigLoader)
        _check_depth(value, f"--set {key}")
    except RecursionError:
        raise ConfigError(f"--set {key}: the value is nested too deeply (at most {MAX_DEPTH} levels of lists and "
                          "mappings).") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ConfigError(f"--set {key}: cannot read the value {raw[:60]!r} ({type(exc).__name__}: {str(exc)[:120]}).") from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse the value {raw[:60]!r} as YAML ({exc.problem}); "
                          "quote text, and close lists, e.g. --set assays=[A, B].") from None
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: cannot parse the value {raw[:60]!r} as YAML.") from None
    return _plain(f"--set {key}", value)


def _plain(where: str, value):
    """``value`` if it is plain data (str, int, float, bool, None, lists and mappings of them); ``where``: the
    override or the file's key, for the message (``!!binary`` or ``!!set`` would run as a Python repr)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [_plain(where, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(where, v) for k, v in value.items()}
    if isinstance(value, datetime.date):  # YAML reads 2024-01-01 as a date: keep it as text
        return str(value)
    raise ConfigError(f"{where}: unsupported value type {type(value).__name__}; use a number, text, true/false or a list.")


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply dotted ``key=value`` overrides (values parsed by :func:`parse_override_value`)."""
    data = json.loads(json.dumps(data, default=str))
    given: set[str] = set()
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value; got {item[:60]!r}.")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key in given:  # as a key written twice in a YAML file: not last-wins
            raise ConfigError(f"--set {key[:60]} is given twice; give it once.")
        given.add(key)
        parts = key.split(".")
        if not key or not all(p.isidentifier() for p in parts):
            raise ConfigError(f"--set key must be a field name such as 'trials' or a dotted one into a mapping such as 'caps.TOX21_AR'; got {key[:60]!r}.")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section.")
        node[parts[-1]] = parse_override_value(key, raw)
    return data


def build_dataclass(cls, data: dict):
    """Instantiate dataclass ``cls`` from a dict.

    Raises
    ------
    ConfigError
        For a non-mapping, unknown fields, or a value the config's own checks reject (a
        ``TypeError``/``ValueError`` from a config that is not on the schema yet is reported
        the same way, naming the config).
    """
    name = cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be a mapping of field: value; got {type(data).__name__} {str(data)[:60]!r}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - names)
    if unknown:
        close = {u: difflib.get_close_matches(u, names, n=1) for u in unknown}
        hint = "; ".join(f"did you mean {c[0]!r} for {u!r}?" for u, c in close.items() if c)
        raise ConfigError(f"unknown field(s) {unknown} in {name}; " + (f"{hint} " if hint else "")
                          + f"valid: {sorted(names)}.")
    try:
        return cls(**data)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


#: Per pipeline, fields added after runs were made, left out of the run id at these defaults: the runs made before
#: keep their ids (a re-run resumes them) and a config that uses the field gets its own.
_CHEM_DATA_ADDED = {"format": "auto", "smiles_column": "smiles", "ignore_columns": ["mol_id"], "metadata": "auto"}
LATER_FIELDS = {"run_table": {"tables": []}, "chem_evolve": _CHEM_DATA_ADDED, "chem_ladder": _CHEM_DATA_ADDED,
                "lm": {"joint_max_iter": 0}}
#: At most this many files of a folder a config names enter the run id (a sources folder holds a few dozen).
MAX_STAMPED_FILES = 10_000


def input_stamp(config, registered: bool = True) -> list:
    """``[path, size, mtime_ns]`` of every file a config's text fields name (a folder: the files in it), and of
    the local copy of every registered dataset or published run table they name (``dataset: toxcast`` read from
    another ``MIXMIN_DATA_DIR``, or edited there): changed data gets a run of its own instead of resuming a run
    whose labels, fingerprints and splits came from the old files."""
    found = []
    values = config.values() if isinstance(config, dict) else config if isinstance(config, list) else ()
    for value in values:
        if isinstance(value, dict):  # nested: in key order, as config.json stores it (a resume reads that)
            found += input_stamp(dict(sorted(value.items(), key=lambda kv: str(kv[0]))), registered)
        elif isinstance(value, list):
            found += input_stamp(value, registered)
        elif isinstance(value, str) and value and len(value) < 4096 and "\0" not in value:
            try:
                path = Path(value).expanduser()
                files = [path] if path.is_file() else \
                    sorted(itertools.islice(path.rglob("*"), MAX_STAMPED_FILES)) if path.is_dir() else \
                    _registered_files(value) if registered else []
                found += [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]
            except (OSError, ValueError):
                continue
    return found


def _registered_files(name: str) -> list[Path]:
    """The local files of a registered dataset or a published run table called ``name`` ([] for another text,
    or one with no local copy: the run's own check says where to put it)."""
    from mixmin_core.errors import InputError
    from mixmin_core.runs.datasets import REGISTRY, resolve
    from mixmin_core.search.run_tables import TABLES

    names = [name] if name in REGISTRY else [n for n in TABLES.get(name, ())[:2] if n in REGISTRY]
    files = []
    for registered in names:
        try:
            files.append(resolve(registered, download=False))
        except InputError:
            continue
    return files


def run_id_for(name: str, resolved: dict, registered: bool = True, implicit: list | tuple = ()) -> str:
    """``<name>-<hash>``: the same config, naming the same files unchanged (:func:`input_stamp`), maps to the
    same run, so a re-run resumes it. ``implicit``: files the run reads without the config naming them (a
    pipeline's ``implicit_inputs``). ``registered=False``: the id a run got before registered datasets' files
    (and implicit ones) entered it (so such a run can still be resumed)."""
    stamp = input_stamp({k: v for k, v in resolved.items() if k not in (*EXECUTION_FIELDS, "name", "pipeline")},
                        registered)
    if registered:
        stamp += input_stamp([str(f) for f in implicit], registered=False)
    later = LATER_FIELDS.get(resolved.get("pipeline"), {})
    core = {k: v for k, v in resolved.items() if k not in EXECUTION_FIELDS and not (k in later and v == later[k])}
    digest = hashlib.sha1(json.dumps([core, stamp] if stamp else core, sort_keys=True,
                                     default=str).encode()).hexdigest()[:8]
    # a leading "-" would read as an option on the command line (`jobs status --run -x-1a2b3c4d`)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).lstrip("-") or "run"
    return f"{safe}-{digest}"
