"""The Ray backend of :func:`mixmin_core.runs.runner.run_tasks`: units on any node, one writer.

Only the driver touches the run store, so a cluster needs no shared filesystem:

* **Code** ships through Ray's ``runtime_env`` (``working_dir`` = this checkout, without ``data/``,
  ``.git`` and git-ignored files), so workers need no checkout, only the same Python packages.
* **Inputs**: every absolute path in a unit's kwargs (also inside lists and dicts) that lies in the
  run store, or beside the unit's output, is remapped into a temporary folder on the worker with
  the same layout. Existing files there (plus their sidecars ``<stem>.*``) and folders (every file
  below them, except ``*.log``, ``*.tmp`` and the SQLite catalog) travel as Ray objects: each file is
  read and ``ray.put`` once per batch and written once per node, then hard-linked into each unit's
  folder. Paths under ``MIXMIN_DATA_DIR`` are left as they are: the data directory must exist at the
  same path on every node (the driver's ``MIXMIN_DATA_DIR`` is passed on to the workers).
* **Outputs**: after ``fn`` returns, the worker sends back every file it created or replaced in
  its temporary folder; the driver writes them atomically to the real paths, the unit's
  ``output`` last, so a job killed mid-write redoes that unit.

Unit functions must write by replacing files (``fileio.atomic_path``), never in place, as the
run-folder contract already requires. Without ``RAY_ADDRESS`` a fresh local instance starts on the
loopback interface; a stale ``ray_current_cluster`` file left by a crashed Ray is never joined.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path, PurePath

from mixmin_core.errors import ConfigError, MixminError
from mixmin_core.runs.fileio import atomic_path

#: The checkout that ships to the workers (it holds ``jobs/`` and ``mixmin_core/``).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Never shipped with the code: run stores, git history, build and test caches.
CODE_EXCLUDES = ["/data/", "/artifacts/", "/.git/", "__pycache__/", ".pytest_cache/", ".hypothesis/",
                 ".ruff_cache/", ".benchmarks/"]
#: Environment the workers get from the driver (the data directory is read in place on each node).
FORWARDED_ENV = ("MIXMIN_DATA_DIR", "MIXMIN_OFFLINE")
_SKIP_SUFFIXES = (".log", ".tmp", ".db", ".db-wal", ".db-shm", ".db-journal")


def runtime_env(env_vars: dict | None = None) -> dict:
    """Ray ``runtime_env`` that ships this checkout and the data-directory settings to every worker."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    if "MIXMIN_DATA_DIR" in env:  # workers start in the shipped checkout: a relative path would move
        env["MIXMIN_DATA_DIR"] = str(Path(env["MIXMIN_DATA_DIR"]).expanduser().resolve())
    env.update(env_vars or {})
    return {"working_dir": str(REPO_ROOT), "excludes": CODE_EXCLUDES, "env_vars": env}


def start_ray(n_workers: int, *, env_vars: dict | None = None) -> None:
    """Connect to ``$RAY_ADDRESS``, or start a fresh local instance with ``n_workers`` CPUs.

    The local instance binds the loopback interface only, and ``address="local"`` makes Ray ignore
    the ``ray_current_cluster`` file, which a crashed Ray leaves pointing at a dead cluster (a plain
    ``ray.init(num_cpus=...)`` would try to join it and fail with "num_cpus must not be provided").
    ``env_vars`` are added to the workers' environment.
    """
    import ray

    if ray.is_initialized():
        return
    with _keeping_stop_handlers():
        _init(ray, n_workers, env_vars)


