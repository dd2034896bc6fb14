"""``python -m jobs run CONFIG [--set key=value ...] [--dry-run] [--backend local|ray]``,
``python -m jobs status [--run RUN_ID]`` and ``python -m jobs cancel JOB_ID``."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback

import yaml

from jobs.config import apply_overrides, build_dataclass, read_config_file, run_id_for
from jobs.pipelines import load_pipeline
from mixmin_core.errors import ConfigError, MixminError
from mixmin_core.runs.runner import BACKENDS, RESUME, JobCancelled, RunContext
from mixmin_core.runs.store import RunStore

log = logging.getLogger("mixmin.jobs")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except MixminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_run(args) -> int:
    raw = apply_overrides(read_config_file(args.config), args.set)
    pipeline_name = raw.pop("pipeline")
    name = raw.pop("name", os.path.splitext(os.path.basename(args.config))[0])
    pipeline = load_pipeline(pipeline_name)
    config = build_dataclass(pipeline.CONFIG, raw)
    resolved = {"pipeline": pipeline_name, "name": name, **dataclasses.asdict(config)}
    if args.dry_run:
        print(yaml.safe_dump(resolved, sort_keys=False), end="")
        return 0
    for field, allowed in (("resume", RESUME), ("backend", BACKENDS)):
        if getattr(config, field, allowed[0]) not in allowed:
            raise ConfigError(f"{field} must be one of {allowed}; got {getattr(config, field)!r}.")
    if hasattr(pipeline, "validate"):
        pipeline.validate(config)  # bad input fails here, before any run folder exists
    store = RunStore()
    run_id = run_id_for(name, resolved)
    dataset = pipeline.dataset(config) if hasattr(pipeline, "dataset") else None
    store.create_run(run_id, name=name, pipeline=pipeline_name, config=resolved, dataset=dataset)
    log_path = store.run_dir(run_id) / "logs" / f"job-{os.getpid()}.log"
    job_id = store.start_job(run_id, log_path=str(log_path))
    _setup_logging(log_path)
    store.set_run_status(run_id, "running")
    print(f"run {run_id} (job {job_id}) in {store.run_dir(run_id)}", file=sys.stderr)
    backend = args.backend or ("ray" if os.environ.get("RAY_ADDRESS") else getattr(config, "backend", "local"))
    ctx = RunContext(store, run_id, backend=backend,
                     n_workers=args.workers or getattr(config, "n_workers", None), job_id=job_id,
                     resume=getattr(config, "resume", "if_available"), progress=not args.quiet)
    try:
        summary = pipeline.run(config, ctx)
    except JobCancelled as exc:
        store.finish_job(job_id, "cancelled", str(exc))
        store.set_run_status(run_id, "cancelled")
        print(f"cancelled: {exc}", file=sys.stderr)
        return 3
    except MixminError as exc:
        store.finish_job(job_id, "failed", str(exc))
        store.set_run_status(run_id, "failed")
        raise
    except BaseException as exc:
        store.finish_job(job_id, "failed", "".join(traceback.format_exception(exc))[-4000:])
        store.set_run_status(run_id, "failed")
        raise
    store.set_run_status(run_id, "done", summary or {})
    store.finish_job(job_id, "done")
    print(f"done: run {run_id}", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    store = RunStore()
    runs = [store.get_run(args.run)] if args.run else store.list_runs()
    if not runs or runs[0] is None:
        print("no runs yet" if not args.run else f"no run {args.run!r}")
        return 0 if not args.run else 2
    for run in runs:
        jobs = store.list_jobs(run["run_id"])
        job = jobs[0] if jobs else None
        progress = f"{job['n_done']}/{job['n_total']} {job['message']}" if job else ""
        print(f"{run['run_id']:<40} {run['pipeline']:<10} {run['status']:<10} {progress}")
        if job and job.get("error"):
            print(f"    error: {job['error'].strip().splitlines()[-1]}")
    return 0


def cmd_cancel(args) -> int:
    RunStore().request_cancel(args.job_id)
    print(f"cancel requested for job {args.job_id}; it stops after its current unit")
    return 0


def _setup_logging(log_path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(log_path), logging.StreamHandler(sys.stderr)]
    handlers[1].setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs", description=__doc__)
    sub = parser.add_subparsers(required=True)
    run = sub.add_parser("run", help="run (or resume) the experiment a config describes")
    run.add_argument("config", help="path to a YAML or TOML config, e.g. configs/chem_demo.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field (dotted keys)")
    run.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    run.add_argument("--backend", choices=BACKENDS, default=None, help="where units run (default: local processes)")
    run.add_argument("--workers", type=int, default=None, help="parallel workers (default: 2)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="list runs and their latest job progress")
    status.add_argument("--run", default=None)
    status.set_defaults(func=cmd_status)
    cancel = sub.add_parser("cancel", help="ask a running job to stop after its current unit")
    cancel.add_argument("job_id", type=int)
    cancel.set_defaults(func=cmd_cancel)
    return parser


if __name__ == "__main__":
    sys.exit(main())
