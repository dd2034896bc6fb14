"""The Ray backend on a real local instance (loopback only): same results as local, only the driver
writes the run store, a stale ``ray_current_cluster`` file is never joined."""
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from jobs.__main__ import main
from mixmin_core.errors import ConfigError, MixminError
from mixmin_core.runs.runner import Unit, run_tasks
from mixmin_core.runs.store import RunStore

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "synthetic_demo.yaml")
STALE = "127.0.0.1:9"  # nothing listens there: joining it is what a crashed Ray's leftover file causes


@pytest.fixture(scope="module")
def worker_home(tmp_path_factory):
    """One local instance for the module, started by the runner's own :func:`start_ray`: Ray's temp
    folder holds a stale ``ray_current_cluster``, and the workers' ``MIXMIN_HOME`` points to an empty
    folder of their own, so they cannot see the driver's run store through it."""
    from mixmin_core.runs.ray_backend import start_ray

    ray_tmp = Path(tempfile.mkdtemp(prefix="mmray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text(STALE)
    home = tmp_path_factory.mktemp("worker_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_TMPDIR", str(ray_tmp))
    patch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    try:
        start_ray(2, env_vars={"MIXMIN_HOME": str(home)})
        yield home
    finally:
        ray.shutdown()
        patch.undo()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_fresh_local_instance_ignores_stale_cluster_file_and_stays_on_loopback(worker_home):
    from ray._common.utils import get_ray_address_file

    assert Path(get_ray_address_file(None)).read_text() == STALE  # Ray's default lookup would find it
    nodes = ray.nodes()
    assert len(nodes) == 1 and nodes[0]["NodeManagerAddress"] == "127.0.0.1"
    assert ray.cluster_resources()["CPU"] == 2


def test_a_local_instance_asks_no_cloud_metadata_service(worker_home, monkeypatch):
    """Its dashboard asked 169.254.169.254 and metadata.google.internal which cloud it ran on, at every start."""
    from urllib3.util import connection
    from ray._common.usage.usage_lib import get_cloud_from_metadata_requests

    from mixmin_core.runs.ray_backend import NO_CLOUD_PROBES, _no_cloud_probes

    dashboards = [p for p in Path("/proc").glob("[0-9]*")
                  if b"dashboard/dashboard.py" in _read(p / "cmdline") and str(os.getpid()).encode() in _ancestry(p)]
    assert dashboards, "no dashboard process of this instance"
    for p in dashboards:  # the instance's dashboard kept the proxy that turns the probes away
        assert f"http_proxy={NO_CLOUD_PROBES['http_proxy']}".encode() in _read(p / "environ").split(b"\0")
    reached, create = [], connection.create_connection

    def loopback_only(address, *args, **kwargs):  # the test itself never leaves the machine, whatever happens
        reached.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"not loopback: {address}")
        return create(address, *args, **kwargs)

    monkeypatch.setattr(connection, "create_connection", loopback_only)
    with _no_cloud_probes():
        assert get_cloud_from_metadata_requests() == "unknown"  # the dashboard's own call, under its environment
    assert reached and all(host == "127.0.0.1" for host, _ in reached), reached
    assert "http_proxy" not in os.environ or os.environ["http_proxy"] != NO_CLOUD_PROBES["http_proxy"]
    seen = ray.get(ray.remote(lambda: {k: os.environ.get(k) for k in NO_CLOUD_PROBES}).remote())
    assert seen == {k: os.environ.get(k, "") for k in NO_CLOUD_PROBES}  # the workers kept the driver's own settings


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _ancestry(proc: Path) -> bytes:
    """The pids above ``proc`` (its parent, grandparent, ...), as bytes to search in."""
    pids = []
    while proc.name not in ("0", "1"):
        stat = _read(proc / "stat").rsplit(b")", 1)[-1].split()
        if len(stat) < 2:
            break
        pids.append(stat[1])
        proc = Path("/proc") / stat[1].decode()
    return b" ".join(pids)


def _worker_view(*, source: str, folder: str, empty: str, output: str) -> dict:
    """A unit that reads a file, its sidecar and a folder, and writes its output plus a sidecar."""
    from mixmin_core.runs.fileio import write_json

    if not Path(empty).is_dir():
        raise FileNotFoundError(empty)

    total = float(np.load(source).sum()) + float(Path(source).with_suffix(".json").read_text())
    total += sum(float(p.read_text()) for p in sorted(Path(folder).glob("*.txt")))
    write_json(Path(output).with_suffix(".model.json"), {"total": total})
    write_json(output, {"total": total})
    return {"seen": "seen:" + output, "home": os.environ.get("MIXMIN_HOME"), "pid": os.getpid(), "path": output}


def test_only_the_driver_writes_the_run_store(worker_home):
    driver_home = RunStore().root
    run = driver_home / "runs" / "r1"
    (run / "inputs").mkdir(parents=True)
    (run / "empty").mkdir()
    for i in range(3):
        np.save(run / f"in{i}.npy", np.full(4, i, dtype=np.float32))
        (run / f"in{i}.json").write_text(str(10 * i))
        (run / "inputs" / f"{i}.txt").write_text(str(100 * i))
    units = [Unit(f"u{i}", _worker_view, {"source": str(run / f"in{i}.npy"), "folder": str(run / "inputs"),
                                          "empty": str(run / "empty"),
                                          "output": str(run / "out" / f"u{i}.json")}, run / "out" / f"u{i}.json")
             for i in range(3)]
    done = run_tasks(units, backend="ray", progress=False, root=driver_home)
    for i in range(3):
        expected = 4 * i + 10 * i + 300
        assert (run / "out" / f"u{i}.json").read_text().count(f"{expected}") == 1
        assert (run / "out" / f"u{i}.model.json").exists()  # sibling files come back too
        info = done[f"u{i}"]
        seen = Path(info["seen"][len("seen:"):])
        assert seen != run / "out" / f"u{i}.json" and not seen.is_relative_to(driver_home)
        assert info["path"] == str(run / "out" / f"u{i}.json")  # info paths mapped back to the driver's
        assert info["home"] == str(worker_home) and info["pid"] != os.getpid()
    assert not any(worker_home.iterdir())
    assert run_tasks(units, backend="ray", progress=False, root=driver_home) == {}  # finished: skipped


def test_ray_run_equals_local_run(worker_home, tmp_path, monkeypatch):
    """The synthetic demo through the CLI: identical results and proxy files on both backends."""
    stores = {}
    for backend in ("local", "ray"):
        monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / backend))
        assert main(["run", DEMO, "--quiet", "--backend", backend]) == 0
        store = RunStore()
        (run,) = store.list_runs()
        assert run["status"] == "done"
        assert all(u["status"] == "done" for u in store.units(run["run_id"]))
        stores[backend] = (store, run["run_id"])
    (local, lid), (remote, rid) = stores["local"], stores["ray"]
    assert local.results(lid).drop(columns=["run_id"], errors="ignore").equals(
        remote.results(rid).drop(columns=["run_id"], errors="ignore"))
    files = {b: {p.relative_to(s.run_dir(r)): p.read_bytes() for p in s.run_dir(r).rglob("*")
                 if p.is_file() and "logs" not in p.parts} for b, (s, r) in stores.items()}
    assert files["local"].keys() == files["ray"].keys() and len(files["ray"]) > 6
    assert all(files["local"][k] == files["ray"][k] for k in files["local"] if k.suffix in (".npy", ".npz"))
    assert not any(worker_home.iterdir())


