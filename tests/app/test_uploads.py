"""pages.common.uploads: every accepted format round-trips, every documented error is raised."""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest

from mixmin_core import ProxyOutputs
from mixmin_core.errors import InputError
from pages.common.uploads import parse_upload, save_compressed


def _sidecar(npz: bytes, kind: str = "binary", **fields) -> bytes:
    """A sidecar for ``npz`` with its right checksum (uploads verify it, as ProxyOutputs.load does)."""
    return json.dumps({"kind": kind, "sha256": hashlib.sha256(npz).hexdigest(), **fields}).encode()


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _binary_frame(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.uniform(0, 1, n), "b": rng.uniform(0, 1, n), "c": rng.uniform(0, 1, n),
                         "label": (rng.random(n) < 0.3).astype(int), "sample_id": [f"m{i}" for i in range(n)]})


def test_csv_binary_with_labels_and_ids():
    frame = _binary_frame()
    out = parse_upload([("x.csv", _csv(frame))])
    assert out.kind == "binary" and out.source_names == ("a", "b", "c")
    np.testing.assert_allclose(out.values[1], frame["b"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(out.labels, frame["label"].to_numpy())
    assert out.sample_ids[3] == "m3"


def test_parquet_loglik_with_token_counts():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"web": -rng.uniform(10, 500, 30), "books": -rng.uniform(10, 500, 30),
                          "token_count": rng.integers(5, 100, 30)})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    out = parse_upload([("x.parquet", buf.getvalue())])
    assert out.kind == "loglik" and out.token_counts is not None
    assert out.source_names == ("web", "books")


def test_mse_is_picked_for_labels_outside_unit_interval_outputs():
    frame = pd.DataFrame({"a": [1.5, 2.0, -1.0], "b": [0.5, 3.0, 2.0], "label": [1.0, 2.5, 0.0]})
    assert parse_upload([("x.csv", _csv(frame))]).kind == "mse"


def test_npz_and_json_pair_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    saved = ProxyOutputs(rng.uniform(0, 1, (3, 20)), "binary", labels=(rng.random(20) < 0.5),
                         source_names=["x", "y", "z"])
    saved.save(tmp_path / "out")
    files = [("out.npz", (tmp_path / "out.npz").read_bytes()), ("out.json", (tmp_path / "out.json").read_bytes())]
    out = parse_upload(files)
    np.testing.assert_array_equal(out.values, saved.values)
    assert out.source_names == ("x", "y", "z")


def test_pickled_npz_is_refused(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, values=np.array([{"evil": 1}, {"evil": 2}], dtype=object))
    with pytest.raises(InputError, match="cannot read arrays"):
        parse_upload([("p.npz", buf.getvalue()), ("p.json", _sidecar(buf.getvalue(), source_names=["a", "b"]))])


def test_pickle_disguised_as_csv_is_not_unpickled():
    with pytest.raises(InputError, match="x.csv"):
        parse_upload([("x.csv", pickle.dumps({"a": [1, 2]}))])


def test_auto_reads_labels_that_are_not_0_or_1_as_regression_targets():
    """Probabilities with labels 0.2 and 0.7 were taken as binary, then refused: 'labels must be 0 or 1'."""
    out = parse_upload([("x.csv", b"a,b,label\n0.1,0.9,0.2\n0.5,0.4,0.7\n")])
    assert out.kind == "mse"
    assert parse_upload([("x.csv", b"a,b,label\n0.1,0.9,0\n0.5,0.4,1\n")]).kind == "binary"


