"""Start and stop ``python -m jobs run`` processes (the app's Jobs page and get-started button).

A job runs as its own process in its own session, so it outlives page reloads and a restarted
app. It is started from an argument list, never through a shell, so no field can inject a
command. Each launch leaves ``<home>/launches/<stamp>.json`` (argv, pid, log) and its
stdout/stderr in ``<stamp>.log``: errors raised before the job reaches the catalog (a bad
config) stay visible.

The app is opened by people other than the one who started it, so a job started here is
limited to what a user should set: a config from ``configs/``, overrides of the fields in
:data:`PAGE_FIELDS` only (no data, metadata or tokenizer paths), plain values (no YAML
anchors or aliases), at most :func:`max_running_jobs` at once, and files read only from the
data directory and the run store (the job runs with ``MIXMIN_CONFINE_PATHS=1``). With
``MIXMIN_READ_ONLY=1`` nothing can be started or cancelled.
"""
from __future__ import annotations

import difflib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.config import MAX_OVERRIDE_CHARS, parse_override_value
from mixmin_core.errors import ConfigError, InputError, MixminError
from mixmin_core.runs import fileio
from mixmin_core.runs.datasets import CONFINE_ENV, confinement
from mixmin_core.runs.runner import check_free_disk
from mixmin_core.runs.store import RunStore, default_home, job_alive

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
ROOT = Path(__file__).resolve().parents[1]
#: The only folder the app starts configs from.
CONFIG_DIR = ROOT / "configs"
READ_ONLY_ENV = "MIXMIN_READ_ONLY"
MAX_JOBS_ENV = "MIXMIN_MAX_JOBS"
DEFAULT_MAX_JOBS = 2

_EXECUTION = ("name", "trials", "seed", "n_workers")
_CHEM_COMMON = ("dataset", "max_molecules", "proxy_depth", "final_trees", "final_depth", "max_final_rows",
                "step_size", "max_iter", "device", "xgb_threads")
#: The fields a user may override from the Jobs page, per pipeline: the experiment's settings.
#: Left out on purpose: anything naming a file or folder (``path``, ``metadata``, ``sources_dir``,
#: ``tokenizer_path``, LM ``targets`` and ``sources``...), column names of a user table, ``backend``, and
#: ``resume``: ``resume=never`` deletes a finished run's outputs (a visitor's job has the owner's run id).
PAGE_FIELDS: dict[str, frozenset] = {name: frozenset(_EXECUTION + fields) for name, fields in {
    "synthetic": ("n_sources", "n_categories", "source_samples", "target_samples", "step_size", "max_iter"),
    "chem": _CHEM_COMMON + (
        "assays", "targets", "n_targets", "source_counts", "proxy_budgets", "test_fraction", "val_fraction",
        "radius", "n_bits", "proxy_trees", "tune", "methods", "search_max_sources", "search_trees", "search_rows",
        "regmix_preset", "regmix_candidates", "n_boot", "top_k", "include_target", "drop_target_test_molecules",
        "bo_init"),
    "lm": ("max_source_chars", "max_target_samples", "preset", "tokenizer", "bpe_vocab_size", "bpe_train_chars",
           "final_tokens", "proxy_budget", "proxy_budgets", "methods", "regmix_runs_per_source", "regmix_preset",
           "fit_fraction", "step_size", "max_iter", "cross_task", "transfer_preset", "transfer_tokens", "device",
           "eval_batch_size", "torch_threads", "joint_modes", "joint_normalise", "n_boot", "top_k",
           "regmix_candidates", "bo_init"),
    "run_table": ("train_table", "test_tables", "test_fraction", "targets", "methods", "preset", "prior",
                  "n_candidates", "top_k", "random_search_trials", "regmix_runs", "bo_budget", "bo_init",
                  "bo_fidelity_tables", "bo_fidelity_cost", "yardstick"),
    "chem_evolve": _CHEM_COMMON + ("target", "initial", "revise_fraction", "caps", "prior_strength", "proxy_trees"),
    "chem_ladder": _CHEM_COMMON + ("targets", "sources", "rungs", "threshold", "rule", "run_all", "score_rungs"),
}.items()}
#: Fields that start processes or threads: from the app, at most one per core.
PER_CORE = frozenset({"n_workers", "xgb_threads", "torch_threads"})
#: Popen objects of jobs started by this process, polled so finished children are reaped.
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Launch:
    """One started job process."""

    pid: int
    argv: tuple
    log_path: Path
    record_path: Path


