"""The job runner: CLI, resume after kill -9, catalog records, errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jobs.__main__ import main
from mixmin_core.runs.runner import Unit, run_tasks
from mixmin_core.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "synthetic_demo.yaml")


def _write_value(*, value: int, output: str) -> dict:
    from mixmin_core.runs.fileio import write_json

    write_json(output, {"value": value})
    return {"rows": value}


def test_a_stop_while_a_finished_unit_is_being_recorded_still_records_it(tmp_path):
    """SIGTERM inside the runner's bookkeeping of a finished unit left its output without a catalog record (the
    unit was out of the pending list before its record), so a resume ran it again."""
    units = [Unit(f"u{i}", _write_value, {"value": i, "output": str(tmp_path / f"u{i}.json")}, tmp_path / f"u{i}.json")
             for i in range(3)]
    recorded, calls = [], []

    def on_done(unit, info, seconds):
        calls.append(unit.unit_id)
        if len(calls) == 1:  # the stop arrives while the first finished unit is being recorded
            raise KeyboardInterrupt
        recorded.append(unit.unit_id)

    with pytest.raises(KeyboardInterrupt):
        run_tasks(units, n_workers=2, on_done=on_done, progress=False)
    assert calls[0] in recorded  # recorded after all, as the stop unwound
    assert len(recorded) == len(set(recorded))  # and nothing twice
    assert set(recorded) <= {u.unit_id for u in units if Path(u.output).exists()}


def test_run_tasks_local_pool_and_skip(tmp_path):
    units = [Unit(f"u{i}", _write_value, {"value": i, "output": str(tmp_path / f"u{i}.json")}, tmp_path / f"u{i}.json")
             for i in range(4)]
    done = run_tasks(units, n_workers=2, progress=False)
    assert sorted(done) == ["u0", "u1", "u2", "u3"] and done["u3"] == {"rows": 3}
    assert run_tasks(units, n_workers=2, progress=False) == {}  # all finished: nothing re-runs


def test_cli_run_twice_resumes_and_records(capsys):
    assert main(["run", DEMO, "--quiet"]) == 0
    store = RunStore()
    (run,) = store.list_runs()
    assert run["status"] == "done" and run["pipeline"] == "synthetic"
    units = store.units(run["run_id"])
    assert len(units) == 6 and all(u["status"] == "done" for u in units)
    stamps = {p: p.stat().st_mtime_ns for p in (store.run_dir(run["run_id"]) / "proxies").iterdir()}
    assert main(["run", DEMO, "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # no unit was redone
    jobs = store.list_jobs(run["run_id"])
    assert [j["status"] for j in jobs] == ["done", "done"]
    results = store.results(run["run_id"])
    assert set(results["method"]) == {"mixmin", "natural", "balanced"} and set(results["trial"]) == {0, 1, 2}
    spent = results.groupby("method")["proxy_compute"]  # the ledger: only MixMin trained proxies
    assert (spent.min()["mixmin"] > 0) and spent.max()[["natural", "balanced"]].eq(0).all()
    config = json.loads((store.run_dir(run["run_id"]) / "config.json").read_text())
    assert config["pipeline"] == "synthetic"


def test_dry_run_prints_resolved_config_and_writes_nothing(capsys):
    assert main(["run", DEMO, "--dry-run", "--set", "trials=5", "--set", "step_size=0.5"]) == 0
    out = capsys.readouterr().out
    assert "trials: 5" in out and "step_size: 0.5" in out and "max_iter: 200" in out
    assert RunStore().list_runs() == []
    assert main(["run", DEMO, "--dry-run", "--backend", "ray", "--workers", "3"]) == 0  # printed "backend: local"
    out = capsys.readouterr().out
    assert "\nbackend: ray\n" in out and "\nn_workers: 3\n" in out and RunStore().list_runs() == []


@pytest.mark.parametrize("args,match", [
    (["run", "missing.yaml"], "config file missing.yaml not found"),
    (["run", DEMO, "--set", "trials"], "--set expects key=value"),
    (["run", DEMO, "--set", "bogus=1"], r"unknown field\(s\) \['bogus'\]"),
    (["run", DEMO, "--set", "trials=0"], "trials: must be >= 1; got 0"),
    (["run", DEMO, "--set", "pipeline=nope"], "pipeline must be one of"),
    (["run", DEMO, "--set", "resume=sometimes"], "resume: must be one of .*; got 'sometimes'"),
])
def test_cli_errors_are_clear(args, match, capsys):
    assert main(args) == 2
    import re

    assert re.search(match, capsys.readouterr().err)
    assert RunStore().list_runs() == []


def test_status_reads_a_store_it_cannot_write(capsys, monkeypatch):
    """It opened the catalog for writing (creating its schema), so a read-only store was an error."""
    import jobs.__main__ as cli

    assert main(["run", DEMO, "--quiet"]) == 0
    opened = []
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)  # as on a read-only mount (root ignores chmod)
    monkeypatch.setattr(cli, "RunStore", lambda *a, **kw: opened.append(kw) or RunStore(*a, **kw))
    capsys.readouterr()
    assert main(["status"]) == 0
    assert opened == [{"read_only": True}] and "synthetic" in capsys.readouterr().out


def test_status_of_a_store_that_does_not_exist_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / "typo"))
    assert main(["status"]) == 0 and "no runs yet" in capsys.readouterr().out
    assert not (tmp_path / "typo").exists()  # it made the folder and a catalog there
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / "file"))
    for argv in (["run", DEMO, "--quiet"], ["status"]):  # status said "no runs yet"
        assert main(argv) == 2
        assert "cannot be used (it is a file, not a folder)" in capsys.readouterr().err


def test_status_lists_runs(capsys):
    assert main(["status"]) == 0
    assert "no runs yet" in capsys.readouterr().out
    main(["run", DEMO, "--quiet"])
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "synthetic-demo" in capsys.readouterr().out


def test_kill_mid_run_then_resume_loses_nothing(tmp_path):
    """kill -9 a real job mid-way; the re-run redoes no finished unit and leaves no partial file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "jobs", "run", DEMO, "--quiet", "--set", "n_sources=10",
           "--set", "source_samples=10000000", "--set", "trials=1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    home = Path(os.environ["MIXMIN_HOME"])
    deadline = time.time() + 120
    proxies = []
    while time.time() < deadline and len(proxies) < 2:
        proxies = list(home.glob("runs/*/proxies/*.npy"))
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(proxies) < 10, "the job must be killed mid-way"
    for p in home.glob("runs/*/proxies/*.npy"):
        assert np.load(p).shape == (40,)  # every file that exists is whole
    # finished: recorded in the catalog (a file written just before the kill, but not recorded, runs again)
    (run,) = RunStore().list_runs()
    finished = {Path(u["path"]): Path(u["path"]).stat().st_mtime_ns for u in RunStore().units(run["run_id"])}
    assert finished
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for p, stamp in finished.items():
        assert p.stat().st_mtime_ns == stamp, f"{p.name} was retrained"
    assert len(list(home.glob("runs/*/proxies/*.npy"))) == 10
    assert not list(home.glob("runs/*/proxies/.*.tmp"))
    store = RunStore()
    (run,) = store.list_runs()
    statuses = [j["status"] for j in store.list_jobs(run["run_id"])]
    assert statuses == ["done", "died"]
    assert run["status"] == "done"