@pytest.mark.parametrize("files,kwargs,match", [
    ([], {}, "no file uploaded"),
    ([("x.csv", b"a,b\n0.1,0.2\n")], {"max_bytes": 5}, "over the 0 MB upload limit"),
    ([("x.txt", b"hello")], {}, "unsupported upload"),
    ([("x.csv", b"a,b\n"), ("y.csv", b"a,b\n")], {}, r"unsupported upload .* \(remove the others from the uploader"),
    ([("x.npz", b"PK")], {}, "needs both files"),
    ([("x.npz", b"PK"), ("x.json", b"{not json")], {}, "not valid JSON"),
    ([("x.npz", b"PK"), ("x.json", b"[" * 100_000 + b"]" * 100_000)], {}, "not a sidecar written by ProxyOutputs.save"),
    ([("x.npz", b"PK"), ("x.json", b'{"kind": ' + b"9" * 5000 + b"}")], {}, "not a sidecar written by ProxyOutputs.save"),
    ([("x.npz", b"PK"), ("x.json", b"[1, 2]")], {}, "expected a JSON object"),
    ([("x.npz", b"not a zip"), ("x.json", _sidecar(b"not a zip"))], {}, "cannot read arrays"),
    ([("x.csv", b"")], {}, "cannot read it as csv"),
    ([("x.csv", b"a,b\nx,y\n")], {}, "source columns must be numeric"),
    ([("x.csv", b"a,label\n0.5,1\n")], {}, "at least two source columns"),
    ([("x.csv", b"a,b\n")], {}, "no rows"),
    ([("x.csv", b"a,b,label\n0.5,0.2,3\n")], {"kind": "binary"}, "labels must be 0 or 1"),
    ([("x.csv", b"a,b\n0.5,0.2\n")], {"kind": "binary"}, "objective binary needs the labels in a column named one of"),
    ([("x.csv", b"a,b\n-1,0.5\n")], {"kind": "loglik"}, "log-probabilities <= 0"),
    ([("x.csv", b"a,b\n-1,0.5\n")], {}, r"no label column \('label', 'labels', 'y'\) was found, so the table reads as"),
    ([("x.csv", b"a,b\n" + b"0.1,0.2\n" * 5000)], {"max_expanded": 50_000}, r"x.csv: its 5,001 lines x 2 columns"),
    # a quoted line break in the first name hid the other columns from the size check (2 counted of 40)
    ([("x.csv", b'"s0\n",' + b",".join(b"s%d" % i for i in range(1, 40)) + b"\n" + (b"0.1," * 39 + b"0.1\n") * 200)],
     {"max_expanded": 50_000}, r"x.csv: its 202 lines x 40 columns"),
    ([("x.csv", b'"a\nimport os",b,label\n0.5,0.2,1\n')], {}, r"names must not hold line breaks or control characters"),
    # a lone \r ends a line for pandas too: 20M such lines were read (1.2 GB) past the 256 MB limit
    ([("x.csv", b"a,b\r" + b"0.1,0.2\r" * 5000)], {"max_expanded": 50_000}, r"x.csv: its 5,001 lines x 2 columns"),
    # the header's repeats were counted name by name: 100,000 names took 326 s
    ([("x.csv", ",".join(f"s{i}" for i in range(20_001)).encode() + b"\n" + b"0.5," * 20_000 + b"0.5\n")], {},
     r"x.csv: 20,001 columns is over the 20,000 the upload page takes"),
    # one name fewer than fields: pandas took the first column as the row index and shifted the names
    ([("x.csv", b"a,b,label\n0.9,0.2,0.1,1\n0.2,0.3,0.1,0\n")], {}, r"its data rows have more fields than its header"),
    ([("x.csv", b",,label\n0.9,0.2,1\n")], {}, r"column names must be unique; repeated: \['\(empty\)'\]"),
    # squared errors past float32: the Upload page said "read" and the Solver showed loss inf
    ([("x.csv", b"a,b,label\n1e30,0.4,1e30\n0.1,0.2,0\n")], {}, r"x.csv: values reach 1e\+30 in magnitude; for kind 'mse'"),
    ([("x.csv", b"a,b,label\n1,0.4,1e20\n0.1,0.2,0\n")], {}, r"x.csv: labels reach 1e\+20 in magnitude"),
    # ids are fixed-width text: one 10,000-character id made 10,000 ids take 381 MB
    ([("x.csv", b"a,b,label,sample_id\n0.9,0.2,1," + b"x" * 300 + b"\n0.2,0.3,0,y\n")], {},
     r"x.csv: sample_ids must be at most 256 characters each; the longest has 300"),
    ([("x.csv", b"a,b,label,sample_id\n" + b"0.9,0.2,1,%s\n" % (b"x" * 200) * 100)], {"max_expanded": 50_000},
     r"x.csv: its 100 sample ids, up to 200 characters long, would take over the 0 MB limit"),
    ([("x.csv", b"@SUM(1),b,label\n0.5,0.2,1\n")], {}, r"names must not start with =, \+, -, @"),
    ([("x.csv", b"a,b\n0.5,0.2\n")], {"kind": "probability"}, "kind must be 'auto'"),
    ([("x.parquet", b"garbage")], {}, "cannot read it as parquet"),
    ([("x.csv", b"a,b,label\n-1e300,-2,1\n")], {}, r"values must fit in float32 .* got 1e\+300"),
    ([("x.csv", b"a,b,Label,label\n0.5,0.2,1,0\n")], {}, r"columns \['Label', 'label'\] could each be the labels"),
    # what a reviewer's own files did: a saved row index read as one more source (and made the objective mse), logits
    # solved as a regression, a ;-separated file, NLLs, a misnamed label column
    ([("x.csv", b",a,b,label\n0,0.5,0.2,1\n1,0.4,0.3,0\n2,0.1,0.2,0\n")], {},
     r"first column 'Unnamed: 0' has no name in the header \(a saved row index, as pandas' to_csv writes by default\)"),
    ([("x.csv", b"row,a,b,label\n1,0.5,0.2,1\n2,0.4,0.3,0\n3,0.1,0.2,0\n")], {}, r"first column 'row' holds the row numbers"),
    ([("x.csv", b"a;b;label\n0,5;0,2;1\n0,4;0,3;0\n")], {}, r"more fields than its header .* looks ';'-separated"),
    ([("x.csv", b"a,b,target\n0.5,0.2,1\n0.4,0.3,0\n")], {}, r"The values are in \[0, 1\]: probabilities\? Name the label"),
    ([("x.csv", b"a,b,label\n1.0000001,0.2,1\n0.3,0.1,0\n")], {}, r"range from 0.1 to 1.0000001\)"),
    ([("x.csv", b"a,b,label\n2.5,-1,1\n-3,0.2,0\n")], {},
     r"the labels are 0 and 1 but the values are not probabilities \(they range from -3 to 2.5\): logits or percentages"),
    ([("x.csv", b"a;b;label\n0.5;0.2;1\n")], {}, r"the file looks ';'-separated; save it with commas"),
    ([("x.csv", b"a,b\n3.2,5\n4,1\n")], {}, r"Every value is >= 0: negative log-likelihoods\? Negate them"),
    ([("x.csv", b"a,b,target\n0.5,0.2,1\n")], {"kind": "binary"},
     r"objective binary needs the labels in a column named one of 'label', 'labels', 'y'; the columns are \['a', 'b', 'target'\]"),
    # silent defaults a reviewer found: an empty header became a source "Unnamed: 1", a blank or an invisible name
    # passed, token counts beside labels were dropped, 0.5 tokens passed, one id named two samples
    ([("x.csv", b"a,,b,label\n0.5,0.2,0.1,1\n")], {}, r"x.csv: column 2 has no name in the header"),
    ([("x.csv", b"a, ,label\n0.5,0.2,1\n")], {}, r"every name must have a visible character; got ' '"),
    ([("x.csv", "a,a\u3164,label\n0.5,0.2,1\n".encode())], {}, r"names must not hold invisible"),
    ([("x.csv", b"a,b,label,token_count\n0.5,0.2,1,7\n")], {}, r"token_counts apply only to kind 'loglik'"),
    # a label column on a loglik upload was dropped without a word, then refused by the library naming no column
    ([("x.csv", b"a,b,label\n-5,-2,1\n")], {"kind": "loglik"},
     (r"x.csv: objective loglik scores each sample's own log-likelihood and takes no labels, but the table has a "
      r"label column, 'label': pick binary or mse")),
    ([("x.csv", b"a,b,token_count\n-5,-2,0.5\n")], {}, r"token_counts must be whole numbers .* got 0.5 at sample 0"),
    ([("x.csv", b"a,b,label,sample_id\n0.5,0.2,1,m1\n0.4,0.3,0,m1\n")], {}, r"x.csv: sample ids must name each sample once; 'm1'"),
    # blank ids read as 'nan' (two of them a repeat), or as floats that broke the checks with a TypeError
    ([("x.csv", b"a,b,label,sample_id\n0.5,0.2,1,\n0.4,0.3,0,\n0.1,0.1,1,x\n")], {},
     r"column 'sample_id' has 2 empty cell\(s\), the first in data row 1; give every sample an id"),
    ([("x.csv", b"a,b,label,sample_id\n0.5,0.2,1,\n0.4,0.3,0,\n")], {}, r"column 'sample_id' has 2 empty cell"),
    # a name of 5 million characters came back whole in the message
    ([("x.csv", b"label," + b"A" * 100_000 + b",b\n1,x,0.2\n")], {}, r"non-numeric: \['A{60}'\]"),
])
def test_bad_uploads_raise_clear_errors(files, kwargs, match):
    with pytest.raises(InputError, match=match):
        parse_upload(files, **kwargs)