@contextlib.contextmanager
def _keeping_stop_handlers():
    """``ray.init`` makes SIGTERM call ``sys.exit`` (and its core worker aborts on it): the job would end as
    "failed" with exit 134 instead of "cancelled" with 143. Keep the job's own SIGTERM and SIGINT handlers."""
    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        yield
    except SystemExit as exc:  # a signal while Ray starts: Ray's handler exits; the job's own decides instead
        sig = next((s for s in saved if exc.code == int(s)), None)
        if sig is not None and callable(saved[sig]):
            saved[sig](sig, None)
        raise
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def check_address(address: str, timeout: float = 5.0) -> None:
    """A ConfigError at once unless ``address`` is ``host:port`` (or ``ray://host:port``) where something
    answers: ``ray.init`` would retry for minutes, printing connection errors, then end the job as failed.
    ``auto`` is refused too: Ray resolves it from a file that a crashed cluster leaves behind, and to the
    machine's network address rather than loopback."""
    if address.lower().startswith(("http://", "https://")):
        raise ConfigError(f"RAY_ADDRESS={address!r}: an http address is Ray's Jobs API (`ray job submit`), not a "
                          "cluster a driver joins; give host:port of the head's GCS as `ray start --head` prints it "
                          "(e.g. 10.0.0.5:6379), or unset RAY_ADDRESS to run on a fresh local instance.")
    host, _, port = (address[6:] if address.lower().startswith("ray://") else address).rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"RAY_ADDRESS={address!r}: expected host:port of a running Ray head (e.g. 10.0.0.5:6379, "
                          "or ray://host:10001 for Ray Client), as `ray start --head` prints it; unset RAY_ADDRESS "
                          "to run on a fresh local instance.")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            grpc = os.environ.get("RAY_USE_TLS", "0") not in ("0", "") or _speaks_grpc(sock)  # TLS: not plain HTTP/2
    except OSError as exc:
        raise ConfigError(f"RAY_ADDRESS={address}: no Ray cluster answers there ({exc.strerror or exc}). Start its "
                          "head with `ray start --head` and use the address it prints, or unset RAY_ADDRESS to run "
                          "on a fresh local instance.") from None
    if not grpc:  # ray.init would retry for minutes
        raise ConfigError(f"RAY_ADDRESS={address}: something answers there, but not a Ray head (it speaks no gRPC): "
                          "use the address `ray start --head` prints (its GCS port, 6379 by default), or "
                          "ray://host:10001 for Ray Client; a head that requires TLS needs RAY_USE_TLS=1 here too.")


#: The HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server (a Ray head's GCS, Ray Client)
#: answers with a SETTINGS frame of its own.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(sock: socket.socket) -> bool:
    sock.sendall(_HTTP2_HELLO)
    head = b""
    while len(head) < 9:  # a frame header: 3 bytes of length, then the type (4: SETTINGS)
        chunk = sock.recv(9 - len(head))
        if not chunk:
            return False
        head += chunk
    return head[3] == 4


def _init(ray, n_workers: int, env_vars: dict | None) -> None:
    address = os.environ.get("RAY_ADDRESS")
    common = {"include_dashboard": False, "log_to_driver": False, "runtime_env": runtime_env(env_vars)}
    if address:
        check_address(address)
    host = (address or "").removeprefix("ray://").rpartition(":")[0].strip("[]")
    with _loopback_kept(not address or host in ("localhost", "::1") or host.startswith("127.")):
        if not address:  # the workers get the driver's own proxy settings back ("" for one it has not set)
            own = {k: os.environ.get(k, "") for k in NO_CLOUD_PROBES}
            with _no_cloud_probes():
                ray.init(address="local", num_cpus=n_workers,
                         **{**common, "runtime_env": runtime_env({**own, **(env_vars or {})})})
            _OWN_INSTANCE.add(ray.get_runtime_context().gcs_address)
            return
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError) as exc:  # it answers but refuses this driver: token authentication
            # (ConnectionError), another Ray or Python version (RuntimeError)
            raise ConfigError(f"RAY_ADDRESS={address}: the Ray cluster there refused this driver ({str(exc)[:200]}). "
                              "A head started with token authentication needs the same RAY_AUTH_MODE and token "
                              "in this shell; its Ray version must match this one.") from None


