"""The run store: a SQLite catalog plus one folder per run, shared by jobs and the app.

Layout under ``MIXMIN_HOME`` (default ``./data``)::

    mixmin.db             catalog: runs, jobs, units, results (WAL mode: the app reads while jobs write)
    runs/<run_id>/        config.json (written first), proxy outputs, mixtures, models, logs

Every file write goes through :mod:`mixmin_core.runs.fileio` (temp file + rename).
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

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
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL, target TEXT NOT NULL, method TEXT NOT NULL, trial INTEGER NOT NULL,
    metric TEXT NOT NULL, value REAL, compute REAL, variant TEXT NOT NULL DEFAULT '',
    extra_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, target, method, trial, metric, variant)
);
"""

JOB_STATES = ("running", "done", "failed", "cancelled")


def default_home() -> Path:
    """``MIXMIN_HOME`` if set, else ``./data``."""
    return Path(os.environ.get("MIXMIN_HOME", "data")).resolve()


class RunStore:
    """Catalog and folders of all runs under ``root`` (default :func:`default_home`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).resolve() if root is not None else default_home()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "mixmin.db"
        with self._connect() as con:
            con.executescript(SCHEMA)

    @contextmanager
    def _connect(self):
        con = sqlite3.connect(self.db_path, timeout=30.0)
        con.row_factory = sqlite3.Row
        try:
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
        if not (folder / "config.json").exists():
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
        with self._connect() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [_run_row(r) for r in rows]

    def get_run(self, run_id: str) -> dict | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else _run_row(row)

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
            if job["status"] == "running" and job["pid"] and not _pid_alive(job["pid"]):
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
    def add_results(self, run_id: str, rows: list[dict]) -> None:
        """Insert or replace result rows: ``target, method, trial, metric, value`` plus optional
        ``compute`` (proxy compute spent), ``variant`` (e.g. ``"sources=100"``) and ``extra`` (dict)."""
        with self._connect() as con:
            con.executemany(
                "INSERT OR REPLACE INTO results (run_id, target, method, trial, metric, value, compute, variant, extra_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, str(r["target"]), str(r["method"]), int(r["trial"]), str(r["metric"]),
                  None if r.get("value") is None else float(r["value"]),
                  None if r.get("compute") is None else float(r["compute"]), str(r.get("variant", "")),
                  json.dumps(r.get("extra", {}), default=str)) for r in rows],
            )

    def results(self, run_id: str | None = None):
        """All result rows (of one run, or of every run) as a pandas DataFrame."""
        import pandas as pd

        query, args = "SELECT * FROM results", ()
        if run_id is not None:
            query, args = query + " WHERE run_id=?", (run_id,)
        with self._connect() as con:
            return pd.read_sql_query(query, con, params=args)


def _run_row(row) -> dict:
    d = dict(row)
    d["config"] = json.loads(d.pop("config_json"))
    d["summary"] = json.loads(d.pop("summary_json"))
    return d


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
