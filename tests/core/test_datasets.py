import pytest

from mixmin_core import InputError
from mixmin_core.runs import datasets


def test_resolves_local_copies_from_data_dir_with_checksums():
    for name in ("toxcast", "toxcast_assays", "pcba128_assays", "text/wikipedia", "text/piqa_train"):
        path = datasets.resolve(name)
        assert path.exists() and datasets.verify(name, path), name


def test_explicit_path_wins_and_must_exist(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("smiles,a\n")
    assert datasets.resolve("toxcast", f) == f
    with pytest.raises(InputError, match=r"nope\.csv: file not found \(given explicitly for dataset 'toxcast'\)"):
        datasets.resolve("toxcast", tmp_path / "nope.csv")


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'zinc'"):
        datasets.resolve("zinc")


def test_missing_offline_file_says_where_to_put_it(monkeypatch):
    monkeypatch.setenv("MIXMIN_OFFLINE", "1")
    with pytest.raises(InputError, match=r"Put the file at .*chem/pcba\.csv\.gz.*MIXMIN_DATA_DIR"):
        datasets.resolve("pcba128")
    with pytest.raises(InputError, match="no public direct download"):
        datasets.resolve("pcba1328")
    monkeypatch.setenv("MIXMIN_DATA_DIR", "/nonexistent/shared/dat")
    with pytest.raises(InputError, match=r"MIXMIN_DATA_DIR is /nonexistent/shared/dat, which does not exist: a typo\?"):
        datasets.resolve("pcba128")


#: Registered datasets that ../shared/data does not hold (large or hub-only downloads).
NOT_IN_SHARED = {"pcba128", "pcba1328", "text/openwebmath"}


def test_every_registered_local_file_is_present():
    missing = [n for n, d in datasets.REGISTRY.items()
               if n not in NOT_IN_SHARED and not (datasets.data_dir() / d.relpath).exists()]
    assert missing == []


def test_without_the_variable_the_shared_data_beside_the_checkout_is_used(monkeypatch):
    """README: with MIXMIN_DATA_DIR unset, ../shared/data beside the checkout (it looked inside the checkout)."""
    from pathlib import Path

    beside = Path(__file__).resolve().parents[3] / "shared" / "data"  # tests/core/ -> the checkout's parent
    monkeypatch.delenv("MIXMIN_DATA_DIR", raising=False)
    assert datasets.data_dir() == (beside if beside.is_dir() else None)
    if beside.is_dir():  # as in development and CI here
        assert datasets.resolve("toxcast").is_file()


@pytest.fixture
def http_server():
    """A loopback server whose responses the test sets: ``serve(body, length=None)`` -> URL."""
    import http.server
    import threading

    reply = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            if reply.get("length") != "none":  # none: the body ends when the connection closes
                self.send_header("Content-Length", str(reply.get("length") or len(reply["body"])))
            self.end_headers()
            self.wfile.write(reply["body"])  # then the connection closes, however long the header said it was

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(body: bytes, length: int | str | None = None) -> str:
        reply.update(body=body, length=length)
        return f"http://127.0.0.1:{server.server_address[1]}/pcba.csv.gz"

    yield serve
    server.shutdown()


def test_a_cut_or_wrong_download_is_not_cached(http_server, tmp_path, monkeypatch):
    """pcba128 has no pinned checksum: a body cut short, or an HTML error page, was cached and reused by every run."""
    import gzip

    monkeypatch.setenv("MIXMIN_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MIXMIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MIXMIN_OFFLINE", raising=False)
    good = gzip.compress(b"smiles,PCBA-1,mol_id\n" + b"".join(b"C%d,1,m%d\n" % (i * 7919 % 1000, i) for i in range(500)))
    assert len(good) > 1000
    cached = tmp_path / "cache" / "chem" / "pcba.csv.gz"
    for body, length, said in [(good[:100], len(good), "ended after 100 of"),
                               (b"<html>Access denied</html>", None, "something other than pcba.csv.gz"),
                               (good[:len(good) // 2], "none", "the download of pcba.csv.gz is incomplete or corrupt")]:
        ds = datasets.Dataset("pcba128", "chem/pcba.csv.gz", http_server(body, length), None, "PCBA")
        monkeypatch.setitem(datasets.REGISTRY, "pcba128", ds)
        with pytest.raises(InputError, match=said):
            datasets.resolve("pcba128")
        assert not cached.exists() and list(cached.parent.glob("*")) == []
    ds = datasets.Dataset("pcba128", "chem/pcba.csv.gz", http_server(good), None, "PCBA")
    monkeypatch.setitem(datasets.REGISTRY, "pcba128", ds)
    assert datasets.resolve("pcba128") == cached and cached.read_bytes() == good
    tokenizer = datasets.Dataset("tok", "text/tokenizer.json", http_server(b'\xef\xbb\xbf{"model": {}}'), None, "tok")
    monkeypatch.setitem(datasets.REGISTRY, "tok", tokenizer)  # a BOM: the tokenizers library cannot read it
    with pytest.raises(InputError, match="something other than tokenizer.json"):
        datasets.resolve("tok")
    cached.unlink()  # a Content-Length that is no number was a ValueError: read to the end instead
    monkeypatch.setitem(datasets.REGISTRY, "pcba128", datasets.Dataset("pcba128", "chem/pcba.csv.gz",
                                                                       http_server(good, "abc"), None, "PCBA"))
    assert datasets.resolve("pcba128") == cached and cached.read_bytes() == good


def test_a_local_copy_that_differs_from_the_registered_file_is_said(tmp_path, monkeypatch, caplog):
    """A subset of MUV under its registered name ran without a word (the registry pins its checksum)."""
    import shutil

    shutil.copytree(datasets.data_dir() / "chem", tmp_path / "chem")
    monkeypatch.setenv("MIXMIN_DATA_DIR", str(tmp_path))
    with caplog.at_level("WARNING", logger="mixmin_core.runs.datasets"):
        datasets.resolve("muv")
        assert caplog.text == ""
        (tmp_path / "chem" / "muv.csv.gz").write_bytes(b"changed")
        datasets.resolve("muv")
        datasets.resolve("muv")
    assert caplog.text.count("differs from the registered muv") == 1
    assert any("differs from the registered muv" in said for said in datasets.differing_local_copies())
    monkeypatch.setenv("MIXMIN_DATA_DIR", str(tmp_path / "chem" / "muv.csv.gz"))  # a file, not the folder
    monkeypatch.setenv("MIXMIN_OFFLINE", "1")
    with pytest.raises(InputError, match=r"muv.csv.gz, which is a file: name the folder that holds chem/ and text/"):
        datasets.resolve("muv")
