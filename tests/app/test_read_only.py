"""Safe to show to collaborators: the app listens on loopback only, and read-only mode starts,
cancels and stores nothing while every page still browses runs and solves live.

The bind-address test runs ``streamlit run app.py`` as a user would (no address flag: the checked-in
``.streamlit/config.toml`` decides) and reads the process's listening sockets from /proc; it only
ever connects to 127.0.0.1.
"""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from jobs import control as jobs_control
from mixmin_core.errors import InputError
from mixmin_core.runs.store import RunStore
from tests.app.conftest import open_app, shown
from tests.app.fixtures import ROOT

pytestmark = pytest.mark.timeout(300)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by process ``pid``, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(addr_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if width == 8 else socket.AF_INET6
            found.add((socket.inet_ntop(family, words), int(port_hex, 16)))
    return found


@pytest.mark.parametrize("command", [[sys.executable, "-m", "streamlit", "run", "app.py"],
                                     # the README's command, with a port of its own (the option went nowhere);
                                     # its setup may not reach an index: requirements are installed here
                                     ["bash", "run.sh", "--server.headless", "true"]], ids=["streamlit", "run.sh"])
def test_streamlit_run_app_listens_on_loopback_only(tmp_path, command):
    port = _free_port()
    env = {**os.environ, "MIXMIN_HOME": str(tmp_path / "home"), "PIP_NO_INDEX": "1"}
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*command, "--server.port", str(port)],
                                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        sockets: set = set()
        while time.monotonic() < deadline and not sockets:
            assert proc.poll() is None, log.read_text()[-2000:]
            sockets = {s for s in _listening(proc.pid) if s[1] == port}
            time.sleep(0.3)
        assert sockets == {("127.0.0.1", port)}, (sockets, log.read_text()[-2000:])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as resp:
            assert resp.read().strip() == b"ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_run_sh_binds_loopback_unless_told_otherwise():
    text = (ROOT / "run.sh").read_text()
    assert 'ADDRESS="${MIXMIN_ADDRESS:-127.0.0.1}"' in text
    assert text.count('--server.address "$ADDRESS"') == 2  # app and demo


# ---- read-only mode ----------------------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    monkeypatch.setenv("MIXMIN_READ_ONLY", "1")


