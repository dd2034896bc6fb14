"""Run units of work (one proxy, one final model) locally or on Ray, skipping finished ones.

A unit's function writes its output file atomically and returns a small JSON-ready dict (its
cost, e.g. ``{"seconds": 1.2, "flops": 3e12}``). A unit whose output already exists is not run
again, so a job killed with ``kill -9`` resumes where it stopped and loses nothing finished.
On Ray (:mod:`mixmin_core.runs.ray_backend`) the unit runs in a temporary folder on any node and
the driver alone writes its files into the run store.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from mixmin_core.errors import ConfigError, MixminError
from mixmin_core.runs.datasets import confined
from mixmin_core.runs.fileio import readable_npz, sha256_file

log = logging.getLogger("mixmin.runner")
BACKENDS = ("local", "ray")
#: reuse finished units when their outputs exist, or recompute every unit
RESUME = ("if_available", "never")


#: Key of a unit's catalog info holding its output file's size when it finished.
OUTPUT_BYTES = "output_bytes"
#: ... and its SHA-256 (outputs up to :data:`HASHED_BYTES`): an edit that keeps the size changes it.
OUTPUT_SHA = "output_sha256"
HASHED_BYTES = 64 << 20


#: Free disk an app-started job keeps on its run store's file system (GB), unless this variable says otherwise.
MIN_FREE_ENV = "MIXMIN_MIN_FREE_GB"


def check_free_disk(root: str | os.PathLike) -> None:
    """A MixminError when the run store's file system has less free space than :data:`MIN_FREE_ENV` says (2 GB by
    default): a job started from a shared app stops there, between units, rather than fill the owner's disk (a
    visitor's synthetic job within every bound of its schema wrote 310 MB a trial, 100 trials allowed)."""
    import shutil

    try:
        floor = float(os.environ.get(MIN_FREE_ENV) or 2)  # GB
    except ValueError:
        floor = float("nan")
    if not 0 <= floor < float("inf"):  # nan or -5 switched the floor off; inf refused every job
        raise ConfigError(f"{MIN_FREE_ENV} must be a number of GB >= 0 (0: no floor); got {os.environ[MIN_FREE_ENV]!r}.")
    free = shutil.disk_usage(root).free / 2**30
    if free < floor:
        raise MixminError(f"the run store's disk has {free:.1f} GB free, under the {floor:g} GB a job "
                          f"started from the app leaves free ({MIN_FREE_ENV}); free some space (python -m jobs delete "
                          "RUN_ID), then start (or resume) the job.")


class JobCancelled(MixminError):
    """The job was cancelled from the catalog (e.g. the app's Jobs page)."""


@dataclass
class Unit:
    """One resumable piece of work: ``fn(**kwargs)`` writes ``output`` and returns a dict.

    ``num_gpus`` is what the unit asks Ray for (set it to 1 when the unit's device resolves to
    CUDA: LM proxies and finals, XGBoost with ``device="cuda"``); the local backend ignores it.
    """

    unit_id: str
    fn: Callable[..., dict]
    kwargs: dict = field(default_factory=dict)
    output: Path | None = None
    kind: str = "unit"
    num_gpus: float = 0.0

    def is_done(self) -> bool:
        return self.output is not None and Path(self.output).exists()


def _execute(fn, kwargs):
    start = time.perf_counter()
    info = fn(**kwargs) or {}
    return info, time.perf_counter() - start


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 2))


