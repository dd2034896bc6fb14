"""ProxyOutputs: validation errors, exact save/load round trip, tamper detection, no pickle."""
import copy
import json
import pickle

import numpy as np
import pytest

from mixmin_core import InputError, ProxyOutputs


def _binary(**kw):
    args = {"labels": [0, 1, 1], "source_names": ["a", "b"], "natural_weights": [3, 1], "sample_ids": ["x", "y", "z"],
                "meta": {"dataset": "toy", "compute": 1.5}}
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
    assert o.save(tmp_path / "upper.NPZ").name == "upper.npz"  # it wrote upper.NPZ.npz
    o.save(tmp_path / "old.NPZ.npz")  # as that was saved: it still loads by the name it was saved under
    assert ProxyOutputs.load(tmp_path / "old.NPZ").source_names == o.source_names


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


def _big_binary(n_sources=4, n_samples=3000, seed=0):
    rng = np.random.default_rng(seed)
    return ProxyOutputs(rng.uniform(0, 1, (n_sources, n_samples)), "binary", labels=rng.integers(0, 2, n_samples),
                        source_names=[f"s{i}" for i in range(n_sources)], sample_ids=[f"x{i}" for i in range(n_samples)],
                        meta={"dataset": "toy"})


@pytest.mark.parametrize("compress", [True, False])
def test_save_compressed_or_not_round_trips_exactly(tmp_path, compress):
    import zipfile

    o = _big_binary()
    path = o.save(tmp_path / "o", compress=compress)
    with zipfile.ZipFile(path) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert set(kinds.values()) == {zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED}
    back = ProxyOutputs.load(path)
    for name in ("values", "labels", "sample_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(o, name))
    assert back.values.flags.c_contiguous and back.values.dtype == np.float32
    # plain numpy reads the file too (no custom format)
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["values"], o.values)


def test_auto_compress_depends_on_size(tmp_path, monkeypatch):
    import zipfile

    from mixmin_core.solver import proxy_outputs

    o = _big_binary()
    monkeypatch.setattr(proxy_outputs, "MAP_MIN_BYTES", o.values.nbytes)
    with zipfile.ZipFile(o.save(tmp_path / "big")) as zf:
        assert zf.getinfo("values.npy").compress_type == zipfile.ZIP_STORED
    monkeypatch.setattr(proxy_outputs, "MAP_MIN_BYTES", o.values.nbytes + 1)
    with zipfile.ZipFile(o.save(tmp_path / "small")) as zf:
        assert zf.getinfo("values.npy").compress_type == zipfile.ZIP_DEFLATED


def test_mmap_load_maps_values_and_solves_like_memory(tmp_path):
    from mixmin_core import mixmin
    from mixmin_core.solver.blocks import is_mapped

    o = _big_binary(n_sources=5, n_samples=4000)
    path = o.save(tmp_path / "o", compress=False)
    mapped = ProxyOutputs.load(path, mmap=True)
    assert is_mapped(mapped.values) and not mapped.values.flags.writeable
    assert mapped.values.ctypes.data % 64 == 0  # aligned for SIMD/BLAS
    np.testing.assert_array_equal(mapped.values, o.values)
    assert mapped.source_names == o.source_names and mapped.meta == o.meta
    a, b = mixmin(o, max_iter=200, tol=0), mixmin(mapped, max_iter=200, tol=0)
    np.testing.assert_allclose(b.weights, a.weights, atol=1e-5)  # float32 sums in another order
    assert b.loss == pytest.approx(a.loss, rel=1e-6)
    # a compressed file cannot be mapped: it is read into memory instead
    small = ProxyOutputs.load(o.save(tmp_path / "c", compress=True), mmap=True)
    assert not is_mapped(small.values)
    np.testing.assert_array_equal(small.values, o.values)