#: A local instance's dashboard asks cloud metadata services which cloud it runs on (169.254.169.254 and
#: metadata.google.internal, ray._common.usage.usage_lib.get_cloud_from_metadata_requests) as it starts, even with
#: usage stats off. An HTTP proxy on a closed loopback port makes those requests fail at once, without leaving the
#: machine; loopback traffic (the instance's gRPC and HTTP) bypasses it. The instance's own processes keep it; its
#: workers get the driver's settings back through the runtime_env (an empty value is no proxy).
NO_CLOUD_PROBES = {"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                   "no_proxy": "127.0.0.1,localhost,::1", "NO_PROXY": "127.0.0.1,localhost,::1",
                   "no_grpc_proxy": "127.0.0.1,localhost,::1"}


@contextlib.contextmanager
def _no_cloud_probes():
    """:data:`NO_CLOUD_PROBES` in the environment while a local instance starts (its processes inherit them)."""
    saved = {k: os.environ.get(k) for k in NO_CLOUD_PROBES}
    os.environ.update(NO_CLOUD_PROBES)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _loopback_kept(keep: bool):
    """Keep a loopback address on loopback: Ray otherwise replaces 127.0.0.1 (in RAY_ADDRESS, and as a local
    instance's own address) by the machine's network address (ray._private.services.get_node_ip_address);
    it offers no public switch for this."""
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = saved and not keep
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def run_units(todo, n_workers, finish, *, root) -> None:
    """Submit each unit as a Ray task; ``finish(unit, info, seconds)`` after the driver wrote its files."""
    import ray

    start_ray(n_workers)
    _check_gpus(todo, ray.cluster_resources().get("GPU", 0.0))
    remove_stale_folders()
    shipper = _Shipper(root)
    remote = ray.remote(_run_on_worker)
    token = uuid.uuid4().hex
    refs = {}
    for unit in todo:
        kwargs, manifest = shipper.prepare(unit)
        opts = {"num_gpus": unit.num_gpus} if unit.num_gpus else {}
        refs[remote.options(**opts).remote(unit.fn, kwargs, manifest, token)] = unit
    nodes = set()
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                unit = refs.pop(ref)
                try:
                    info, seconds, files, node = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the unit's own error, as the local backend gives it
                    cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
                    if cause is None:  # (its text: the worker's traceback, in colour, with Ray's paths)
                        raise
                    worker = re.sub(r"\x1b\[[0-9;]*m", "", getattr(exc, "traceback_str", None) or str(exc))
                    cause.add_note(f"on the Ray worker:\n{worker}")  # where in the unit (for the job's .traceback
                    raise cause from None                              # file; its one error line stays as it was)
                nodes.add(node)
                shipper.write_back(unit, files)
                finish(unit, info, seconds)
    finally:
        if os.environ.get("RAY_ADDRESS"):  # a cluster outlives this job: stop its tasks, clean its nodes
            for ref in refs:
                ray.cancel(ref)
            _clean_nodes(nodes, token)
        else:  # the local instance ends with this process; cancelling a task just as it finished crashed Ray's
            # core worker ("Tried to complete task that was not pending"), exit 1 on SIGTERM. Stopped mid-stage, its
            # tasks still running wrote the cache again after it was removed: the instance goes first
            if refs and _started_here(ray):  # (never a session the caller started: its objects would go)
                ray.shutdown()
            _remove_cache(token)


#: The local instance this process started (start_ray), which it may shut down: one the caller started is theirs.
_OWN_INSTANCE: set = set()


def _started_here(ray) -> bool:
    return ray.is_initialized() and ray.get_runtime_context().gcs_address in _OWN_INSTANCE


def _check_gpus(todo, n_gpus: float) -> None:
    for unit in todo:
        if unit.num_gpus > n_gpus:
            raise ConfigError(f"unit {unit.unit_id} requests num_gpus={unit.num_gpus} but the Ray cluster has "
                              f"{n_gpus:g} GPU(s); run it on CPU (device='cpu') or add GPU nodes to the cluster.")