def test_own_run_tables_named_by_relative_paths_run_on_ray(worker_home, tmp_path, monkeypatch):
    """A worker starts in the shipped code's folder: `mixtures: runs.csv` was not found there, and every unit failed."""
    import yaml

    from tests.jobs.test_run_table import _own_tables

    files = _own_tables(tmp_path)
    for table in files.values():
        for key in ("mixtures", "metrics"):
            table[key] = Path(table[key]).name  # relative to the folder the job starts in
    config = {"pipeline": "run_table", "name": "own-ray", "tables": list(files.values()), "train_table": "my_swarm",
              "test_tables": ["my_heldout"], "yardstick": "my_heldout", "targets": ["arc_easy_bpb"],
              "methods": ["natural", "random_search"], "trials": 1}
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / "home"))
    assert main(["run", "own.yaml", "--quiet", "--backend", "ray"]) == 0
    (run,) = RunStore().list_runs()
    assert run["status"] == "done"


def _escape(*, output: str) -> dict:
    Path(output).parents[3].joinpath("escaped.txt").write_text("x")
    Path(output).write_text("done")
    return {}


def test_files_written_outside_the_store_are_refused(worker_home):
    out = RunStore().root / "runs" / "r" / "u.txt"
    with pytest.raises(MixminError, match=r"unit u wrote .*escaped.txt, outside the run store"):
        run_tasks([Unit("u", _escape, {"output": str(out)}, out)], backend="ray", progress=False)
    assert not out.exists()