def test_mmap_load_validates_values_block_by_block(tmp_path):
    """A non-finite value deep in a mapped file is found and named, with its position."""
    import hashlib

    o = _big_binary(n_sources=3, n_samples=5000)
    path = o.save(tmp_path / "o", compress=False)
    data = bytearray(path.read_bytes())
    # values are stored sample-major: sample 4321's three values are 12 consecutive bytes
    start = bytes(data).find(o.values[:, 4321].astype("<f4").tobytes())
    assert start > 0
    data[start + 8: start + 12] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))
    sidecar = json.loads((tmp_path / "o.json").read_text())
    sidecar["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    sidecar.pop("sidecar_sha256")  # the checksums made to match: only the values' own check is left
    (tmp_path / "o.json").write_text(json.dumps(sidecar))
    with pytest.raises(InputError, match=r"o\.npz: values must be finite; .*first at index \(2, 4321\)"):
        ProxyOutputs.load(path, mmap=True)


def test_mmap_solve_keeps_resident_memory_low(tmp_path):
    """Solving from a mapped 64 MB matrix keeps a small fraction of it resident (pages are released)."""
    import subprocess
    import sys
    import textwrap

    rng = np.random.default_rng(0)
    o = ProxyOutputs(rng.uniform(0, 1, (64, 250_000)).astype(np.float32), "binary", labels=rng.integers(0, 2, 250_000))
    path = o.save(tmp_path / "o", compress=False)
    del o
    code = textwrap.dedent(f"""
        from pathlib import Path
        from mixmin_core import ProxyOutputs, mixmin
        from mixmin_core.solver import blocks
        blocks.RELEASE_BYTES = 2 << 20  # release every 2 MB (default 64 MB: more than this whole matrix)
        outputs = ProxyOutputs.load({str(path)!r}, mmap=True)
        resident = int(Path("/proc/self/statm").read_text().split()[1]) * 4096
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here
        mixmin(outputs, max_iter=3, tol=0)
        peak = next(int(x.split()[1]) * 1024 for x in Path("/proc/self/status").read_text().splitlines()
                    if x.startswith("VmHWM"))
        print(peak - resident, outputs.values.nbytes)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    growth, nbytes = map(int, out.stdout.split())
    assert nbytes == 64_000_000 and growth < nbytes / 4, (growth, nbytes)


def test_save_and_load_argument_errors(tmp_path):
    o = _binary()
    with pytest.raises(InputError, match="compress must be True, False or 'auto'; got 'yes'"):
        o.save(tmp_path / "o", compress="yes")
    path = o.save(tmp_path / "o")
    with pytest.raises(InputError, match="mmap must be True or False; got 'r'"):
        ProxyOutputs.load(path, mmap="r")


def test_mapped_values_must_be_float32(tmp_path):
    arr = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float64, shape=(2, 3))
    arr[:] = 0.5
    arr.flush()
    with pytest.raises(InputError, match="memory-mapped values must be float32"):
        ProxyOutputs(np.load(tmp_path / "v.npy", mmap_mode="r"), "binary", labels=[0, 1, 1])


def test_a_later_edit_of_the_callers_array_does_not_change_the_outputs():
    values = np.array([[0.1, 0.8, 0.7], [0.4, 0.5, 0.9]], dtype=np.float32)
    o = ProxyOutputs(values, "binary", labels=[0, 1, 1])
    values[0] = 2.0  # writable: the outputs took a copy
    assert o.values.max() <= 0.9 and not np.shares_memory(o.values, values)
    kept = np.clip(values, 0, 1)
    kept.flags.writeable = False  # read-only: nobody can change it through this array, so no copy is made
    assert np.shares_memory(ProxyOutputs(kept, "binary", labels=[0, 1, 1]).values, kept)


def test_a_writable_memory_map_is_refused(tmp_path):
    arr = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=(2, 3))
    arr[:] = 0.5
    with pytest.raises(InputError, match="memory-mapped values must be opened read-only"):
        ProxyOutputs(arr, "binary", labels=[0, 1, 1])


@pytest.mark.parametrize("kwargs,match", [
    ({"values": np.ones((2, 3)) * (0.5 + 1j), "kind": "mse"}, "2-D numeric array .* of real numbers; got .*complex"),
    ({"natural_weights": [1e308, 1e308]}, "positive, finite sum; got minimum 1e\\+308 and sum inf"),
    ({"natural_weights": [-1, 2]}, "non-negative with a positive, finite sum; got minimum -1 and sum 1"),
    ({"source_names": 5}, "source_names must be a list of names, one per source; got 5"),
    ({"source_names": "ab"}, "source_names must be a list of names"),
    ({"sample_ids": 5}, "sample_ids must be a list of ids, one per sample; got 5"),
    ({"sample_ids": np.array(5)}, "sample_ids must be a list of ids"),
    ({"meta": [1, 2]}, r"meta must be a dict \(JSON-serialisable\); got \[1, 2\]"),
])
def test_constructor_arguments_of_the_wrong_kind_are_one_clear_error(kwargs, match):
    args = {"values": [[0.1, 0.8, 0.7], [0.4, 0.5, 0.9]], "kind": "binary", "labels": [0, 1, 1]} | kwargs
    with pytest.raises(InputError, match=match):
        ProxyOutputs(args.pop("values"), args.pop("kind"), **args)


@pytest.mark.parametrize("select,match", [
    ({"sources": [0, 9]}, r"sources positions must lie in 0..1; got 0..9"),
    ({"sources": ["a", 1]}, "sources must be names or integer positions"),
    ({"sources": [0.0, 1.7]}, "sources must be names or integer positions"),
    ({"sources": [0, 0]}, "sources must not repeat a source"),
    ({"sources": "ab"}, "sources must be a list"),
    ({"samples": []}, "samples must keep at least one sample; got none"),
    ({"samples": 2}, "samples must be a list"),
    ({"samples": [True, False]}, r"a boolean mask must have one entry per sample \(3\); got 2"),
    ({"samples": [0, 3]}, r"samples positions must lie in 0..2; got 0..3"),
])
def test_select_refuses_what_it_cannot_mean(select, match):
    with pytest.raises(InputError, match=match):
        _binary().select(**select)


def test_select_by_name_mask_and_repeated_samples():
    o = _binary()
    assert o.select(["b", "a"]).source_names == ("b", "a")
    assert o.select([True, True], samples=[True, False, True]).n_samples == 2
    resample = o.select(samples=[2, 2, 0])  # a bootstrap resample repeats samples
    np.testing.assert_array_equal(resample.labels, [1, 1, 0])
    assert resample.sample_ids.tolist() == ["z", "z", "x"]


@pytest.mark.parametrize("field,value,match", [
    ("meta", [1, 2], r"o.npz: meta must be a dict"),
    ("sha256", 5, r"o.json: missing 'sha256' checksum field \(a hex string\); got 5"),
    ("source_names", None, r"o.npz: the sidecar's 'source_names' must be a list of the 2 source names; got None"),
    ("n_sources", 7, r"o.npz: the sidecar says n_sources=7, but the values array has shape \(2, 3\)"),
    ("n_samples", "x", r"o.npz: the sidecar says n_samples='x'"),
    ("format_version", 99, r"o.npz: sidecar format_version 99 is not one this version reads \(1\)"),
    ("source_names", ["a", ["b", "c"]], r"source_names must be a list of names, one per source"),
])
def test_a_hand_edited_sidecar_is_one_clear_error(tmp_path, field, value, match):
    path = _binary().save(tmp_path / "o")
    sidecar = json.loads((tmp_path / "o.json").read_text())
    sidecar.pop("sidecar_sha256")  # as an upload's or an older file's sidecar: each field is checked on its own
    if field == "meta":  # keep the checksum valid: only the field is wrong
        sidecar["meta"] = value
    else:
        sidecar[field] = value
    (tmp_path / "o.json").write_text(json.dumps(sidecar))
    with pytest.raises(InputError, match=match):
        ProxyOutputs.load(path)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"sha256": ' + "9" * 5000 + "}"],
                         ids=["nested", "long-integer"])
def test_a_sidecar_json_cannot_crash_the_reader(tmp_path, text):
    path = _binary().save(tmp_path / "o")
    (tmp_path / "o.json").write_text(text)  # RecursionError / ValueError (4,300 digits) escaped
    with pytest.raises(InputError, match=r"o.json: not a sidecar written by ProxyOutputs.save"):
        ProxyOutputs.load(path)


def test_a_folder_in_place_of_the_npz_is_named(tmp_path):
    _binary().save(tmp_path / "o")
    (tmp_path / "o.npz").unlink()
    (tmp_path / "o.npz").mkdir()
    with pytest.raises(InputError, match=r"o.npz: not a file"):
        ProxyOutputs.load(tmp_path / "o")


def test_meta_takes_numpy_numbers_and_the_repr_stays_short():
    """meta={"n": np.int64(3)} was refused (not JSON-serialisable), and repr printed every array."""
    o = _binary(meta={"n": np.int64(3), "w": np.float32(0.5), "ids": np.arange(2)})
    assert o.meta == {"n": 3, "w": 0.5, "ids": [0, 1]} and type(o.meta["n"]) is int
    with pytest.raises(InputError, match="meta must be JSON-serialisable"):
        _binary(meta={"x": float("nan")})
    big = ProxyOutputs(np.full((40, 5000), 0.5, np.float32), "binary", labels=np.zeros(5000))
    assert len(repr(big)) < 300 and "n_sources=40, n_samples=5000" in repr(big)


def test_a_scalar_values_array_is_one_clear_error(tmp_path):
    import hashlib
    import io as _io

    buf = _io.BytesIO()
    np.savez(buf, values=np.float32(0.5))
    sidecar = {"kind": "binary", "source_names": ["a"], "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
    with pytest.raises(InputError, match=r"x: 'values' must be a 2-D array \(sources x samples\); got shape \(\)"):
        ProxyOutputs.from_npz_bytes(buf.getvalue(), sidecar, "x")


def test_outputs_saved_with_names_the_upload_rules_now_refuse_still_open(tmp_path):
    """Names starting like a spreadsheet formula are refused where they enter (uploads, tables, text files); a
    problem saved before that rule (sources '-baseline', '+aug') must still load and export."""
    saved = ProxyOutputs(np.full((2, 4), 0.5), "binary", labels=[0, 1, 0, 1], source_names=["-baseline", "+aug"])
    assert ProxyOutputs.load(saved.save(tmp_path / "old")).source_names == ("-baseline", "+aug")


def test_a_dataframe_of_sources_by_samples_names_its_sources():
    """Its row labels were dropped (sources became source_0...), so caps={"wiki": ...} failed later."""
    import pandas as pd

    frame = pd.DataFrame(np.full((2, 4), 0.5), index=["wiki", "code"])
    outputs = ProxyOutputs(frame, "binary", labels=[0, 1, 0, 1])
    assert outputs.source_names == ("wiki", "code")
    assert ProxyOutputs(frame, "binary", labels=[0, 1, 0, 1], source_names=["wiki", "code"]).source_names == ("wiki", "code")
    for other in (["a", "b"], ["code", "wiki"]):  # renamed the rows silently: a reviewer's 'x' was called 'z'
        with pytest.raises(InputError, match=r"disagree with the rows of the values DataFrame \(wiki, code"):
            ProxyOutputs(frame, "binary", labels=[0, 1, 0, 1], source_names=other)


def test_labels_keyed_by_sample_id_follow_the_dataframe_columns():
    """A Series of labels indexed by sample id was taken by position: reversed labels were used as they were."""
    import pandas as pd

    ids = [f"m{i}" for i in range(6)]
    frame = pd.DataFrame(np.linspace(0.1, 0.9, 12).reshape(2, 6), index=["wiki", "code"], columns=ids)
    labels = pd.Series([0, 1, 1, 0, 0, 1], index=ids)
    tokens = pd.Series(np.arange(1, 7), index=ids)
    outputs = ProxyOutputs(frame, "binary", labels=labels.iloc[::-1])
    np.testing.assert_array_equal(outputs.labels, [0, 1, 1, 0, 0, 1])
    loglik = ProxyOutputs(np.log(frame), "loglik", token_counts=tokens.iloc[::-1])
    np.testing.assert_array_equal(loglik.token_counts, np.arange(1, 7))
    with pytest.raises(InputError, match=r"labels is a Series keyed by sample id, but its ids differ .*no entry for column.*to_numpy"):
        ProxyOutputs(frame, "binary", labels=pd.Series(labels.to_numpy(), index=[f"q{i}" for i in range(6)]))
    by_position = ProxyOutputs(frame, "binary", labels=pd.Series([1, 0, 0, 1, 1, 0]))  # numbered: in column order
    np.testing.assert_array_equal(by_position.labels, [1, 0, 0, 1, 1, 0])
    # a diff reviewer's cases: each worked before, or gave a clear error
    for numbered in (pd.Series([1, 0, 0, 1, 1, 0], index=np.arange(6)), pd.Series([1, 0, 0, 1, 1, 0]).loc[lambda x: x >= 0]):
        np.testing.assert_array_equal(ProxyOutputs(frame, "binary", labels=numbered).labels, [1, 0, 0, 1, 1, 0])
    with pytest.raises(InputError, match="labels"):  # a one-column frame: one error, not pandas' ValueError
        ProxyOutputs(frame, "binary", labels=labels.to_frame())
    twice = frame.set_axis(["a", "a", "b", "b", "c", "c"], axis=1)  # repeated ids name no one sample: by position
    np.testing.assert_array_equal(ProxyOutputs(twice, "binary", labels=labels.set_axis(twice.columns)).labels, labels)
    with pytest.raises(InputError, match=r"entries for no column, e.g. \['m6'\]"):
        ProxyOutputs(frame, "binary", labels=pd.concat([labels, pd.Series([1], index=["m6"])]))
    shuffled = frame.set_axis([2, 1, 4, 0, 3, 5], axis=1)  # integer sample ids (read_csv(index_col="id")): by id
    np.testing.assert_array_equal(ProxyOutputs(shuffled, "binary", labels=pd.Series([0, 1, 1, 0, 0, 1])).labels,
                                  [1, 1, 0, 0, 0, 1])
    with pytest.raises(InputError, match=r"it repeats ids \['m1'\]"):  # a mistake in the labels, not a position
        ProxyOutputs(frame, "binary", labels=labels.set_axis(["m5", "m4", "m3", "m2", "m1", "m1"]))
    table = pd.DataFrame(np.full((2, 4), 0.5), columns=list("wxyz"))  # numbered rows: source_names names them
    assert ProxyOutputs(table, "binary", labels=[0, 1, 0, 1], source_names=["a", "b"]).source_names == ("a", "b")


def test_an_altered_sidecar_is_caught(tmp_path):
    """Only the .npz had a checksum: two source names swapped in the .json, or binary made mse, loaded silently
    (weights read against the wrong sources)."""
    import json

    from mixmin_core import InputError

    outputs = ProxyOutputs(np.full((2, 4), 0.5, np.float32), "binary", labels=[0, 1, 0, 1], source_names=["wiki", "code"])
    outputs.save(tmp_path / "t")
    assert ProxyOutputs.load(tmp_path / "t").source_names == ("wiki", "code")
    sidecar = json.loads((tmp_path / "t.json").read_text())
    for change in ({"source_names": ["code", "wiki"]}, {"kind": "mse"}, {"meta": {"run": "other"}}):
        (tmp_path / "t.json").write_text(json.dumps({**sidecar, **change}))
        with pytest.raises(InputError, match=r"t\.npz: its sidecar \(\.json\) was altered since it was saved"):
            ProxyOutputs.load(tmp_path / "t")
    del sidecar["sidecar_sha256"]  # saved before the sidecar had its own checksum: read as before
    (tmp_path / "t.json").write_text(json.dumps(sidecar))
    assert ProxyOutputs.load(tmp_path / "t").source_names == ("wiki", "code")


@pytest.mark.parametrize("clone", [lambda o: pickle.loads(pickle.dumps(o)), copy.deepcopy, copy.copy])
def test_a_copy_is_read_only_and_leaves_the_solvers_cache_behind(clone):
    """Unpickled arrays came back writable, so an edit after a solve was not seen by the cached objective
    (stale weights); and the cache (a derived copy of the matrix) was pickled with the object."""
    from mixmin_core import mixmin

    rng = np.random.default_rng(0)
    outputs = ProxyOutputs(-rng.gamma(2, 10, (4, 1000)), "loglik", natural_weights=[1, 2, 3, 4])
    before = len(pickle.dumps(outputs))
    solved = mixmin(outputs).weights
    assert len(pickle.dumps(outputs)) == before
    copied = clone(outputs)
    assert not any(name.startswith("_") for name in copied.__dict__)
    for array in (copied.values, copied.natural_weights):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0.0
    np.testing.assert_array_equal(mixmin(copied).weights, solved)


def test_labels_of_loglik_and_a_selection_without_natural_weight_are_one_clear_error():
    """labels for loglik were accepted and unused; select() of sources of natural weight 0 said to divide by the sum."""
    with pytest.raises(InputError, match="labels apply only to kinds 'binary' and 'mse'; kind 'loglik'"):
        ProxyOutputs(-np.ones((2, 3)), "loglik", labels=[0, 1, 1])
    outputs = ProxyOutputs(np.full((4, 3), 0.5), "binary", labels=[0, 1, 1], source_names=list("abcd"),
                           natural_weights=[0, 0, 1, 1])
    with pytest.raises(InputError, match=r"select keeps only sources of natural weight 0 \(a, b\): their natural "
                                         "mixture is undefined"):
        outputs.select(["a", "b"])
    np.testing.assert_allclose(outputs.select(["a", "c"]).natural_weights, [0, 1])