def test_an_app_started_job_stops_before_the_disk_fills(tmp_path, monkeypatch):
    """A visitor's synthetic job within every bound of its schema wrote 310 MB a trial (100 trials allowed): a job
    started from the app stops between units once the store's disk has less than MIXMIN_MIN_FREE_GB free; the
    units it finished are kept. A job started on the command line is not bounded."""
    from mixmin_core.errors import MixminError
    from mixmin_core.runs.datasets import CONFINE_ENV
    from mixmin_core.runs.runner import RunContext

    store = RunStore(tmp_path / "home")
    store.create_run("r", name="r", pipeline="test", config={})
    ctx = RunContext(store, "r", progress=False)
    units = [Unit(f"u{i}", _write_value, {"value": i, "output": str(ctx.path(f"u{i}.json"))}, ctx.path(f"u{i}.json"))
             for i in range(3)]
    monkeypatch.setenv("MIXMIN_MIN_FREE_GB", "1e9")  # more than any disk has
    assert len(ctx.run_units(units[:1], "command line")) == 1
    monkeypatch.setenv(CONFINE_ENV, "1")
    with pytest.raises(MixminError, match=r"the run store's disk has [\d.]+ GB free, under the 1e\+09 GB a job started "
                                          r"from the app leaves free \(MIXMIN_MIN_FREE_GB\)"):
        ctx.run_units(units, "app")
    assert store.unit_info("r", "u1")["rows"] == 1  # stopped after the next unit (those the workers held, kept)
    from jobs import control

    with pytest.raises(MixminError, match="GB free"):  # and the page's start refuses at once
        control.start_job(CONFIG_FOR_DISK, {"trials": 1}, home=tmp_path / "home2")
    assert control.list_launches(tmp_path / "home2") == []
    for bad in ("lots", "nan", "-5", "inf"):  # nan and -5 switched the floor off, inf refused every job
        monkeypatch.setenv("MIXMIN_MIN_FREE_GB", bad)
        with pytest.raises(MixminError, match=rf"MIXMIN_MIN_FREE_GB must be a number of GB >= 0 \(0: no floor\); got '{bad}'"):
            control.start_job(CONFIG_FOR_DISK, {"trials": 1}, home=tmp_path / "home2")