def _csv() -> bytes:
    rng = np.random.default_rng(0)
    labels = (rng.random(100) < 0.3).astype(int)
    frame = pd.DataFrame({"good": np.where(labels == 1, 0.8, 0.2), "noise": rng.uniform(0.1, 0.9, 100),
                          "label": labels})
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def _open(page: str | None = None, switch: str = "(MIXMIN_READ_ONLY=1).") -> AppTest:
    """The app, checking the sidebar's read-only note (naming its ``switch``) on the first page, then ``page``."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert any("Read-only mode" in i.value and i.value.endswith(switch) for i in at.sidebar.info), [e for e in at.sidebar]
    assert not any("Run store:" in c.value for c in at.sidebar.caption)  # no paths of the owner's machine
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and not p.name.startswith("mixmin.db")}


def test_read_only_job_listings_create_no_store(tmp_path, read_only):
    """The Jobs page's launch list opened the store for writing: a store that did not exist was created."""
    from jobs import control

    assert control.list_launches(tmp_path / "none") == [] and control.running_jobs(tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


def test_read_only_jobs_page_has_no_start_or_cancel(home, read_only, monkeypatch):
    store = RunStore()
    job = store.list_jobs()[0]
    # a job that looks running (this test process's pid) would normally offer the cancel buttons
    with store._connect() as con:
        con.execute("UPDATE jobs SET status='running', pid=? WHERE job_id=?", (os.getpid(), job["job_id"]))
    with open(job["log_path"], "a") as log:  # a log line naming the owner's folders (and a store since moved)
        log.write(f"wrote {home}/runs/x/a.npz from {os.environ['MIXMIN_DATA_DIR']}/chem/toxcast.csv.gz\n"
                  f"read /srv/old/store/runs/y-0123abcd/b.npz and {ROOT}/configs/chem_ci.yaml, not {ROOT}2/x "
                  "nor /opt/app/runs/z.py\n")
    before = _files(home)
    at = _open("jobs")
    assert any("Read-only mode" in i.value for i in at.info)
    labels = [b.label for b in at.button]
    assert "Start job" not in labels and not any("Cancel" in x or "SIGTERM" in x for x in labels), labels
    assert not at.text_area and not [t for t in at.text_input if t.key and t.key.startswith("jobs.field")]
    assert "running" in set(at.dataframe[0].value["status"])  # jobs are still shown
    logs = [c.value for c in at.code]  # the job's log is shown, without the owner's paths
    assert logs and not any(str(home) in text or str(home.resolve()) in text for text in logs), logs
    assert any("wrote <run store>/runs/x/a.npz from <data>/chem/toxcast.csv.gz" in text for text in logs), logs
    # a folder beside the checkout (not in it) and any other path of the machine: their names only
    assert any("read <run store>/runs/y-0123abcd/b.npz and configs/chem_ci.yaml, not .../x nor .../z.py"
               in text for text in logs), logs
    logs = [c.value for c in at.caption if c.value.startswith("Log:")]
    assert logs and not any(str(home) in c for c in logs), logs  # relative to the store
    assert _files(home) == before and not jobs_control.list_launches(home)


def test_read_only_upload_solves_in_memory_and_stores_nothing(home, read_only):
    from mixmin_core.solver.synthetic import example_problem

    example_problem(n_sources=3, n_samples=50)[0].save(home / "uploads" / "owners-aaa", compress=True)
    before = _files(home)
    at = _open("upload")
    assert not [b for b in at.button if b.key == "upload.delete"]  # a visitor deletes no upload of the owner's
    at.file_uploader(key="upload.files").set_value(("mine.csv", _csv(), "text/csv")).run()
    assert not at.exception
    assert "2 sources × 100 samples" in at.success[0].value
    assert any("not saved" in c.value for c in at.caption)
    assert at.session_state["solve.problem"] is None
    assert _files(home) == before  # the owner's upload is all the uploads folder holds
    assert not [b for b in at.button if b.label == "Explore in the Solver"]


@pytest.mark.parametrize("page", ["solver", "compare", "assays", "beyond"])
def test_read_only_pages_still_browse_and_solve(home, read_only, page):
    _open(page)


def test_read_only_control_refuses_to_start_or_cancel(home, read_only):
    config = ROOT / "configs" / "synthetic_demo.yaml"
    with pytest.raises(InputError, match="read-only"):
        jobs_control.start_job(config, {"trials": 1}, home=home)
    with pytest.raises(InputError, match="read-only"):
        jobs_control.cancel_job(RunStore(home), 1)
    assert not jobs_control.list_launches(home)


def test_secrets_turn_read_only_on(home, tmp_path, monkeypatch):
    monkeypatch.delenv("MIXMIN_READ_ONLY", raising=False)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[mixmin]\nread_only = true\n")
    from streamlit import config as st_config

    monkeypatch.setattr(st_config, "get_option",
                        lambda key, _orig=st_config.get_option: [str(secrets)] if key == "secrets.files" else _orig(key))
    from streamlit.runtime.secrets import secrets_singleton

    secrets_singleton._secrets = None  # re-read from the patched path
    try:
        at = _open("jobs", switch="(read_only = true in .streamlit/secrets.toml).")  # it named MIXMIN_READ_ONLY=1
        assert "Start job" not in [b.label for b in at.button]
        assert os.environ.get("MIXMIN_READ_ONLY") == "1"  # so jobs.control refuses too
    finally:
        secrets_singleton._secrets = None
        os.environ.pop("MIXMIN_READ_ONLY", None)


@pytest.mark.parametrize("secrets_text,env,match", [
    # a syntax error elsewhere in the file left a shared app writable, said in one console line
    ('[mixmin]\nread_only = true\n\n[other]\nkey = "unterminated\n', {}, r"secrets.toml could not be read \(Illegal"),
    ('[mixmin]\nread_only = "false"\n', {}, "must be true or false; got 'false'"),  # bool("false") is True
    (None, {"MIXMIN_READ_ONLY": "y"}, r"MIXMIN_READ_ONLY='y' is neither on"),  # "y", "2", "enabled": off
    (None, {"MIXMIN_MAX_JOBS": "abc"}, r"MIXMIN_MAX_JOBS='abc' must be a whole number"),  # silently 2
])
def test_a_broken_read_only_setting_keeps_the_app_closed(home, tmp_path, monkeypatch, secrets_text, env, match):
    monkeypatch.delenv("MIXMIN_READ_ONLY", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    secrets = tmp_path / "secrets.toml"
    if secrets_text is not None:
        secrets.write_text(secrets_text)
    from streamlit import config as st_config

    monkeypatch.setattr(st_config, "get_option",
                        lambda key, _orig=st_config.get_option: [str(secrets)] if key == "secrets.files" else _orig(key))
    from streamlit.runtime.secrets import secrets_singleton

    secrets_singleton._secrets = None
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
        assert not at.exception, [e.value for e in at.exception]
        assert [e.value for e in at.error] and "mixmin does not start" in at.error[0].value
        assert re.search(match, at.error[0].value), at.error[0].value
        assert "Start job" not in [b.label for b in at.button] and not at.sidebar.selectbox
        # stopped before st.navigation, Streamlit listed every file of pages/ (_access, _data...) as a page
        assert [p.get("page_name") for p in at._registered_pages.values()] == ["Runs"], at._registered_pages
    finally:
        secrets_singleton._secrets = None


# ---- the Jobs page: only what a user should set --------------------------------------------------
@pytest.mark.parametrize("extra,match", [
    ("path=/etc/passwd", "'path' cannot be set from the app"),
    ("metadata=/etc/shadow", "'metadata' cannot be set from the app"),
    ("backend=ray", "'backend' cannot be set from the app"),
    ("n_workers=&a [1, *a]", "anchors"),  # a key without its own field (those are refused here)
    ("n_workers=*a", "aliases"),
    ("n_workers=!!python/object:os.system ls", "tags"),
    ("n_workers=256", f"override n_workers: 256 is more than this machine's {os.cpu_count()} cores"),  # accepted
])
def test_jobs_page_refuses_paths_and_yaml_tricks_without_launching(home, extra, match):
    at = open_app("jobs")
    at.selectbox(key="w:jobs.config").set_value("configs/synthetic_demo.yaml").run()
    at.text_area(key="jobs.extra.synthetic_demo").input(extra)
    at.button[0].click().run()
    assert not at.exception
    assert match in shown(at.error[0])
    assert "root:" not in shown(at.error[0])
    assert not jobs_control.list_launches(home)


def test_jobs_page_chem_config_offers_no_path_fields(home):
    at = open_app("jobs")
    at.selectbox(key="w:jobs.config").set_value("configs/chem_ci.yaml").run()
    keys = {t.key.rsplit(".", 1)[1] for t in at.text_input if t.key and t.key.startswith("jobs.field.chem_ci.")}
    assert {"trials", "assays", "source_counts"} <= keys
    assert not keys & {"path", "metadata", "smiles_column", "ignore_columns", "backend"}
    at.text_area(key="jobs.extra.chem_ci").input("smiles_column=secret")
    at.button[0].click().run()
    assert "'smiles_column' cannot be set from the app" in shown(at.error[0])


def test_at_most_two_jobs_run_at_once_from_the_app(home, monkeypatch):
    config = ROOT / "configs" / "synthetic_demo.yaml"
    slow = {"n_sources": 150, "source_samples": 200000, "trials": 1}
    first = jobs_control.start_job(config, slow, home=home)
    second = jobs_control.start_job(config, {**slow, "seed": 1}, home=home)
    try:
        with pytest.raises(InputError, match=r"2 jobs are already running .*at most 2 run at once"):
            jobs_control.start_job(config, {**slow, "seed": 2}, home=home)
        monkeypatch.setenv("MIXMIN_MAX_JOBS", "3")
        third = jobs_control.start_job(config, {"trials": 1, "n_sources": 3, "seed": 3}, home=home)
        os.kill(third.pid, 15)
    finally:
        for launch in (first, second):
            os.kill(launch.pid, 15)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(r["alive"] for r in jobs_control.list_launches(home)):
            time.sleep(0.2)


def test_jobs_started_at_once_from_several_sessions_keep_the_limit(home):
    """Each session counted the running jobs, then spent seconds reading the config before launching: four tabs
    clicking "Start job" at once started four jobs where two may run."""
    import threading

    config = ROOT / "configs" / "synthetic_demo.yaml"
    slow = {"n_sources": 150, "source_samples": 200000, "trials": 1}
    started, refused = [], []

    def start(seed):
        try:
            started.append(jobs_control.start_job(config, {**slow, "seed": seed}, home=home))
        except InputError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=start, args=(seed,)) for seed in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(started) == 2 and len(refused) == 2, (started, refused)
        assert all("at most 2 run at once" in r for r in refused)
    finally:
        for launch in started:
            os.kill(launch.pid, 15)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(r["alive"] for r in jobs_control.list_launches(home)):
            time.sleep(0.2)


# ---- the same in a real browser ------------------------------------------------------------------
@pytest.mark.browser
def test_read_only_in_chromium_starts_and_stores_nothing(template_home, tmp_path, monkeypatch):
    browser_tests = pytest.importorskip("tests.app.test_browser")
    import shutil

    home = tmp_path / "home"
    shutil.copytree(template_home, home)
    monkeypatch.setenv("MIXMIN_READ_ONLY", "1")
    before = _files(home)
    upload = tmp_path / "mine.csv"
    upload.write_bytes(_csv())
    with browser_tests.serve(home) as url, browser_tests.chromium() as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
        browser_tests.open_page(page, url, "jobs", "Jobs")
        assert page.get_by_text("Read-only mode").count() >= 2  # the page and the sidebar
        assert page.get_by_role("button", name="Start job").count() == 0
        assert page.get_by_role("button", name="Stop now (SIGTERM)").count() == 0
        browser_tests.SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(browser_tests.SHOTS / "jobs_read_only.png"), full_page=True)
        browser_tests.open_page(page, url, "upload", "Upload")
        page.locator('input[type="file"]').set_input_files(str(upload))
        page.get_by_text("2 sources × 100 samples").wait_for(timeout=60_000)
        page.get_by_text("not saved").wait_for(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(browser_tests.SHOTS / "upload_read_only.png"), full_page=True)
    assert _files(home) == before and not (home / "uploads").exists() and not (home / "launches").exists()