def read_only() -> bool:
    """True when the app runs read-only (``MIXMIN_READ_ONLY`` set to 1/true/yes/on): no job may start or be cancelled.

    Raises
    ------
    ConfigError
        For any other value than those and 0/false/no/off/empty: the switch that makes a shared app safe must not
        read a typo (``y``, ``enabled``) as "off".
    """
    raw = os.environ.get(READ_ONLY_ENV, "").strip().lower()
    if raw not in _TRUE + _FALSE:
        raise ConfigError(f"{READ_ONLY_ENV}={raw[:40]!r} is neither on ({'/'.join(_TRUE)}) nor off "
                          f"({'/'.join(_FALSE[1:])}, or unset); set one of those.")
    return raw in _TRUE


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def max_running_jobs() -> int:
    """How many jobs the app may have running at once (``MIXMIN_MAX_JOBS``, default 2).

    Raises
    ------
    ConfigError
        For a value that is not a whole number >= 1.
    """
    raw = os.environ.get(MAX_JOBS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_JOBS
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:  # "²" is a digit int() refuses
        raise ConfigError(f"{MAX_JOBS_ENV}={raw[:40]!r} must be a whole number of jobs >= 1 (unset: "
                          f"{DEFAULT_MAX_JOBS}).")
    return int(raw)


def page_config_path(config_path: str | os.PathLike) -> Path:
    """``config_path`` resolved, if it is a ``.yaml``/``.toml`` file directly in :data:`CONFIG_DIR`.

    Raises
    ------
    InputError
        For any other path (the app starts configs from ``configs/`` only).
    """
    path = Path(config_path)
    real = (path if path.is_absolute() else ROOT / path).resolve()
    if real.parent != CONFIG_DIR.resolve() or real.suffix not in (".yaml", ".yml", ".toml"):
        raise InputError(f"config {str(config_path)[:200]!r}: the app starts configs from {CONFIG_DIR} only; "
                         "pick one of the listed configs.")
    if not real.is_file():
        raise InputError(f"config {path} not found; pick a file in configs/.")
    return real


def check_page_request(config_path: str | os.PathLike, overrides) -> None:
    """Check what the Jobs page may ask for: a config in ``configs/`` and allow-listed, plain overrides.

    ``overrides`` is ``{dotted_key: value}`` or a list of ``key=value`` texts (as on the command line).

    Raises
    ------
    InputError
        Naming the config or the key: a config outside ``configs/``, a key not in
        :data:`PAGE_FIELDS` for the config's pipeline, a multi-line or over-long value, or a
        value with YAML anchors, aliases or tags.
    """
    from jobs.config import read_config_file

    path = page_config_path(config_path)
    if isinstance(overrides, (list, tuple)):
        pairs = [item.split("=", 1) if "=" in item else (item, None) for item in overrides]
    else:
        pairs = list((overrides or {}).items())
    try:
        pipeline = read_config_file(path)["pipeline"]
    except MixminError as exc:
        raise InputError(str(exc)) from None
    allowed = PAGE_FIELDS.get(pipeline, frozenset())
    typos = {}  # every misspelt key at once, as the command line names them (the page said only the first)
    for key in (str(k).strip() for k, _ in pairs):
        close = difflib.get_close_matches(key, allowed, n=1) if _KEY.match(key) and key not in allowed else []
        if close and key not in _config_fields(pipeline):
            typos[key] = close[0]
    if typos:
        raise InputError(f"{', '.join(map(repr, typos))}: no field{'s' * (len(typos) > 1)} the app can set for pipeline "
                         f"{pipeline!r}; did you mean {', '.join(map(repr, typos.values()))}?")
    for key, value in pairs:
        key = str(key).strip()
        if not _KEY.match(key):
            raise InputError(f"override key must be a field name such as 'trials'; got {key[:60]!r}. Fields you can "
                             f"set: {', '.join(sorted(allowed))}.")  # (no dotted key is among them)
        if key not in allowed:  # a field kept off the page, or no field at all
            raise InputError(f"override {key!r} cannot be set from the app for pipeline {pipeline!r}; "
                             f"fields you can set: {', '.join(sorted(allowed))}. "
                             "Other fields (data paths among them) are set in a config file run with `python -m jobs run`.")
        if value is None:
            raise InputError(f"override {key} needs a value (key=value).")
        text = _as_override_text(value)
        if "\n" in text or "\r" in text:
            raise InputError(f"override {key} must be a single line; got {text[:40]!r}.")
        if len(text) > MAX_OVERRIDE_CHARS:
            raise InputError(f"override {key}: the value has {len(text):,} characters; at most {MAX_OVERRIDE_CHARS:,}.")
        try:
            value = parse_override_value(key, text)
        except ConfigError as exc:
            raise InputError(str(exc).removeprefix("--set ")) from None
        cores = os.cpu_count() or 1
        if key in PER_CORE and isinstance(value, (int, float)) and value > cores:  # 256 workers were accepted
            raise InputError(f"override {key}: {value:g} is more than this machine's {cores} cores; a job started from "
                             f"the app takes at most one per core (set more with `python -m jobs run`).")


def _config_fields(pipeline: str) -> set:
    """Every field of ``pipeline``'s config (those the app keeps off included)."""
    import dataclasses

    from jobs.pipelines import load_pipeline

    return {f.name for f in dataclasses.fields(load_pipeline(pipeline).CONFIG)}


def _as_override_text(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def job_argv(config_path: str | os.PathLike, overrides: dict | None = None) -> list[str]:
    """``[python, -m, jobs, run, CONFIG, --set, k=v, ...]`` for ``overrides`` ``{dotted_key: value}``.

    Raises
    ------
    InputError
        For a config outside ``configs/`` or missing, or an override :func:`check_page_request` refuses.
    """
    check_page_request(config_path, overrides)
    argv = [sys.executable, "-m", "jobs", "run", str(config_path)]
    for item in _set_args(overrides):
        argv += ["--set", item]
    return argv


def _set_args(overrides: dict | None) -> list[str]:
    """``overrides`` as the ``key=value`` texts of ``--set``."""
    return [f"{str(key).strip()}={_as_override_text(value)}" for key, value in (overrides or {}).items()]


def running_jobs(home: str | os.PathLike | None = None) -> list[dict]:
    """Jobs of the store that run now: catalog jobs whose process lives, and launches not in the catalog yet."""
    store = RunStore(home, read_only=read_only())
    jobs = [{"job_id": j["job_id"], "pid": j["pid"]} for j in store.list_jobs() if j["status"] == "running"]
    pids = {j["pid"] for j in jobs}
    jobs += [{"job_id": None, "pid": rec["pid"]} for rec in list_launches(home)
             if rec["alive"] and rec["pid"] not in pids]
    return jobs


def start_job(config_path: str | os.PathLike, overrides: dict | None = None, *, home: str | os.PathLike | None = None,
              cwd: str | os.PathLike | None = None) -> Launch:
    """Start ``python -m jobs run`` on ``config_path`` in a new session; return at once.

    ``home`` is the run store the job writes to (default: ``MIXMIN_HOME`` or ``./data``);
    ``cwd`` the folder the job runs in (default: the repository root, where ``jobs/`` lives).
    """
    if read_only():
        raise InputError(f"the app is read-only ({READ_ONLY_ENV}=1): jobs cannot be started here; "
                         "run `python -m jobs run CONFIG` on the machine instead.")
    from jobs.__main__ import check_device, resolve_config

    argv = job_argv(config_path, overrides)
    root = RunStore(home).root
    _check_room(root)  # first: it is cheap, and repeated clicks should not each read a dataset
    check_free_disk(root)
    # the job's own checks, run here as the confined job will (no download, no cache outside the store): a bad
    # value is an error on the page, not in a launch log
    with confinement():
        check_device(resolve_config(str(page_config_path(config_path)), _set_args(overrides))[2])
    folder = root / "launches"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MIXMIN_HOME": str(root), "PYTHONUNBUFFERED": "1", CONFINE_ENV: "1"}
    cwd = Path(cwd) if cwd is not None else ROOT
    # one start at a time: sessions clicking at once each counted the running jobs before any had started
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _check_room(root)  # again, now that no other start is between its count and its launch record
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        log_path = folder / f"{stamp}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, shell=False)
        _CHILDREN[proc.pid] = proc
        record = folder / f"{stamp}.json"
        fileio.write_json(record, {"pid": proc.pid, "argv": argv, "log_path": str(log_path),
                                   "config": str(config_path), "overrides": dict(overrides or {}),
                                   "started_at": time.time()})
    return Launch(proc.pid, tuple(argv), log_path, record)


def _check_room(root: Path) -> None:
    """An InputError when :func:`max_running_jobs` jobs run already (launched ones not in the catalog yet count)."""
    running = running_jobs(root)
    if len(running) >= max_running_jobs():
        names = ", ".join(f"job {j['job_id']}" if j["job_id"] else f"pid {j['pid']}" for j in running)
        raise InputError(f"{len(running)} jobs are already running ({names}); at most {max_running_jobs()} run at once. "
                         f"Wait for one to finish or cancel one (the limit is {MAX_JOBS_ENV}).")


def list_launches(home: str | os.PathLike | None = None, limit: int = 20) -> list[dict]:
    """Recent launch records, newest first, each with ``alive`` and ``returncode`` (None if unknown)."""
    folder = (Path(home).resolve() if home is not None else default_home()) / "launches"  # reads only: no store made
    records = []
    for path in sorted(folder.glob("*.json"), reverse=True)[:limit]:
        try:
            rec = fileio.read_json(path)
        except (OSError, ValueError):
            continue
        proc = _CHILDREN.get(rec.get("pid"))
        # this process's own child: its exit status is the answer (an exiting process has already lost
        # its /proc cmdline, so the /proc check would call it dead before its code can be read)
        code = proc.poll() if proc is not None else None
        rec["returncode"] = code
        rec["alive"] = code is None if proc is not None else _is_job_process(rec.get("pid"))
        records.append(rec)
    return records


def busy(store: RunStore) -> bool:
    """Whether a job runs, or a launched one is still starting (its process alive before its catalog row exists,
    which takes it seconds): pages that list jobs keep refreshing while so."""
    return (any(j["status"] == "running" for j in store.list_jobs())
            or any(rec["alive"] for rec in list_launches(store.root, limit=10)))


def cancel_job(store: RunStore, job_id: int, *, force: bool = False) -> str:
    """Ask job ``job_id`` to stop after its current unit; with ``force`` also SIGTERM its process group.

    Returns a short description of what was done.

    Raises
    ------
    InputError
        When the app is read-only.
    """
    if read_only():
        raise InputError(f"the app is read-only ({READ_ONLY_ENV}=1): jobs cannot be cancelled here.")
    store.request_cancel(job_id)
    if not force:
        return f"cancel requested for job {job_id}; it stops after its current unit"
    job = next((j for j in store.list_jobs() if j["job_id"] == job_id), None)
    pid = job and job.get("pid")
    # the pid must still be the job's: one killed with -9 may have left its number to a later `python -m jobs`
    if not pid or not _is_job_process(pid) or not job_alive(pid, job.get("started_at")):
        return f"cancel requested for job {job_id}; its process is no longer running"
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10.0
    while _is_job_process(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _is_job_process(pid):
        return f"sent SIGTERM to job {job_id} (pid {pid}); it is still shutting down"
    store.finish_job(job_id, "cancelled", "stopped with SIGTERM")
    store.set_run_status(job["run_id"], "cancelled")
    return f"sent SIGTERM to job {job_id} (pid {pid}); it stopped"


def read_log_tail(path: str | os.PathLike | None, max_bytes: int = 20_000) -> str:
    """The last ``max_bytes`` of a log file ("" if it does not exist)."""
    if not path or not Path(path).is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        text = fh.read().decode("utf-8", errors="replace")
    return text if size <= max_bytes else "...\n" + text


def _is_job_process(pid) -> bool:
    """True if ``pid`` is a live (not zombie) ``python -m jobs`` process."""
    if not pid:
        return False
    if pid in _CHILDREN and _CHILDREN[pid].poll() is not None:
        return False
    if not job_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"jobs" in cmdline