CONFIG_FOR_DISK = "configs/synthetic_demo.yaml"


def test_an_output_without_its_catalog_record_runs_again(tmp_path):
    """Killed between writing a unit's file and recording it: the file alone does not count as done, since what
    the unit reported (an LM proxy's compute) lives only in the catalog. (An LM run could never resume.)"""
    from mixmin_core.runs.runner import RunContext

    store = RunStore(tmp_path / "home")
    store.create_run("r", name="r", pipeline="test", config={})
    ctx = RunContext(store, "r", progress=False)
    units = [Unit(f"u{i}", _write_value, {"value": i, "output": str(ctx.path(f"u{i}.json"))}, ctx.path(f"u{i}.json"))
             for i in range(3)]
    assert ctx.run_units(units[:2], "first")["u1"]["rows"] == 1
    kept = units[0].output.stat().st_mtime_ns
    units[2].output.write_text('{"value": 2}')  # its file, but no record
    infos = ctx.run_units(units, "resume")
    assert infos["u2"]["rows"] == 2 and store.unit_info("r", "u2")["rows"] == 2  # ran again, and recorded
    assert units[0].output.stat().st_mtime_ns == kept  # a recorded unit is not redone


def test_a_damaged_output_runs_again(tmp_path, caplog):
    """A unit's file emptied or cut short after it finished (a full disk, a bad copy) failed every resume with a
    JSONDecodeError from the code that read it; its size no longer matches the recorded one, so it runs again."""
    from mixmin_core.runs.runner import OUTPUT_BYTES, OUTPUT_SHA, RunContext

    store = RunStore(tmp_path / "home")
    store.create_run("r", name="r", pipeline="test", config={})
    ctx = RunContext(store, "r", progress=False)
    units = [Unit(f"u{i}", _write_value, {"value": i, "output": str(ctx.path(f"u{i}.json"))}, ctx.path(f"u{i}.json"))
             for i in range(3)]
    ctx.run_units(units, "first")
    assert store.unit_info("r", "u1")[OUTPUT_BYTES] == units[1].output.stat().st_size
    kept = units[0].output.stat().st_mtime_ns
    units[1].output.write_text("")  # emptied
    units[2].output.write_text('{"val')  # cut short
    ctx.run_units(units, "resume")
    assert json.loads(units[1].output.read_text()) == {"value": 1} and json.loads(units[2].output.read_text())["value"] == 2
    assert units[0].output.stat().st_mtime_ns == kept  # an intact output is not redone
    assert "u1: its output" in caplog.text and "not the" in caplog.text
    units[1].output.write_text(units[1].output.read_text().replace("1", "7"))  # an edit that keeps the size
    ctx.run_units(units, "after an edit")
    assert json.loads(units[1].output.read_text()) == {"value": 1} and "SHA-256 changed since" in caplog.text
    legacy = store.unit_info("r", "u0")
    del legacy[OUTPUT_BYTES], legacy[OUTPUT_SHA]  # a record from before sizes were kept: trusted as before
    store.record_unit("r", "u0", kind="unit", path=str(units[0].output), info=legacy, seconds=0.0)
    ctx.run_units(units, "again")
    assert units[0].output.stat().st_mtime_ns == kept


def _write_npz(*, value: int, output: str) -> dict:
    from mixmin_core.runs.fileio import atomic_path

    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, preds=np.full(1000, value, np.float32))
    return {"rows": value}


def test_a_damaged_file_in_the_shared_proxy_cache_runs_again(tmp_path, caplog):
    """A cut-short proxy in the store's cache (outside any run folder) was reused as it was: every later run that
    needed it failed with BadZipFile, and no rerun or resume repaired it."""
    from mixmin_core.runs.runner import RunContext

    store = RunStore(tmp_path / "home")
    store.create_run("r", name="r", pipeline="test", config={})
    ctx = RunContext(store, "r", progress=False)
    cache = tmp_path / "home" / "proxy_cache"
    cache.mkdir()
    units = [Unit(f"p{i}", _write_npz, {"value": i, "output": str(cache / f"k{i}.npz")}, cache / f"k{i}.npz")
             for i in range(3)]
    ctx.run_units(units, "first")
    kept = units[0].output.stat().st_mtime_ns
    data = units[1].output.read_bytes()
    units[1].output.write_bytes(data[:100])  # truncated
    units[2].output.write_bytes(data[:-40] + bytes(40))  # its end overwritten
    ctx.run_units(units, "resume")
    for i in (1, 2):
        with np.load(units[i].output) as z:
            assert (z["preds"] == i).all()
    assert units[0].output.stat().st_mtime_ns == kept  # a whole cache file is reused
    assert "p1: the cached output" in caplog.text and "is damaged" in caplog.text