# ---- bounded uploads (issue 12) ---------------------------------------------------------------
def _npz_bomb(shape=(9000, 9000), declared=None) -> bytes:
    """An .npz whose ``values.npy`` is all zeros: a few hundred KB that expand to shape x 4 bytes.

    ``declared``: a different shape to write in the .npy header (a header that lies)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": declared or shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("values.npy", "w", force_zip64=True) as fh:
        fh.write(header.getvalue())
        left, chunk = int(np.prod(shape)) * 4, bytes(1 << 22)
        while left > 0:
            fh.write(chunk[:left])
            left -= len(chunk)
    return buf.getvalue()


def test_an_npz_bomb_is_refused_from_its_headers_using_little_memory():
    bomb = _npz_bomb()  # 324 MB of float32 zeros
    assert len(bomb) < 2 << 20
    files = [("bomb.npz", bomb), ("bomb.json", _sidecar(bomb, source_names=None))]
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"bomb.npz: its arrays would take 309 MB uncompressed, over the 256 MB"):
            parse_upload(files)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"peak {peak:,} bytes while refusing a 324 MB bomb"


def test_an_npy_header_that_understates_the_zip_size_is_refused():
    small = _npz_bomb(shape=(10, 10), declared=(100_000, 100_000))  # header claims 40 GB
    with pytest.raises(InputError, match=r"declares 40,000,000,000 bytes of data but the archive says 400"):
        parse_upload([("x.npz", small), ("x.json", _sidecar(small))])


def test_a_parquet_bomb_is_refused_from_its_footer():
    frame = pd.DataFrame({"a": np.zeros(2_000_000), "b": np.zeros(2_000_000), "label": np.zeros(2_000_000)})
    buf = io.BytesIO()
    frame.to_parquet(buf, compression="zstd")
    assert len(buf.getvalue()) < 1 << 20
    with pytest.raises(InputError, match=r"z.parquet: its 2,000,000 rows x 3 columns would take 46 MB in memory, over the 10 MB limit"):
        parse_upload([("z.parquet", buf.getvalue())], max_expanded=10 << 20)


def test_a_parquet_of_one_long_id_per_row_is_refused_from_its_footer():
    """A dictionary stores one long id once; read, it is written out per row (3M 200-character ids: 1.2 GB)."""
    n = 200_000
    frame = pd.DataFrame({"a": np.full(n, 0.5), "b": np.full(n, 0.2), "label": np.zeros(n), "sample_id": ["x" * 200] * n})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    assert len(buf.getvalue()) < 1 << 20
    with pytest.raises(InputError, match=r"z.parquet: its 200,000 rows x 4 columns would take 55 MB in memory"):
        parse_upload([("z.parquet", buf.getvalue())], max_expanded=10 << 20)
    with pytest.raises(InputError, match=r"z.parquet: 20,001 columns is over the 20,000"):
        wide = pd.DataFrame(np.zeros((1, 20_001)), columns=[f"s{i}" for i in range(20_001)])
        out = io.BytesIO()
        wide.to_parquet(out)
        parse_upload([("z.parquet", out.getvalue())])


def test_a_parquet_of_one_huge_id_or_a_list_column_is_refused_before_it_expands():
    """A 1.4 KB file of one 1 MB id in a dictionary, for 3,000 rows, took the server past 6 GB (std::bad_alloc, the
    app gone for every visitor); a list column of 60 M zeros in one 1.2 KB cell, past 1.2 GB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def parquet(table) -> bytes:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()

    n = 3000
    bomb = parquet(pa.table({"a": np.full(n, 0.5), "b": np.full(n, 0.2), "label": np.zeros(n),
                             "sample_id": pa.array(["x" * (1 << 20)] * n).dictionary_encode()}))
    assert len(bomb) < 10_000
    with pytest.raises(InputError, match=r"z.parquet: column 'sample_id' holds a text of 1,048,576 bytes; sample ids "
                                         r"are at most 256 characters"):
        parse_upload([("z.parquet", bomb)])
    lists = parquet(pa.table({"a": [0.5], "b": [0.2], "label": [1.0],
                              "c": pa.array([np.zeros(1_000_000, dtype=np.int64)], type=pa.list_(pa.int64()))}))
    with pytest.raises(InputError, match=r"z.parquet: column 'c' holds lists or records; an upload's columns hold one "
                                         r"number"):
        parse_upload([("z.parquet", lists)])
    fine = parquet(pa.table({"a": [0.5, 0.4], "b": [0.2, 0.3], "label": [1.0, 0.0], "sample_id": ["é" * 256, "m2"]}))
    assert list(parse_upload([("z.parquet", fine)]).sample_ids) == ["é" * 256, "m2"]  # ids at the limit still read
    uuids = parquet(pa.table({"a": [0.5, 0.4], "b": [0.2, 0.3], "label": [1.0, 0.0],  # 16-byte fixed-size cells
                              "sample_id": pa.array([b"\x00" * 15 + b"\x01", b"\x00" * 15 + b"\x02"], pa.uuid())}))
    assert len(parse_upload([("z.parquet", uuids)]).sample_ids) == 2  # (refused for a moment as "binary values")
    raw = parquet(pa.table({"a": [0.5, 0.4], "b": [0.2, 0.3], "label": [1.0, 0.0],  # UUID bytes that are no text
                            "sample_id": pa.array([b"\xc7" * 16, b"\xc8" * 16], pa.binary(16))}))
    with pytest.raises(InputError, match="z.parquet: column 'sample_id' holds binary values that are not text"):
        parse_upload([("z.parquet", raw)])  # (a UnicodeDecodeError traceback)