def test_read_only_runs_page_offers_no_demo_start(home, read_only):
    at = _open()
    (start,) = [b for b in at.button if b.key == "runs.start_demo"]
    assert start.disabled and "read-only" in start.help


def test_read_only_visitors_see_no_paths_a_config_names_nor_a_stored_traceback(home, monkeypatch):
    """A run made on the command line from `path: /private/secret_assays.csv` showed that path in the Runs page's
    dataset column; a command-line job that failed showed its whole traceback on the Jobs page."""
    store = RunStore(home)
    store.create_run("secret-run", name="secret-run", pipeline="chem", config={"pipeline": "chem"},
                     dataset="/private/owner/secret_assays.csv (chemistry, 2 targets)")
    job = store.start_job("secret-run", log_path=str(home / "runs" / "secret-run" / "logs" / "job-1.log"))
    store.finish_job(job, "failed", 'Traceback (most recent call last):\n  File "/home/owner/.pyenv/lib/torch/x.py", '
                                    'line 3, in f\nAssertionError: Torch not compiled with CUDA enabled')
    monkeypatch.setenv("MIXMIN_READ_ONLY", "1")
    store.create_run("other-run", name="other-run", pipeline="chem", config={"pipeline": "chem"}, dataset="x")
    other = store.start_job("other-run")  # the Runs page's step column showed a failure's path in full
    store.finish_job(other, "failed", "FileNotFoundError: [Errno 2] No such file: '/home/alice/private/assays_v2.csv'")
    runs = open_app()
    table = runs.dataframe[0].value.set_index("name")
    assert table.loc["secret-run", "dataset"] == ".../secret_assays.csv (chemistry, 2 targets)"
    assert table.loc["other-run", "step"] == "FileNotFoundError: [Errno 2] No such file: '.../assays_v2.csv'"
    at = open_app("jobs")
    at.selectbox(key="jobs.job_widget").set_value(job).run()
    text = " ".join(c.value for c in at.code) + " ".join(e.value for e in at.error)
    assert "Traceback" not in text and "pyenv" not in text and "/private" not in text
    assert "(traceback frames shown to the owner only)" in text
    assert "AssertionError: Torch not compiled with CUDA enabled" in text
    from pages.common.access import shown

    # a log keeps its other lines (a traceback's frames go, its error line stays); a URL is no run folder
    log = ("step 1\nTraceback (most recent call last):\n  File \"/x/y.py\", line 1, in f\nValueError: retried\n"
           "done: https://example.org/team/runs/chem_ci-b836f0ad/x")
    assert shown(log) == ("step 1\n(traceback frames shown to the owner only)\nValueError: retried\n"
                          "done: https://example.org/team/runs/chem_ci-b836f0ad/x")
    # a folder name with a space showed from the space on; after "host:" or in a file URL a path showed whole
    assert shown("INFO mixmin.chem: /home/Alice Smith/private data/assays.csv: 300 molecules") == (
        "INFO mixmin.chem: .../assays.csv: 300 molecules")
    assert shown("copied to host:/srv/alice/x.csv, see file:///srv/owner/y.csv") == "copied to host:.../x.csv, see .../y.csv"
    assert shown("open http://localhost:8501/solver?run=x") == "open http://localhost:8501/solver?run=x"
    # ...without running on through the words after a file name to a later slash (a diff reviewer's cases)
    assert shown("read /srv/data/assays.csv and wrote 3/4 units") == "read .../assays.csv and wrote 3/4 units"
    assert shown("config file /srv/own/cfg is not a regular file; pass a .yaml file such as configs/x.yaml.") == (
        "config file .../cfg is not a regular file; pass a .yaml file such as configs/x.yaml.")
    assert shown("/Users/Alice  Smith/x.csv") == ".../x.csv"