def run_tasks(units: list[Unit], *, backend: str = "local", n_workers: int | None = None,
              desc: str = "units", on_done: Callable[[Unit, dict, float], None] | None = None,
              should_stop: Callable[[], bool] | None = None, progress: bool = True,
              root: str | os.PathLike | None = None) -> dict[str, dict]:
    """Run the unfinished ``units``; return ``{unit_id: info}`` for those that ran now.

    ``backend="local"`` uses worker processes (``n_workers`` > 1) or runs in this process;
    ``"ray"`` submits each unit as a Ray task (``RAY_ADDRESS`` selects a cluster, else a fresh local
    instance with ``n_workers`` CPUs starts). On Ray, input files under ``root`` (the run store,
    default ``$MIXMIN_HOME``) or beside a unit's output travel to the worker, and the files the
    unit writes come back and are written here.
    ``should_stop`` is polled between units; when it returns True, :class:`JobCancelled` is raised.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}; got {backend!r}.")
    todo = [u for u in units if not u.is_done()]
    n_workers = n_workers or default_workers()
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=desc, disable=not progress, unit="unit")
    done: dict[str, dict] = {}

    def finish(unit, info, seconds, check_stop: bool = True):
        if unit.unit_id in done:  # recorded already (a stop came after its record)
            return
        if on_done is not None:
            on_done(unit, info, seconds)
        done[unit.unit_id] = info  # after the record: a stop between the two leaves the unit to record again
        bar.update(1)
        if check_stop and should_stop is not None and should_stop():
            raise JobCancelled(f"cancelled after unit {unit.unit_id}")

    try:
        if not todo:
            return done
        if backend == "ray":
            from mixmin_core.runs import ray_backend
            from mixmin_core.runs.store import default_home

            ray_backend.run_units(todo, n_workers, finish, root=root or default_home())
        elif min(n_workers, os.cpu_count() or 1) <= 1 or len(todo) == 1:
            for unit in todo:
                finish(unit, *_execute(unit.fn, unit.kwargs))
        else:  # more worker processes than cores only cost memory (about 200 MB each)
            _run_pool(todo, min(n_workers, os.cpu_count() or 1), finish)
    finally:
        bar.close()
    return done


def _run_pool(todo, n_workers, finish):
    pending = {}
    try:
        with _spawning():
            try:
                pending = {_pool(n_workers).submit(_execute, u.fn, u.kwargs): u for u in todo}
            except BrokenProcessPool:  # a worker died while idle (out of memory, a stray kill): start afresh, once
                close_pools()
                pending = {_pool(n_workers).submit(_execute, u.fn, u.kwargs): u for u in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:  # kept pending until recorded: a stop inside finish records it below
                finish(pending[fut], *fut.result())
                del pending[fut]
    except BaseException:
        # a stop (cancel, SIGTERM) lets started units finish: record them, or a resume would run them again
        for fut in pending:
            fut.cancel()
        started = sum(fut.running() for fut in pending)  # the pool hands out a few more than it has workers
        if started:
            log.warning("stopping: waiting for the %d unit(s) already handed to the workers (a second Ctrl-C or "
                        "SIGTERM drops them; a resume runs them again)", started)
        close_pools()  # waits for the units the workers had started
        for fut, unit in pending.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                finish(unit, *fut.result(), check_stop=False)
        raise


#: The worker pool of this process, kept between ``run_units`` calls: a job's stages (splits, proxies, each
#: search's runs, finals) each started a pool of their own, and its workers' imports (XGBoost, torch) took seconds
#: for units of 0.1 s (chem_ci took 8x longer with 2 workers than with 1). ``(key, pool)``; the key holds the
#: settings workers read from the environment, so none runs a unit under an earlier one's (tests change
#: MIXMIN_HOME); not all of it, which libraries write to as they load (torch: a pool per import).
_POOL: list = []
_ENV_PREFIXES = ("MIXMIN_", "CUDA_", "OMP_", "MKL_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "PYTHON", "RAY_")


def _pool(n_workers: int) -> ProcessPoolExecutor:
    key = (os.getpid(), n_workers, os.getcwd(), tuple(sorted((k, v) for k, v in os.environ.items()
                                                              if k.startswith(_ENV_PREFIXES))))
    if _POOL and _POOL[0][0][0] != os.getpid():  # a forked child: the parent's pool is not this process's to use
        _POOL.clear()
    if _POOL and (_POOL[0][0] != key or _POOL[0][1]._broken):  # a worker died: the pool takes no more units
        close_pools()
    if not _POOL:
        # spawn, not fork: XGBoost/torch threads in the parent would deadlock forked children
        _POOL.append((key, ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn"),
                                               initializer=_die_with_parent, initargs=(os.getpid(),))))
    return _POOL[0][1]


@contextlib.contextmanager
def _spawning():
    """Workers (started as units are submitted) are born ignoring SIGINT, which a new interpreter inherits: one still
    importing when a terminal's Ctrl-C came printed a traceback and broke the pool. (A Ctrl-C in these milliseconds
    is lost; signal dispositions belong to the main thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)


def kill_pools() -> None:
    """End the workers at once, dropping the units they run (a second stop signal: the user will not wait)."""
    for _, pool in _POOL:
        for process in list((pool._processes or {}).values()):
            process.kill()


def close_pools() -> None:
    """End this process's worker pool (after the units its workers run now): a job calls it when it ends."""
    while _POOL:
        _POOL.pop()[1].shutdown(wait=True, cancel_futures=True)


def _die_with_parent(parent: int) -> None:
    """Worker start: end with the job. A job killed with SIGKILL cannot stop its workers, which lived on (about
    550 MB each) and finished units no one recorded; Linux sends them SIGTERM when the job's process ends. A
    terminal's Ctrl-C reaches the whole process group: the job stops, letting started units finish (workers that
    took it printed tracebacks and dropped their units)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
    if os.getppid() != parent:  # the job died before the line above ran
        os._exit(1)


def _fingerprint(path: Path) -> dict:
    """What a finished unit's record keeps of its output: its size, and its SHA-256 up to :data:`HASHED_BYTES`."""
    size = path.stat().st_size
    return {OUTPUT_BYTES: size, **({OUTPUT_SHA: sha256_file(path)} if size <= HASHED_BYTES else {})}