def test_a_damaged_sources_file_is_written_again(tmp_path):
    """A chemistry run's sources/trial<k>.npz is no unit: damaged, it stayed, and every final model failed on it."""
    from mixmin_core.chem.trainers import load_sources, save_sources

    path = tmp_path / "trial0.npz"
    save_sources(path, ["a", "b"], ["A", "B"], [np.arange(3), np.arange(5, 7)])
    whole = path.read_bytes()
    path.write_bytes(whole[:50])
    save_sources(path, ["a", "b"], ["A", "B"], [np.arange(3), np.arange(5, 7)])
    assert path.read_bytes() == whole and load_sources(str(path))["b"][1].tolist() == [5, 6]


def test_unknown_backend_is_a_config_error():
    from mixmin_core.errors import ConfigError

    with pytest.raises(ConfigError, match="backend must be one of"):
        run_tasks([], backend="spark")


def test_local_workers_never_exceed_the_cores_or_the_units(tmp_path, monkeypatch):
    """n_workers=256 from the Jobs page started 256 processes of ~200 MB on a 2-core machine."""
    from mixmin_core.runs import runner

    sizes, real_pool = [], runner._run_pool

    def pool(todo, n, finish):
        sizes.append(n)
        for unit in todo:
            finish(unit, *runner._execute(unit.fn, unit.kwargs))

    monkeypatch.setattr(runner, "_run_pool", pool)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 4)
    units = [Unit(f"u{i}", _write_value, {"value": i, "output": str(tmp_path / f"u{i}.json")}, tmp_path / f"u{i}.json")
             for i in range(3)]
    assert sorted(run_tasks(units, n_workers=256, progress=False)) == ["u0", "u1", "u2"]
    more = [Unit(f"v{i}", _write_value, {"value": i, "output": str(tmp_path / f"v{i}.json")}, tmp_path / f"v{i}.json")
            for i in range(9)]
    run_tasks(more, n_workers=256, progress=False)
    assert sizes == [4, 4]  # the cores: one pool serves every stage of a job
    # ... whose worker processes start as units need them: no more processes than units
    monkeypatch.setattr(runner, "_run_pool", real_pool)
    few = [Unit(f"w{i}", _write_value, {"value": i, "output": str(tmp_path / f"w{i}.json")}, tmp_path / f"w{i}.json")
           for i in range(2)]
    try:
        assert sorted(run_tasks(few, n_workers=256, progress=False)) == ["w0", "w1"]
        assert 1 <= len(runner._POOL[0][1]._processes) <= 2
    finally:
        runner.close_pools()


def test_one_worker_pool_serves_every_stage_of_a_job(tmp_path):
    """Each run_units call started a pool of its own, whose workers imported XGBoost again: chem_ci took 8x longer
    with 2 workers than with 1. The pool now lives until the job ends (or the environment changes)."""
    from mixmin_core.runs import runner

    pools = []
    try:
        for stage in range(3):
            units = [Unit(f"{stage}-{i}", _write_value, {"value": i, "output": str(tmp_path / f"{stage}-{i}.json")},
                          tmp_path / f"{stage}-{i}.json") for i in range(2)]
            run_tasks(units, n_workers=2, progress=False)
            pools.append(runner._POOL[0][1])
        first = pools[0]
        assert pools == [first] * 3
        os.environ["MIXMIN_TEST_POOL_KEY"] = "1"  # another environment: workers started under the old one go
        try:
            run_tasks([Unit("x", _write_value, {"value": 0, "output": str(tmp_path / "x.json")}, tmp_path / "x.json"),
                       Unit("y", _write_value, {"value": 1, "output": str(tmp_path / "y.json")}, tmp_path / "y.json")],
                      n_workers=2, progress=False)
            assert runner._POOL[0][1] is not first
        finally:
            del os.environ["MIXMIN_TEST_POOL_KEY"]
    finally:
        runner.close_pools()
    assert not runner._POOL