def test_an_npz_of_more_sources_than_the_upload_page_takes_is_refused(tmp_path):
    """A 2.8 MB .npz of 100,000 sources x 4 samples: each Solver setting kept a 400 MB trajectory (tables were capped)."""
    from pages.common.uploads import MAX_COLUMNS

    outputs = ProxyOutputs(np.full((MAX_COLUMNS + 1, 2), 0.5, dtype=np.float32), "binary", labels=[0, 1])
    outputs.save(tmp_path / "wide")
    files = [("wide.npz", (tmp_path / "wide.npz").read_bytes()), ("wide.json", (tmp_path / "wide.json").read_bytes())]
    with pytest.raises(InputError, match=r"wide.npz: 20,001 sources is over the 20,000 the upload page takes"):
        parse_upload(files)


def test_an_altered_npz_with_its_old_sidecar_is_refused(tmp_path):
    saved = ProxyOutputs(np.full((2, 5), 0.5), "binary", labels=[0, 1, 0, 1, 1])
    saved.save(tmp_path / "o")
    sidecar = (tmp_path / "o.json").read_bytes()
    other = ProxyOutputs(np.full((2, 5), 0.9), "binary", labels=[0, 1, 0, 1, 1])
    other.save(tmp_path / "p")
    with pytest.raises(InputError, match=r"o.npz: checksum mismatch with o.json"):
        parse_upload([("o.npz", (tmp_path / "p.npz").read_bytes()), ("o.json", sidecar)])


