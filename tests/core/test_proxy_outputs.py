"""ProxyOutputs: validation errors, exact save/load round trip, tamper detection, no pickle."""
import json

import numpy as np
import pytest

from mixmin_core import InputError, ProxyOutputs


def _binary(**kw):
    args = dict(labels=[0, 1, 1], source_names=["a", "b"], natural_weights=[3, 1], sample_ids=["x", "y", "z"],
                meta={"dataset": "toy", "compute": 1.5})
    args.update(kw)
    return ProxyOutputs([[0.1, 0.8, 0.7], [0.4, 0.5, 0.9]], "binary", **args)


def test_values_are_float32_and_natural_weights_normalised():
    o = _binary()
    assert o.values.dtype == np.float32 and o.values.flags.c_contiguous
    np.testing.assert_allclose(o.natural_weights, [0.75, 0.25])
    assert (o.n_sources, o.n_samples) == (2, 3)


@pytest.mark.parametrize("values,kind,kw,match", [
    ([[0.1, 0.2], [0.3, 0.4]], "probit", {"labels": [0, 1]}, "kind must be one of"),
    ([0.1, 0.2], "binary", {"labels": [0, 1]}, r"values must be a 2-D numeric array"),
    ([[0.1, 0.2]], "binary", {"labels": [0, 1]}, "at least two sources"),
    ([[0.1, np.nan], [0.3, 0.4]], "binary", {"labels": [0, 1]}, r"values must be finite; found 1 non-finite value\(s\), first at index \(0, 1\)"),
    ([[0.1, 1.2], [0.3, 0.4]], "binary", {"labels": [0, 1]}, r"probabilities in \[0, 1\]"),
    ([[-1.0, 0.5], [-2.0, -3.0]], "loglik", {}, "log-probabilities <= 0"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {}, "labels are required for kind 'binary'"),
    ([[0.1, 0.2], [0.3, 0.4]], "mse", {}, "labels are required for kind 'mse'"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 2]}, "labels must be 0 or 1"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 1, 1]}, r"labels must have shape \(2,\)"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 1], "source_names": ["a"]}, "source_names must have 2 entries"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 1], "source_names": ["a", "a"]}, r"source_names must be unique; duplicated: \['a'\]"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 1], "token_counts": [1, 2]}, "token_counts apply only to kind 'loglik'"),
    ([[-0.1, -0.2], [-0.3, -0.4]], "loglik", {"token_counts": [0, 2]}, "token_counts must be positive"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 1], "natural_weights": [-1, 2]}, "natural_weights must be non-negative"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 1], "sample_ids": ["a"]}, r"sample_ids must have shape \(2,\)"),
    ([[0.1, 0.2], [0.3, 0.4]], "binary", {"labels": [0, 1], "meta": {"x": object()}}, "meta must be JSON-serialisable"),
])
def test_construction_errors_name_the_field(values, kind, kw, match):
    with pytest.raises(InputError, match=match):
        ProxyOutputs(values, kind, **kw)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        ProxyOutputs([[0.1]], "binary", labels=[0])


def test_save_load_round_trip_is_exact(tmp_path):
    o = _binary()
    path = o.save(tmp_path / "sub" / "outputs")
    assert path.name == "outputs.npz" and (tmp_path / "sub" / "outputs.json").exists()
    back = ProxyOutputs.load(tmp_path / "sub" / "outputs")
    for name in ("values", "labels", "natural_weights", "sample_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(o, name))
        assert getattr(back, name).dtype == getattr(o, name).dtype
    assert back.source_names == o.source_names and back.meta == o.meta and back.kind == o.kind
    assert ProxyOutputs.load(path).source_names == o.source_names  # the .npz path works too
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_truncated_file_fails_naming_the_file(tmp_path):
    path = _binary().save(tmp_path / "o")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match=r"o\.npz: checksum mismatch \(file is truncated or altered\)"):
        ProxyOutputs.load(tmp_path / "o")


def test_altered_file_fails(tmp_path):
    o = _binary()
    o.save(tmp_path / "o")
    altered = ProxyOutputs(o.values * 0.5, "binary", labels=o.labels, source_names=o.source_names)
    altered.save(tmp_path / "other")
    (tmp_path / "o.npz").write_bytes((tmp_path / "other.npz").read_bytes())
    with pytest.raises(InputError, match="checksum mismatch"):
        ProxyOutputs.load(tmp_path / "o")


def test_missing_sidecar_and_bad_json(tmp_path):
    path = _binary().save(tmp_path / "o")
    sidecar = tmp_path / "o.json"
    sidecar.write_text("{not json")
    with pytest.raises(InputError, match=r"o\.json: not valid JSON"):
        ProxyOutputs.load(path)
    sidecar.unlink()
    with pytest.raises(InputError, match=r"o\.json: file not found"):
        ProxyOutputs.load(path)


def test_loading_never_unpickles(tmp_path):
    """An object array (which needs pickle) with a matching checksum is still refused."""
    import hashlib
    import io

    buf = io.BytesIO()
    np.savez(buf, values=np.array([[0.1, 0.2], [0.3, 0.4]]), labels=np.array([0, 1], dtype=object))
    (tmp_path / "evil.npz").write_bytes(buf.getvalue())
    sidecar = {"kind": "binary", "source_names": ["a", "b"], "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
    (tmp_path / "evil.json").write_text(json.dumps(sidecar))
    with pytest.raises(InputError, match=r"evil\.npz: cannot read arrays"):
        ProxyOutputs.load(tmp_path / "evil")


def test_loaded_values_are_validated(tmp_path):
    import hashlib
    import io

    buf = io.BytesIO()
    np.savez(buf, values=np.array([[0.1, 2.0], [0.3, 0.4]], dtype=np.float32), labels=np.array([0.0, 1.0]))
    (tmp_path / "bad.npz").write_bytes(buf.getvalue())
    sidecar = {"kind": "binary", "source_names": ["a", "b"], "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
    (tmp_path / "bad.json").write_text(json.dumps(sidecar))
    with pytest.raises(InputError, match=r"bad\.npz: values must be probabilities"):
        ProxyOutputs.load(tmp_path / "bad")


def test_select_by_name_position_and_mask():
    o = _binary()
    s = o.select(sources=["b", "a"], samples=[2, 0])
    np.testing.assert_array_equal(s.values, o.values[[1, 0]][:, [2, 0]])
    np.testing.assert_array_equal(s.labels, [1, 0])
    assert s.source_names == ("b", "a") and list(s.sample_ids) == ["z", "x"]
    np.testing.assert_allclose(s.natural_weights, [0.25, 0.75])
    m = o.select(samples=np.array([True, False, True]))
    assert m.n_samples == 2


def test_select_errors():
    o = _binary()
    with pytest.raises(InputError, match="sources must keep at least two sources; got 1"):
        o.select(sources=["a"])
    with pytest.raises(InputError, match=r"sources not found: \['c'\]"):
        o.select(sources=["a", "c"])
