"""Training plans and export formats: every format parses back (with its own parser) to the same weights,
the ``datasets`` snippet runs on in-memory datasets, and the repeat limit is enforced by a capped re-solve."""
import ast
import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mixmin_core import InputError, MixtureResult, ProxyOutputs, mixmin
from mixmin_core.engine.export import (
    FORMATS,
    chem_table,
    hf_snippet,
    megatron_data_path,
    olmix_yaml,
    plan_training,
    read_documents_csv,
    read_sizes_csv,
    render,
    repeat_caps,
    run_chem_examples,
    run_source_sizes,
    solve_within_limit,
    to_csv,
    to_json,
)
from mixmin_core.runs.layout import write_sources

NAMES = ("web", "books", "code", "wiki", "math")
#: weights with awkward values: many digits, a tiny one and an exact zero
WEIGHTS = np.array([0.4123456789, 0.3, 0.2876543211 - 3e-9, 3e-9, 0.0])
SIZES = {"web": 1e9, "books": 2e8, "code": 5e7, "wiki": 3e8, "math": 1e6, "unused": 5.0}


@pytest.fixture
def plan():
    result = MixtureResult(weights=WEIGHTS.astype(np.float32), source_names=NAMES, method="mixmin")
    return plan_training(result, SIZES, budget=1e9, max_epochs=4, meta={"run": "r1", "problem": "hellaswag__trial0"})


def _expected(plan):
    return plan.weights_dict()


def _assert_same(parsed: dict, plan, *, drop_zero=False):
    want = {n: w for n, w in _expected(plan).items() if not (drop_zero and w == 0)}
    assert set(parsed) == set(want)
    for n in want:
        assert parsed[n] == want[n], n  # bit for bit


def test_plan_amounts_epochs_and_limit(plan):
    w = plan.weights
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(w, WEIGHTS.astype(np.float32), rtol=1e-7, atol=1e-9)  # the solver's weights
    assert w[3] == 3e-9 and all(len(repr(float(x))) <= 11 for x in w)  # short numbers on a 1e-9 grid
    np.testing.assert_allclose(plan.amounts, w * 1e9)
    np.testing.assert_allclose(plan.epochs, w * 1e9 / np.array([1e9, 2e8, 5e7, 3e8, 1e6]))
    # code: 0.2877 * 1e9 / 5e7 = 5.75 epochs > 4; books: 1.5 epochs is fine
    assert plan.over_limit == ("code",)
    warnings = plan.warnings()
    assert "source 'code' would be repeated 5.75 times" in warnings[0] and "max_epochs=4" in warnings[0]
    assert "solve again with availability caps" in warnings[1]
    for method, said in (("mixmin_joint_worst", "solve again with availability caps"),  # it said "only MixMin's"
                         ("regmix", "this regmix mixture is exported as it was chosen")):
        other = plan_training(MixtureResult(weights=WEIGHTS.astype(np.float32), source_names=NAMES, method=method),
                              SIZES, budget=1e9, max_epochs=4)
        assert said in other.warnings()[1], other.warnings()
    frame = plan.to_frame()
    assert list(frame.columns) == ["source", "weight", "size", "tokens", "epochs", "over_limit"]
    assert frame.loc[frame.source == "web", "tokens"].item() == round(w[0] * 1e9)  # whole tokens


@pytest.mark.parametrize("budget", [2, 3, 7, 12, 999, 1001, 12345, 1e6 + 1, 1e9])
def test_whole_amounts_sum_to_the_budget(budget):
    """Each source rounded on its own gave 10 rows of a 12-row budget over 5 equal sources (and 0 of 2)."""
    from mixmin_core.engine.export import TrainingPlan, round_weights

    for seed in range(20):
        w = round_weights(np.random.default_rng(seed).dirichlet(np.ones(5)))
        plan = TrainingPlan(tuple("abcde"), w, np.full(5, 1e12), float(budget), 4.0, unit="rows")
        whole = plan.whole_amounts
        assert whole.dtype == np.int64 and whole.sum() == round(budget)
        assert (np.abs(whole - plan.amounts) < 1).all()  # each within one of its exact amount
        assert plan.to_frame()["rows"].sum() == round(budget)
        assert sum(s["rows"] for s in plan.to_dict()["sources"]) == round(budget)
    equal = TrainingPlan(tuple("abcde"), np.full(5, 0.2), np.full(5, 1e12), 12.0, 4.0, unit="rows")
    assert sorted(equal.whole_amounts) == [2, 2, 2, 3, 3]