def test_stored_uploads_are_compressed_and_load_back(tmp_path):
    rng = np.random.default_rng(0)
    outputs = ProxyOutputs(np.round(rng.uniform(0, 1, (4, 2000)), 2), "binary", labels=rng.random(2000) < 0.3,
                           source_names=list("abcd"))
    path = save_compressed(outputs, tmp_path / "up")
    outputs.save(tmp_path / "plain", compress=False)
    assert path.stat().st_size < 0.3 * (tmp_path / "plain.npz").stat().st_size  # 4 KB of zip padding only where mapped
    back = ProxyOutputs.load(path)  # the checksum and format ProxyOutputs.load expects
    np.testing.assert_array_equal(back.values, outputs.values)
    assert back.source_names == outputs.source_names


@pytest.mark.parametrize("files,match", [
    ([("a.csv", b"a,b\n1,2\n"), ("b.csv", b"a,b\n1,2\n"), ("c.csv", b"a,b\n1,2\n")], "3 files uploaded"),
    ([("a.npz", b"PK"), ("b.npz", b"PK")], "one .npz file with its .json sidecar"),
    ([("x.npz", b"PK"), ("x.json", b'{"kind": "binary"}')], "missing 'sha256' checksum field"),
    ([("x.csv", b"a,b,label\n0.2,0.3,yes\n0.5,0.1,no\n")], "column 'label' must hold numeric labels"),
    ([("x.csv", b"a,b,token_count\n-2,-3,many\n")], "column 'token_count' must hold numeric token counts"),
])
def test_upload_shape_errors(files, match):
    with pytest.raises(InputError, match=match):
        parse_upload(files)