class _Remote:
    """An absolute path in a unit's kwargs that the worker remaps into its temporary folder."""

    def __init__(self, path: str, kind: type, is_dir: bool):
        self.path, self.kind, self.is_dir = path, kind, is_dir


class _Shipper:
    """Driver side: remap paths in kwargs, put input files into Ray once each, write outputs back."""

    def __init__(self, root):
        from mixmin_core.runs.datasets import data_dir

        self.root = Path(root).resolve()
        data = data_dir()
        self.data = data.resolve() if data is not None else None
        self.objects: dict[tuple, tuple[str, object]] = {}  # (path, size, mtime_ns) -> (sha256, ref)

    def prepare(self, unit) -> tuple[dict, dict]:
        """``(kwargs with _Remote paths, {path: (sha256, ObjectRef)} of the files to ship)``."""
        bases = [self.root]
        if unit.output is not None:
            bases.append(Path(os.path.abspath(unit.output)).parent)
        manifest: dict[str, tuple[str, object]] = {}
        kwargs = self._walk(unit.kwargs, bases, manifest)
        return kwargs, manifest

    def _walk(self, value, bases, manifest):
        if isinstance(value, dict):
            return {k: self._walk(v, bases, manifest) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._walk(v, bases, manifest) for v in value)
        if not isinstance(value, (str, PurePath)) or not os.path.isabs(value):
            return value
        path = Path(os.path.abspath(value))
        if (self.data is not None and path.is_relative_to(self.data)) or not any(path.is_relative_to(b) for b in bases):
            return value
        if path.is_file():
            for f in [path, *path.parent.glob(f"{_glob_escape(path.stem)}.*")]:
                self._ship(f, manifest)
        elif path.is_dir():
            for f in path.rglob("*"):
                self._ship(f, manifest)
        return _Remote(str(path), type(value), path.is_dir())

    def _ship(self, path: Path, manifest) -> None:
        if str(path) in manifest or not path.is_file() or path.name.endswith(_SKIP_SUFFIXES):
            return
        import ray

        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self.objects:
            data = path.read_bytes()
            self.objects[key] = (hashlib.sha256(data).hexdigest(), ray.put(data))
        manifest[str(path)] = self.objects[key]

    def write_back(self, unit, files: list[tuple[str, bytes]]) -> None:
        """Write the files a worker returned, atomically, the unit's ``output`` last."""
        allowed = [self.root] + ([Path(os.path.abspath(unit.output)).parent] if unit.output is not None else [])
        output = None if unit.output is None else os.path.abspath(unit.output)
        for path, data in sorted(files, key=lambda f: f[0] == output):
            if not any(Path(path).is_relative_to(b) for b in allowed):
                raise MixminError(f"unit {unit.unit_id} wrote {path}, outside the run store {self.root} and its "
                                  f"output's folder; on the Ray backend only files there come back to the driver.")
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)


def _glob_escape(text: str) -> str:
    import glob

    return glob.escape(text)


def _node_cache(token: str) -> Path:
    return Path(tempfile.gettempdir()) / "mixmin-ray" / token


def _run_on_worker(fn, kwargs, manifest, token):
    """Worker side: materialise the shipped files, run ``fn``, return what it wrote."""
    import ray

    work = Path(tempfile.mkdtemp(prefix=f"mixmin-unit-{os.getpid()}-"))  # the pid: a running unit's is kept
    mirror = work / "fs"
    try:
        before = _materialise(manifest, mirror, _node_cache(token))
        local = _localise(kwargs, mirror)
        start = time.perf_counter()
        info = fn(**local) or {}
        seconds = time.perf_counter() - start
        files = _changed_files(mirror, before, _node_cache(token), manifest)
        return _strip(info, str(mirror)), seconds, files, ray.get_runtime_context().get_node_id()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mirrored(mirror: Path, path: str) -> Path:
    return mirror / path.lstrip(os.sep)


