"""Start and stop ``python -m jobs run`` processes (the app's Jobs page and get-started button).

A job runs as its own process in its own session, so it outlives page reloads and a restarted
app. It is started from an argument list, never through a shell, so no field can inject a
command. Each launch leaves ``<home>/launches/<stamp>.json`` (argv, pid, log) and its
stdout/stderr in ``<stamp>.log``: errors raised before the job reaches the catalog (a bad
config) stay visible.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mixmin_core.errors import InputError
from mixmin_core.runs import fileio
from mixmin_core.runs.store import RunStore

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: Popen objects of jobs started by this process, polled so finished children are reaped.
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Launch:
    """One started job process."""

    pid: int
    argv: tuple
    log_path: Path
    record_path: Path


def job_argv(config_path: str | os.PathLike, overrides: dict | None = None) -> list[str]:
    """``[python, -m, jobs, run, CONFIG, --set, k=v, ...]`` for ``overrides`` ``{dotted_key: value}``.

    Raises
    ------
    InputError
        For a missing config file, a key that is not a dotted identifier, or a value with a newline.
    """
    config_path = Path(config_path)
    if not config_path.is_file():
        raise InputError(f"config {config_path} not found; pick a file in configs/.")
    argv = [sys.executable, "-m", "jobs", "run", str(config_path)]
    for key, value in (overrides or {}).items():
        if not _KEY.match(str(key)):
            raise InputError(f"override key must be a dotted identifier such as 'trials' or 'proxy.n_trees'; got {key!r}.")
        text = str(value)
        if "\n" in text or "\r" in text:
            raise InputError(f"override {key} must be a single line; got {text[:40]!r}.")
        argv += ["--set", f"{key}={text}"]
    return argv


def start_job(config_path: str | os.PathLike, overrides: dict | None = None, *, home: str | os.PathLike | None = None,
              cwd: str | os.PathLike | None = None) -> Launch:
    """Start ``python -m jobs run`` on ``config_path`` in a new session; return at once.

    ``home`` is the run store the job writes to (default: ``MIXMIN_HOME`` or ``./data``);
    ``cwd`` the folder the job runs in (default: the repository root, where ``jobs/`` lives).
    """
    argv = job_argv(config_path, overrides)
    root = RunStore(home).root
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
    folder = root / "launches"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{stamp}.log"
    env = {**os.environ, "MIXMIN_HOME": str(root), "PYTHONUNBUFFERED": "1"}
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parents[1]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, shell=False)
    _CHILDREN[proc.pid] = proc
    record = folder / f"{stamp}.json"
    fileio.write_json(record, {"pid": proc.pid, "argv": argv, "log_path": str(log_path),
                               "config": str(config_path), "overrides": dict(overrides or {}),
                               "started_at": time.time()})
    return Launch(proc.pid, tuple(argv), log_path, record)


def list_launches(home: str | os.PathLike | None = None, limit: int = 20) -> list[dict]:
    """Recent launch records, newest first, each with ``alive`` and ``returncode`` (None if unknown)."""
    folder = RunStore(home).root / "launches"
    records = []
    for path in sorted(folder.glob("*.json"), reverse=True)[:limit]:
        try:
            rec = fileio.read_json(path)
        except (OSError, ValueError):
            continue
        proc = _CHILDREN.get(rec.get("pid"))
        code = proc.poll() if proc is not None else None
        rec["returncode"] = code
        rec["alive"] = code is None and _is_job_process(rec.get("pid"))
        records.append(rec)
    return records


def cancel_job(store: RunStore, job_id: int, *, force: bool = False) -> str:
    """Ask job ``job_id`` to stop after its current unit; with ``force`` also SIGTERM its process group.

    Returns a short description of what was done.
    """
    store.request_cancel(job_id)
    if not force:
        return f"cancel requested for job {job_id}; it stops after its current unit"
    job = next((j for j in store.list_jobs() if j["job_id"] == job_id), None)
    pid = job and job.get("pid")
    if not pid or not _is_job_process(pid):
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
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"jobs" in cmdline
