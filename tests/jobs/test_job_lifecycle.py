"""Real job processes on one run store: one job per run, honest states after SIGTERM, SIGINT and kill -9.

Every test starts ``python -m jobs run configs/synthetic_demo.yaml`` as a separate process in a
temporary ``MIXMIN_HOME``, as a user would, and reads the catalog and the CLI's output.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import control as jobs_control
from mixmin_core.runs.store import RunLock, RunLocked, RunStore

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/synthetic_demo.yaml"
#: Long enough (many sources, large samples) to be caught running on a busy 2-core machine.
SLOW = ["--set", "n_sources=150", "--set", "source_samples=200000", "--set", "trials=1", "--quiet"]

pytestmark = pytest.mark.timeout(600)


def start(*extra: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "jobs", "run", CONFIG, *extra], cwd=ROOT, env=os.environ.copy(),
                                stdout=fh, stderr=subprocess.STDOUT)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)


def wait_for(predicate, timeout: float = 180.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def running_with_units(store: RunStore, n: int = 2) -> bool:
    return any(j["status"] == "running" and j["n_done"] >= n for j in store.list_jobs())


def test_same_config_started_twice_at_once_runs_every_unit_once(tmp_path):
    store = RunStore()
    a, b = start(*SLOW, log=tmp_path / "a.log"), start(*SLOW, log=tmp_path / "b.log")
    codes = (a.wait(timeout=500), b.wait(timeout=500))
    logs = ((tmp_path / "a.log").read_text(), (tmp_path / "b.log").read_text())
    assert sorted(codes) == [0, 2], (codes, logs)
    refused = logs[codes.index(2)]
    (job,) = store.list_jobs()  # the refused start never reached the catalog
    assert f"already running as job {job['job_id']} (pid {job['pid']})" in refused, refused
    assert "Traceback" not in refused and len(refused.strip().splitlines()) == 1
    assert job["status"] == "done" and job["n_done"] == job["n_total"] == 150
    run_dir = store.run_dir(job["run_id"])
    (log,) = (run_dir / "logs").glob("job-*.log")  # one job log: no unit ran in a second process
    ran = [line.split("proxies: finished ")[1] for line in log.read_text().splitlines() if "proxies: finished proxy/" in line]
    assert len(ran) == len(set(ran)) == 150


def test_a_lock_left_by_a_killed_job_is_taken_over(tmp_path):
    store = RunStore()
    proc = start(*SLOW, log=tmp_path / "a.log")
    assert wait_for(lambda: running_with_units(store)), (tmp_path / "a.log").read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (job,) = store.list_jobs()
    assert (store.run_dir(job["run_id"]) / ".lock").read_text().split() == [str(job["job_id"]), str(proc.pid)]
    half = store.run_dir(job["run_id"]) / ".results.csv.ab12_cd.tmp"  # a report being written at the kill
    half.write_text("trial,target\n0,")
    resumed = start(*SLOW, log=tmp_path / "b.log")
    assert resumed.wait(timeout=500) == 0, (tmp_path / "b.log").read_text()
    newest = store.list_jobs()[0]
    assert newest["status"] == "done" and newest["job_id"] != job["job_id"]
    log = Path(newest["log_path"]).read_text()
    assert f"took over the lock of job {job['job_id']} (pid {proc.pid})" in log
    assert not half.exists()  # what the killed job was writing is cleared (it stayed forever)
    kept = int(re.search(r"proxies: (\d+)/150 already done", log).group(1))
    assert kept >= job["n_done"] >= 2  # every unit finished before the kill was kept


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_record_cancelled_without_a_traceback(tmp_path, sig):
    store = RunStore()
    proc = start(*SLOW, "--set", "n_workers=2", log=tmp_path / "a.log")
    assert wait_for(lambda: running_with_units(store)), (tmp_path / "a.log").read_text()
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    out = (tmp_path / "a.log").read_text()
    assert code == 128 + sig, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert f"cancelled: stopped by {signal.Signals(sig).name}" in out
    (job,) = store.list_jobs()
    assert job["status"] == "cancelled" and job["error"] == f"stopped by {signal.Signals(sig).name}"
    assert store.get_run(job["run_id"])["status"] == "cancelled"
    status = cli("status")
    assert "cancelled" in status.stdout and "running" not in status.stdout, status.stdout
    assert f"resume with `python -m jobs resume {job['run_id']}`" in status.stdout  # as a died job's line says
    from pages.common.data import step_text  # and the Runs page's step

    assert step_text(job).endswith(f"; resume with `python -m jobs resume {job['run_id']}`"), step_text(job)
    assert not any(Path(store.run_dir(job["run_id"])).rglob(".*.tmp"))  # no half-written file left
    # the units the workers finished after the stop are recorded: a resume does not run them again
    resumed = cli("resume", job["run_id"], "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    log = Path(store.list_jobs()[0]["log_path"]).read_text()
    assert "output without a catalog record" not in log, log


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_kill_9_of_a_job_ends_its_worker_processes(tmp_path):
    """Its workers (about 550 MB each) lived on, idle, and finished units no one recorded."""
    store = RunStore()
    proc = start(*SLOW, "--set", "n_workers=2", log=tmp_path / "a.log")
    assert wait_for(lambda: running_with_units(store)), (tmp_path / "a.log").read_text()
    workers = children(proc.pid)
    assert workers, "the job started no worker process"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert wait_for(lambda: not any(Path(f"/proc/{w}").exists() and "Z" not in _state(w) for w in workers), 30), \
        [(w, _state(w)) for w in workers]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_ctrl_c_in_a_terminal_twice_stops_without_tracebacks_and_resumes(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: workers printed KeyboardInterrupt tracebacks and dropped
    their units. Now they ignore it and the job stops; a second Ctrl-C ends the workers at once (no wait for the
    units they had started, which a resume runs again)."""
    store = RunStore()
    with open(tmp_path / "a.log", "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "jobs", "run", CONFIG, *SLOW, "--set", "n_workers=2"], cwd=ROOT,
                                env=os.environ.copy(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    assert wait_for(lambda: running_with_units(store, 3)), (tmp_path / "a.log").read_text()
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    code = proc.wait(timeout=120)
    out = (tmp_path / "a.log").read_text()
    # 130 from the job; -SIGINT where the second Ctrl-C landed after its cleanup, as the process was exiting
    assert code in (128 + signal.SIGINT, -signal.SIGINT) and "cancelled: stopped by SIGINT" in out, (code, out)
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    (job,) = store.list_jobs()
    assert job["status"] == "cancelled"
    assert cli("resume", job["run_id"], "--quiet").returncode == 0
    assert store.get_run(job["run_id"])["status"] == "done"


def test_kill_9_reads_died_in_the_cli_and_the_app_with_a_resume_hint(tmp_path):
    store = RunStore()
    proc = start(*SLOW, log=tmp_path / "a.log")
    assert wait_for(lambda: running_with_units(store, 3)), (tmp_path / "a.log").read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (job,) = store.list_jobs()
    run_id = job["run_id"]
    assert job["status"] == "died"
    run = store.get_run(run_id)
    assert run["status"] == "died" and run["last_step"].startswith("proxies: finished proxy/")
    assert [r["status"] for r in store.list_runs()] == ["died"]
    status = cli("status")
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith(run_id))
    assert line.split()[2] == "died", status.stdout
    assert f"resume with `python -m jobs resume {run_id}`" in status.stdout
    assert f"died; last progress: {job['message']}" in status.stdout
    # the app's Jobs page reads the same catalog; the Runs page's step says where, and how to go on (it said "died")
    from pages.common.data import step_text
    from pages.jobs import jobs_table

    assert list(jobs_table(store)["status"]) == ["died"]
    assert step_text(store.list_jobs()[0]) == f"died; last progress: {job['message']}; resume with `python -m jobs resume {run_id}`"
    resumed = cli("resume", run_id, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert store.get_run(run_id)["status"] == "done"


def test_the_lock_names_its_holder_and_frees_on_release(tmp_path):
    lock = RunLock(tmp_path / "run").acquire()
    lock.set_job(7)
    with pytest.raises(RunLocked, match=rf"already running as job 7 \(pid {os.getpid()}\); .* and start again "
                                        r"\(it resumes\)\.$"):
        RunLock(tmp_path / "run").acquire(wait_for_holder=0.1)
    lock.release()
    again = RunLock(tmp_path / "run").acquire()
    assert again.previous == (None, None)  # a job that ended is no holder to take over from (every resume said so)
    again.release()
    dies_holding = ("import os, sys; from mixmin_core.runs.store import RunLock; "
                    "RunLock(sys.argv[1]).acquire().set_job(7); print(os.getpid(), flush=True); os._exit(0)")
    killed = subprocess.run([sys.executable, "-c", dies_holding, str(tmp_path / "run")], capture_output=True,
                            text=True, cwd=ROOT, check=True)
    taken = RunLock(tmp_path / "run").acquire()
    assert taken.previous == (7, int(killed.stdout))  # one that died holding it is named
    taken.release()


def test_a_dead_pid_and_a_reused_pid_are_not_alive():
    from mixmin_core.runs.store import job_alive

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not job_alive(proc.pid)
    assert job_alive(os.getpid(), time.time())
    assert not job_alive(1, started_at=0.0)  # pid 1 started after the epoch: a job from 1970 is not it
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_for(lambda: Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 30)
    assert not job_alive(zombie.pid) and not jobs_control._is_job_process(zombie.pid)
    zombie.wait()


def test_a_stop_signal_that_lands_inside_a_log_handler_still_stops_the_job():
    """logging's handlers catch Exception while they flush (CI once saw a SIGINT swallowed there, and the
    job ran to the end): the stop must not be an Exception."""
    import io
    import logging

    from jobs import __main__ as jobs_main

    class SignalOnFlush(io.StringIO):
        def flush(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler runs at the next bytecode: inside this flush

    logger = logging.getLogger("mixmin.test.stop")
    handler = logging.StreamHandler(SignalOnFlush())
    logger.addHandler(handler)
    previous = jobs_main._install_stop_handlers()
    try:
        with pytest.raises(jobs_main.Stopped, match="stopped by SIGTERM"):
            logger.warning("a unit finished")
    finally:
        jobs_main._restore_handlers(previous)
        jobs_main._STOPPING.clear()
        logger.removeHandler(handler)


def test_delete_removes_a_run_but_not_a_running_one_nor_anything_outside_the_store(tmp_path):
    store = RunStore()
    assert cli("run", CONFIG, "--set", "n_sources=3", "--set", "trials=1", "--set", "name=quick", "--quiet").returncode == 0
    (quick,) = store.list_runs()
    job = start(*SLOW, log=tmp_path / "a.log")
    assert wait_for(lambda: running_with_units(store)), (tmp_path / "a.log").read_text()
    (run,) = [r for r in store.list_runs() if r["run_id"] != quick["run_id"]]
    busy = cli("delete", quick["run_id"], run["run_id"], "--yes")  # every id checked before any goes
    assert busy.returncode == 2 and "already running as job" in busy.stderr and "jobs cancel" in busy.stderr
    assert "and delete the run then" in busy.stderr and "resumes" not in busy.stderr  # advice for `jobs run`
    for kept in (quick, run):
        assert store.run_dir(kept["run_id"]).is_dir() and store.get_run(kept["run_id"])  # nothing removed
    assert cli("delete", quick["run_id"], "--yes").returncode == 0
    os.kill(job.pid, signal.SIGTERM)
    job.wait(timeout=120)
    outside = store.root.parent / "keep"
    outside.mkdir(exist_ok=True)
    for bad in ("..", "../keep", "", "no-such-run", run["run_id"] + "/", "./" + run["run_id"], "x" * 300):
        refused = cli("delete", run["run_id"], bad, "--yes")  # checked before any id is removed
        assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
    unconfirmed = subprocess.run([sys.executable, "-m", "jobs", "delete", run["run_id"]], cwd=ROOT, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=120, check=False)
    assert unconfirmed.returncode == 2 and "add --yes" in unconfirmed.stderr
    assert outside.is_dir() and store.run_dir(run["run_id"]).is_dir() and store.get_run(run["run_id"])
    done = cli("delete", run["run_id"], "--yes")
    assert done.returncode == 0, done.stderr
    assert store.get_run(run["run_id"]) is None and not store.list_jobs(run["run_id"]) and not store.units(run["run_id"])
    assert not store.run_dir(run["run_id"]).exists() and not list(store.run_dir("").glob(".deleting-*"))
    assert outside.is_dir() and cli("status").stdout.strip() == "no runs yet"
    store.run_dir("unlisted").mkdir()  # a folder a killed run left before its catalog row: removable too
    assert cli("delete", "unlisted", "--yes").returncode == 0 and not store.run_dir("unlisted").exists()
