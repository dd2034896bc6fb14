"""``python -m jobs run CONFIG [--set key=value ...] [--dry-run] [--backend local|ray]``,
``python -m jobs status [--run RUN_ID]``, ``python -m jobs resume RUN_ID``, ``python -m jobs cancel JOB_ID``,
``python -m jobs delete RUN_ID ... [--yes]`` and
``python -m jobs export (--run RUN_ID | --weights FILE --sizes CSV) [--format ...]``.

Bad input (a config, an override, a dataset) is one ``error: ...`` line and exit status 2,
before any run folder exists. One job at a time works on a run (its lock); SIGTERM and
Ctrl-C stop a job as ``cancelled`` (exit 128 + signal number), and a job whose process died
is reported as ``died`` with a hint to resume it.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import shlex
import signal
import sqlite3
import sys
import traceback
import unicodedata
from pathlib import Path

import yaml

from jobs.config import (
    MAX_WORKERS,
    apply_overrides,
    build_dataclass,
    read_config_file,
    run_id_for,
)
from jobs.export import add_parser as add_export_parser
from jobs.pipelines import load_pipeline
from mixmin_core.errors import ConfigError, MixminError
from mixmin_core.runs import datasets
from mixmin_core.runs.fileio import read_json, write_json, write_text
from mixmin_core.runs.runner import (
    BACKENDS,
    JobCancelled,
    RunContext,
    close_pools,
    kill_pools,
)
from mixmin_core.runs.store import RunLock, RunStore, default_home
from mixmin_core.solver.validation import FORMULA_STARTS, starts_as_formula

#: In a run folder: the backend, ``--workers`` and working directory its last job was started with (``resume``
#: starts the same way, where relative paths in the config mean the same files).
EXECUTION_FILE = "execution.json"
log = logging.getLogger("mixmin.jobs")
#: The signal that is stopping this job (set by the handler; any error after it is a cancellation).
_STOPPING: dict[str, int] = {}


class Stopped(BaseException):
    """What a stop signal raises: a BaseException, like KeyboardInterrupt, because code that catches
    Exception would swallow it (logging's handlers do, when the signal lands while they flush)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_joined(sys.argv[1:] if argv is None else list(argv)))
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not as a message at exit
        return code
    except BrokenPipeError:  # the reader went away (`status | head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush stays quiet
        return 0
    except MixminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a running job (e.g. while importing): no traceback
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def resolve_config(config_path: str, overrides: list[str], resuming: bool = False) -> tuple:
    """``(pipeline module, name, config, resolved dict)`` for a config file and ``--set`` overrides,
    fully validated: the schema, the pipeline's own ``validate`` and, for jobs the app started,
    the page's allow-list and the data-path confinement. Creates nothing.

    Raises
    ------
    ConfigError, InputError
        For any bad input, naming the field or file.
    """
    if datasets.confined():
        from jobs.control import (
            check_page_request,  # jobs the app started: the page's rules, checked again
        )

        check_page_request(config_path, overrides)
    raw = apply_overrides(read_config_file(config_path), overrides)
    pipeline_name = raw.pop("pipeline")
    if not isinstance(pipeline_name, str):
        raise ConfigError(f"pipeline must be a pipeline name such as 'synthetic'; got {pipeline_name!r}.")
    name = raw.pop("name", os.path.splitext(os.path.basename(config_path))[0])
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConfigError(f"name must be a non-empty text of at most 200 characters; got {str(name)[:60]!r}.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):  # as source names: U+202E
        raise ConfigError(f"name must not hold line breaks, control, invisible or direction-changing characters; got "
                          f"{name[:60]!r}.")
    if not resuming and starts_as_formula(name):  # the Runs table
        # downloads as CSV; a run named so before this rule still resumes
        raise ConfigError(f"name must not start with {', '.join(FORMULA_STARTS)} (a spreadsheet reads such a name as "
                          f"a formula); got {name[:60]!r}.")
    pipeline = load_pipeline(pipeline_name)
    try:
        config = build_dataclass(pipeline.CONFIG, raw)
    except ConfigError as exc:  # "field: ..." -- say where the value came from: an override or the file
        fields = set(str(exc).split(":", 1)[0].split("[", 1)[0].split(" or "))  # "dataset or path: ..." names two
        overridden = {o.split("=", 1)[0].strip().split(".")[0] for o in overrides or []}
        unknown = str(exc).startswith("unknown field(s)") and (  # the override's own key, or another pipeline's
            "pipeline" in overridden or any(f"'{k}'" in str(exc).split(";")[0] for k in overridden))
        raise ConfigError(f"--set {exc}" if fields & overridden or unknown else f"{config_path}: {exc}") from None
    resolved = {"pipeline": pipeline_name, "name": name, **dataclasses.asdict(config)}
    datasets.check_config_paths(resolved)
    if hasattr(pipeline, "validate"):
        pipeline.validate(config)  # bad input fails here, before any run folder exists
    return pipeline, name, config, resolved


def check_device(config, backend: str | None = None) -> str:
    """The backend the job runs on (``backend``: --backend, else Ray with RAY_ADDRESS set, else the config's), after
    refusing ``device: cuda`` where it runs locally on a machine without CUDA: LM training failed with a long
    traceback, XGBoost fell back to the CPU (a Ray cluster's nodes may have GPUs)."""
    backend = backend or ("ray" if os.environ.get("RAY_ADDRESS") else config.backend)
    here = backend == "local" or not os.environ.get("RAY_ADDRESS")  # a fresh local Ray instance is this machine
    if here and config.device == "cuda" and not config.cuda_available():
        raise ConfigError(f"device: 'cuda', but this machine has no CUDA GPU that {config.gpu_library} can use; set "
                          "device: auto (CUDA when present) or cpu, or run on a Ray cluster with GPUs "
                          "(RAY_ADDRESS=HOST:PORT ... --backend ray).")
    return backend


def _joined(argv: list[str]) -> list[str]:
    """``--problem KEY`` as ``--problem=KEY``: a target named from a letter outside ASCII ("Östrogen") has a key that
    starts with '-', which argparse took for an option ("expected one argument")."""
    out = []
    for arg in argv:
        if out and out[-1] == "--problem" and arg.startswith("-") and "__trial" in arg:  # every key ends __trialN
            out[-1] = f"--problem={arg}"
        else:
            out.append(arg)
    return out


def cmd_run(args) -> int:
    pipeline, name, config, resolved = resolve_config(args.config, args.set, bool(getattr(args, "resuming", None)))
    backend = check_device(config, args.backend)
    if args.dry_run:  # as the job would run: --backend, RAY_ADDRESS and --workers included
        shown = {**resolved, "backend": backend, **({"n_workers": args.workers} if args.workers else {})}
        print(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True), end="")
        return 0
    if backend == "ray" and os.environ.get("RAY_ADDRESS"):
        from mixmin_core.runs.ray_backend import check_address, start_ray

        check_address(os.environ["RAY_ADDRESS"])  # before any run folder exists: something answers there,
        start_ray(args.workers or 1)  # and lets this driver in
    store = RunStore()
    implicit = pipeline.implicit_inputs(config) if hasattr(pipeline, "implicit_inputs") else []
    run_id = run_id_for(name, resolved, implicit=implicit)
    resuming = getattr(args, "resuming", None)
    if resuming and run_id != resuming:  # ids a run got before: without registered datasets (or implicit inputs),
        # or with the leading "-" names now lose; its inputs are unchanged
        # (or with its values as it stored them: the integers of float fields as written, before 1 and 1.0 gave
        # one id, some fields as 1 and others as 1.0)
        stored = as_stored(resolved, args.config)
        earlier = (run_id, run_id_for(name, resolved, registered=False), run_id_for(name, resolved),
                   run_id_for(name, stored, implicit=implicit), run_id_for(name, stored, registered=False))
        if resuming in earlier or resuming.lstrip("-") in earlier:
            run_id = resuming
    if resuming and run_id != resuming:  # it would start another run, and leave the one asked for as it was
        raise ConfigError(f"run {resuming} cannot resume: its config, or a file or folder it names, has changed (or "
                          "moved) since it started, and a run reads the same files throughout. Restore them, or start a new "
                          f"run on the changed files with `cd {shlex.quote(os.getcwd())} && python -m jobs run "
                          f"{shlex.quote(str(store.run_dir(resuming) / 'config.json'))}` (from the folder it started in, "
                          "where its relative paths lead).")
    with RunLock(store.run_dir(run_id)) as lock:  # a second start of this run refuses here
        return _run_locked(args, store, run_id, lock, pipeline, name, config, resolved, backend)


def as_stored(resolved: dict, config_path) -> dict:
    """``resolved`` with each value the run's stored config (its ``config.json``) holds in an equal but other form
    (``1`` for ``1.0``), as its id was hashed before float fields were normalised."""
    try:
        stored = read_json(config_path)
    except (OSError, ValueError):
        return resolved
    if not isinstance(stored, dict):
        return resolved
    return {k: stored[k] if k in stored and stored[k] == v else v for k, v in resolved.items()}


def _run_locked(args, store, run_id, lock, pipeline, name, config, resolved, backend: str) -> int:
    dataset = pipeline.dataset(config) if hasattr(pipeline, "dataset") else None
    store.create_run(run_id, name=name, pipeline=resolved["pipeline"], config=resolved, dataset=dataset)
    log_path = store.run_dir(run_id) / "logs" / f"job-{os.getpid()}.log"
    job_id = store.start_job(run_id, log_path=str(log_path))
    # what was asked for: a backend chosen by --backend (not by RAY_ADDRESS or the config), --workers, the folder
    write_json(store.run_dir(run_id) / EXECUTION_FILE, {"backend": args.backend, "workers": args.workers, "cwd": os.getcwd()})
    previous = {}
    try:
        previous = _install_stop_handlers()
        lock.set_job(job_id)
        _setup_logging(log_path)
        for said in datasets.differing_local_copies():  # said on the console as the config was checked; the run's
            log.warning("%s", said, extra={"file_only": True})  # log keeps it (a visitor's job has no console)
        if lock.previous[1] is not None:
            log.info("took over the lock of job %s (pid %s), which is no longer running", *lock.previous)
            for stale in store.run_dir(run_id).rglob(".*.tmp"):  # its half-written files (fileio.atomic_path)
                stale.unlink(missing_ok=True)
        store.set_run_status(run_id, "running")
        print(f"run {run_id} (job {job_id}) in {store.run_dir(run_id)}", file=sys.stderr)
        ctx = RunContext(store, run_id, backend=backend,
                         n_workers=args.workers or config.n_workers, job_id=job_id,
                         resume=config.resume, progress=not args.quiet)
        summary = pipeline.run(config, ctx)
        store.set_run_status(run_id, "done", summary or {})
        store.finish_job(job_id, "done")
    except BaseException as exc:  # noqa: BLE001 - every ending is recorded, then reported in one line
        return _record_failure(store, run_id, job_id, exc, log_path)
    finally:
        close_pools()  # the job's worker processes end with it
        _restore_handlers(previous)
    print(f"done: run {run_id}; results in {store.run_dir(run_id) / 'summary.csv'} (and the app: streamlit run app.py)",
          file=sys.stderr)
    return 0


#: A full disk, a read-only file system, no permission, a quota: why a job cannot write, told in one line.
_STORE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)