def test_json_parses_back(plan):
    data = json.loads(to_json(plan))
    _assert_same(data["weights"], plan)
    _assert_same({row["source"]: row["weight"] for row in data["sources"]}, plan)
    assert data["budget"] == 1e9 and data["unit"] == "tokens" and data["meta"]["problem"] == "hellaswag__trial0"
    assert [r["source"] for r in data["sources"] if r["over_limit"]] == ["code"]
    assert data["warnings"]


def test_csv_parses_back(plan):
    rows = list(csv.DictReader(io.StringIO(to_csv(plan))))
    _assert_same({r["source"]: float(r["weight"]) for r in rows}, plan)
    # short numbers, as in JSON (%.17g printed 0.59999999999999998 for 0.6)
    assert all(r["weight"] == repr(float(r["weight"])) for r in rows), [r["weight"] for r in rows]
    assert {r["source"]: r["over_limit"] for r in rows}["code"] == "True"


def test_olmix_yaml_parses_back(plan):
    text = olmix_yaml(plan)
    data = yaml.safe_load(text)
    _assert_same({n: e["weight"] for n, e in data["mix"].items()}, plan)
    assert data["max_tokens"] == 1_000_000_000
    assert {e["repetition_factor"] for e in data["mix"].values()} == {4.0}
    assert "# WARNING: source 'code'" in text  # the warning travels with the file



def test_olmix_yaml_quotes_names_a_yaml_1_2_reader_would_take_for_numbers():
    names = ("1e3", "no", "caf\u00e9")
    plan = plan_training(MixtureResult(weights=np.array([0.5, 0.3, 0.2], np.float32), source_names=names),
                         dict.fromkeys(names, 100.0), budget=100)
    text = olmix_yaml(plan)
    assert '"1e3":' in text and '"no":' in text and '"caf\u00e9":' in text  # raw UTF-8, not \xE9 escapes
    assert list(yaml.safe_load(text)["mix"]) == list(names)
    one = MixtureResult(weights=np.array([1.0, 0, 0], np.float32), source_names=names)
    with pytest.raises(InputError, match=r"budget must be a whole number of tokens; got 10.5"):  # it planned 10
        plan_training(one, dict.fromkeys(names, 100.0), budget=10.5)
    with pytest.raises(InputError, match=r"budget must be a whole number of tokens; got 12345677.6\."):  # 1.23457e+07
        plan_training(one, dict.fromkeys(names, 100.0), budget=12345677.6)
    assert plan_training(one, dict.fromkeys(names, 100.0), budget=1e3).whole_amounts.sum() == 1000


def test_megatron_data_path_parses_back(plan):
    text = megatron_data_path(plan, path_template="/data/{source}_text_document")
    tokens = text.split()
    assert tokens[0] == "--data-path" and len(tokens) == 1 + 2 * 4  # the zero-weight source is left out
    parsed = {t.removeprefix("/data/").removesuffix("_text_document"): float(v) for v, t in zip(tokens[1::2], tokens[2::2])}
    _assert_same(parsed, plan, drop_zero=True)
    assert all(v == repr(float(v)) for v in tokens[1::2])  # short numbers (0.07544205300000001 before)
    with pytest.raises(InputError, match=r"the data prefix \(path_template; --data-prefix on the command line\) must contain"):
        megatron_data_path(plan, path_template="/data/x")
    with pytest.raises(InputError, match=r"the data prefix '/my data/\{source\}' holds a space, and Megatron's "):
        megatron_data_path(plan, path_template="/my data/{source}")
    spaced = plan_training(MixtureResult(weights=np.array([0.5, 0.5], np.float32), source_names=("the pile", "c4")),
                           {"the pile": 1e6, "c4": 1e6}, budget=1e5)
    with pytest.raises(InputError, match=r"source 'the pile' has a space in its name, .* rename the source"):
        megatron_data_path(spaced)  # it said "use --data-prefix without spaces", also in the app


