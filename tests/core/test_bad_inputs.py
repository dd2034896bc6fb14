"""Bad library inputs: every public solver function raises InputError naming the argument.

``BAD_LIBRARY_INPUTS`` is a plain module-level table so a larger bad-input table (CLI, app) can
import and extend it: each row is ``BadInput(id, call, error, match)`` with ``call`` a
zero-argument function that must raise ``error`` with a message matching ``match`` (a regex that
names the argument).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

from mixmin_core import (
    InputError,
    ProxyOutputs,
    balanced,
    bootstrap_weights,
    fixed_mixture,
    mixmin,
    mixture_loss,
    natural,
)
from mixmin_core.solver.constraints import availability_caps
from mixmin_core.solver.multi_target import mixmin_multi
from mixmin_core.solver.pareto import cross_target_table
from mixmin_core.solver.results import MixtureResult, mean_ci, summarize, welch_pvalue
from mixmin_core.solver.validation import check_new_names


class BadInput(NamedTuple):
    id: str
    call: Callable[[], object]
    error: type[Exception]
    match: str


def _outputs() -> ProxyOutputs:
    rng = np.random.default_rng(0)
    return ProxyOutputs(rng.uniform(0, 1, (3, 20)), "binary", labels=rng.integers(0, 2, 20),
                        natural_weights=[1, 2, 3])


_O = _outputs()
_MATRIX = np.asarray(_O.values)
_W = [0.2, 0.3, 0.5]


def _solve(**kw):
    return lambda: mixmin(_O, **kw)


def _boot(**kw):
    return lambda: bootstrap_weights(_O, **{"n_boot": 2, "max_iter": 2, **kw})


def _save(**kw):
    return lambda: _O.save(Path(tempfile.mkdtemp()) / "o", **kw)


def _load(**kw):
    def call():
        path = _O.save(Path(tempfile.mkdtemp()) / "o")
        return ProxyOutputs.load(path, **kw)
    return call


_NOT_OUTPUTS = r"outputs must be a ProxyOutputs; got "
_POS = "must be a positive finite number"
_NONNEG_INT = "must be a non-negative integer"

BAD_LIBRARY_INPUTS: list[BadInput] = [
    # mixmin: what is solved
    BadInput("mixmin-ndarray", lambda: mixmin(_MATRIX), InputError, _NOT_OUTPUTS + r"array of shape \(3, 20\).*ProxyOutputs\(values, kind"),
    BadInput("mixmin-list", lambda: mixmin(_MATRIX.tolist()), InputError, _NOT_OUTPUTS + r"\[\[.*Wrap the matrix first"),
    BadInput("mixmin-none", lambda: mixmin(None), InputError, _NOT_OUTPUTS + "None"),
    # mixmin: step_size, max_iter, tol
    BadInput("step_size-bool", _solve(step_size=True), InputError, f"step_size {_POS}; got True of type bool"),
    BadInput("step_size-zero", _solve(step_size=0), InputError, f"step_size {_POS}; got 0"),
    BadInput("step_size-negative", _solve(step_size=-0.5), InputError, f"step_size {_POS}; got -0.5"),
    BadInput("step_size-nan", _solve(step_size=float("nan")), InputError, f"step_size {_POS}; got nan"),
    BadInput("step_size-inf", _solve(step_size=float("inf")), InputError, f"step_size {_POS}; got inf"),
    BadInput("step_size-str", _solve(step_size="1"), InputError, f"step_size {_POS}; got '1' of type str"),
    BadInput("step_size-array", _solve(step_size=np.array([1.0])), InputError, f"step_size {_POS}; got array of shape"),
    BadInput("max_iter-negative", _solve(max_iter=-1), InputError, f"max_iter {_NONNEG_INT}; got -1"),
    BadInput("max_iter-float", _solve(max_iter=2.5), InputError, f"max_iter {_NONNEG_INT}; got 2.5 of type float"),
    BadInput("max_iter-bool", _solve(max_iter=True), InputError, f"max_iter {_NONNEG_INT}; got True of type bool"),
    BadInput("max_iter-nan", _solve(max_iter=float("nan")), InputError, f"max_iter {_NONNEG_INT}; got nan"),
    BadInput("max_iter-str", _solve(max_iter="100"), InputError, f"max_iter {_NONNEG_INT}; got '100'"),
    BadInput("max_iter-huge-int", _solve(max_iter=2**70), InputError,
             f"max_iter {_NONNEG_INT}; got 1180591620717411303424 \\(too large\\)"),  # was numpy's TypeError
    BadInput("max_iter-over-limit", _solve(max_iter=10**12), InputError,
             "max_iter must be at most 1,000,000 \\(every iterate is kept"),  # was a 7 TiB MemoryError
    BadInput("step_size-past-float", _solve(step_size=10**400), InputError,
             f"step_size {_POS}; got 10000000000000000000... \\(401 digits\\) \\(too large\\)"),  # OverflowError
    BadInput("tol-negative", _solve(tol=-1e-3), InputError, "tol must be a non-negative number; got -0.001"),
    BadInput("tol-nan", _solve(tol=float("nan")), InputError, "tol must be a non-negative number; got nan"),
    BadInput("tol-bool", _solve(tol=False), InputError, "tol must be a non-negative number; got False of type bool"),
    # mixmin: init, callback, caps, prior
    BadInput("init-unknown", _solve(init="random"), InputError, "init must be 'uniform', 'natural' or an array of weights; got 'random'"),
    BadInput("init-number", _solve(init=5), InputError, "init must be 'uniform', 'natural' or an array of weights; got 5"),
    BadInput("init-shape", _solve(init=[0.5, 0.5]), InputError, r"init must have shape \(3,\)"),
    BadInput("init-strings", _solve(init=["a", "b", "c"]), InputError, "init must be an array of numbers"),
    BadInput("init-zero", _solve(init=[0.5, 0.5, 0.0]), InputError, "init must be strictly positive"),
    BadInput("callback-not-callable", _solve(callback=5), InputError, "callback must be None or a function"),
    BadInput("caps-infeasible", _solve(caps=[0.2, 0.2, 0.2]), InputError, r"caps sum to 0\.6 < 1"),
    BadInput("caps-strings", _solve(caps="abc"), InputError, "caps must be an array of numbers"),
    BadInput("prior_strength-negative", _solve(prior_strength=-1), InputError, "prior_strength must be a non-negative number; got -1"),
    BadInput("prior_strength-bool", _solve(prior_strength=True), InputError, "prior_strength must be a non-negative number; got True"),
    BadInput("prior-unknown", _solve(prior="bogus", prior_strength=1.0), InputError, "prior must be 'uniform', 'natural' or an array"),
    BadInput("prior-off-simplex", _solve(prior=[0.2, 0.2, 0.2], prior_strength=1.0), InputError, "prior must sum to 1; got sum 0.6"),
    BadInput("prior-without-strength", _solve(prior=_W), InputError, r"prior is used only with prior_strength > 0"),
    # caps keyed by name cap the sources they name (the configs' form): a name of no source would cap nothing
    BadInput("caps-keyed-typo", _solve(caps={"source_0": 0.5, "source_9": 0.5}), InputError,
             r"caps names no source \['source_9'\]; the sources are e.g. \['source_0', 'source_1', 'source_2'\]"),
    # a mixture keyed by name may name another source only at weight 0: its weight would leave the mixture
    BadInput("init-keyed-weight-elsewhere", _solve(init={"source_0": 0.3, "source_1": 0.3, "source_2": 0.4, "zz": 0.1}),
             InputError, r"init gives weight to 1 source\(s\) that are not among these sources, e.g. \['zz'\]"),
    BadInput("mixture_loss-keyed-weight-elsewhere",
             lambda: mixture_loss(_O, {"source_0": 0.5, "source_1": 0.25, "source_2": 0.25, "zz": 0.5}), InputError,
             r"weights gives weight to 1 source\(s\) that are not among these sources, e.g. \['zz'\]"),
    # bootstrap_weights
    BadInput("bootstrap-ndarray", lambda: bootstrap_weights(_MATRIX), InputError, _NOT_OUTPUTS + "array"),
    BadInput("n_boot-one", _boot(n_boot=1), InputError, "n_boot must be an integer >= 2; got 1"),
    BadInput("n_boot-bool", _boot(n_boot=True), InputError, "n_boot must be an integer >= 2; got True"),
    BadInput("n_boot-float", _boot(n_boot=10.0), InputError, "n_boot must be an integer >= 2; got 10.0"),
    BadInput("seed-negative", _boot(seed=-1), InputError, f"seed {_NONNEG_INT}; got -1"),
    BadInput("seed-float", _boot(seed=1.5), InputError, f"seed {_NONNEG_INT}; got 1.5"),
    BadInput("level-above-one", _boot(level=1.5), InputError, r"level must be in \(0, 1\), e.g. 0.95; got 1.5"),
    BadInput("level-nan", _boot(level=float("nan")), InputError, "level must be a finite number; got nan"),
    BadInput("level-bool", _boot(level=True), InputError, "level must be a finite number; got True"),
    BadInput("bootstrap-step_size-zero", _boot(step_size=0), InputError, f"step_size {_POS}; got 0"),
    BadInput("bootstrap-max_iter-negative", _boot(max_iter=-2), InputError, f"max_iter {_NONNEG_INT}; got -2"),
    BadInput("bootstrap-tol-nan", _boot(tol=float("nan")), InputError, "tol must be a non-negative number; got nan"),
    BadInput("bootstrap-init-unknown", _boot(init="best"), InputError, "init must be 'uniform', 'natural'"),
    # baselines and scoring
    BadInput("mixture_loss-ndarray", lambda: mixture_loss(_MATRIX, _W), InputError, _NOT_OUTPUTS),
    BadInput("mixture_loss-weights-shape", lambda: mixture_loss(_O, [0.5, 0.5]), InputError, r"weights must have shape \(3,\)"),
    BadInput("mixture_loss-weights-strings", lambda: mixture_loss(_O, ["a", "b", "c"]), InputError, "weights must be an array of numbers"),
    BadInput("mixture_loss-weights-nan", lambda: mixture_loss(_O, [np.nan, 0.5, 0.5]), InputError, "weights must be finite"),
    BadInput("fixed_mixture-method", lambda: fixed_mixture(_O, _W, ""), InputError, "method must be a non-empty string"),
    BadInput("fixed_mixture-meta", lambda: fixed_mixture(_O, _W, "mine", meta=[1]), InputError, "meta must be a dict or None; got list"),
    BadInput("balanced-ndarray", lambda: balanced(_MATRIX), InputError, _NOT_OUTPUTS),
    BadInput("natural-ndarray", lambda: natural(_MATRIX), InputError, _NOT_OUTPUTS),
    # constraints
    BadInput("tokens_needed-zero", lambda: availability_caps([1, 2], tokens_needed=0), InputError, "tokens_needed and repetitions must be positive.*tokens_needed=0"),
    BadInput("repetitions-nan", lambda: availability_caps([1, 2], 10, repetitions=float("nan")), InputError, "repetitions=nan"),
    BadInput("tokens_available-negative", lambda: availability_caps([-1, 2], 10), InputError, "tokens_available must be non-negative"),
    # ProxyOutputs' per-sample and per-source arrays
    BadInput("labels-text", lambda: ProxyOutputs(_MATRIX, "binary", labels=["yes", "no"] * 10), InputError,
             "labels must be an array of numbers; got array of shape \\(20,\\) and dtype <U3"),
    BadInput("labels-2d", lambda: ProxyOutputs(_MATRIX, "binary", labels=[[0, 1] * 10]), InputError,
             "labels must be a 1-D array"),
    BadInput("token_counts-none", lambda: ProxyOutputs(-_MATRIX, "loglik", token_counts=[None] * 20), InputError,
             "token_counts must be an array of numbers; got array of shape \\(20,\\) and dtype object"),
    BadInput("natural_weights-text", lambda: ProxyOutputs(_MATRIX, "binary", labels=[0, 1] * 10, natural_weights="abc"),
             InputError, "natural_weights must be an array of numbers"),
    BadInput("values-beyond-float32", lambda: ProxyOutputs(np.array([[1e300, 0.5], [0.2, 0.3]]), "mse", labels=[0, 1]),
             InputError, "values must fit in float32 .*got 1e\\+300"),
    # a samples x sources table (a reviewer's): 300 "sources" silently, or an error about the labels' length
    BadInput("values-frame-samples-by-sources", lambda: ProxyOutputs(pd.DataFrame(-np.ones((30, 3)), columns=["a", "b", "c"]),
                                                                     "loglik"), InputError, r"DataFrame with named columns \(a, b, c.*Pass df\.T"),
    BadInput("values-transposed-labels", lambda: ProxyOutputs(np.full((20, 3), 0.5), "binary", labels=np.ones(20)),
             InputError, r"labels has 20 entries, one per row of values.*pass values\.T"),
    BadInput("values-transposed-token-counts", lambda: ProxyOutputs(-np.ones((20, 3)), "loglik", token_counts=np.ones(20)),
             InputError, r"token_counts has 20 entries, one per row of values"),
    BadInput("values-inf", lambda: ProxyOutputs(np.array([[np.inf, 0.5], [0.2, 0.3]]), "mse", labels=[0, 1]),
             InputError, "values must be finite; .*first at index \\(0, 0\\) \\(inf\\)"),
    BadInput("source_names-line-break", lambda: ProxyOutputs(_MATRIX, "binary", labels=[0, 1] * 10,
                                                             source_names=["a\nimport os", "b", "c"]),
             InputError, "source_names: names must not hold line breaks or control characters"),
    BadInput("new-names-bidi", lambda: check_new_names("source names", ["a", "\u202egnp.exe", "c"]),
             InputError, "source names: names must not hold invisible or direction-changing characters"),
    BadInput("new-names-zero-width", lambda: check_new_names("source names", ["\u200b=HYPERLINK(1)", "b"]),
             InputError, "invisible or direction-changing"),
    BadInput("new-names-formula", lambda: check_new_names("source names", ["a", '=HYPERLINK("http://x", "b")', "c"]),
             InputError, "source names: names must not start with =, \\+, -, @ \\(a spreadsheet reads"),
    BadInput("new-names-too-long", lambda: check_new_names("source names", ["a", "x" * 1_000_000]),  # froze the page
             InputError, "source names: names must be at most 256 characters; got one of 1,000,000"),
    BadInput("labels-beyond-float32", lambda: ProxyOutputs(_MATRIX, "mse", labels=np.full(20, 1e39)),
             InputError, "labels must fit in float32 .*got 1e\\+39"),
    BadInput("kind-is-labels", lambda: ProxyOutputs(_MATRIX, np.zeros(20)), InputError,
             r"kind must be one of .*; got array of shape \(20,\).*pass labels as labels="),
    BadInput("meta-nan", lambda: ProxyOutputs(_MATRIX, "binary", labels=[0, 1] * 10, meta={"a": float("nan")}),
             InputError, "meta must be JSON-serialisable"),
    # persistence
    BadInput("load-none", lambda: ProxyOutputs.load(None), InputError, "path must be a file path.*got None"),
    BadInput("save-empty-path", lambda: _O.save(""), InputError, "path must be a file path.*got ''"),
    BadInput("save-compress", _save(compress="yes"), InputError, "compress must be True, False or 'auto'; got 'yes'"),
    BadInput("load-mmap", _load(mmap="r"), InputError, "mmap must be True or False; got 'r'"),
    BadInput("save-folder", lambda: _O.save("."), InputError, "path must name a file .* not a folder; got '.'"),
    BadInput("save-onto-a-folder", lambda: _O.save(_folder_named("o.npz") / "o"), InputError,
             r"cannot write .*o\.npz: Is a directory"),
    BadInput("load-npy-as-npz", lambda: _npy_as_npz(), InputError, r"holds a single \.npy array, not an \.npz archive"),
    BadInput("npz-bytes-sidecar-list", lambda: ProxyOutputs.from_npz_bytes(_npz_bytes(), []), InputError,
             "the sidecar must be a JSON object"),
    # a solve's helpers
    BadInput("n_boot-huge", _boot(n_boot=10**9), InputError, "n_boot must be at most 100,000"),
    BadInput("mixture_loss-dict-missing", lambda: mixture_loss(_O, {"source_0": 1.0}), InputError,
             r"weights is keyed by source name but has no entry for 2 source\(s\)"),
    BadInput("mean_ci-text", lambda: mean_ci(["a", "b"]), InputError, r"values must be numbers \(one per trial\)"),
    BadInput("welch-text", lambda: welch_pvalue(["a"], [1, 2]), InputError, r"a must be numbers"),
    BadInput("summarize-text-values", lambda: summarize(pd.DataFrame(
        {"target": ["t"] * 2, "method": ["m"] * 2, "metric": ["ap"] * 2, "trial": [0, 1], "value": ["0.5x", 0.4]})),
             InputError, r"frame's 'value' column must hold numbers .*got '0.5x'"),
    # a reviewer's notebook mistakes: each said too little about what to do
    BadInput("loss_of_a_result", lambda: mixture_loss(_O, mixmin(_O, max_iter=2)), InputError,
             r"weights must be an array of numbers; got a MixtureResult; pass its \.weights"),
    BadInput("values_above_one_by_rounding", lambda: ProxyOutputs(np.where(_MATRIX > 0.9, np.float32(1.0000001), _MATRIX), "binary",
                                                                  labels=_O.labels),
             InputError, r"range \[[0-9.e-]+, 1\.0000\d+\] \(rounding noise\? np\.clip"),
    BadInput("loglik_minus_inf", lambda: ProxyOutputs(np.where(_MATRIX > 0.9, -np.inf, np.log(_MATRIX)), "loglik"),
             InputError, r"\(-inf\)\. A log-probability of -inf .*np\.maximum\(values, -1e4\)"),
    BadInput("source_name_none", lambda: ProxyOutputs(_MATRIX, "binary", labels=_O.labels, source_names=[None, "b", "c"]),
             InputError, r"source_names: every name must be given; found None at position 0"),
    BadInput("source_name_nan", lambda: ProxyOutputs(_MATRIX, "binary", labels=_O.labels, source_names=pd.Index(["a", None, "c"])),
             InputError, r"source_names: every name must be given; found NaN at position 1"),
    BadInput("mixture_json_text_weight", lambda: MixtureResult.from_dict({"weights": {"x": "a"}}), InputError,
             r"weights must be numbers; got 'a' for 'x'"),
    # a library user's review: each was read silently as something else, or failed deep inside
    BadInput("mixture_json_negative_weight", lambda: MixtureResult.from_dict({"weights": {"a": -1, "b": 2}}), InputError,
             r"weights must be non-negative; got -1 for 'a'"),
    BadInput("mixture_json_text_loss", lambda: MixtureResult.from_dict({"weights": {"a": 1}, "loss": "low"}), InputError,
             r"loss must be a number or null; got 'low'"),
    BadInput("cross_table_off_simplex", lambda: cross_target_table({"x": _O, "y": _O}, results={"n": MixtureResult(
        weights=np.full(3, 5, np.float32), source_names=_O.source_names)}), InputError,
             r"results\['n'\]\.weights must sum to 1; got sum 15"),
    BadInput("cross_table_too_few_weights", lambda: cross_target_table({"x": _O, "y": _O}, results={"n": MixtureResult(
        weights=np.ones(1, np.float32), source_names=_O.source_names)}), InputError,
             r"results\['n'\]\.weights must have shape \(3,\)"),
    BadInput("multi_callback_text", lambda: mixmin_multi([_O, _O], callback="x"), InputError,
             r"callback must be None or a function"),
    BadInput("source_name_bytes", lambda: ProxyOutputs(_MATRIX, "binary", labels=_O.labels, source_names=[b"a", "b", "c"]),
             InputError, r"source_names: names must be text; got the bytes b'a'"),
    BadInput("source_name_empty", lambda: ProxyOutputs(_MATRIX, "binary", labels=_O.labels, source_names=["a", "", "c"]),
             InputError, r"source_names: every name must have a visible character; got '' at position 1"),
    BadInput("values_masked", lambda: ProxyOutputs(np.ma.masked_less(_MATRIX, 0.1), "binary", labels=_O.labels),
             InputError, r"values has \d+ masked value\(s\).*filled"),
    BadInput("labels_masked", lambda: ProxyOutputs(_MATRIX, "binary", labels=np.ma.masked_equal(_O.labels, 1)),
             InputError, r"labels has \d+ masked value\(s\)"),
    BadInput("caps_zero_from_availability", lambda: mixmin(_O, caps=availability_caps([10, 20, 0], 30, 2)), InputError,
             r"a cap of 0 .* outputs\.select\(sources="),
    BadInput("caps_true", _solve(caps=True), InputError, r"caps must be numbers, not True/False .*; got True"),
    BadInput("natural_booleans", lambda: ProxyOutputs(_MATRIX, "binary", labels=_O.labels, natural_weights=[True, False, True]),
             InputError, r"natural_weights must be numbers, not True/False"),
    BadInput("mean_ci-none", lambda: mean_ci(None), InputError, r"values must be numbers \(one per trial\); got None"),
    BadInput("new_names_alike_in_nfd", lambda: check_new_names("columns", ["\u00d6strogen", "O\u0308strogen"]), InputError,
             r"columns: '.strogen' and 'O.strogen' look the same but encode their letters otherwise"),
    BadInput("save_into_folder", lambda: _O.save(str(Path(tempfile.mkdtemp())) + "/"), InputError,
             r"path must name a file .*not a folder; got '.*/'"),
]


def _folder_named(name: str) -> Path:
    folder = Path(tempfile.mkdtemp())
    (folder / name).mkdir()
    return folder


def _npz_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, values=_MATRIX)
    return buf.getvalue()


def _npy_as_npz():
    """A .npy array saved under the .npz name, with a sidecar whose checksum matches it (written by hand)."""
    import json

    from mixmin_core.runs.fileio import sha256_file

    path = Path(tempfile.mkdtemp()) / "o"
    _O.save(path)
    np.save(path.with_suffix(".npy"), _MATRIX)
    path.with_suffix(".npy").replace(path.with_suffix(".npz"))
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar.pop("sidecar_sha256")  # by hand: no checksum of its own
    path.with_suffix(".json").write_text(json.dumps({**sidecar, "sha256": sha256_file(path.with_suffix(".npz"))}))
    return ProxyOutputs.load(path)


@pytest.mark.parametrize("case", BAD_LIBRARY_INPUTS, ids=[c.id for c in BAD_LIBRARY_INPUTS])
def test_bad_library_input_raises_naming_the_argument(case):
    with pytest.raises(case.error, match=case.match):
        case.call()


def test_per_source_values_keyed_by_name_are_matched_by_name():
    """A dict or a pandas Series of natural weights, caps or an init keyed by source name is matched by
    name (a Series was read by position: natural weights for 'c', 'b', 'a' went to 'a', 'b', 'c')."""
    import pandas as pd

    values = np.random.default_rng(1).uniform(0.05, 0.95, (3, 30))
    labels = np.arange(30) % 2
    keyed = ProxyOutputs(values, "binary", labels=labels, source_names=list("abc"),
                         natural_weights=pd.Series({"c": 1, "b": 2, "a": 7}))
    np.testing.assert_allclose(keyed.natural_weights, [0.7, 0.2, 0.1])
    in_order = ProxyOutputs(values, "binary", labels=labels, source_names=list("abc"), natural_weights=pd.Series([7, 2, 1]))
    np.testing.assert_allclose(in_order.natural_weights, [0.7, 0.2, 0.1])
    by_name = mixmin(keyed, caps={"c": 0.1, "a": 1.0, "b": 1.0, "other": 0.5}, init=pd.Series({"b": 0.2, "c": 0.1, "a": 0.7}))
    by_order = mixmin(keyed, caps=[1.0, 1.0, 0.1], init=[0.7, 0.2, 0.1])
    np.testing.assert_array_equal(by_name.weights, by_order.weights)
    np.testing.assert_array_equal(mixmin(keyed, caps={"c": 0.1}).weights, mixmin(keyed, caps=[1.0, 1.0, 0.1]).weights)
    # numeric names (PubChem AIDs) key a Series too; only an index of its own positions 0, 1, ... is positional
    aids = pd.DataFrame(values, index=[1030, 743, 588])
    sizes = ProxyOutputs(aids, "binary", labels=labels, natural_weights=pd.Series({588: 7, 743: 2, 1030: 1}))
    assert sizes.source_names == ("1030", "743", "588")
    np.testing.assert_allclose(sizes.natural_weights, [0.1, 0.2, 0.7])
    capped = mixmin(sizes, caps=pd.Series({588: 0.9, 743: 0.9, 1030: 0.05}))
    np.testing.assert_array_equal(capped.weights, mixmin(sizes, caps=[0.05, 0.9, 0.9]).weights)
    with pytest.raises(InputError, match="no entry"):
        ProxyOutputs(aids, "binary", labels=labels, natural_weights=pd.Series([7, 2, 1], index=[5, 6, 7]))


def test_proxy_outputs_arrays_are_read_only():
    """Solvers cache what they derive from the outputs: flipping labels in place returned the old weights."""
    out = ProxyOutputs(_MATRIX, "binary", labels=[0, 1] * 10, token_counts=None, natural_weights=[1, 2, 3],
                       sample_ids=[str(i) for i in range(20)])
    for name in ("values", "labels", "natural_weights", "sample_ids"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(out, name)[0] = 0


def test_table_is_large_and_ids_unique():
    assert len(BAD_LIBRARY_INPUTS) >= 30
    assert len({c.id for c in BAD_LIBRARY_INPUTS}) == len(BAD_LIBRARY_INPUTS)


def test_numpy_scalars_are_accepted_where_numbers_are():
    """``np.float32(0.5)`` is a step size; results equal the Python-number call."""
    a = mixmin(_O, step_size=np.float32(0.5), max_iter=np.int64(20), tol=np.float64(0.0),
               prior_strength=np.float32(0.0))
    b = mixmin(_O, step_size=0.5, max_iter=20, tol=0.0)
    np.testing.assert_array_equal(a.weights, b.weights)
    boot = bootstrap_weights(_O, n_boot=np.int32(3), seed=np.int64(1), level=np.float32(0.9), max_iter=5)
    assert boot.samples.shape == (3, 3)


def test_keyed_weights_are_matched_by_name_in_loss_and_fixed_mixtures():
    """A Series in another order was taken by position: mixture_loss 0.52 where the same weights by name give 0.68."""
    names = list(_O.source_names)
    by_name = pd.Series({names[2]: 0.5, names[0]: 0.2, names[1]: 0.3})
    assert mixture_loss(_O, by_name) == mixture_loss(_O, [0.2, 0.3, 0.5]) == mixture_loss(_O, dict(by_name))
    np.testing.assert_allclose(fixed_mixture(_O, by_name, "mine").weights, [0.2, 0.3, 0.5], atol=1e-7)


def test_a_callback_cannot_change_the_solve():
    """It was handed the solver's own iterate: filling it with NaN gave NaN weights, and caps could be broken."""
    seen = []

    def nudge(it):
        seen.append(it.weights.flags.writeable)
        it.weights.fill(np.nan)

    with pytest.raises(ValueError, match="read-only"):
        mixmin(_O, callback=nudge, max_iter=5)
    assert seen == [False]
    copies = []
    capped = mixmin(_O, caps=[0.6, 0.6, 0.6], max_iter=20, callback=lambda it: copies.append(it.weights.copy()))
    assert (capped.weights <= 0.6 + 1e-6).all() and np.isfinite(copies).all()