def test_total_upload_size_is_capped(monkeypatch):
    from pages.common import uploads

    monkeypatch.setattr(uploads, "MAX_TOTAL_BYTES", 100)
    npz = b"x" * 60
    with pytest.raises(InputError, match="together is over the 0 MB limit of one upload"):
        parse_upload([("x.npz", npz), ("x.json", b"y" * 60)])


def test_the_same_file_read_as_another_objective_is_stored_as_another_problem():
    """The stored name came from the bytes alone: a CSV read as mse reopened the binary reading saved before."""
    from pages.common.uploads import upload_name

    files = [("my data.csv", b"a,b,label\n0.1,0.9,0\n0.5,0.4,1\n")]
    assert upload_name(files, "binary") != upload_name(files, "mse")
    assert upload_name(files, "binary") == upload_name(list(files), "binary")
    assert upload_name(files, "mse").startswith("my-data-")
    pair = [("o.npz", b"arrays"), ("o.json", b"sidecar")]
    assert upload_name(pair, "binary") == upload_name(pair[::-1], "binary")  # stored twice before


def test_stored_uploads_have_a_disk_budget(tmp_path, monkeypatch):
    from pages.common import uploads

    outputs = parse_upload([("x.csv", b"a,b,label\n0.1,0.9,0\n0.5,0.4,1\n")])
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "old.npz").write_bytes(bytes(5000))
    monkeypatch.setattr(uploads, "MAX_STORED_UPLOADS_BYTES", 5200)
    with pytest.raises(InputError, match=r"the run store's uploads take 0 MB and this one .* over the 0 MB they may use"):
        save_compressed(outputs, folder / "new")
    assert not (folder / "new.npz").exists()
    (folder / "old.npz").unlink()
    assert save_compressed(outputs, folder / "new").exists()