#: What SQLite says when the catalog's disk is full, failing or read-only.
_STORE_SQLITE = ("disk is full", "disk i/o error", "readonly database", "unable to open database")


def _store_trouble(exc: BaseException, store) -> str | None:
    """``"<file>: <why>"`` where ``exc`` is the machine refusing a write (full disk, read-only, no permission, a
    quota), in a file or in the catalog's database; else None."""
    if isinstance(exc, OSError) and exc.errno in _STORE_ERRNOS:
        return f"{exc.filename or 'a file'}: {exc.strerror}"
    if isinstance(exc, sqlite3.OperationalError) and any(m in str(exc).lower() for m in _STORE_SQLITE):
        return f"{store.db_path} (the run store's catalog): {exc}"
    return None


def _record_failure(store, run_id: str, job_id: int, exc: BaseException, log_path: Path) -> int:
    """Record how the job ended (cancelled or failed) and return the exit status.

    An unexpected error in a job the app started is recorded and printed as one line: the app shows both
    to whoever opens it, and a traceback names files on this machine. Its traceback goes to a file beside
    the job's log (``job-<pid>.traceback``), which the app does not show.
    """
    if _STOPPING or isinstance(exc, (JobCancelled, KeyboardInterrupt)):
        signum = _STOPPING.get("signal") or (signal.SIGINT if isinstance(exc, KeyboardInterrupt) else None)
        reason = f"stopped by {signal.Signals(signum).name}" if signum else str(exc)
        store.finish_job(job_id, "cancelled", reason)
        store.set_run_status(run_id, "cancelled")
        log.warning("cancelled: %s; finished units are kept", reason)
        print(f"cancelled: {reason}; resume with `python -m jobs resume {run_id}`", file=sys.stderr)
        return 128 + signum if signum else 3
    # the catalog first, then the log: a job whose Ray cluster went away was ended by Ray's core worker while it
    # logged, and stayed "running" in the catalog ("died", with no reason)
    if isinstance(exc, MixminError):
        store.finish_job(job_id, "failed", str(exc))
        store.set_run_status(run_id, "failed")
        _log_failure(exc)
        raise exc
    trouble = _store_trouble(exc, store)
    if trouble:  # the machine, not the code: one line, no traceback
        reason = (f"{trouble}; free space or fix its folder's permissions, then resume with "
                  f"`python -m jobs resume {run_id}` (finished units are kept).")
        try:  # not in the job's log: it sits on the full or read-only disk (logging would print its own traceback)
            store.finish_job(job_id, "failed", reason)
            store.set_run_status(run_id, "failed")
        except (OSError, sqlite3.Error):  # the catalog sits on the same full or read-only disk
            pass
        print(f"error: {reason}", file=sys.stderr)
        return 1
    detail = "".join(traceback.format_exception(exc))
    if datasets.confined() and isinstance(exc, Exception):
        trace = log_path.with_suffix(".traceback")
        write_text(trace, detail)
        summary = (f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); its traceback is in "
                   f"the run folder, logs/{trace.name}")
        store.finish_job(job_id, "failed", summary)
        store.set_run_status(run_id, "failed")
        _log_failure(summary)
        print(f"error: {summary}", file=sys.stderr)
        return 1
    store.finish_job(job_id, "failed", detail[-4000:])
    store.set_run_status(run_id, "failed")
    _log_failure(detail)
    raise exc


