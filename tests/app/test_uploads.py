"""pages._uploads: every accepted format round-trips, every documented error is raised."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd
import pytest

from mixmin_core import ProxyOutputs
from mixmin_core.errors import InputError
from pages._uploads import parse_upload


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
        parse_upload([("p.npz", buf.getvalue()), ("p.json", b'{"kind": "binary", "source_names": ["a", "b"]}')])


def test_pickle_disguised_as_csv_is_not_unpickled():
    with pytest.raises(InputError, match="x.csv"):
        parse_upload([("x.csv", pickle.dumps({"a": [1, 2]}))])


@pytest.mark.parametrize("files,kwargs,match", [
    ([], {}, "no file uploaded"),
    ([("x.csv", b"a,b\n0.1,0.2\n")], {"max_bytes": 5}, "over the 0 MB upload limit"),
    ([("x.txt", b"hello")], {}, "unsupported upload"),
    ([("x.csv", b"a,b\n"), ("y.csv", b"a,b\n")], {}, "unsupported upload"),
    ([("x.npz", b"PK")], {}, "needs both files"),
    ([("x.npz", b"PK"), ("x.json", b"{not json")], {}, "not valid JSON"),
    ([("x.npz", b"PK"), ("x.json", b"[1, 2]")], {}, "expected a JSON object"),
    ([("x.npz", b"not a zip"), ("x.json", b'{"kind": "binary"}')], {}, "cannot read arrays"),
    ([("x.csv", b"")], {}, "cannot read it as csv"),
    ([("x.csv", b"a,b\nx,y\n")], {}, "source columns must be numeric"),
    ([("x.csv", b"a,label\n0.5,1\n")], {}, "at least two source columns"),
    ([("x.csv", b"a,b\n")], {}, "no rows"),
    ([("x.csv", b"a,b,label\n0.5,0.2,3\n")], {"kind": "binary"}, "labels must be 0 or 1"),
    ([("x.csv", b"a,b\n0.5,0.2\n")], {"kind": "binary"}, "labels are required"),
    ([("x.csv", b"a,b\n-1,0.5\n")], {}, "log-probabilities <= 0"),
    ([("x.csv", b"a,b\n0.5,0.2\n")], {"kind": "probability"}, "kind must be 'auto'"),
    ([("x.parquet", b"garbage")], {}, "cannot read it as parquet"),
])
def test_bad_uploads_raise_clear_errors(files, kwargs, match):
    with pytest.raises(InputError, match=match):
        parse_upload(files, **kwargs)