def _snippet_lists(text):
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("SOURCES", "PROBABILITIES"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found["SOURCES"], found["PROBABILITIES"]


def _run_snippet(text: str, source_datasets: dict):
    """Run a datasets snippet as its user would, on ``source_datasets``; the ``mixed`` stream it makes."""
    namespace = {"source_datasets": source_datasets}
    exec(compile(text, "<hf snippet>", "exec"), namespace)
    return namespace["mixed"]


def test_hf_snippet_parses_back_and_runs(plan):
    datasets = pytest.importorskip("datasets")
    text = hf_snippet(plan, seed=3)
    names, probs = _snippet_lists(text)
    _assert_same(dict(zip(names, probs)), plan, drop_zero=True)
    n = 3000
    source_datasets = {s: datasets.Dataset.from_dict({"text": [f"{s} {i}" for i in range(n)], "source": [s] * n})
                       for s in NAMES}
    mixed = _run_snippet(text, source_datasets)
    counts = pd.Series(mixed["source"]).value_counts()
    total = counts.sum()
    assert total >= n  # first_exhausted: runs until the largest-weight source's 3000 rows are used up
    for name, p in zip(names, probs):
        share = counts.get(name, 0) / total
        assert share == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / total) + 1e-3), name
    assert "math" not in counts  # weight zero: never drawn


def test_hf_snippet_keeps_names_beyond_the_basic_plane():
    """JSON wrote "web_😀" as a surrogate pair, which Python reads as two lone surrogates: the snippet's lookup of that
    source failed with a KeyError."""
    datasets = pytest.importorskip("datasets")
    result = MixtureResult(weights=np.array([0.5, 0.5], dtype=np.float32), source_names=("web_😀", "books"))
    plan = plan_training(result, {"web_😀": 1e5, "books": 1e5}, budget=2e4, documents={"web_😀": 1e3, "books": 1e3})
    for text in (hf_snippet(plan), hf_snippet(plan_training(result, {"web_😀": 1e5, "books": 1e5}, budget=2e4))):
        assert 'SOURCES = ["web_😀", "books"]' in text
        rows = pd.DataFrame(list(_run_snippet(text, _length_datasets(datasets, {"web_😀": (1000, 100), "books": (1000, 100)}))))
        assert set(rows.source) == {"web_😀", "books"}


def _length_datasets(datasets, spec):
    """In-memory sources whose examples differ in length: ``{name: (documents, tokens per document)}``."""
    return {s: datasets.Dataset.from_dict({"source": [s] * n, "n_tokens": [length] * n})
            for s, (n, length) in spec.items()}


@pytest.mark.parametrize("iterable", [False, True])
def test_hf_snippet_with_documents_draws_token_shares_at_the_budget(iterable):
    """Token weights used as per-example probabilities put code (long documents) at ~90% of the tokens
    against a 7.5% weight; with documents per source the stream's token shares are the weights, the stream
    ends at the budget, and a source repeated twice over is not cut short."""
    datasets = pytest.importorskip("datasets")
    spec = {"web": (20_000, 50), "books": (2000, 500), "code": (500, 400)}  # 1e6, 1e6, 2e5 tokens
    names = tuple(spec)
    result = MixtureResult(weights=np.array([0.6, 0.325, 0.075], dtype=np.float32), source_names=names)
    sizes = {s: n * length for s, (n, length) in spec.items()}
    plan = plan_training(result, sizes, budget=1e6, max_epochs=4, documents={s: n for s, (n, _) in spec.items()})
    assert plan.epochs[2] == pytest.approx(0.375)
    text = hf_snippet(plan, seed=1)
    assert "WARNING" not in text
    source_datasets = _length_datasets(datasets, spec)
    if iterable:
        source_datasets = {s: d.to_iterable_dataset() for s, d in source_datasets.items()}
    rows = pd.DataFrame(list(_run_snippet(text, source_datasets)))
    tokens = rows.groupby("source").n_tokens.sum()
    assert tokens.sum() == pytest.approx(1e6, rel=0.05)  # the budget, not the first source's end
    shares = tokens / tokens.sum()
    for name, w in zip(names, plan.weights):  # books: 650 documents drawn, a share's noise ~0.013
        assert shares[name] == pytest.approx(w, abs=0.05), name  # per example, books would be 73%

    small = {"web": (20_000, 50), "books": (200, 500), "code": (500, 400)}  # books 1e5 tokens: 3.25 epochs
    plan = plan_training(result, {s: n * length for s, (n, length) in small.items()}, budget=1e6, max_epochs=4,
                         documents={s: n for s, (n, _) in small.items()})
    rows = pd.DataFrame(list(_run_snippet(hf_snippet(plan, seed=2), _length_datasets(datasets, small))))
    tokens = rows.groupby("source").n_tokens.sum()
    assert tokens.sum() == pytest.approx(1e6, rel=0.05) and tokens["books"] / 1e6 == pytest.approx(0.325, abs=0.05)
    assert rows["source"].eq("books").sum() > 200 * 3  # repeated: more than three passes over its 200 documents