def _refuse(*, output: str) -> dict:
    from mixmin_core.errors import InputError

    raise InputError("source 'x' has no rows in its fit split (probe)")


def test_a_units_error_on_ray_is_its_own_one_line_error(worker_home, tmp_path):
    """Ray wrapped it: RayTaskError(InputError), 7 lines of the worker's traceback in colour, in the catalog too."""
    from mixmin_core.errors import InputError

    unit = Unit("u", _refuse, {"output": str(tmp_path / "u.json")}, tmp_path / "u.json")
    with pytest.raises(InputError) as err:
        run_tasks([unit], backend="ray", n_workers=1, progress=False)
    assert type(err.value) is InputError and str(err.value) == "source 'x' has no rows in its fit split (probe)"
    assert "in _refuse" in "".join(err.value.__notes__)  # where in the unit, for the job's .traceback file


def test_gpu_unit_on_a_cpu_cluster_is_a_config_error(worker_home, tmp_path):
    out = tmp_path / "u.json"
    unit = Unit("gpu-unit", _escape, {"output": str(out)}, out, num_gpus=1)
    with pytest.raises(ConfigError, match=r"unit gpu-unit requests num_gpus=1 but the Ray cluster has 0 GPU"):
        run_tasks([unit], backend="ray", progress=False)


def _write_value(*, value: int, output: str) -> dict:
    from mixmin_core.runs.fileio import write_json

    write_json(output, {"value": value})
    return {"rows": value}


def test_ray_backend_runs_units(worker_home, tmp_path):
    units = [Unit(f"u{i}", _write_value, {"value": i, "output": str(tmp_path / f"u{i}.json")}, tmp_path / f"u{i}.json")
             for i in range(3)]
    done = run_tasks(units, backend="ray", n_workers=1, progress=False)
    assert sorted(done) == ["u0", "u1", "u2"] and all((tmp_path / f"u{i}.json").exists() for i in range(3))


def test_runtime_env_ships_the_checkout_and_an_absolute_data_dir(monkeypatch):
    from mixmin_core.runs.ray_backend import runtime_env

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MIXMIN_DATA_DIR", "../shared/data")
    env = runtime_env({"EXTRA": "1"})
    assert env["working_dir"] == str(ROOT) and "/data/" in env["excludes"] and "/.git/" in env["excludes"]
    assert env["env_vars"]["MIXMIN_DATA_DIR"] == str((ROOT.parent / "shared" / "data").resolve())
    assert env["env_vars"]["EXTRA"] == "1" and "MIXMIN_HOME" not in env["env_vars"]