def test_a_read_only_view_of_a_writable_array_is_copied(tmp_path):
    """The README promises a later edit of the caller's cannot change a solve; a read-only view of a writable array
    was used as it is, so editing that array put probabilities of 5.0 into a binary problem."""
    values = np.asarray(_MATRIX, dtype=np.float32).copy()
    view = values.view()
    view.flags.writeable = False
    outputs = ProxyOutputs(view, "binary", labels=[0, 1] * 10)
    before = float(outputs.values[0, 0])
    values[0, 0] = 5.0
    assert float(outputs.values[0, 0]) == before
    np.save(tmp_path / "m.npy", values)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r+").view()
    mapped.flags.writeable = False
    with pytest.raises(InputError, match="memory-mapped values must be opened read-only"):
        ProxyOutputs(mapped, "binary", labels=[0, 1] * 10)


def test_integer_keys_name_integer_like_source_names():
    """source_names=[1, 2, 3] are stored as text; init={1: ...} said it had no entry for ['1', '2', '3']."""
    outputs = ProxyOutputs(_MATRIX, "binary", labels=[0, 1] * 10, source_names=[1, 2, 3])
    result = mixmin(outputs, init={1: 0.2, 2: 0.3, 3: 0.5}, max_iter=0)
    np.testing.assert_allclose(result.weights, [0.2, 0.3, 0.5], atol=1e-7)