def _log_failure(reason) -> None:
    """Why the job failed, in its log file (the app showed "(empty log)" beside the error); the console gets
    the one error line the CLI prints."""
    log.error("failed: %s", reason, extra={"file_only": True})


def _install_stop_handlers() -> dict:
    """SIGTERM and SIGINT raise :class:`Stopped` in the main thread.

    The exception unwinds through the runner, which lets units already handed to workers finish
    (their outputs are written atomically), so the job stops with everything finished kept. A second signal
    ends the workers at once (their units run again on resume).
    """
    def stop(signum, _frame):
        if _STOPPING:  # a second signal while stopping: the first finishes its cleanup, without the started units
            kill_pools()
            return
        _STOPPING["signal"] = signum
        raise Stopped(f"stopped by {signal.Signals(signum).name}")

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _short(text: str) -> str:
    """``text`` quoted, cut to 60 characters when longer than 80 (an id pasted wrong is echoed, not 5,000 characters)."""
    return repr(text) if len(text) <= 80 else f"{text[:60]!r}... ({len(text):,} characters)"


def cmd_status(args) -> int:
    root = default_home()  # status only reads: a store it cannot write (a read-only mount, a shared demo) is read
    if root.exists() and not root.is_dir():
        raise ConfigError(f"the run store {root} cannot be used (it is a file, not a folder); set MIXMIN_HOME to a "
                          "folder.")
    store = RunStore(read_only=not root.is_dir() or not os.access(root, os.W_OK))  # and creates no folder
    if args.run is not None and store.get_run(args.run) is None:  # "" too: it names no run
        raise ConfigError(f"no run {_short(args.run)} in {store.root}; `python -m jobs status` lists them.")
    runs = [store.get_run(args.run)] if args.run is not None else store.list_runs()
    if not runs:
        print("no runs yet")
        return 0
    print(f"{'run':<40} {'pipeline':<10} {'status':<10} {'job':<6} progress")  # job: what `cancel` takes
    for run in runs:
        jobs = store.list_jobs(run["run_id"])
        job = jobs[0] if jobs else None
        progress = f"{job['n_done']}/{job['n_total']} {job['message']}" if job else ""
        job_id = job["job_id"] if job else "-"
        print(f"{run['run_id']:<40} {run['pipeline']:<10} {run['status']:<10} {job_id:<6} {progress}")
        if job and job["status"] == "died":
            print(f"    job {job['job_id']} (pid {job['pid']}) died; last progress: {job['message'] or 'started'}; "
                  f"resume with `python -m jobs resume {run['run_id']}`")
        elif job and job.get("error"):  # a cancelled run resumes too (a failed one once its cause is fixed)
            print(f"    {'cancelled' if job['status'] == 'cancelled' else 'error'}: "
                  f"{job['error'].strip().splitlines()[-1]}"
                  + (f"; resume with `python -m jobs resume {run['run_id']}`" if job["status"] == "cancelled" else ""))
    return 0


