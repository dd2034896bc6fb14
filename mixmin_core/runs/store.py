"""The run store: a SQLite catalog plus one folder per run, shared by jobs and the app.

Layout under ``MIXMIN_HOME`` (default ``./data``)::

    mixmin.db             catalog: runs, jobs, units (WAL mode: the app reads while jobs write)
    runs/<run_id>/        config.json (written first), results.csv, summary.csv, proxy outputs, mixtures,
                          models, logs (see mixmin_core.runs.layout)

Every file write goes through :mod:`mixmin_core.runs.fileio` (temp file + rename).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from mixmin_core.errors import InputError, MixminError
from mixmin_core.runs import fileio

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, pipeline TEXT NOT NULL, dataset TEXT,
    status TEXT NOT NULL DEFAULT 'created', created_at REAL NOT NULL, updated_at REAL NOT NULL,
    config_json TEXT NOT NULL, summary_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, pid INTEGER,
    status TEXT NOT NULL, n_done INTEGER NOT NULL DEFAULT 0, n_total INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '', error TEXT, log_path TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS units (
    run_id TEXT NOT NULL, unit_id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    path TEXT, info_json TEXT NOT NULL DEFAULT '{}', seconds REAL, finished_at REAL,
    PRIMARY KEY (run_id, unit_id)
);
"""

LOCK_FILE = ".lock"


class RunLocked(MixminError):
    """Another live job holds the run's lock (the message names its job id and pid)."""