def _materialise(manifest, mirror: Path, cache: Path) -> dict[str, tuple]:
    """Hard-link every shipped file from the node's cache (fetching the missing ones) into ``mirror``."""
    import ray

    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.mkdir(mode=0o700, exist_ok=True)  # copies of the run's inputs: this user's only, as the unit folders are
    missing = {digest: ref for digest, ref in manifest.values() if not (cache / digest).exists()}
    if missing:
        for digest, data in zip(missing, ray.get(list(missing.values()))):
            with atomic_path(cache / digest) as tmp:
                tmp.write_bytes(data)
    before = {}
    for path, (digest, _) in manifest.items():
        target = _mirrored(mirror, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(cache / digest, target)
        except OSError:
            shutil.copyfile(cache / digest, target)
        st = target.stat()
        before[str(target)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return before


def _localise(value, mirror: Path):
    if isinstance(value, dict):
        return {k: _localise(v, mirror) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_localise(v, mirror) for v in value)
    if isinstance(value, _Remote):
        local = _mirrored(mirror, value.path)
        (local if value.is_dir else local.parent).mkdir(parents=True, exist_ok=True)
        return value.kind(local) if value.kind is not str else str(local)
    return value


def _changed_files(mirror: Path, before: dict, cache: Path, manifest) -> list[tuple[str, bytes]]:
    """Files created or replaced under ``mirror``, as ``(driver path, bytes)``."""
    files = []
    for path in mirror.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        st = path.stat()
        old = before.get(str(path))
        if old == (st.st_ino, st.st_size, st.st_mtime_ns):
            continue
        real = os.sep + str(path.relative_to(mirror))
        if old is not None and old[0] == st.st_ino:  # written in place: the shared cached copy changed too
            (cache / manifest[real][0]).unlink(missing_ok=True)
        files.append((real, path.read_bytes()))
    return files


def _strip(value, prefix: str):
    """Map paths in a unit's info dict from the worker's folder back to the driver's."""
    if isinstance(value, dict):
        return {k: _strip(v, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip(v, prefix) for v in value]
    if isinstance(value, str) and value.startswith(prefix):
        return value[len(prefix):]
    return value


def _clean_nodes(nodes: set, token: str) -> None:
    """Delete the batch's file cache on every node that ran a unit."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not nodes:
        return
    clean = ray.remote(_remove_cache)
    refs = [clean.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(token)
            for n in nodes]
    ray.wait(refs, num_returns=len(refs), timeout=30)


def _remove_cache(token: str) -> None:
    shutil.rmtree(_node_cache(token), ignore_errors=True)


#: A batch's file cache or a unit's folder untouched this long is a killed job's leftover.
STALE_SECONDS = 24 * 3600


def _unit_running(name: str) -> bool:
    """Whether ``mixmin-unit-<pid>-...`` names a worker process that is alive on this node."""
    pid = name.removeprefix("mixmin-unit-").split("-", 1)[0]
    if not name.startswith("mixmin-unit-") or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


def remove_stale_folders(now: float | None = None) -> list[Path]:
    """Delete this node's batch caches (``mixmin-ray/<token>``) and unit folders (``mixmin-unit-*``) that a
    job killed with ``kill -9`` left behind (untouched for :data:`STALE_SECONDS`); return what went."""
    now = time.time() if now is None else now
    temp = Path(tempfile.gettempdir())
    gone = []
    for folder in [*(temp / "mixmin-ray").glob("*"), *temp.glob("mixmin-unit-*")]:
        try:
            if _unit_running(folder.name):  # a unit of more than a day (an LM final) never touches its folder
                continue
            if folder.is_dir() and now - folder.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
                gone.append(folder)
        except OSError:  # another job removed it meanwhile
            continue
    return gone