def _remove_stale_temp_files(units: list[Unit]) -> None:
    """Delete temp files left by a killed writer (``.<name>.*.tmp``, see fileio.atomic_path)."""
    for unit in units:
        if unit.output is not None and not unit.is_done():
            out = Path(unit.output)
            for stale in out.parent.glob(f".{out.name}.*.tmp"):
                stale.unlink(missing_ok=True)


@dataclass
class RunContext:
    """What a pipeline gets from the job runner: its run folder, the store and ``run_units``."""

    store: object
    run_id: str
    backend: str = "local"
    n_workers: int | None = None
    job_id: int | None = None
    resume: str = "if_available"
    progress: bool = True

    @property
    def run_dir(self) -> Path:
        return self.store.run_dir(self.run_id)

    def path(self, *parts: str) -> Path:
        """A path inside the run folder (parent folders created)."""
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def run_units(self, units: list[Unit], desc: str) -> dict[str, dict]:
        """Run ``units`` (skipping finished ones unless ``resume="never"``), recording each in the
        catalog; return ``{unit_id: info}`` for every unit, including the ones reused."""
        if self.resume == "never":
            for u in units:
                if u.output is not None and u.is_done() and u.unit_id not in self._rerun:
                    Path(u.output).unlink()
                self._rerun.add(u.unit_id)
        self._rerun_unrecorded(units)
        _remove_stale_temp_files(units)
        total = len(units)
        n_before = total - sum(not u.is_done() for u in units)
        counter = {"n": n_before}

        def on_done(unit, info, seconds):
            counter["n"] += 1
            size = {} if unit.output is None or not Path(unit.output).is_file() else \
                _fingerprint(Path(unit.output))  # a resume redoes an output that changed since
            self.store.record_unit(self.run_id, unit.unit_id, kind=unit.kind,
                                   path=None if unit.output is None else str(unit.output),
                                   info={**info, "seconds": seconds, **size}, seconds=seconds)
            self.report(counter["n"], total, f"{desc}: finished {unit.unit_id}")  # (a job that dies names the last)
            if confined():  # a job a visitor started: it stops before the disk fills (the unit is kept)
                check_free_disk(self.store.root)

        self.report(n_before, total, f"{desc}: {n_before}/{total} already done")
        stop = (lambda: self.store.cancel_requested(self.job_id)) if self.job_id is not None else None
        ran = run_tasks(units, backend=self.backend, n_workers=self.n_workers, desc=desc,
                        on_done=on_done, should_stop=stop, progress=self.progress, root=self.store.root)
        infos = {}
        for u in units:
            infos[u.unit_id] = ran.get(u.unit_id) or self.store.unit_info(self.run_id, u.unit_id) or {}
        return infos

    def _rerun_unrecorded(self, units: list[Unit]) -> None:
        """A unit whose output file in this run's folder exists but whose catalog row does not (killed between
        writing the one and recording the other) runs again: what it reported (its compute, say) lives only in
        the catalog. So does one whose output's size or SHA-256 (up to :data:`HASHED_BYTES`) is not what was
        recorded when it finished (truncated, emptied, edited or overwritten since: reading it would fail, or give
        other results). Files outside the run folder (the store's content-addressed proxy cache, shared between
        runs and described beside each entry) are reused when they read back whole (a damaged one failed every
        later run that used it)."""
        recorded = {u["unit_id"]: u["info"] for u in self.store.units(self.run_id)}
        run_dir = self.run_dir.resolve()
        for u in units:
            if not u.is_done():
                continue
            if not Path(u.output).resolve().is_relative_to(run_dir):
                if Path(u.output).suffix == ".npz" and not readable_npz(u.output):
                    log.warning("%s: the cached output %s is damaged (it does not read back whole); running it again",
                                u.unit_id, u.output)
                    Path(u.output).unlink()
                continue
            size, info = Path(u.output).stat().st_size, recorded.get(u.unit_id)
            if info is None:
                log.warning("%s: output without a catalog record (the job was killed in between); running it again",
                            u.unit_id)
            elif isinstance(info, dict) and info.get(OUTPUT_BYTES, size) != size:
                log.warning("%s: its output %s is %d bytes, not the %s it had when the unit finished (damaged or "
                            "edited since); running it again", u.unit_id, u.output, size, info[OUTPUT_BYTES])
            elif isinstance(info, dict) and OUTPUT_SHA in info and info[OUTPUT_SHA] != sha256_file(u.output):
                log.warning("%s: its output %s is not what the unit wrote (its SHA-256 changed since: edited or "
                            "damaged); running it again", u.unit_id, u.output)
            else:
                continue
            Path(u.output).unlink()

    def report(self, n_done: int, n_total: int, message: str) -> None:
        log.info(message)
        if self.job_id is not None:
            self.store.update_job(self.job_id, n_done=n_done, n_total=n_total, message=message)

    def __post_init__(self):
        if self.resume not in RESUME:
            raise ConfigError(f"resume must be one of {RESUME}; got {self.resume!r}.")
        self._rerun: set[str] = set()