class RunLock:
    """The lock that lets one job at a time work on a run: ``runs/<run_id>/.lock``.

    Taken with ``fcntl.flock``, which the kernel releases when the holder exits, however it
    exits (``kill -9`` included), so a lock left by a killed job is simply free again; the file
    holds ``<job_id> <pid>`` of the holder so a refusal can name it, and is emptied when a job ends (a holder
    found in a free lock is a job that was killed). Hold the object (or
    use it as a context manager) for as long as the job runs.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None
        self.previous: tuple[int | None, int | None] = (None, None)  # (job_id, pid) found in a free lock

    def acquire(self, *, wait_for_holder: float = 2.0, then: str = "start again (it resumes)") -> Self:
        """Take the lock now or raise :class:`RunLocked` naming the job and pid that hold it, and what to do
        ``then``, once it is stopped."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or full store: no run can be written there
            raise InputError(f"cannot write the run folder {self.path.parent} ({exc.strerror}); a job writes its run "
                             "there: make it writable, free space, or set MIXMIN_HOME to a store you can write.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            job_id, pid = self._holder(wait_for_holder)
            who = f"job {job_id} (pid {pid})" if job_id is not None else f"a job that is starting (pid {pid})"
            stop = f"`python -m jobs cancel {job_id}`" if job_id is not None else f"`kill {pid}`"
            raise RunLocked(f"run {self.path.parent.name} is already running as {who}; wait for it to finish, "
                            f"or stop it with {stop} and {then}.") from None
        self._fd = fd
        self.previous = _parse_holder(os.pread(fd, 100, 0))
        self._write(None)
        return self

    def set_job(self, job_id: int) -> None:
        """Record the job id (known once the job is in the catalog) next to the pid."""
        self._write(job_id)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # a holder left behind means a job that did not end (a resume says so)
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _write(self, job_id: int | None) -> None:
        text = f"{'-' if job_id is None else job_id} {os.getpid()}\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)

    def _holder(self, wait: float) -> tuple[int | None, int | None]:
        """The holder's (job_id, pid), waiting up to ``wait`` seconds for a starting job to name itself."""
        deadline = time.monotonic() + wait
        while True:
            try:
                job_id, pid = _parse_holder(self.path.read_bytes())
            except OSError:
                job_id, pid = None, None
            if job_id is not None or time.monotonic() >= deadline:
                return job_id, pid
            time.sleep(0.05)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _parse_holder(raw: bytes) -> tuple[int | None, int | None]:
    parts = raw.decode("ascii", errors="replace").split()
    if len(parts) != 2:
        return None, None
    job, pid = parts
    return (int(job) if job.isdigit() else None), (int(pid) if pid.isdigit() else None)


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def default_home() -> Path:
    """``MIXMIN_HOME`` if set (and not empty: ``MIXMIN_HOME=`` put the store in the working folder), else ``./data``."""
    return Path(os.environ.get("MIXMIN_HOME") or "data").resolve()


class RunStore:
    """Catalog and folders of all runs under ``root`` (default :func:`default_home`)."""

    def __init__(self, root: str | os.PathLike | None = None, *, read_only: bool = False):
        """``read_only`` (the app's read-only mode) opens the catalog for reading only and creates nothing:
        the store may be a folder the app cannot write, or not exist yet (then it has no runs)."""
        self.root = Path(root).resolve() if root is not None else default_home()
        self.db_path = self.root / "mixmin.db"
        self.read_only = read_only
        if read_only:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            wal = self.db_path.with_name(self.db_path.name + "-wal")  # WAL mode: the rows may sit there for now
            emptied = (self.db_path.is_file() and self.db_path.stat().st_size == 0
                       and not (wal.is_file() and wal.stat().st_size > 0))
            if emptied and any(p.is_dir() for p in (self.root / "runs").glob("*")):  # read as "no runs yet", every
                # run's finished units would have run again
                raise sqlite3.DatabaseError("the file is empty, but runs/ holds runs")
            with self._connect() as con:
                con.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # cannot open or write it: the folder's doing
                raise MixminError(f"the run store {self.root} cannot be used ({exc}); set MIXMIN_HOME to a folder you "
                                  "can write.") from None
            raise MixminError(f"the run store's catalog {self.db_path} cannot be read ({exc}): it is damaged. Restore "
                              "it from a backup, or move it aside (e.g. to mixmin.db.broken) to start an empty catalog: "
                              "the runs' folders stay, but re-running a run then runs its units again (the catalog "
                              "held what each finished unit reported).") from None
        except OSError as exc:  # a file where the folder should be, a folder it cannot write
            why = "it is a file, not a folder" if self.root.is_file() else getattr(exc, "strerror", None) or exc
            raise MixminError(f"the run store {self.root} cannot be used ({why}); set MIXMIN_HOME to a folder you can "
                              "write.") from None

    def _open(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(self.db_path, timeout=30.0)
        if not self.db_path.exists():  # no catalog yet: an empty one, in memory
            con = sqlite3.connect(":memory:")
            con.executescript(SCHEMA)
            return con
        uri = self.db_path.as_uri()
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0)
        try:
            con.execute("SELECT 1 FROM runs LIMIT 1")
        except sqlite3.OperationalError as exc:  # a folder it cannot write: WAL's shared-memory file cannot be made
            con.close()
            if "locked" in str(exc):  # a job is writing: wait for it as a writer would, never read around it
                raise
            con = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
        return con

    @contextmanager
    def _connect(self):
        con = self._open()
        con.row_factory = sqlite3.Row
        try:
            if not self.read_only:
                con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=30000")
            with con:  # one transaction: committed on success, rolled back on error
                yield con
        finally:
            con.close()

    # ---- runs ---------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def create_run(self, run_id: str, *, name: str, pipeline: str, config: dict, dataset: str | None = None) -> Path:
        """Register a run (idempotent) and write its resolved config first; return its folder."""
        folder = self.run_dir(run_id)
        if not _readable_json(folder / "config.json"):  # missing, or damaged (a resume reads it)
            fileio.write_json(folder / "config.json", config)
        now = time.time()
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs (run_id, name, pipeline, dataset, created_at, updated_at, config_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO NOTHING",
                (run_id, name, pipeline, dataset, now, now, json.dumps(config, default=str)),
            )
        return folder

    def set_run_status(self, run_id: str, status: str, summary: dict | None = None) -> None:
        with self._connect() as con:
            if summary is None:
                con.execute("UPDATE runs SET status=?, updated_at=? WHERE run_id=?", (status, time.time(), run_id))
            else:
                con.execute("UPDATE runs SET status=?, summary_json=?, updated_at=? WHERE run_id=?",
                            (status, json.dumps(summary, default=str), time.time(), run_id))

    def list_runs(self) -> list[dict]:
        """Every run, newest first; a ``running`` run whose job process is gone reads ``died``."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
            return [self._with_live_status(con, _run_row(r)) for r in rows]

    def get_run(self, run_id: str) -> dict | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
            return None if row is None else self._with_live_status(con, _run_row(row))

    @staticmethod
    def _with_live_status(con, run: dict) -> dict:
        """``status`` ``died`` (and ``last_step``) for a run marked running whose newest running job is dead."""
        if run["status"] != "running":
            return run
        jobs = con.execute("SELECT pid, started_at, message FROM jobs WHERE run_id=? AND status='running'"
                           " ORDER BY job_id DESC", (run["run_id"],)).fetchall()
        if jobs and not any(job_alive(j["pid"], j["started_at"]) for j in jobs):
            run["status"], run["last_step"] = "died", jobs[0]["message"]
        return run

    def deletable(self, run_id: str) -> dict:
        """The run :meth:`delete_run` would remove (status ``unlisted``: a folder without a catalog row), or an
        :class:`InputError` for an id that names no run folder of this store (or :class:`RunLocked` for a run a
        job is working on), so that a list of ids is checked whole before any is removed."""
        folder = self.run_dir(run_id)
        try:  # the folder's own name, exactly: "run/" and "./run" resolve to the run, but are no id
            plain = bool(run_id) and "\0" not in run_id and folder.name == run_id and run_id not in (".", "..") \
                and folder.parent.resolve() == self.run_dir("").resolve()
            linked, exists, is_dir = folder.is_symlink(), folder.exists(), folder.is_dir()
        except (OSError, ValueError):  # a name too long for the file system
            plain = False
        if not plain:
            raise InputError(f"{run_id[:80]!r} is no run id; `python -m jobs status` lists them.")
        if linked:  # never follow a link out of the store
            raise InputError(f"run folder {folder} is a link; remove the link itself if you mean to.")
        if exists and not is_dir:
            raise InputError(f"{folder} is a file, not a run folder; remove it by hand if it is no longer needed.")
        run = self.get_run(run_id)
        if run is None and not is_dir:
            raise InputError(f"no run {run_id[:80]!r} in {self.root}; `python -m jobs status` lists them.")
        if is_dir:
            # RunLocked names the job working on it
            RunLock(folder).acquire(wait_for_holder=0.5, then="delete the run then").release()
        return run or {"run_id": run_id, "status": "unlisted"}

    def delete_run(self, run_id: str) -> Path:
        """Remove a run: its catalog rows (runs, jobs, units) and its folder. The proxy cache, which other
        runs share, stays. Refused while a job holds the run's lock (:class:`RunLocked` names it).
        The folder is renamed aside inside the transaction that deletes the rows, so a folder that cannot be moved
        leaves the rows as they were; then it is removed. Returns the folder that was removed."""
        self.deletable(run_id)
        folder = self.run_dir(run_id)
        trash = folder.with_name(f".deleting-{run_id}-{os.getpid()}")
        with RunLock(folder):
            try:
                with self._connect() as con:  # rolled back if the rename fails
                    for table in ("units", "jobs", "runs"):
                        con.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
                    folder.rename(trash)  # a job started now makes a fresh folder, never half of this one
            except OSError as exc:
                raise InputError(f"cannot move the run folder {folder} aside to remove it ({exc.strerror or exc}); "
                                 "nothing was removed: make the store's runs/ folder writable.") from None
        for left in folder.parent.glob(".deleting-*"):  # this one, and any a killed delete left
            shutil.rmtree(left, ignore_errors=True)
        if trash.exists():
            raise InputError(f"run {run_id} is deleted from the catalog, but some of its files could not be removed: "
                             f"remove {trash} by hand.")
        return folder

    # ---- jobs ---------------------------------------------------------------------------
    def start_job(self, run_id: str, *, pid: int | None = None, log_path: str | None = None) -> int:
        now = time.time()
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO jobs (run_id, pid, status, log_path, started_at, updated_at) VALUES (?, ?, 'running', ?, ?, ?)",
                (run_id, pid or os.getpid(), log_path, now, now),
            )
            return int(cur.lastrowid)

    def update_job(self, job_id: int, *, n_done: int | None = None, n_total: int | None = None,
                   message: str | None = None) -> None:
        sets, args = ["updated_at=?"], [time.time()]
        for col, val in (("n_done", n_done), ("n_total", n_total), ("message", message)):
            if val is not None:
                sets.append(f"{col}=?")
                args.append(val)
        with self._connect() as con:
            con.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE job_id=?", (*args, job_id))

    def finish_job(self, job_id: int, status: str, error: str | None = None) -> None:
        with self._connect() as con:
            con.execute("UPDATE jobs SET status=?, error=?, updated_at=? WHERE job_id=?",
                        (status, error, time.time(), job_id))

    def request_cancel(self, job_id: int) -> None:
        with self._connect() as con:
            con.execute("UPDATE jobs SET cancel_requested=1, updated_at=? WHERE job_id=?", (time.time(), job_id))

    def cancel_requested(self, job_id: int) -> bool:
        with self._connect() as con:
            row = con.execute("SELECT cancel_requested FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return bool(row and row[0])

    def list_jobs(self, run_id: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM jobs", ()
        if run_id is not None:
            query, args = query + " WHERE run_id=?", (run_id,)
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY job_id DESC", args).fetchall()
        jobs = [dict(r) for r in rows]
        for job in jobs:  # a job whose process died without finishing is reported as such
            if job["status"] == "running" and not job_alive(job["pid"], job["started_at"]):
                job["status"] = "died"
        return jobs

    # ---- units --------------------------------------------------------------------------
    def record_unit(self, run_id: str, unit_id: str, *, kind: str, path: str | None, info: dict,
                    seconds: float | None, status: str = "done") -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO units (run_id, unit_id, kind, status, path, info_json, seconds, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, unit_id, kind, status, path, json.dumps(info, default=str), seconds, time.time()),
            )

    def units(self, run_id: str) -> list[dict]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM units WHERE run_id=? ORDER BY finished_at", (run_id,)).fetchall()
        return [{**dict(r), "info": json.loads(r["info_json"])} for r in rows]

    def unit_info(self, run_id: str, unit_id: str) -> dict | None:
        with self._connect() as con:
            row = con.execute("SELECT info_json FROM units WHERE run_id=? AND unit_id=?", (run_id, unit_id)).fetchone()
        return None if row is None else json.loads(row[0])

    # ---- results ------------------------------------------------------------------------
    def results(self, run_id: str | None = None):
        """Result rows (``results.csv``, see :mod:`mixmin_core.runs.layout`) of one run, or of every
        run with a ``run_id`` column, as a pandas DataFrame."""
        import pandas as pd

        from mixmin_core.runs import layout

        if run_id is not None:
            return layout.read_results(self.run_dir(run_id))
        frames = [layout.read_results(self.run_dir(r["run_id"])).assign(run_id=r["run_id"]) for r in self.list_runs()]
        return pd.concat(frames, ignore_index=True) if frames else layout.read_results(self.root / "none")


def _run_row(row) -> dict:
    d = dict(row)
    d["config"] = json.loads(d.pop("config_json"))
    d["summary"] = json.loads(d.pop("summary_json"))
    return d


def job_alive(pid: int | None, started_at: float | None = None) -> bool:
    """True if process ``pid`` runs (not a zombie) and, when ``started_at`` is given, started no
    later than that time (a later process reuses the pid of a job that died)."""
    if not pid or not _pid_alive(pid):
        return False
    if started_at is None or pid == os.getpid():
        return True
    born = _process_start_time(pid)
    return born is None or born <= started_at + 2.0  # btime has 1 s resolution


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent (e.g. the app) is a zombie: dead
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _process_start_time(pid: int) -> float | None:
    """The wall-clock start time of ``pid`` from /proc (None where /proc is not available)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None