def test_hf_snippet_of_a_row_plan_cuts_at_the_budget_and_refuses_empty_sources():
    datasets = pytest.importorskip("datasets")
    result = MixtureResult(weights=np.array([0.75, 0.25], dtype=np.float32), source_names=("A", "B"))
    plan = plan_training(result, {"A": 300, "B": 50}, budget=400, max_epochs=4, unit="rows")  # B: 2 epochs
    rows = pd.DataFrame(list(_run_snippet(hf_snippet(plan), _length_datasets(datasets, {"A": (300, 1), "B": (50, 1)}))))
    assert len(rows) == 400 and rows.source.eq("B").mean() == pytest.approx(0.25, abs=0.08)
    empty = plan_training(result, {"A": 300, "B": 50}, budget=400, documents={"A": 3, "B": 0})
    with pytest.raises(InputError, match=r"source\(s\) \['B'\] have weight but no data \(0 tokens or 0 documents\)"):
        hf_snippet(empty)
    no_tokens = plan_training(result, {"A": 300, "B": 0}, budget=400)  # without documents it gave B 0.25 of the draws
    with pytest.raises(InputError, match=r"source\(s\) \['B'\] have weight but no data \(0 tokens or 0 documents\)"):
        hf_snippet(no_tokens)
    with pytest.raises(InputError, match=r"documents must be finite and non-negative; bad for \['B'\]"):
        plan_training(result, {"A": 300, "B": 50}, budget=400, documents={"A": 3, "B": -1})
    with pytest.raises(InputError, match=r"documents is keyed by source name but has no entry for 1 source\(s\).*documents \(examples\)"):
        plan_training(result, {"A": 300, "B": 50}, budget=400, documents={"A": 3})


def test_hf_snippet_refuses_a_budget_under_one_example():
    """--budget-tokens 100 gave EXAMPLES = 0: an empty stream, without a word."""
    from mixmin_core.engine.export import TrainingPlan

    plan = TrainingPlan(("a", "b"), np.array([0.5, 0.5]), np.array([1e6, 1e6]), 100.0, 4.0,
                        documents=np.array([1000.0, 1000.0]))
    with pytest.raises(InputError, match=r"the budget \(100 tokens\) is under one example \(a mean document holds "
                                         r"1000 tokens\); raise the budget"):
        hf_snippet(plan)


def test_sizes_csv_documents_column(tmp_path):
    path = tmp_path / "sizes.csv"
    path.write_text("source,size,documents\nA,1000,10\nB,500,1\n")
    assert read_sizes_csv(path) == {"A": 1000.0, "B": 500.0}
    assert read_documents_csv(path) == {"A": 10.0, "B": 1.0}
    path.write_text("source,size\nA,1000\n")
    assert read_documents_csv(path) is None
    path.write_text("source,size,documents\nA,1000,many\n")
    with pytest.raises(InputError, match="column 'documents' must be numeric; bad for sources \\['A'\\]"):
        read_documents_csv(path)


def test_chem_table_parses_back():
    result = MixtureResult(weights=np.array([0.5, 0.3, 0.2, 0.0], dtype=np.float32), source_names=("A", "B", "C", "D"))
    examples = pd.DataFrame({
        "molecule": ["CCO", "CCN", "c1ccccc1", "CCO", "CC", "CCC", "CCO", "O"],
        "assay": ["A", "A", "A", "B", "B", "C", "D", "target"],
        "label": [1, 0, 0, 1, 1, 0, 1, 0],
    })
    plan = plan_training(result, {"A": 3, "B": 2, "C": 1, "D": 1}, budget=10, max_epochs=4, unit="rows")
    text = render(plan, "chem-table", examples=examples)
    table = pd.read_csv(io.StringIO(text))
    assert list(table.columns) == ["molecule", "assay", "label", "weight"]
    assert set(table.assay) == {"A", "B", "C"}  # zero weight and non-source assays left out
    # sample weights of mean 1 (summing to 1 over the rows, XGBoost's min_child_weight blocked every split)
    assert table["weight"].mean() == pytest.approx(1.0)
    want = {n: w for n, w in _expected(plan).items() if w}  # to rounding: the weights are scaled by rows / sum
    assert (table.groupby("assay")["weight"].sum() / len(table)).to_dict() == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(table.loc[table.assay == "A", "weight"], 0.5 / 3 * len(table))
    np.testing.assert_allclose(plan.epochs, [5 / 3, 3 / 2, 2, 0])  # rows drawn / rows labelled
    with pytest.raises(InputError, match="no rows for 1 source"):
        chem_table(plan, examples[examples.assay != "C"])
    with pytest.raises(InputError, match="columns molecule, assay, label"):
        chem_table(plan, examples.drop(columns="label"))


