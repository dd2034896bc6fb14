"""jobs.control: jobs start as real separate processes, without a shell, and can be cancelled."""
from __future__ import annotations

import sys
import time

import pytest

from jobs import control as jobs_control
from mixmin_core.errors import InputError, MixminError
from mixmin_core.runs.store import RunStore
from tests.app.fixtures import ROOT

pytestmark = pytest.mark.timeout(300)
CONFIG = ROOT / "configs" / "synthetic_demo.yaml"


def _wait(predicate, timeout=120.0):  # generous: the machine is shared
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_argv_is_a_list_with_set_overrides():
    argv = jobs_control.job_argv(CONFIG, {"trials": 1, "step_size": "0.5"})
    assert argv[:5] == [sys.executable, "-m", "jobs", "run", str(CONFIG)]
    assert argv[5:] == ["--set", "trials=1", "--set", "step_size=0.5"]


def test_shell_metacharacters_stay_one_literal_argument(tmp_path):
    argv = jobs_control.job_argv(CONFIG, {"name": "x; touch pwned"})
    assert argv[-1] == "name=x; touch pwned"


@pytest.mark.parametrize("config,overrides,match", [
    ("configs/nope.yaml", {}, "not found"),
    (CONFIG, {"trials; rm -rf /": 1}, "must be a field name such as .trials.; got .* Fields you can set: "),
    (CONFIG, {"--backend": "ray"}, "must be a field name such as"),
    (CONFIG, {"name": "a\nb"}, "single line"),
    ("configs/chem_ci.yaml", {"xgb_threads": 1000}, "override xgb_threads: 1000 is more than this machine's"),
    ("configs/lm_ci.yaml", {"torch_threads": "1e4"}, "override torch_threads: 10000 is more than"),
])
def test_bad_job_requests_raise(config, overrides, match):
    with pytest.raises(InputError, match=match):
        jobs_control.job_argv(config, overrides)


def test_started_job_runs_to_done_in_its_own_session(tmp_path):
    home = tmp_path / "home"
    launch = jobs_control.start_job(CONFIG, {"trials": 1, "n_sources": 3, "name": "x; touch pwned"}, home=home)
    store = RunStore(home)
    # busy from the launch on, before the job's catalog row exists: the Jobs page refreshed only for a running job,
    # so a job started there never appeared until a reload
    assert jobs_control.busy(store)
    assert _wait(lambda: any(j["status"] == "done" for j in store.list_jobs())), jobs_control.read_log_tail(launch.log_path)
    run = store.list_runs()[0]
    assert run["name"] == "x; touch pwned" and run["config"]["trials"] == 1
    assert not (ROOT / "pwned").exists() and not (tmp_path / "pwned").exists()
    assert _wait(lambda: not jobs_control.list_launches(home)[0]["alive"])
    assert not jobs_control.busy(store)
    rec = jobs_control.list_launches(home)[0]
    assert rec["returncode"] == 0 and rec["pid"] == launch.pid, (rec, jobs_control.read_log_tail(launch.log_path))
    assert "done: run" in jobs_control.read_log_tail(launch.log_path)


@pytest.mark.parametrize(("overrides", "match"), [
    ({"n_sources": 1}, "n_sources: must be >= 2; got 1."),
    ({"trials": "abc"}, "trials: must be an integer >= 1"),
    ({"n_sources": 1.5}, "n_sources: must be an integer"),
])
def test_a_bad_value_is_refused_before_any_launch(tmp_path, overrides, match):
    """The job's own checks run before the launch: the page shows the error; no process, no run."""
    home = tmp_path / "home"
    with pytest.raises(MixminError, match=match):
        jobs_control.start_job(CONFIG, overrides, home=home)
    assert jobs_control.list_launches(home) == [] and RunStore(home).list_runs() == []


def test_cancel_with_force_stops_a_running_job(tmp_path):
    home = tmp_path / "home"
    # many sources and samples: long enough to be caught running
    jobs_control.start_job(CONFIG, {"n_sources": 400, "source_samples": 200000, "n_workers": 1}, home=home)
    store = RunStore(home)
    assert _wait(lambda: any(j["status"] == "running" and j["n_done"] >= 1 for j in store.list_jobs()))
    job = store.list_jobs()[0]
    message = jobs_control.cancel_job(store, job["job_id"], force=True)
    assert "SIGTERM" in message
    assert store.cancel_requested(job["job_id"])
    assert "it stopped" in message
    assert store.list_jobs()[0]["status"] == "cancelled"
    assert store.get_run(job["run_id"])["status"] == "cancelled"


def test_stop_now_never_signals_another_process_that_reuses_a_dead_jobs_number(tmp_path):
    """A job killed with -9 leaves its pid in the catalog; a later `python -m jobs` may get that number."""
    import subprocess
    import sys
    import time

    store = RunStore(tmp_path / "home")
    store.create_run("r-0001", name="r", pipeline="synthetic", config={})
    job_id = store.start_job("r-0001", pid=0)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "jobs"])  # 'jobs' in its cmdline
    try:
        with store._connect() as db:  # the record of a job that started an hour before this process
            db.execute("UPDATE jobs SET pid = ?, started_at = ? WHERE job_id = ?", (other.pid, time.time() - 3600, job_id))
        message = jobs_control.cancel_job(store, job_id, force=True)
        assert "no longer running" in message and other.poll() is None  # not signalled
    finally:
        other.kill()
        other.wait()


def test_read_log_tail_keeps_the_end(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("a" * 100 + "END")
    assert jobs_control.read_log_tail(log, max_bytes=10).endswith("aaaaaaaEND")
    assert jobs_control.read_log_tail(tmp_path / "missing.log") == ""


def test_page_fields_are_real_fields_and_never_paths():
    import dataclasses

    from jobs.pipelines import PIPELINES, load_pipeline

    assert set(jobs_control.PAGE_FIELDS) == set(PIPELINES)
    for name, allowed in jobs_control.PAGE_FIELDS.items():
        fields = {f.name for f in dataclasses.fields(load_pipeline(name).CONFIG)}
        assert allowed - {"name"} <= fields, (name, sorted(allowed - {"name"} - fields))
        assert not allowed & {"path", "metadata", "sources_dir", "tokenizer_path", "slimpajama_files", "smiles_column",
                              "ignore_columns", "format", "backend", "mixtures_path", "metrics_path"}, name


@pytest.mark.parametrize("overrides,match", [
    ({"path": "/etc/passwd"}, "'path' cannot be set from the app for pipeline 'synthetic'"),
    ({"trails": 2}, "'trails': no field the app can set for pipeline 'synthetic'; did you mean 'trials'"),
    ({"trails": 2, "n_source": 3}, ("'trails', 'n_source': no fields the app can set for pipeline 'synthetic'; did you "
                                    "mean 'trials', 'n_sources'")),
    ({"trials": "&a [1, *a]"}, "trials: YAML anchors"),
    ({"trials": "x" * 10_001}, "the value has 10,001 characters"),
])
def test_page_requests_outside_the_rules_raise(overrides, match):
    with pytest.raises(InputError, match=match):
        jobs_control.job_argv(CONFIG, overrides)


@pytest.mark.parametrize("config", ["/etc/passwd", "configs/../README.md", ROOT / "README.md"])
def test_page_starts_configs_from_configs_only(config):
    with pytest.raises(InputError, match="the app starts configs from"):
        jobs_control.job_argv(config, {})