def cmd_resume(args) -> int:
    """Run a stored run again from its resolved config (finished units are skipped)."""
    store = RunStore()
    if store.get_run(args.run_id) is None:
        raise ConfigError(f"no run {_short(args.run_id)} in {store.root}; `python -m jobs status` lists them.")
    folder = store.run_dir(args.run_id)
    last = _last_execution(folder)
    if last.get("cwd") and Path(last["cwd"]) != Path.cwd():  # a config's relative paths mean what they meant
        # the same store, wherever a relative MIXMIN_HOME pointed (it was found from here); a relative MIXMIN_DATA_DIR
        # or MIXMIN_CACHE means there what it meant when the run started, like the config's paths
        os.environ["MIXMIN_HOME"] = str(store.root)
        os.chdir(last["cwd"])
        print(f"resuming in {last['cwd']}, where the run started (its config's relative paths are relative to it)",
              file=sys.stderr)
    given = {"backend": args.backend, "workers": args.workers}
    if not os.environ.get("RAY_ADDRESS"):  # as its last job ran, unless told otherwise
        kept = {key: last[key] for key, value in given.items() if value is None and last.get(key) is not None}
        if kept:
            print("resuming with " + ", ".join(f"--{key} {value}" for key, value in kept.items())
                  + " (as its last job ran)", file=sys.stderr)
        given.update(kept)
    return cmd_run(argparse.Namespace(**{**vars(args), **given, "config": str(folder / "config.json"), "set": [],
                                         "dry_run": False, "resuming": args.run_id}))