def _capped_problem():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    values = np.clip(y * rng.uniform(0.2, 0.7, (4, 1)) + rng.uniform(0, 0.4, (4, 500)), 0, 1)
    return ProxyOutputs(values, "binary", labels=y, source_names=["a", "b", "c", "d"])


def test_solve_within_limit_respects_the_repeat_limit():
    outputs = _capped_problem()
    free = mixmin(outputs, max_iter=2000, tol=1e-7)
    top = free.source_names[int(np.argmax(free.weights))]
    sizes = {n: 1e6 for n in free.source_names}
    sizes[top] = 1e5  # the favourite source is small: 4 epochs of it is at most 0.4 of a 1e6 budget
    plan = plan_training(free, sizes, budget=1e6, max_epochs=4)
    assert plan.over_limit == (top,) and free.weights.max() > 0.4
    caps = plan.caps()
    assert caps[free.source_names.index(top)] == pytest.approx(0.4) and caps.max() == 1.0
    again = solve_within_limit(outputs, plan, max_iter=3000, tol=1e-7)
    replanned = plan_training(again, sizes, budget=1e6, max_epochs=4)
    assert replanned.over_limit == () and replanned.warnings() == []
    assert replanned.epochs.max() == pytest.approx(4.0, rel=1e-4)  # the cap binds
    assert again.loss >= free.loss - 1e-7
    # multi-target outputs go through mixmin_multi with the same caps
    multi = solve_within_limit([outputs, outputs.select(samples=np.arange(250))], plan, max_iter=500)
    assert plan_training(multi, sizes, budget=1e6, max_epochs=4).over_limit == ()


def test_limit_that_cannot_be_met_says_so():
    with pytest.raises(InputError, match="cannot be filled within max_epochs=2.*at most 400"):
        repeat_caps([100, 100], budget=1000, max_epochs=2)
    result = MixtureResult(weights=np.array([0.5, 0.5], dtype=np.float32), source_names=("a", "b"))
    plan = plan_training(result, [100, 100], budget=1000, max_epochs=2)
    assert plan.over_limit == ("a", "b")
    assert "cannot be filled" in plan.warnings()[-1]


@pytest.mark.parametrize("kwargs, match", [
    ({"budget": 0}, "budget must be a positive number; got 0"),
    ({"budget": -5}, "budget must be a positive number"),
    ({"budget": "lots"}, "budget must be a positive number; got 'lots'"),
    ({"budget": 10, "max_epochs": 0}, "max_epochs must be a positive number"),
    ({"budget": 10, "unit": "bytes"}, "unit must be one of"),
    ({"budget": 1e30}, r"budget must be at most 1e\+15 tokens; got 1e\+30"),  # int64 amounts printed negative
    ({"budget": True}, "budget must be a positive number; got True"),
    ({"budget": 10, "max_epochs": True}, "max_epochs must be a positive number; got True"),
])
def test_bad_plan_arguments_are_named(kwargs, match):
    result = MixtureResult(weights=np.array([0.5, 0.5], dtype=np.float32), source_names=("a", "b"))
    with pytest.raises(InputError, match=match):
        plan_training(result, {"a": 1, "b": 1}, **kwargs)


def test_sizes_series_by_name_short_weights_and_one_line_headers():
    """A pandas Series of sizes is matched by name as a dict is (it was read by position); float32 weights
    export as the decimals they print as; a line break in a run name stays inside the comment."""
    result = MixtureResult(weights=np.array([0.4, 0.3, 0.2, 0.1], dtype=np.float32), source_names=("web", "code", "books", "wiki"))
    sizes = pd.Series({"wiki": 1e8, "books": 5e7, "code": 2e8, "web": 1e9})
    plan = plan_training(result, sizes, budget=1e9, meta={"run": "abc\nx = 1", "problem": "p\r\u2028q"})
    assert plan.sizes.tolist() == [1e9, 2e8, 5e7, 1e8] and plan.over_limit == ()
    assert megatron_data_path(plan) == "--data-path 0.4 web 0.3 code 0.2 books 0.1 wiki\n"
    text = hf_snippet(plan)
    compile(text, "<hf snippet>", "exec")
    assert text.splitlines()[0] == "# Training mixture from mixmin: method mixmin, run abc x = 1, problem p q."
    assert yaml.safe_load(olmix_yaml(plan))["mix"]["web"]["weight"] == 0.4