def test_an_uploads_names_are_text_in_the_plotly_chart():
    """A column named <a href=...>Session expired</a> became a clickable link in the Upload page's chart."""
    from pages.common.figures import weights_figure

    evil = '<a href="https://evil.example/login">Session expired</a>'
    fig = weights_figure([evil, "b"], np.array([0.7, 0.3]))
    assert all("<a" not in str(label) for label in fig.data[0].y)
    assert '&lt;a href="https://evil.example/login"&gt;Session expired&lt;/a&gt;' in list(fig.data[0].y)  # shows as typed: Plotly does not decode &quot;


def test_numeric_looking_names_keep_a_bar_each():
    """Columns "1", "1.0" and "2" were placed on a numeric axis: "1" and "1.0" shared a row, ticks read 1 and 2."""
    from pages.common.figures import weights_figure

    fig = weights_figure(["1", "1.0", "2"], np.array([0.5, 0.3, 0.2]))
    assert fig.layout.yaxis.type == "category" and sorted(fig.data[0].y) == ["1", "1.0", "2"]


def test_a_source_counting_up_is_no_row_index_after_the_first_column():
    """Only the first column can be a saved index: an mse source whose outputs were 1, 2, 3, ... was refused."""
    outputs = parse_upload([("x.csv", b"a,b,label\n0.5,1,1\n1.5,2,2\n2.0,3,3\n4.1,4,4\n")], kind="mse")
    assert outputs.source_names == ("a", "b")


@pytest.mark.parametrize("field,value,match", [
    # half a UTF-16 pair passed every check, was saved, and then crashed the page on every visit
    ("source_names", ["\ud800x", "b", "c"], r"names must be valid Unicode text; got '\\ud800x' \(a lone surrogate\)"),
    ("source_names", ["", "b", "c"], r"every name must have a visible character"),
    ("sample_ids", ["m1"] * 20, r"sample ids must name each sample once; 'm1' is repeated"),  # the table's rule only
])
def test_bad_names_in_an_npz_upload_are_refused(tmp_path, field, value, match):
    rng = np.random.default_rng(0)
    fields = {"source_names": ["a", "b", "c"], "sample_ids": [f"m{i}" for i in range(20)]}
    ProxyOutputs(rng.uniform(0.05, 0.95, (3, 20)).astype(np.float32), "binary", labels=np.arange(20) % 2,
                 **{**fields, field: ["ok0", "b", "c"] if field == "source_names" else value}).save(tmp_path / "x")
    npz = (tmp_path / "x.npz").read_bytes()
    sidecar = json.loads((tmp_path / "x.json").read_text())
    if field == "source_names":  # written by hand (the library refuses such names when it saves)
        sidecar["source_names"] = value
        sidecar.pop("sidecar_sha256")
    with pytest.raises(InputError, match=match):
        parse_upload([("x.npz", npz), ("x.json", json.dumps(sidecar).encode())])


def test_complex_labels_are_refused_not_cast():
    with pytest.raises(InputError, match=r"labels must be real numbers"):
        ProxyOutputs(np.full((2, 3), 0.5, np.float32), "binary", labels=np.array([1, 0, 1], dtype=complex))