def test_sigterm_stops_a_ray_job_as_cancelled(tmp_path):
    """ray.init made SIGTERM call sys.exit (and its core worker abort): exit 134, the job "failed"."""
    import signal
    import subprocess
    import sys

    from tests.jobs.test_job_lifecycle import SLOW, running_with_units, wait_for

    ray_tmp = Path(tempfile.mkdtemp(prefix="mmray", dir="/tmp"))  # Ray's socket paths must fit 107 bytes
    temp = tmp_path / "temp"  # the job's batch cache goes under TMPDIR/mixmin-ray
    temp.mkdir()
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "job.log"
    try:
        with open(log, "wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "jobs", "run", DEMO, "--backend", "ray", "--workers", "1",
                                     *SLOW], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        store = RunStore()
        assert wait_for(lambda: running_with_units(store, 1)), log.read_text()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        out = log.read_text()
        assert code == 128 + signal.SIGTERM, out
        assert "cancelled: stopped by SIGTERM" in out, out
        (job,) = store.list_jobs()
        assert job["status"] == "cancelled" and job["error"] == "stopped by SIGTERM"
        # tasks still running wrote the batch's input cache again after the driver removed it (a folder per stop)
        time.sleep(2)
        assert not list(temp.glob("mixmin-ray/*")), list(temp.glob("mixmin-ray/*"))
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_an_unreachable_ray_address_is_one_error_at_once(tmp_path):
    """ray.init retried for minutes, printing connection errors, then the job ended as failed."""
    import subprocess
    import sys
    import time

    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1", "PYTHONPATH": str(ROOT)}  # loopback: nothing listens there
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "jobs", "run", DEMO, "--quiet"], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "RAY_ADDRESS=127.0.0.1:1: no Ray cluster answers there" in done.stderr
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("address", ["auto", "foo", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:1", "[::1]:1",
                                     "http://127.0.0.1:8265"])