def test_bad_sizes_and_formats_are_named(plan):
    result = MixtureResult(weights=np.array([0.5, 0.5], dtype=np.float32), source_names=("a", "b"))
    with pytest.raises(InputError, match=r"sizes is keyed by source name but has no entry for 1 source.*\['b'\]"):
        plan_training(result, {"a": 1}, budget=10)
    with pytest.raises(InputError, match="sizes must be finite and non-negative; bad for \\['b'\\]"):
        plan_training(result, {"a": 1, "b": -1}, budget=10)
    with pytest.raises(InputError, match="sizes must hold 2 numbers"):
        plan_training(result, [1, 2, 3], budget=10)
    with pytest.raises(InputError, match="result must be a MixtureResult"):
        plan_training({"a": 0.5}, {"a": 1}, budget=10)
    with pytest.raises(InputError, match="format must be one of"):
        render(plan, "parquet")
    with pytest.raises(InputError, match="needs the labelled examples"):
        render(plan, "chem-table")
    with pytest.raises(InputError, match="stopping_strategy must be"):
        hf_snippet(plan, stopping_strategy="never")
    with pytest.raises(InputError, match="seed must be .*; got -1"):  # numpy refuses a negative seed
        render(plan, "hf", seed=-1)
    assert set(FORMATS) == {"json", "csv", "hf", "olmix", "megatron", "chem-table"}


def test_run_folder_sizes_and_examples(tmp_path):
    lm = tmp_path / "lm"
    write_sources(lm, pd.DataFrame({"source": ["a", "b"], "tokens": [1000, 3000]}))
    assert run_source_sizes(lm) == ({"a": 1000.0, "b": 3000.0}, "tokens", None, False, None, None)
    sample = tmp_path / "sample"  # a run that read a sample of each source: the whole corpus's sizes win
    write_sources(sample, pd.DataFrame({"source": ["a", "b"], "tokens": [1000, 3000], "documents": [3, 5],
                                        "corpus_documents": [30, 7], "corpus_tokens": [10_000, 4000]}))
    assert run_source_sizes(sample) == ({"a": 10_000.0, "b": 4000.0}, "tokens", {"a": 30.0, "b": 7.0}, True, None, None)
    write_sources(sample, pd.DataFrame({"source": ["a", "b"], "tokens": [1000, 3000], "documents": [3, 5]}))
    assert run_source_sizes(sample) == ({"a": 1000.0, "b": 3000.0}, "tokens", {"a": 3.0, "b": 5.0}, False, None, None)
    chem = tmp_path / "chem"
    write_sources(chem, pd.DataFrame({"source": ["X", "Y"], "n_labelled": [2, 1]}))
    assert run_source_sizes(chem) == ({"X": 2.0, "Y": 1.0}, "rows", None, False, None, None)
    beyond = tmp_path / "beyond"  # sources.csv without sizes: counted from the label matrix
    write_sources(beyond, pd.DataFrame({"source": ["X", "Y"]}))
    (beyond / "features").mkdir()
    np.savez(beyond / "features" / "labels.npz", labels=np.array([[1, -1], [0, 1], [-1, -1]], dtype=np.int8),
             assays=np.array(["X", "Y"]))
    np.savez(beyond / "features" / "smiles.npz", smiles=np.array(["CCO", "CCN", "C"]))
    assert run_source_sizes(beyond) == ({"X": 2.0, "Y": 1.0}, "rows", None, False, None, None)
    examples = run_chem_examples(beyond)
    assert examples.to_dict("records") == [{"molecule": "CCO", "assay": "X", "label": 1},
                                           {"molecule": "CCN", "assay": "X", "label": 0},
                                           {"molecule": "CCN", "assay": "Y", "label": 1}]
    with pytest.raises(InputError, match="has no sources.csv and there is no features/labels.npz.*--sizes FILE.csv"):
        run_source_sizes(tmp_path / "empty")
    with pytest.raises(InputError, match="not found; the chemistry table needs"):
        run_chem_examples(lm)