def test_an_app_started_job_reports_an_internal_error_in_one_line_without_a_traceback(monkeypatch, capsys):
    """The Jobs page showed a failed job's stored traceback (files and paths on the machine) to any visitor."""
    from jobs.pipelines import synthetic
    from mixmin_core.runs import datasets

    def boom(config, ctx):
        raise RuntimeError("boom at /some/internal/path")

    monkeypatch.setattr(synthetic, "run", boom)
    monkeypatch.setenv(datasets.CONFINE_ENV, "1")
    assert main(["run", DEMO, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: internal error (RuntimeError: boom at /some/internal/path)" in err
    store = RunStore()
    (job,) = store.list_jobs()
    assert job["status"] == "failed" and "Traceback" not in job["error"] and "logs/job-" in job["error"]
    assert f"failed: {job['error']}" in "".join(p.read_text() for p in (store.run_dir(job["run_id"]) / "logs").glob("*.log"))
    traces = list((store.run_dir(job["run_id"]) / "logs").glob("*.traceback"))
    assert len(traces) == 1 and "Traceback" in traces[0].read_text() and "boom" in traces[0].read_text()


@pytest.mark.parametrize("code,text", [(28, "No space left on device"), (30, "Read-only file system")])
def test_a_full_or_read_only_disk_is_one_error_line_with_the_resume(monkeypatch, capsys, code, text):
    """A full disk or a read-only store mid-run ended in a traceback (the run's status was right)."""
    from jobs.pipelines import synthetic

    def full(config, ctx):
        raise OSError(code, text, str(ctx.run_dir / "proxies" / "p.npz"))

    monkeypatch.setattr(synthetic, "run", full)
    assert main(["run", DEMO, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    (job,) = RunStore().list_jobs()
    assert len(err) == 2 and err[1].startswith("error: ") and "Traceback" not in "".join(err), err
    assert f"p.npz: {text}; free space or fix its folder's permissions" in err[1]
    assert f"resume with `python -m jobs resume {job['run_id']}`" in err[1]
    assert job["status"] == "failed" and text in job["error"]


def test_a_full_disk_under_the_catalog_is_one_error_line_with_the_resume(monkeypatch, capsys):
    """SQLite's "database or disk is full" (the catalog on a full disk) ended in two chained tracebacks."""
    import sqlite3

    from jobs.pipelines import synthetic

    def full(config, ctx):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(synthetic, "run", full)
    assert main(["run", DEMO, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    (job,) = RunStore().list_jobs()
    assert len(err) == 2 and "Traceback" not in "".join(err), err
    assert "mixmin.db (the run store's catalog): database or disk is full; free space" in err[1]
    assert f"resume with `python -m jobs resume {job['run_id']}`" in err[1] and job["status"] == "failed"


def test_a_run_folder_that_cannot_be_written_is_one_error(tmp_path):
    from mixmin_core.errors import InputError
    from mixmin_core.runs.store import RunLock

    (tmp_path / "runs").write_text("a file where the runs folder should be")
    with pytest.raises(InputError, match=r"cannot write the run folder .*runs/r \(Not a directory\); a job writes"):
        RunLock(tmp_path / "runs" / "r").acquire()


def test_resume_starts_as_the_last_job_did_unless_told_otherwise(capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["run", DEMO, "--quiet", "--workers", "2"]) == 0
    store = RunStore()
    (run,) = store.list_runs()
    record = store.run_dir(run["run_id"]) / "execution.json"
    assert json.loads(record.read_text()) == {"backend": None, "workers": 2, "cwd": os.getcwd()}  # no --backend
    capsys.readouterr()
    assert main(["resume", run["run_id"], "--quiet"]) == 0
    assert "resuming with --workers 2 (as its last job ran)" in capsys.readouterr().err
    record.write_text(json.dumps({"backend": "ray", "workers": 3}))
    assert main(["resume", run["run_id"], "--quiet", "--backend", "local"]) == 0  # what is given wins
    err = capsys.readouterr().err
    assert "resuming with --workers 3 (as its last job ran)" in err and "ray" not in err
    assert json.loads(record.read_text()) == {"backend": "local", "workers": 3, "cwd": os.getcwd()}
    record.write_text("not json")  # an unreadable record: the defaults, no message
    assert main(["resume", run["run_id"], "--quiet"]) == 0
    assert "resuming with" not in capsys.readouterr().err


def test_resume_runs_where_the_run_started_and_refuses_changed_inputs(capsys, monkeypatch, tmp_path):
    """From another folder a config's relative paths named other files (or none): the resume failed, or silently
    started another run and left the one asked for as it was."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("MIXMIN_HOME", str(Path(os.environ["MIXMIN_HOME"]).resolve()))
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(start)
    assert main(["run", DEMO, "--quiet"]) == 0
    (run,) = RunStore().list_runs()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["resume", run["run_id"], "--quiet"]) == 0
    assert f"resuming in {start}, where the run started" in capsys.readouterr().err
    assert Path.cwd() == start and len(RunStore().list_runs()) == 1
    config = RunStore().run_dir(run["run_id"]) / "config.json"  # as if a file it names had changed: another id
    config.write_text(config.read_text().replace('"trials": 3', '"trials": 2'))
    monkeypatch.chdir(elsewhere)
    assert main(["resume", run["run_id"], "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"run {run['run_id']} cannot resume: its config, or a file or folder it names, has changed" in err
    assert f"`cd {start} && python -m jobs run {config}`" in err  # its relative paths lead from there
    assert len(RunStore().list_runs()) == 1
    # a damaged config.json is written again by the run's own command (a resume reads it)
    config.write_text("{garbage")
    monkeypatch.chdir(start)
    assert main(["run", DEMO, "--quiet"]) == 0
    assert json.loads(config.read_text())["trials"] == 3


def test_a_registered_dataset_read_from_other_files_is_another_run(tmp_path, monkeypatch):
    """`dataset: toxcast` (or a published run table) read from another MIXMIN_DATA_DIR, or edited there, resumed the
    run made from the first files: only paths written in the config entered the run id."""
    from jobs.__main__ import resolve_config
    from jobs.config import run_id_for

    shared = Path(os.environ["MIXMIN_DATA_DIR"])

    def run_id(config):
        _, name, _, resolved = resolve_config(str(ROOT / "configs" / config), [])
        return run_id_for(name, resolved)

    before = {c: run_id(c) for c in ("chem_ci.yaml", "olmix_dclm.yaml")}
    mirror = tmp_path / "data"
    for folder in ("chem", "mixture_runs"):
        (mirror / folder).mkdir(parents=True)
        for f in (shared / folder).rglob("*"):
            target = mirror / folder / f.relative_to(shared / folder)
            if f.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.symlink_to(f)
    monkeypatch.setenv("MIXMIN_DATA_DIR", str(mirror))
    assert all(run_id(c) != before[c] for c in before)


def test_lm_source_domains_and_tokenizer_read_from_the_data_directory_enter_the_run_id(tmp_path, monkeypatch):
    """Without `sources_dir` an LM run reads the data directory's text domains (and, for `tokenizer: pythia`, the
    registry's tokenizer): another or edited copy of them resumed the first run and reported its results."""
    from jobs.__main__ import resolve_config
    from jobs.config import run_id_for
    from jobs.pipelines import lm

    shared = Path(os.environ["MIXMIN_DATA_DIR"])

    def run_id(*overrides):
        pipeline, name, config, resolved = resolve_config(str(ROOT / "configs" / "lm_ci.yaml"), list(overrides))
        return run_id_for(name, resolved, implicit=pipeline.implicit_inputs(config))

    before = run_id(), run_id("tokenizer=pythia")
    mirror = tmp_path / "data"
    (mirror / "text").mkdir(parents=True)
    for folder in ("source", "target", "tokenizer"):
        (mirror / "text" / folder).symlink_to(shared / "text" / folder)
    monkeypatch.setenv("MIXMIN_DATA_DIR", str(mirror))
    after = run_id(), run_id("tokenizer=pythia")
    assert after[0] != before[0] and after[1] != before[1]
    _, _, config, _ = resolve_config(str(ROOT / "configs" / "lm_ci.yaml"), [f"sources_dir={shared / 'text' / 'source'}"])
    assert lm.implicit_inputs(config) == []  # a named folder is stamped as the config names it
    (mirror / "text" / "source").unlink()
    (mirror / "text" / "source").mkdir()
    for f in (shared / "text" / "source").iterdir():
        (mirror / "text" / "source" / f.name).symlink_to(f)
    os.utime(mirror / "text" / "source" / "arxiv.jsonl.gz", ns=(0, 0), follow_symlinks=False)
    assert run_id() == after[0]  # the stamp follows the files, not the links
    edited = mirror / "text" / "source" / "book.jsonl.gz"
    edited.unlink()
    edited.write_bytes((shared / "text" / "source" / "book.jsonl.gz").read_bytes())
    assert run_id() != after[0]


def test_a_run_from_before_registered_datasets_entered_its_id_still_resumes(capsys, monkeypatch):
    """Its stored id lacks the dataset's files; `resume` would otherwise call its config changed."""
    from jobs.__main__ import resolve_config
    from jobs.config import run_id_for

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    config = str(ROOT / "configs" / "chem_ci.yaml")
    _, name, _, resolved = resolve_config(config, ["trials=1"])
    old_id = run_id_for(name, resolved, registered=False)
    assert old_id != run_id_for(name, resolved)
    store = RunStore()
    store.create_run(old_id, name=name, pipeline="chem", config=resolved)  # as an older version left it
    assert main(["resume", old_id, "--quiet"]) == 0
    assert [r["run_id"] for r in store.list_runs()] == [old_id]
    assert store.get_run(old_id)["status"] == "done"


def test_an_lm_run_from_before_implicit_inputs_entered_its_id_still_resumes(monkeypatch):
    """A run started before the data directory's text domains entered LM run ids (its id has the registered
    targets' files only) resumes: `resume` would otherwise call its config changed."""
    from jobs.__main__ import resolve_config
    from jobs.config import run_id_for

    pipeline, name, config, resolved = resolve_config(str(ROOT / "configs" / "lm_ci.yaml"), [])
    old_id = run_id_for(name, resolved)
    assert old_id != run_id_for(name, resolved, implicit=pipeline.implicit_inputs(config))
    store = RunStore()
    store.create_run(old_id, name=name, pipeline="lm", config=resolved)
    seen = []
    monkeypatch.setattr("jobs.__main__._run_locked", lambda args, store, run_id, *rest: seen.append(run_id) or 0)
    assert main(["resume", old_id, "--quiet"]) == 0 and seen == [old_id]


def test_a_run_name_never_makes_an_id_that_reads_as_an_option():
    """A run named ../../tmp/evil (the Jobs page's name field) got the id ---------tmp-evil-..., which
    `jobs status --run` and `jobs export --run` took for an option."""
    from jobs.config import run_id_for

    resolved = {"pipeline": "synthetic", "name": "x", "trials": 1}
    assert run_id_for("../../tmp/evil", resolved).startswith("tmp-evil-")
    assert run_id_for("---", resolved).startswith("run-")
    assert run_id_for("chem_ci", resolved).startswith("chem_ci-")


def test_a_run_whose_old_id_began_with_a_dash_still_resumes(tmp_path, capsys):
    """Names lose a leading "-" in run ids now; a run made before, with its old id, still resumes into its folder."""
    import yaml

    cfg = tmp_path / "pilot.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": "synthetic", "name": "(pilot)", "trials": 1}))
    assert main(["run", str(cfg), "--quiet"]) == 0
    store = RunStore()
    (run,) = store.list_runs()
    assert run["run_id"].startswith("pilot--")
    old = "-" + run["run_id"]  # as the id was written before
    store.create_run(old, name="(pilot)", pipeline="synthetic",
                     config=json.loads((store.run_dir(run["run_id"]) / "config.json").read_text()))
    capsys.readouterr()
    assert main(["resume", "--quiet", "--", old]) == 0, capsys.readouterr().err
    assert store.get_run(old)["status"] == "done" and (store.run_dir(old) / "summary.csv").exists()


def test_a_job_failing_on_bad_input_says_why_in_its_log(monkeypatch, capsys):
    """A reviewer's run whose table vanished mid-run: the Jobs page showed the error beside "(empty log)"."""
    from jobs.pipelines import synthetic
    from mixmin_core.errors import InputError

    def vanished(config, ctx):
        raise InputError("mydata/vanish.csv: file not found")

    monkeypatch.setattr(synthetic, "run", vanished)
    assert main(["run", DEMO, "--quiet"]) == 2
    assert capsys.readouterr().err.count("vanish.csv: file not found") == 1  # the console's one error line
    (job,) = RunStore().list_jobs()
    logs = "".join(p.read_text() for p in (RunStore().run_dir(job["run_id"]) / "logs").glob("*.log"))
    assert job["status"] == "failed" and "ERROR mixmin.jobs: failed: mydata/vanish.csv: file not found" in logs


def test_a_worker_that_died_between_stages_does_not_fail_the_next(tmp_path):
    """The pool outlives a stage: a worker killed while idle (out of memory) broke it, and the next stage failed."""
    import signal

    from mixmin_core.runs import runner

    def stage(name):
        units = [Unit(f"{name}{i}", _write_value, {"value": i, "output": str(tmp_path / f"{name}{i}.json")},
                      tmp_path / f"{name}{i}.json") for i in range(2)]
        return sorted(run_tasks(units, n_workers=2, progress=False))

    assert stage("a") == ["a0", "a1"]
    for pid in list(runner._POOL[0][1]._processes):
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline and not runner._POOL[0][1]._broken:  # the pool notices on its own thread
        time.sleep(0.05)
    assert stage("b") == ["b0", "b1"]


def test_a_float_written_as_an_integer_is_the_same_run(tmp_path):
    """`--set step_size=1` and `step_size: 1.0` in the config gave two run ids (no resume); the integers of a float
    field (and of a list's float items) are floats in the resolved config now."""
    from jobs.__main__ import resolve_config
    from jobs.config import run_id_for
    from mixmin_core.errors import ConfigError

    def run_id(config, *overrides):
        _, name, _, resolved = resolve_config(str(ROOT / "configs" / config), list(overrides))
        assert all(type(resolved[k]) is float for k in ("step_size",) if k in resolved)
        return run_id_for(name, resolved)

    assert run_id("synthetic_demo.yaml", "step_size=1") == run_id("synthetic_demo.yaml", "step_size=1.0")
    assert run_id("chem_ci.yaml", "proxy_budgets=[1, 2]", "source_counts=[3]") == run_id(
        "chem_ci.yaml", "proxy_budgets=[1.0, 2.0]", "source_counts=[3]")
    resolved = resolve_config(str(ROOT / "configs" / "chem_ladder.yaml"), ["rungs=[[1, 1], [1, 3]]"])[3]
    assert resolved["rungs"] == [[1.0, 1], [1.0, 3]] and type(resolved["rungs"][0][1]) is int  # trees stay counts
    with pytest.raises(ConfigError, match=r"step_size: must be <= 1000000.0"):  # too large for a float: still named
        resolve_config(DEMO, ["step_size=1" + "0" * 400])


def test_a_run_whose_config_wrote_a_float_as_an_integer_still_resumes(tmp_path, monkeypatch):
    """A run started before floats were normalised hashed `step_size: 1` as written; `jobs resume` must find it."""
    from jobs.__main__ import as_stored, resolve_config
    from jobs.config import run_id_for

    monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / "home"))
    config = tmp_path / "old.yaml"
    config.write_text("pipeline: synthetic\nname: old\nn_sources: 3\nsource_samples: 200\ntarget_samples: 200\ntrials: 1\nstep_size: 1\n")
    assert main(["run", str(config), "--quiet"]) == 0
    store = RunStore()
    (run,) = store.list_runs()
    _, name, _, resolved = resolve_config(str(config), [])
    saved = store.run_dir(run["run_id"]) / "config.json"
    saved.write_text(saved.read_text().replace('"step_size": 1.0', '"step_size": 1'))  # as it was written then
    old_id = run_id_for(name, as_stored(resolved, saved))
    assert old_id != run["run_id"]
    store.run_dir(run["run_id"]).rename(store.run_dir(old_id))  # the folder and catalog row an older version made
    with store._connect() as db:
        for table in ("runs", "jobs", "units"):
            db.execute(f"UPDATE {table} SET run_id = ? WHERE run_id = ?", (old_id, run["run_id"]))
    assert main(["resume", old_id, "--quiet"]) == 0
    assert [r["run_id"] for r in RunStore().list_runs()] == [old_id]


def test_an_older_runs_id_is_found_with_some_float_fields_written_as_integers_and_others_not(tmp_path):
    """A run that hashed test_fraction 0.0 beside bo_fidelity_cost 1 matched neither all-floats nor all-integers."""
    from jobs.__main__ import as_stored, resolve_config
    from jobs.config import run_id_for

    _, name, _, resolved = resolve_config(str(ROOT / "configs" / "regmix_1m.yaml"), ["bo_fidelity_cost=1"])
    assert resolved["bo_fidelity_cost"] == 1.0 and isinstance(resolved["test_fraction"], float)
    mixed = {**resolved, "bo_fidelity_cost": 1}  # as an older version stored and hashed it
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(mixed))
    assert run_id_for(name, as_stored(resolved, saved)) == run_id_for(name, mixed) != run_id_for(name, resolved)