def _last_execution(folder: Path) -> dict:
    """The backend, ``--workers`` and working directory the run's last job was started with ({} for a run
    from before this was recorded, or an unreadable record)."""
    try:
        last = read_json(folder / EXECUTION_FILE)
    except (OSError, ValueError):
        return {}
    if not isinstance(last, dict):
        return {}
    backend, workers, cwd = last.get("backend"), last.get("workers"), last.get("cwd")
    return {"backend": backend if backend in BACKENDS else None,
            "workers": workers if isinstance(workers, int) and 1 <= workers <= MAX_WORKERS else None,
            "cwd": cwd if isinstance(cwd, str) and Path(cwd).is_dir() else None}


def cmd_cancel(args) -> int:
    store = RunStore()
    if not (args.job_id.isascii() and args.job_id.isdigit()):  # `jobs status` lists the run id first: people pass it
        jobs = store.list_jobs(args.job_id) if store.get_run(args.job_id) else []
        hint = f"; run {args.job_id}'s latest job is {jobs[0]['job_id']}" if jobs else ""
        raise ConfigError(f"cancel takes a job id, the number in `python -m jobs status`'s job column; got "
                          f"{args.job_id[:60]!r}{hint}.")
    args.job_id = int(args.job_id)
    job = next((j for j in store.list_jobs() if j["job_id"] == args.job_id), None)
    if job is None:
        raise ConfigError(f"no job {args.job_id} in {store.root}; `python -m jobs status` lists runs and their jobs.")
    if job["status"] != "running":
        print(f"job {args.job_id} is not running (its status: {job['status']}); nothing to cancel")
        return 0
    store.request_cancel(args.job_id)
    print(f"cancel requested for job {args.job_id}; it stops after its current unit")
    return 0