def test_sources_named_like_missing_values_stay_names(tmp_path):
    """A text domain null.jsonl (or an assay NA) became a missing value read back from sources.csv and from a sizes
    CSV: no export of the run worked ("no entry for ['NA', 'null']")."""
    from mixmin_core.runs.layout import read_sources

    names = ["NA", "null", "None", "nan", "wiki"]
    write_sources(tmp_path, pd.DataFrame({"source": names, "tokens": [1, 2, 3, 4, 5], "note": [1.5, None, 2, 3, 4]}))
    frame = read_sources(tmp_path)
    assert frame["source"].tolist() == names and frame["title"].tolist() == names
    assert frame["note"].isna().tolist() == [False, True, False, False, False]  # an empty number is still missing
    assert run_source_sizes(tmp_path).sizes == dict(zip(names, [1.0, 2.0, 3.0, 4.0, 5.0]))
    path = tmp_path / "sizes.csv"
    path.write_text("source,size\nNA,10\nnull,20\n web ,5\n")  # and a hand-written row's spaces
    assert read_sizes_csv(path) == {"NA": 10.0, "null": 20.0, "web": 5.0}


def test_sizes_csv(tmp_path):
    path = tmp_path / "sizes.csv"
    path.write_text("source,rows\na,10\nb,20\n")
    assert read_sizes_csv(path) == {"a": 10.0, "b": 20.0}
    path.write_text("name,size\na,10\n")
    with pytest.raises(InputError, match="needs columns 'source' and 'size'"):
        read_sizes_csv(path)
    path.write_text("source,size\na,ten\n")
    with pytest.raises(InputError, match="must be numeric; bad for sources \\['a'\\]"):
        read_sizes_csv(path)
    with pytest.raises(InputError, match="sizes file not found"):
        read_sizes_csv(tmp_path / "missing.csv")
    path.write_text("source,size\na,10\na,20\n")  # the last row won silently
    with pytest.raises(InputError, match=r"each source needs one row; repeated: \['a'\]"):
        read_sizes_csv(path)
    path.write_text("source,size\na,0\nb,0\n")  # the plan showed infinite epochs
    with pytest.raises(InputError, match="finite sizes >= 0, not all zero; got range \\[0, 0\\] summing to 0"):
        read_sizes_csv(path)
    path.write_text("source,size\na,-5\nb,10\n")
    with pytest.raises(InputError, match="finite sizes >= 0"):
        read_sizes_csv(path)
    path.write_text("source,size\na," + "9" * 400 + "\nb,10\n")  # OverflowError: int too large to convert to float
    with pytest.raises(InputError, match="finite sizes >= 0"):
        read_sizes_csv(path)
    path.write_text("source,size\na,1e308\nb,1e308\n")  # each finite, the total infinite (the page's budget overflowed)
    with pytest.raises(InputError, match="finite sizes >= 0.*summing to inf"):
        read_sizes_csv(path)
    path.write_text("source,size\na,1\n,2\n")  # a row without a source name was accepted
    with pytest.raises(InputError, match=r"every row needs a source name; row\(s\) \[3\] have none"):
        read_sizes_csv(path)
    path.write_text("source,size,size\na,1,5\n")  # the second 'size' became 'size.1', unused
    with pytest.raises(InputError, match=r"column names must be unique; repeated: \['size'\]"):
        read_sizes_csv(path)
    path.write_text("source,size\na,True\nb,False\n")
    with pytest.raises(InputError, match=r"column 'size' holds true/false"):
        read_sizes_csv(path)
    # an upload is read from its bytes, named in errors by its file name
    assert read_sizes_csv("mine.csv", data=b"source,size\na,1\n") == {"a": 1.0}
    with pytest.raises(InputError, match=r"^mine.csv: needs columns"):
        read_sizes_csv("mine.csv", data=b"x,y\n1,2\n")


def test_hf_snippet_shuffles_each_source_and_notes_sources_drawn_for_few_documents():
    """interleave_datasets read each source from its top: a source used for a fraction of an epoch gave only
    its first documents (wikipedia's first tenth averages 4x its mean length: 41% of the tokens for 9.5%)."""
    datasets = pytest.importorskip("datasets")
    lengths = [1000] * 500 + [100] * 4500  # the long documents first: mean 190 tokens
    web = datasets.Dataset.from_dict({"source": ["web"] * 5000, "n_tokens": lengths})
    code = datasets.Dataset.from_dict({"source": ["code"] * 5000, "n_tokens": [190] * 5000})
    result = MixtureResult(weights=np.array([0.5, 0.5], dtype=np.float32), source_names=("web", "code"))
    plan = plan_training(result, {"web": sum(lengths), "code": 190 * 5000}, budget=1e5,
                         documents={"web": 5000, "code": 5000})
    text = hf_snippet(plan, seed=4)
    assert ".shuffle(seed=SEED)" in text and "NOTE" not in text
    rows = pd.DataFrame(list(_run_snippet(text, {"web": web, "code": code})))
    tokens = rows.groupby("source").n_tokens.sum()
    assert tokens["web"] / tokens.sum() == pytest.approx(0.5, abs=0.08)  # from the top of the file: 0.84
    few = plan_training(result, {"web": 1e6, "code": 1e6}, budget=1e5, documents={"web": 10_000, "code": 50})
    assert 'NOTE: few documents are drawn from "code" (~2.5)' in hf_snippet(few)