@pytest.mark.parametrize("overrides,said", [
    (["step_size=1e4"], "returning iteration 0, whose loss was lowest (the loss rose afterwards: try a smaller step_size)"),
    (["max_iter=1", "n_sources=3", "source_samples=200", "target_samples=200"],
     ("reached max_iter=1 before the gap fell to tol=1e-06; a larger max_iter helps where the gap falls steadily; "
      "where it swings or rises, a smaller step_size")),
])
def test_the_synthetic_log_says_when_mixmin_did_not_converge(tmp_path, monkeypatch, overrides, said):
    """step_size 1e4 or max_iter 1: the job log never said MixMin had not converged (the chem and LM engines do)."""
    monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / "home"))
    sets = [a for o in ["trials=1", *overrides]
            for a in ("--set", o)]
    assert main(["run", DEMO, *sets, "--quiet"]) == 0
    (run,) = RunStore().list_runs()
    log = "".join(p.read_text() for p in (RunStore().run_dir(run["run_id"]) / "logs").glob("*.log"))
    assert "trial 0: MixMin stopped at its iteration limit, not converged (gap " in log and said in log
    if "step_size=1e4" in overrides:  # the loss rose: more iterations would not help
        assert "a larger max_iter" not in log


def test_one_sample_per_source_gives_every_source_a_sample():
    """source_samples 1 drew sizes from [0, 1]: a source could get no sample at all."""
    from jobs.pipelines.synthetic import SyntheticConfig, _world

    for seed in range(5):
        sizes = _world(SyntheticConfig(n_sources=20, source_samples=1, seed=seed))[2]
        assert (sizes == 1).all()
    assert (_world(SyntheticConfig(n_sources=50, source_samples=3))[2] >= 1).all()