def test_a_bad_ray_address_is_one_error_before_any_run_exists(capsys, monkeypatch, address):
    """'auto' joined a crashed cluster's leftover (and the machine's network address, not loopback) for minutes;
    'foo' and '127.0.0.1:' were Ray tracebacks; every bad address left a failed run behind."""
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert main(["run", DEMO, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith((f"error: RAY_ADDRESS={address}: no Ray cluster answers there",
                                                f"error: RAY_ADDRESS='{address}': expected host:port",
                                                f"error: RAY_ADDRESS='{address}': an http address is Ray's Jobs API")), err
    assert "Name or service not known" not in err  # ([::1] was looked up as a host name, http://... too)
    assert RunStore().list_runs() == []


@pytest.mark.parametrize("refusal", [ConnectionError("Unauthenticated: invalid or missing token"),
                                     RuntimeError("Version mismatch: The cluster was started with Ray 2.9")])
def test_a_cluster_that_refuses_the_driver_is_one_error_before_any_run_exists(worker_home, capsys, monkeypatch,
                                                                               refusal):
    """A head with token authentication (or another Ray version) answers, then refuses the driver: the job failed
    after its run folder existed."""
    monkeypatch.setenv("RAY_ADDRESS", ray.get_runtime_context().gcs_address)  # a real head answers there

    def refuse(**kwargs):
        raise refusal

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    assert main(["run", DEMO, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"the Ray cluster there refused this driver ({refusal})" in err, err
    assert RunStore().list_runs() == []


def test_a_port_that_answers_but_is_no_ray_head_is_one_error_at_once(worker_home):
    """A listener that is no Ray head (a wrong port of a real one) hung the job for minutes."""
    import threading

    from mixmin_core.runs.ray_backend import check_address

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(ConfigError, match=rf"RAY_ADDRESS=127.0.0.1:{port}: something answers there, but not a Ray head"):
        check_address(f"127.0.0.1:{port}")
    server.close()
    check_address(ray.get_runtime_context().gcs_address)  # the module's own instance: a real head passes


def test_a_loopback_ray_address_stays_on_loopback(monkeypatch):
    """Ray replaced 127.0.0.1 in RAY_ADDRESS by the machine's network address before connecting."""
    from ray._private import ray_constants, services

    from mixmin_core.runs.ray_backend import _loopback_kept

    before = ray_constants.ENABLE_RAY_CLUSTER
    with _loopback_kept(True):  # (resolving outside it would look up the machine's address: not in a test)
        assert services.canonicalize_bootstrap_address("127.0.0.1:6379") == "127.0.0.1:6379"
    assert ray_constants.ENABLE_RAY_CLUSTER == before


def test_a_signal_while_ray_starts_reaches_the_jobs_own_handler():
    """Ray's SIGTERM handler exits while ray.init waits for a cluster: the job was recorded "failed" with
    SystemExit: 15 instead of "cancelled" (the job's handler raises its own exception)."""
    import signal

    from mixmin_core.runs.ray_backend import _keeping_stop_handlers

    class Stopped(Exception):
        pass

    def stop(signum, _frame):
        raise Stopped(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stopped, match="SIGTERM"), _keeping_stop_handlers():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init replaces it
            raise SystemExit(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is stop
        with pytest.raises(SystemExit), _keeping_stop_handlers():  # another exit stays an exit
            raise SystemExit(3)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_nodes_cache_of_shipped_inputs_is_private(tmp_path):
    """The cache held world-readable copies of a run's features and labels in /tmp."""
    from mixmin_core.runs.ray_backend import _materialise

    _materialise({}, tmp_path / "mirror", tmp_path / "mixmin-ray" / "token")
    assert (tmp_path / "mixmin-ray" / "token").stat().st_mode & 0o777 == 0o700


def test_folders_a_killed_job_left_are_removed_a_day_later(tmp_path, monkeypatch):
    """kill -9 of a job left /tmp/mixmin-ray/<token> (input copies) and a worker's /tmp/mixmin-unit-*."""
    import time

    from mixmin_core.runs.ray_backend import STALE_SECONDS, remove_stale_folders

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old, fresh, unit = tmp_path / "mixmin-ray" / "aaa", tmp_path / "mixmin-ray" / "bbb", tmp_path / "mixmin-unit-x1"
    for folder in (old, fresh, unit):
        folder.mkdir(parents=True)
        (folder / "f").write_bytes(b"x")
    day_ago = time.time() - STALE_SECONDS - 60
    for folder in (old, unit):
        os.utime(folder, (day_ago, day_ago))
    assert sorted(remove_stale_folders()) == sorted([old, unit])
    assert fresh.exists() and not old.exists() and not unit.exists()  # a running batch's cache stays
    # a unit running for over a day (an LM final writes only at its end) never touches its folder: its worker's
    # pid, alive, keeps it; a dead worker's goes
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    running, killed = tmp_path / f"mixmin-unit-{os.getpid()}-ab", tmp_path / f"mixmin-unit-{dead.stdout.strip()}-cd"
    for folder in (running, killed):
        folder.mkdir()
        os.utime(folder, (day_ago, day_ago))
    assert remove_stale_folders() == [killed] and running.exists()


def _fail(*, output: str) -> dict:
    raise ValueError("this unit fails")


def _slow(*, output: str) -> dict:
    time.sleep(5)
    return _write_value(value=1, output=output)


def test_a_failed_stage_leaves_a_session_the_caller_started_alone(worker_home, tmp_path, monkeypatch):
    """A stage that ends with tasks in flight shuts down the instance mixmin started (its tasks would write their
    input cache again), never one the caller started: their objects would go, and the next call start another."""
    from mixmin_core.runs import ray_backend

    monkeypatch.setattr(ray_backend, "_OWN_INSTANCE", set())  # as if the caller had called ray.init
    units = [Unit("fail", _fail, {"output": str(tmp_path / "f.json")}, tmp_path / "f.json"),
             Unit("slow", _slow, {"output": str(tmp_path / "s.json")}, tmp_path / "s.json")]
    with pytest.raises(Exception, match="this unit fails"):
        run_tasks(units, backend="ray", n_workers=2, progress=False)
    assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2  # the module's instance, still up