def test_sizes_csv_prefers_the_corpus_columns_and_refuses_ambiguous_ones(tmp_path):
    path = tmp_path / "sources.csv"  # a run's own sources.csv, passed as --sizes
    path.write_text("source,tokens,documents,corpus_documents,corpus_tokens,natural_weight\nA,100,2,40,2000,0.5\n")
    assert read_sizes_csv(path) == {"A": 2000.0} and read_documents_csv(path) == {"A": 40.0}
    path.write_text("source,size,tokens\nA,100,200\n")
    with pytest.raises(InputError, match=r"has columns \['size', 'tokens'\]; keep one of them"):
        read_sizes_csv(path)
    result = MixtureResult(weights=np.array([0.5, 0.5], dtype=np.float32), source_names=("A", "B"))
    with pytest.raises(InputError, match=r"documents: \['B'\] have more documents than tokens.*swapped"):
        plan_training(result, {"A": 100, "B": 5}, budget=50, documents={"A": 2, "B": 500})


def test_source_names_cannot_inject_code_into_the_python_and_shell_exports():
    """A source named "a\\nimport os; os.system(...)" became a line of Python in the snippet's NOTE line;
    "$(touch x)" ran in a shell that was handed Megatron's --data-path."""
    evil = MixtureResult(weights=np.array([0.5, 0.5], dtype=np.float32), source_names=("a\nimport os", "b"))
    with pytest.raises(InputError, match=r"names must not hold line breaks or control characters; got 'a\\nimport os'"):
        plan_training(evil, {"a\nimport os": 10, "b": 10}, budget=10)
    names = ("$(touch${IFS}/tmp/x)", "b;id", "c`id`", 'q"uote')
    result = MixtureResult(weights=np.array([0.25, 0.25, 0.25, 0.25], dtype=np.float32), source_names=names)
    plan = plan_training(result, dict.fromkeys(names, 1e9), budget=1e6, documents=dict.fromkeys(names, 1e3))
    import shlex

    words = shlex.split(megatron_data_path(plan))  # as a shell reads it: names, not commands
    assert words[0] == "--data-path" and words[2::2] == list(names)
    text = hf_snippet(plan)  # every name drawn for few documents is named in the NOTE line
    assert "NOTE: few documents" in text
    compile(text, "<hf snippet>", "exec")
    assert _snippet_lists(text)[0] == list(names)


def test_sizes_csv_refuses_ragged_rows_and_huge_uploads(tmp_path):
    path = tmp_path / "sizes.csv"
    path.write_text("source,size\na,1,2,3\n")  # read as {'2': 3.0} before
    with pytest.raises(InputError, match="a row has more fields than the header has columns"):
        read_sizes_csv(path)
    from mixmin_core.engine.export import MAX_SIZES_BYTES

    with pytest.raises(InputError, match="is more than a sizes file needs"):
        read_sizes_csv("big.csv", data=b"source,size\n" + b"a,1\n" * (MAX_SIZES_BYTES // 4 + 1))
    # a 0.7 MB header of 100,000 columns held the server 14 s and 0.7 GB: counted before pandas reads it
    wide = b"source,size," + b",".join(b"c%d" % i for i in range(100_000)) + b"\na,1\n"
    with pytest.raises(InputError, match=r"wide.csv: its header has [\d,]+\+ columns; a sizes CSV has source, size"):
        read_sizes_csv("wide.csv", data=wide)
    with pytest.raises(InputError, match=r"its header has [\d,]+\+ columns"):  # blank lines first: pandas skips them
        read_sizes_csv("wide.csv", data=b"\r\n\n" + wide)
    path.write_text("source,size," + ",".join(f"c{i}" for i in range(200)) + "\na,1\n")
    with pytest.raises(InputError, match="its header has 202 columns"):
        read_sizes_csv(path)
    path.write_text("source,size,documents\na,1,2\n")
    assert read_sizes_csv(path) == {"a": 1.0}