def cmd_delete(args) -> int:
    """Remove runs (catalog rows and folders; the shared proxy cache stays), after a confirmation."""
    store = RunStore()
    runs = [store.deletable(run_id) for run_id in dict.fromkeys(args.run_ids)]  # every id checked before any goes
    listing = ", ".join(f"{r['run_id']} ({r['status']})" for r in runs[:5])  # 50 ids made one 2,600-character line
    listing = listing if len(runs) <= 5 else f"{len(runs)} runs: {listing} and {len(runs) - 5} more"
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"delete {listing}? Nothing was removed: add --yes to confirm without a terminal.")
        try:
            answer = input(f"delete {listing}, with every file in its folder? [y/N] ")
        except EOFError:  # Ctrl-D: no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 0
    for run in runs:
        print(f"removed {store.delete_run(run['run_id'])}")
    return 0


def _setup_logging(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(log_path), logging.StreamHandler(sys.stderr)]
    handlers[1].setLevel(logging.WARNING)
    handlers[1].addFilter(lambda record: not getattr(record, "file_only", False))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    if value > MAX_WORKERS:  # Ray takes any number as its CPU count: 1e20 crashed it
        raise argparse.ArgumentTypeError(f"must be at most {MAX_WORKERS}; got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    run = sub.add_parser("run", help="run (or resume) the experiment a config describes")
    run.add_argument("config", help="path to a YAML or TOML config, e.g. configs/chem_demo.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field (dotted keys)")
    run.add_argument("--dry-run", action="store_true", help="validate, print the resolved config and exit")
    _execution_args(run)
    run.set_defaults(func=cmd_run)
    resume = sub.add_parser("resume", help="continue a run that was cancelled, failed or died")
    resume.add_argument("run_id", help="the run's id, as `python -m jobs status` lists it")
    _execution_args(resume)
    resume.set_defaults(func=cmd_resume)
    status = sub.add_parser("status", help="list runs and their latest job progress")
    status.add_argument("--run", default=None, metavar="RUN_ID", help="only this run (default: every run)")
    status.set_defaults(func=cmd_status)
    cancel = sub.add_parser("cancel", help="ask a running job to stop after its current unit")
    cancel.add_argument("job_id", help="the number in the job column of `python -m jobs status`")
    cancel.set_defaults(func=cmd_cancel)
    delete = sub.add_parser("delete", help="remove runs: their catalog rows and folders (not the shared proxy cache)")
    delete.add_argument("run_ids", nargs="+", metavar="run_id", help="ids as `python -m jobs status` lists them")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(func=cmd_delete)
    add_export_parser(sub)
    return parser


def _execution_args(parser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default=None, help="where units run (default: local processes)")
    parser.add_argument("--workers", type=_positive_int, default=None, help="parallel workers (default: the config's n_workers)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


if __name__ == "__main__":
    sys.exit(main())
