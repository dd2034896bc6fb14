"""The run_table pipeline and the published run-table loaders, on the real RegMix / Olmix / ADMIRE tables."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.__main__ import main
from mixmin_core.errors import InputError
from mixmin_core.runs.layout import Problem, list_mixtures, read_summary
from mixmin_core.runs.store import RunStore
from mixmin_core.search.run_tables import (
    OwnTable,
    load_run_table,
    match_mixtures,
    own_tables,
    prior_for,
    scale_params,
)
from mixmin_core.search.table_methods import _held_out, trial_runs
from mixmin_core.solver.results import MixtureResult

ROOT = Path(__file__).resolve().parents[2]
REGMIX = str(ROOT / "configs" / "regmix_1m.yaml")
REGMIX_BO = str(ROOT / "configs" / "regmix_bo.yaml")
OLMIX = str(ROOT / "configs" / "olmix_dclm.yaml")
FAST = ["--set", "n_candidates=5000", "--set", "trials=1", "--quiet"]


def test_regmix_tables_load_and_join():
    train = load_run_table("regmix_1m_train")
    assert train.weights.shape == (512, 17) and train.metrics.shape == (512, 13) and train.scale == "1M"
    assert train.source_names[11] == "pile_cc" and "pile_cc" in train.metric_names
    np.testing.assert_allclose(train.weights.sum(axis=1), 1, atol=1e-6)
    assert train.weights.dtype == np.float32
    np.testing.assert_allclose(prior_for(train), train.natural_weights)
    assert prior_for(train)[11] == pytest.approx(0.2369, abs=1e-3)  # Pile-CC's share of Pile tokens
    test_1m, test_60m = load_run_table("regmix_1m_test"), load_run_table("regmix_60m_test")
    np.testing.assert_array_equal(test_1m.weights, test_60m.weights)  # same mixtures, two model scales
    assert (test_60m.target("pile_cc") < test_1m.target("pile_cc")).all()  # bigger models reach lower loss
    assert load_run_table("regmix_1b_test").n_runs == 64


def test_olmix_table_has_no_natural_weights():
    table = load_run_table("olmix_dclm")
    assert table.weights.shape == (127, 24) and len(table.metric_names) == 110
    assert table.natural_weights is None and table.run_ids[0] == "19g3guks"
    np.testing.assert_allclose(prior_for(table, "natural"), prior_for(table, "table_mean"))
    np.testing.assert_allclose(prior_for(table, "uniform"), 1 / 24)


def test_admire_tables_share_mixtures_across_model_sizes():
    small, mid, big = (load_run_table(f"admire_{s}") for s in ("0.5b", "3b", "7b"))
    assert (small.n_runs, mid.n_runs, big.n_runs) == (256, 128, 76)
    assert big.weights.shape == (76, 19) and len(big.metric_names) == 20 and "avg_id+ood" in big.metric_names
    assert big.higher_is_better and big.natural_weights is None
    np.testing.assert_allclose(big.loss("gsm8k::tulu"), -big.target("gsm8k::tulu"))
    # every 7B mixture was also trained at 0.5B and 3B, under the same run id
    for other in (small, mid):
        match = match_mixtures(big.weights, other.weights)
        assert (match >= 0).all() and [other.run_ids[j] for j in match] == list(big.run_ids)
    # train_time is the real cost, growing with model size; bigger models score higher
    assert small.costs.mean() < mid.costs.mean() < big.costs.mean()
    assert small.target("avg_id+ood").max() < big.target("avg_id+ood").min()
    assert scale_params(big.scale) == 7e9 and scale_params("60M") == 6e7


@pytest.mark.parametrize("call,match", [
    (lambda: load_run_table("pile_9b"), "unknown run table 'pile_9b'"),
    (lambda: load_run_table("regmix_1m_train").target("pile"), "target 'pile' is not a metric of run table"),
    (lambda: prior_for(load_run_table("regmix_1m_test"), "flat"), "prior must be one of"),
    (lambda: load_run_table("regmix_1m_train", mixtures_path="/nonexistent.csv"), "file not found"),
])
def test_loader_errors(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_loader_rejects_mixtures_off_the_simplex(tmp_path):
    bad = tmp_path / "mix.csv"
    bad.write_text("index,a,b\n1,0.5,0.2\n2,0.5,0.5\n")
    with pytest.raises(InputError, match=r"mix.csv: data row 1 sums to 0.7 \(1 of 2 rows are off\); mixture weights sum "
                                         r"to 1 \(\+-0.01\). If the rows hold percentages or token counts, divide"):
        load_run_table("olmix_dclm", mixtures_path=bad)
    # one message for every kind of bad row before, naming none of them; a repeated index was a MergeError
    for text, match in (("index,a,b\n1,0.5,0.5\n2,abc,0.5\n", r"data row 2, column 'a' holds 'abc'; mixture weights are numbers"),
                        ("index,a,b\n1,-0.5,1.5\n", r"data row 1, column 'a' holds '-0.5'"),
                        ("index,a,b\n1,0.5,0.5\n1,0.2,0.8\n", r"the 'index' column repeats values, e.g. \[1\]")):
        bad.write_text(text)
        with pytest.raises(InputError, match=match):
            load_run_table("olmix_dclm", mixtures_path=bad)

    metrics = tmp_path / "met.csv"  # a metric cell that is not a number became a missing measurement, silently
    metrics.write_text("index,loss\n1,5.2x\n2,3.0\n")
    bad.write_text("index,a,b\n1,0.5,0.5\n2,0.2,0.8\n")
    with pytest.raises(InputError, match=r"met.csv: the run with index 1, column 'loss' holds '5.2x', not a number"):
        load_run_table("olmix_dclm", mixtures_path=bad, metrics_path=metrics)
    metrics.write_text("index,loss,notes\n1,5.2,good\n2,3.0,\n")  # a text column is no metric: read as before
    assert load_run_table("olmix_dclm", mixtures_path=bad, metrics_path=metrics).target("loss").tolist() == [5.2, 3.0]
    metrics.write_text("index\n1\n2\n")  # no metric at all: was a TypeError
    assert load_run_table("olmix_dclm", mixtures_path=bad, metrics_path=metrics).metric_names == ()
    bad.write_text("index,a,b\n1,,1\n")
    with pytest.raises(InputError, match=r"data row 1, column 'a' is empty"):
        load_run_table("olmix_dclm", mixtures_path=bad, metrics_path=metrics)
    bad.write_text("index,a,b\n1,0.5,0.5\n2,0.2,0.8\n")
    metrics.write_text("index,loss\na,5.2\nb,3.0\n")  # a pandas ValueError
    with pytest.raises(InputError, match=r"'index' columns hold different kinds of values"):
        load_run_table("olmix_dclm", mixtures_path=bad, metrics_path=metrics)
    metrics.write_text("index,loss\n7,5.2\n8,3.0\n")  # it said random_search_trials must be at most 0 runs
    with pytest.raises(InputError, match=r"mix.csv and .*met.csv share no run 'index'"):
        load_run_table("olmix_dclm", mixtures_path=bad, metrics_path=metrics)


def _only_run(store):
    (run,) = store.list_runs()
    return run


def test_yardstick_runs_are_given_to_no_method():
    held = trial_runs("regmix_60m_test", ["regmix_1b_test"], test_fraction=0.25, yardstick="test_split",
                      fidelity_tables=["regmix_1m_test"], seed=0, trial=1)
    pool_ids, ruler_ids = set(held.pool.run_ids), set(held.yardstick.run_ids)
    assert len(ruler_ids) == 64 and len(pool_ids) == 192 and not pool_ids & ruler_ids
    other = trial_runs("regmix_60m_test", [], test_fraction=0.25, yardstick="test_split", seed=0, trial=2)
    assert set(other.yardstick.run_ids) != ruler_ids  # a fresh hold-out per trial
    named = trial_runs("regmix_1m_train", ["regmix_1m_test"], test_fraction=0.0, yardstick="auto")
    assert named.yardstick.name == "regmix_1m_test" and named.pool.n_runs == 512
    with pytest.raises(InputError, match="yardstick: no runs at scale 1M are held out"):
        trial_runs("regmix_1m_train", [], test_fraction=0.0, yardstick="auto")
    with pytest.raises(InputError, match="must hold other runs at the training scale 1M"):
        trial_runs("regmix_1m_train", [], test_fraction=0.0, yardstick="regmix_60m_test")


def test_a_held_out_split_keeps_every_run_of_a_mixture_on_one_side(tmp_path):
    """A swarm that reran mixtures with other seeds gave methods copies of the yardstick's held-out runs."""

    files = _own_tables(tmp_path)
    for kind in ("mixtures", "metrics"):  # runs 0-49 again, as runs 1000-1049 (another seed: other losses)
        frame = pd.read_csv(files["my_swarm"][kind])
        again = frame.iloc[:50].assign(index=frame["index"].iloc[:50] + 1000)
        if kind == "metrics":
            again["arc_easy_bpb"] += 0.01
        pd.concat([frame, again]).to_csv(files["my_swarm"][kind], index=False)
    own = tuple(OwnTable(**t) for t in files.values())
    for trial in range(3):
        runs = trial_runs("my_swarm", [], test_fraction=0.25, yardstick="test_split", own=own, trial=trial)
        held = {tuple(w) for w in runs.yardstick.weights}
        assert not held & {tuple(w) for w in runs.pool.weights}
        assert runs.pool.n_runs + runs.yardstick.n_runs == 150 and 37 <= runs.yardstick.n_runs <= 39  # 38, or next to it
    # a mixture run many times is never the whole split's pool, nor all of it held out
    weights = np.repeat([[0.2, 0.3, 0.5]], 10, axis=0)
    with pytest.raises(InputError, match="every run of the train table is one mixture"):
        _held_out(weights, 0.2, np.random.default_rng(0))
    uneven = np.vstack([np.repeat([[0.2, 0.3, 0.5]], 25, axis=0), np.random.default_rng(1).dirichlet(np.ones(3), 5)])
    for seed in range(20):
        held = _held_out(uneven, 0.5, np.random.default_rng(seed))
        assert 0 < held.sum() < len(uneven) and len(set(held[:25])) == 1  # the 25 copies on one side
    # without repeats the split is the one drawn before (run for run), so earlier results stand
    plain = trial_runs("regmix_60m_test", [], test_fraction=0.25, yardstick="test_split", seed=0, trial=1)
    order = np.random.default_rng([0, 99, 1]).permutation(256)
    ids = np.asarray(load_run_table("regmix_60m_test").run_ids, dtype=object)
    assert list(plain.yardstick.run_ids) == list(ids[np.sort(order[:64])])


def test_a_held_out_table_that_repeats_training_mixtures_is_named_in_a_warning(tmp_path, caplog):

    files = _own_tables(tmp_path)
    for kind in ("mixtures", "metrics"):  # three of the swarm's runs, run again in the held-out table
        swarm, held = pd.read_csv(files["my_swarm"][kind]), pd.read_csv(files["my_heldout"][kind])
        pd.concat([held, swarm.iloc[:3].assign(index=[500, 501, 502])]).to_csv(files["my_heldout"][kind], index=False)
    own = tuple(OwnTable(**t) for t in files.values())
    with caplog.at_level("WARNING", logger="mixmin.search"):
        trial_runs("my_swarm", ["my_heldout"], test_fraction=0, yardstick="auto", own=own)
    assert "my_heldout: 3 of its 30 runs repeat a mixture of my_swarm's runs" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mixmin.search"):
        (tmp_path / "plain").mkdir()
        plain = tuple(OwnTable(**t) for t in _own_tables(tmp_path / "plain").values())
        trial_runs("my_swarm", ["my_heldout"], test_fraction=0, yardstick="auto", own=plain)
    assert "repeat a mixture" not in caplog.text


def test_regmix_1m_run_reports_spearman_and_mixture_and_resumes():
    assert main(["run", REGMIX, *FAST]) == 0
    store = RunStore()
    run = _only_run(store)
    assert run["status"] == "done"
    results = store.results(run["run_id"])
    value = results.set_index(["method", "metric"])["value"]
    # RegMix's LightGBM on its own 1M runs: the paper reports Spearman ~0.9+ for Pile-CC
    assert value["regmix", "spearman/regmix_1m_test"] > 0.95
    assert value["regmix", "spearman/regmix_60m_test"] > 0.9 and value["regmix", "spearman/regmix_1b_test"] > 0.8
    assert 0 < value["regmix", "surrogate:own_prediction_loss"] < value["natural", "surrogate:yardstick_loss"] + 1
    # the chosen mixture puts most weight on Pile-CC itself and beats the natural mixture on the
    # yardstick: a ridge model fitted on the 256 held-out 1M runs alone, with its own held-out Spearman
    saved = MixtureResult.from_dict(json.loads(
        list_mixtures(store.run_dir(run["run_id"]), Problem("pile_cc", 0))["regmix"].read_text()))
    assert saved.top(1)[0][0] == "pile_cc" and saved.meta["compute"] == 512.0
    assert value["regmix", "surrogate:yardstick_loss"] < value["natural", "surrogate:yardstick_loss"]
    assert value["natural", "yardstick_spearman"] == value["regmix", "yardstick_spearman"] > 0.95
    # ... and says how far to trust its numbers: RegMix's mixture is predicted beyond every run it saw
    assert value["natural", "yardstick_rmse"] == value["regmix", "yardstick_rmse"] > 0
    assert value["regmix", "yardstick_beyond_runs"] > value["regmix", "yardstick_rmse"]
    assert value["natural", "yardstick_beyond_runs"] == 0.0
    assert "surrogate_loss" not in set(results["metric"])
    # random search = 17 lookups (one per source); its measured loss is a real run's loss
    rs = results[results["method"] == "random_search"]
    assert set(rs["proxy_compute"]) == {17.0}
    train = load_run_table("regmix_1m_train").target("pile_cc")
    assert np.isclose(train, value["random_search", "measured_loss"]).any()
    assert value["random_search", "measured_loss"] >= value["random_search", "best_run_loss"]
    assert set(results[results["method"] == "natural"]["proxy_compute"]) == {0.0}
    assert set(results["final_compute"]) == {0.0}
    summary = read_summary(store.run_dir(run["run_id"]))
    assert {"regmix", "natural", "random_search"} <= set(summary["method"])
    folder = store.run_dir(run["run_id"]) / "mixtures"
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main(["run", REGMIX, *FAST]) == 0  # second run: every unit is skipped
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert (store.run_dir(run["run_id"]) / "sources.csv").read_text().startswith("source,title,category")


def test_a_resumed_run_names_regmix_s_own_prediction_as_a_loss(monkeypatch):
    """Before stop 25 RegMix's own prediction had one name for a loss (read as higher-is-better) and a score; a run
    resumed on mixtures saved then mixed both names."""
    from jobs.pipelines import run_table

    real = run_table.orient

    def before(metrics, higher_is_better):  # what the mixtures of such a run hold
        out = real(metrics, higher_is_better)
        if "surrogate:own_prediction_loss" in out:
            out["surrogate:own_prediction"] = out.pop("surrogate:own_prediction_loss")
        return out

    monkeypatch.setattr(run_table, "orient", before)
    assert main(["run", REGMIX, *FAST, "--set", "methods=[natural, regmix]"]) == 0
    monkeypatch.setattr(run_table, "orient", real)
    assert main(["run", REGMIX, *FAST, "--set", "methods=[natural, regmix]"]) == 0  # resumed: no unit runs again
    metrics = set(RunStore().results(_only_run(RunStore())["run_id"])["metric"])
    assert "surrogate:own_prediction_loss" in metrics and "surrogate:own_prediction" not in metrics


def test_olmix_run_with_a_held_out_split():
    assert main(["run", OLMIX, *FAST, "--set", "targets=[hellaswag:rc::olmes]"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    value = results.set_index(["method", "metric"])["value"]
    assert -1 <= value["regmix", "spearman/test_split"] <= 1
    assert set(results[results["method"] == "random_search"]["proxy_compute"]) == {24.0}
    assert -1 <= value["regmix", "yardstick_spearman"] <= 1  # fitted on the 32 held-out runs only


def test_regmix_subset_and_paper_preset():
    assert main(["run", REGMIX, *FAST, "--set", "methods=[regmix]", "--set", "regmix_runs=7",
                 "--set", "preset=mixmin-paper", "--set", "test_tables=[regmix_1m_test]"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    assert set(results["proxy_compute"]) == {7.0} and set(results["method"]) == {"regmix"}


def test_regmix_on_few_runs_with_the_auto_preset():
    """17 runs (random search's budget): the faithful LightGBM cannot split and predicts a constant, a mixture
    chosen arbitrarily (a run that completed as if RegMix had chosen); 'auto' falls back to the paper's small
    regressor."""
    import json

    assert main(["run", REGMIX, *FAST, "--set", "methods=[regmix]", "--set", "regmix_runs=17",
                 "--set", "preset=auto", "--set", "test_tables=[regmix_1m_test]"]) == 0
    run = _only_run(RunStore())
    mixture = json.loads(next((RunStore().run_dir(run["run_id"]) / "mixtures").glob("*regmix.json")).read_text())
    assert mixture["success"] is True and mixture["meta"]["preset"] == "mixmin-paper", mixture["message"]


def test_bo_method_on_the_1m_table():
    assert main(["run", REGMIX, *FAST, "--set", "methods=[bo,random_search]", "--set", "bo_budget=12",
                 "--set", "bo_init=6", "--set", "test_tables=[regmix_1m_test]"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    value = results.set_index(["method", "metric"])["value"]
    assert set(results[results["method"] == "bo"]["proxy_compute"]) == {12.0}
    assert value["bo", "measured_loss"] >= value["bo", "best_run_loss"]
    assert 0.3 < value["bo", "spearman/regmix_1m_test"] <= 1


def test_regmix_bo_config_scores_every_method_on_a_yardstick_none_was_fit_on():
    """Issue 11's acceptance: RegMix, random search, BO and natural on one yardstick with its Spearman."""
    assert main(["run", REGMIX_BO, *FAST, "--set", "bo_budget=6"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    value = results.set_index(["method", "metric"])["value"]
    methods = ["natural", "random_search", "regmix", "bo"]
    for method in methods:
        assert np.isfinite(value[method, "surrogate:yardstick_loss"])
    spearman = {value[m, "yardstick_spearman"] for m in methods}
    assert len(spearman) == 1 and spearman.pop() > 0.8  # one yardstick per trial, fitted on 64 held-out 60M runs
    # measured where the choice is a measured run
    for method in ("random_search", "bo"):
        assert value[method, "measured_loss"] >= value[method, "best_run_loss"]
    # multi-fidelity BO bought 1M runs itself (none up front) within its budget of 6 60M runs
    bo = results[results["method"] == "bo"]
    assert value["bo", "runs_bought/1M"] >= 1 and value["bo", "runs_bought/60M"] >= 2
    spent = value["bo", "runs_bought/60M"] + value["bo", "runs_bought/1M"] * 0.016667
    assert bo["proxy_compute"].iloc[0] == pytest.approx(spent, rel=1e-3) and spent <= 6 + 1e-6


@pytest.mark.parametrize("overrides,match", [
    (["targets=[pile]"], "target 'pile' is not a metric"),
    (["targets=[pile_c]"], r"target 'pile_c' is not a metric .*did you mean \['pile_cc'"),
    (["targets=pile_cc"], r"targets: must be a list of strings, e.g. \[pile_cc\]; got 'pile_cc'"),
    (["methods=[grid]"], "methods: items must be one of"),
    (["methods=[]"], "methods: must list at least one entry"),
    (["random_search_trials=600"], "random_search_trials: must be at most the 512 training runs"),
    (["train_table=pile"], r"train_table: must be one of .*, or a name declared under `tables:` \(see the README\)"),
    (["test_tables=[olmix_dclm]"],
     r"test_tables: table 'olmix_dclm' has other sources than 'regmix_1m_train': only it has \['adult_content'"),
    (["test_fraction=0.95"], r"test_fraction: must be < 0.9"),
    (["top_k=200", "n_candidates=100"], "top_k: must be at most n_candidates"),
    (["preset=fast"], "preset: must be one of"),
    (["trials=0"], "trials: must be >= 1"),
    (["bo_fidelity_tables=[pile_1m]"], r"bo_fidelity_tables: items must be one of .*, or a name declared under `tables:`"),
    (["bo_fidelity_tables=[olmix_dclm]"], "bo_fidelity_tables: table 'olmix_dclm' has other sources"),
    (["bo_fidelity_tables=[regmix_60m_test]"], "bo_fidelity_tables: 'regmix_60m_test' .* must be smaller-scale"),
    (["bo_fidelity_tables=[regmix_1m_test]", "train_table=regmix_60m_test", "test_tables=[]",
      "yardstick=regmix_1m_test"], "must hold other runs at the training scale 60M"),
    (["yardstick=test_split"], "yardstick: no runs at scale 1M are held out"),
    (["yardstick=nothing"], "yardstick: must be one of"),
    (["bo_budget=513"], "bo_budget: must be at most the 512 training runs"),
    # RegMix scored on the runs it was fitted on (a Spearman of 0.986 on 256 runs, 192 of them its own)
    (["test_tables=[regmix_1m_train, regmix_1b_test]"], "test_tables: 'regmix_1m_train' is the train_table"),
    (["regmix_runs=1", "methods=[regmix]"], "regmix_runs: RegMix fits a regression model on its runs, so it needs at"),
    # (that one was fit_regressor's error at run time)
    # it ran, and chose the mean of arbitrary candidates
    (["regmix_runs=17", "preset=faithful"], r"preset: 'faithful' cannot fit RegMix's regressor on 17 runs .*use preset"),
    # 40 to 46 runs passed, and its early stopping left it 35 to 40 rows: a constant regressor
    (["regmix_runs=46", "preset=faithful"], r"cannot fit RegMix's regressor on 46 runs \(its LightGBM needs at least 47"),
    # two tables at one scale failed in the run, after natural and random search
    (["bo_fidelity_tables=[regmix_1m_test, regmix_1m_test]", "train_table=regmix_60m_test", "test_tables=[]",
      "yardstick=test_split", "test_fraction=0.25", "methods=[bo]"], "must not repeat an item|each must be at a scale of its own"),
    (["bo_init=20", "methods=[bo]"], r"bo_init: BO's 20 random first runs exceed its budget of 17"),  # silently capped
])
def test_config_errors_leave_no_run(overrides, match, capsys):
    args = ["run", REGMIX]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    assert re.search(match, capsys.readouterr().err)
    assert RunStore().list_runs() == []


def _own_tables(tmp_path, *, score: bool = False) -> dict:
    """Olmix's real DCLM swarm written as a user's own tables in RegMix's layout: 100 runs to search, 27 held out.
    ``score``: the metric negated (a score where higher is better)."""

    olmix = load_run_table("olmix_dclm")
    metric = olmix.target("arc_easy:rc::olmes")
    files = {}
    for name, rows in (("my_swarm", np.arange(100)), ("my_heldout", np.arange(100, 127))):
        mix = pd.DataFrame(olmix.weights[rows], columns=list(olmix.source_names))
        mix.insert(0, "index", rows)
        values = -metric[rows] if score else metric[rows]
        met = pd.DataFrame({"index": rows, "arc_easy_bpb": values})
        mix.to_csv(tmp_path / f"{name}_mix.csv", index=False)
        met.to_csv(tmp_path / f"{name}_metrics.csv", index=False)
        files[name] = {"name": name, "mixtures": str(tmp_path / f"{name}_mix.csv"),
                       "metrics": str(tmp_path / f"{name}_metrics.csv"), "scale": "30M", "higher_is_better": score}
    return files


def _own_config(tmp_path, files: dict, **fields) -> str:
    import yaml

    config = {"pipeline": "run_table", "name": "own", "tables": list(files.values()), "train_table": "my_swarm",
              "test_tables": ["my_heldout"], "yardstick": "my_heldout", "targets": ["arc_easy_bpb"],
              "methods": ["natural", "random_search", "regmix"], "trials": 2, "n_candidates": 2000, "top_k": 16,
              **fields}
    path = tmp_path / f"own{len(list(tmp_path.glob('own*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # as a user writes it: name, mixtures, metrics
    return str(path)


def test_a_run_table_of_your_own_runs_every_method(tmp_path):
    """A researcher's own swarm (mixtures + metrics CSVs, as RegMix publishes them) needs no published table:
    `tables:` declares it and the other fields name it like a published one."""
    files = _own_tables(tmp_path)
    assert main(["run", _own_config(tmp_path, files), "--quiet"]) == 0
    (run,) = RunStore().list_runs()
    run_dir = RunStore().run_dir(run["run_id"])
    summary = read_summary(run_dir)
    measured = summary[(summary.method == "random_search") & (summary.metric == "measured_loss")]
    assert len(measured) == 1 and np.isfinite(measured["mean"]).all()
    assert set(summary.method) == {"natural", "random_search", "regmix"}
    assert "surrogate:yardstick_loss" in set(summary.metric)
    assert "my_swarm" in (run_dir / "sources.csv").read_text()  # its category: your table, not 'my'
    result = MixtureResult.from_dict(json.loads(
        list_mixtures(run_dir, Problem("arc_easy_bpb", 0))["random_search"].read_text()))
    assert result.meta["table"] == "my_swarm" and result.meta["yardstick_runs"] == "my_heldout"
    assert json.loads((run_dir / "config.json").read_text())["preset"] == "auto"  # a small swarm's RegMix can learn
    summary = RunStore().get_run(run["run_id"])["summary"]  # the Compare page opens on the score every method has
    assert summary["metric"] == "surrogate:yardstick_loss" and set(summary["targets"]["arc_easy_bpb"]) == {
        "natural", "random_search", "regmix"}
    assert main(["resume", run["run_id"], "--quiet"]) == 0  # config.json holds each table's keys sorted: same id
    assert len(RunStore().list_runs()) == 1
    # an edited table is another run, not a resume of the first
    (tmp_path / "my_swarm_metrics.csv").write_text((tmp_path / "my_swarm_metrics.csv").read_text() + "\n")
    assert main(["run", str(tmp_path / "own0.yaml"), "--quiet"]) == 0
    assert len(RunStore().list_runs()) == 2


def test_own_tables_checks_only_what_its_methods_spend_and_fidelity_tables_must_share_mixtures(tmp_path, capsys):
    """random_search_trials' default (one per source, 24) refused a pool of 20 runs for a config without random
    search; a fidelity table sharing none of the pool's mixtures (a reviewer's: rounded to 3 digits) left BO to run
    without it, and said nothing."""
    files = _own_tables(tmp_path)
    small = _own_config(tmp_path, files, methods=["natural", "regmix"], test_fraction=0.8, trials=1)
    assert main(["run", small, "--dry-run"]) == 0
    capsys.readouterr()
    assert main(["run", _own_config(tmp_path, files, test_fraction=0.8, trials=1), "--dry-run"]) == 2
    assert "random_search_trials: must be at most the 20 training runs with a measured target; got 24 (its default: " \
           "one per source, 24)" in capsys.readouterr().err
    mixtures = pd.read_csv(files["my_swarm"]["mixtures"])
    sources = [c for c in mixtures.columns if c != "index"]
    other = mixtures.assign(**dict(zip(sources, mixtures[sources[::-1]].to_numpy().T)))  # other mixtures, same runs
    other.to_csv(tmp_path / "other_mix.csv", index=False)
    files["small"] = {**files["my_swarm"], "name": "small", "mixtures": str(tmp_path / "other_mix.csv"), "scale": "1M"}
    config = _own_config(tmp_path, files, methods=["natural", "bo"], bo_fidelity_tables=["small"], bo_budget=10)
    assert main(["run", config, "--dry-run"]) == 2
    assert "bo_fidelity_tables: 'small' holds none of train_table 'my_swarm''s mixtures" in capsys.readouterr().err
    unmeasured = pd.read_csv(files["my_swarm"]["metrics"]).assign(arc_easy_bpb=float("nan"))  # the same mixtures,
    unmeasured.to_csv(tmp_path / "unmeasured.csv", index=False)                           # no measured target
    files["small"] = {**files["my_swarm"], "name": "small", "metrics": str(tmp_path / "unmeasured.csv"), "scale": "1M"}
    config = _own_config(tmp_path, files, methods=["natural", "bo"], bo_fidelity_tables=["small"], bo_budget=10)
    assert main(["run", config, "--dry-run"]) == 2
    assert "holds none of train_table 'my_swarm''s mixtures with a measured 'arc_easy_bpb'" in capsys.readouterr().err
    assert RunStore().list_runs() == []


def test_a_metric_named_like_a_score_in_a_loss_table_is_said_and_counts_are_never_negative(tmp_path, caplog):
    """A table of your own with an `acc` metric and no higher_is_better was minimised without a word; runs_bought's
    interval reached -182 runs."""
    from mixmin_core.solver.results import metric_range

    files = _own_tables(tmp_path)
    metrics = pd.read_csv(files["my_swarm"]["metrics"]).rename(columns={"arc_easy_bpb": "acc"})  # named as a score
    metrics.to_csv(files["my_swarm"]["metrics"], index=False)
    table = load_run_table("my_swarm", own=own_tables(list(files.values())))
    with caplog.at_level("WARNING", logger="mixmin.search"):
        table.loss("acc")
        table.loss("acc")
    said = [r.getMessage() for r in caplog.records if "higher_is_better: true" in r.getMessage()]
    assert len(said) == 1 and "'acc' is minimised" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="mixmin.search"):
        load_run_table("olmix_dclm").loss("arc_easy:rc::olmes")  # bits per byte: a loss, nothing said
    assert not [r for r in caplog.records if "higher_is_better" in r.getMessage()]
    assert metric_range("runs_bought/1M") == (0.0, np.inf)


def test_a_held_out_table_with_an_extra_source_at_0_in_every_run_is_the_same_family(tmp_path):
    """A held-out table written with one more column, 0 in every run, was refused as "other sources"."""
    files = _own_tables(tmp_path)
    held = pd.read_csv(files["my_heldout"]["mixtures"]).assign(extra=0.0)
    held.to_csv(files["my_heldout"]["mixtures"], index=False)
    assert main(["run", _own_config(tmp_path, files, trials=1, methods=["natural", "regmix"]), "--quiet"]) == 0
    summary = read_summary(RunStore().run_dir(RunStore().list_runs()[0]["run_id"]))
    assert np.isfinite(summary.loc[summary.metric == "surrogate:yardstick_loss", "mean"]).all()


def test_a_held_out_table_with_an_extra_source_a_run_used_is_another_family(tmp_path, capsys):
    files = _own_tables(tmp_path)
    held = pd.read_csv(files["my_heldout"]["mixtures"])
    held.assign(extra=[0.005] + [0.0] * (len(held) - 1)).to_csv(files["my_heldout"]["mixtures"], index=False)
    assert main(["run", _own_config(tmp_path, files, trials=1), "--dry-run"]) == 2
    assert "has other sources than 'my_swarm': only it has ['extra']" in capsys.readouterr().err


def test_a_score_table_of_your_own_is_maximised(tmp_path):
    """higher_is_better: true (accuracy): the same runs, the metric negated, give the same choices and the scores
    negated, reported as *_score."""
    loss_dir, score_dir = tmp_path / "loss", tmp_path / "score"
    loss_dir.mkdir(), score_dir.mkdir()
    results = []
    for folder, score in ((loss_dir, False), (score_dir, True)):
        assert main(["run", _own_config(folder, _own_tables(folder, score=score), name=f"own-{score}",
                                        methods=["random_search", "regmix"]), "--quiet"]) == 0
    runs = {r["name"]: RunStore().run_dir(r["run_id"]) for r in RunStore().list_runs()}
    loss, score = read_summary(runs["own-False"]), read_summary(runs["own-True"])
    for method, metric in (("random_search", "measured"), ("regmix", "surrogate:yardstick")):
        a = loss[(loss.method == method) & (loss.metric == f"{metric}_loss")]["mean"].item()
        b = score[(score.method == method) & (score.metric == f"{metric}_score")]["mean"].item()
        assert b == pytest.approx(-a, rel=1e-6)
        results.append(b)
    assert all(np.isfinite(results))


@pytest.mark.parametrize("change,match", [
    (lambda t: t["my_swarm"].pop("scale"), r"tables\[\d\]: needs \['scale'\]"),
    (lambda t: t["my_swarm"].update(name="regmix_1m_test") or {"train_table": "regmix_1m_test"},
     r"tables\[\d\]\.name: 'regmix_1m_test' is taken"),
    (lambda t: t["my_heldout"].update(name="my_swarm") or {"test_tables": [], "yardstick": "test_split",
                                                           "test_fraction": 0.25}, r"tables\[1\]\.name: 'my_swarm' is taken"),
    (lambda t: t["my_swarm"].update(scale="big"), r"tables\[\d\]\.scale must be a positive model size such as '60M'.*got 'big'"),
    (lambda t: t["my_swarm"].update(scale="0M"), r"tables\[\d\]\.scale must be a positive model size.*got '0M'"),
    (lambda t: t["my_swarm"].update(scale="-5M"), r"tables\[\d\]\.scale must be a positive model size.*got '-5M'"),
    (lambda t: t["my_swarm"].update(scale="nanM"), r"tables\[\d\]\.scale must be a positive model size.*got 'nanM'"),
    (lambda t: t["my_swarm"].update(name="=cmd") or {"train_table": "=cmd"}, r"tables\[\d\]\.name.*'=cmd'"),
    (lambda t: t["my_swarm"].update(mixtures="/nonexistent/mix.csv"), r"mixtures file /nonexistent/mix.csv not found"),
    (lambda t: t["my_heldout"].update(higher_is_better=True), r"disagree on higher_is_better"),
    (lambda t: t["my_swarm"].update(extra=1), r"tables\[0\]: unknown key\(s\) \['extra'\]"),
    (lambda t: t["my_swarm"].update(scale=30), r"tables\[0\]\.scale: must be a string; got 30"),
    (lambda t: Path(t["my_swarm"]["metrics"]).write_bytes(b"index,a\n1,2,3,4\n\xff\xfe"), r"cannot be read as a CSV"),
    # mistakes a researcher's own files hold (each was a later failure, a made-up source, or a misleading message)
    (lambda t: _rewrite(t["my_swarm"]["mixtures"], lambda f: f.iloc[:, :2]), r"1 source column\(s\) .*at least 2"),
    (lambda t: t["my_swarm"].update(metrics=t["my_swarm"]["mixtures"]), r"named for both mixtures and metrics"),
    (lambda t: _rewrite(t["my_swarm"]["mixtures"], lambda f: f.rename(columns={f.columns[2]: f.columns[1]})),
     r"column names must be unique; repeated"),
    (lambda t: _rewrite(t["my_swarm"]["metrics"], lambda f: f, sep=";"), r"not comma-separated: write it with commas"),
    (lambda t: _rewrite(t["my_swarm"]["metrics"], lambda f: f.iloc[:0]), r"has a header but no runs"),
    (lambda t: _rewrite(t["my_swarm"]["metrics"], lambda f: f.assign(arc_easy_bpb=np.nan)),
     r"targets: 'arc_easy_bpb' has no measured value in train_table 'my_swarm'"),
    (lambda t: _rewrite(t["my_swarm"]["metrics"], lambda f: f.assign(arc_easy_bpb=3.0)),  # every method tied at 3
     r"targets: 'arc_easy_bpb' is 3 in every run of train_table 'my_swarm': no mixture does better"),
    (lambda t: _rewrite(t["my_swarm"]["metrics"], lambda f: f.assign(**{"=HYPERLINK(1)": 1.0})),
     r"my_swarm_metrics.csv: metrics: names must not start with ="),
    (lambda t: _rewrite(t["my_swarm"]["metrics"], lambda f: f.assign(index=f["index"] + 1)),  # counted from 1
     (r"'index' columns are off by one: 1 metrics row\(s\) name no run \(e.g. \[100\]\), while every metrics row names a "
      r"run with its index -1")),
    (lambda t: t["my_heldout"].update(mixtures=t["my_swarm"]["mixtures"], metrics=t["my_swarm"]["metrics"]),
     r"table 'my_heldout': each of its \d+ runs repeats a mixture of the runs of 'my_swarm' \(the same files\?\)"),
    (lambda t: _rewrite(t["my_heldout"]["mixtures"], lambda f: f.rename(columns={f.columns[1]: "renamed"})),
     r"has other sources than 'my_swarm': only it has \['renamed'\], and it lacks"),
])
def test_bad_own_tables_are_one_error_before_any_run(tmp_path, capsys, change, match):
    files = _own_tables(tmp_path)
    fields = change(files)
    fields = fields if isinstance(fields, dict) else {}
    assert main(["run", _own_config(tmp_path, files, **fields), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(match, err[0]), err
    assert RunStore().list_runs() == []


def _rewrite(path: str, change, sep: str = ",") -> None:

    change(pd.read_csv(path)).to_csv(path, index=False, sep=sep)


def test_own_tables_with_sources_in_another_order_or_a_scale_written_otherwise_are_one_family(tmp_path, caplog):
    """The held-out runs' sources in another column order were refused as "other sources"; 30m beside 30M was
    another scale (scale labels compared as text)."""
    files = _own_tables(tmp_path)
    _rewrite(files["my_heldout"]["mixtures"], lambda f: f[["index", *reversed(f.columns[1:])]])
    files["my_heldout"]["scale"] = "30m"
    _rewrite(files["my_heldout"]["metrics"], lambda f: pd.concat([f, f.tail(1).assign(index=10_000)]))  # a run no more
    with caplog.at_level("WARNING", logger="mixmin.search"):
        runs = trial_runs("my_swarm", ["my_heldout"], test_fraction=0, yardstick="auto",
                          own=tuple(OwnTable(**t) for t in files.values()))
        trial_runs("my_swarm", ["my_heldout"], test_fraction=0, yardstick="auto",
                   own=tuple(OwnTable(**t) for t in files.values()))
    assert caplog.text.count("1 of its 28 rows name no run of") == 1  # said once, not per load
    assert runs.yardstick.name == "my_heldout" and runs.yardstick.source_names == runs.pool.source_names
    olmix = load_run_table("olmix_dclm")
    np.testing.assert_allclose(runs.yardstick.weights, olmix.weights[100:], atol=1e-6)  # reordered back


def test_an_unknown_table_name_lists_your_own_too(tmp_path, capsys):
    files = _own_tables(tmp_path)
    assert main(["run", _own_config(tmp_path, files, train_table="my_swarn"), "--dry-run"]) == 2
    assert re.search(r"train_table: must be one of \[.*'admire_7b', 'my_swarm', 'my_heldout'\]",
                     capsys.readouterr().err)
    from jobs.pipelines.run_table import RunTableConfig

    declared = {n: f.metadata for n, f in RunTableConfig.__dataclass_fields__.items()}
    assert "my_swarm" not in declared["test_tables"]["items"]["choices"]  # another config's names stay its own
    assert "my_swarm" not in declared["train_table"]["choices"]


def test_sources_file_quotes_names_and_a_damaged_one_is_one_error(tmp_path):
    """A source named `a,b` was written unquoted (the row read back shifted); a garbage sources.csv was a
    UnicodeDecodeError traceback in export."""
    from jobs.pipelines.run_table import _write_sources
    from mixmin_core.runs.layout import read_sources, sources_path
    from mixmin_core.search.run_tables import RunTable

    table = RunTable("mine", np.full((2, 2), 0.5, dtype=np.float32), np.zeros((2, 1)), ("a,b", "c"), ("loss",),
                     ("r0", "r1"))
    _write_sources(tmp_path, table)
    frame = read_sources(tmp_path)
    assert list(frame["source"]) == ["a,b", "c"] and list(frame["category"]) == ["mine", "mine"]
    sources_path(tmp_path).write_bytes(b"\xff\xfe\x00garbage\x81")
    with pytest.raises(InputError, match=r"sources.csv: cannot read it as CSV"):
        read_sources(tmp_path)


def test_a_config_without_tables_keeps_the_run_id_it_had_before_the_field_existed():
    """Adding `tables: []` to every run-table config changed every id: old runs could not resume, re-runs started over."""
    from jobs.__main__ import resolve_config
    from jobs.config import run_id_for

    _, name, _, resolved = resolve_config(REGMIX, [])
    before = {k: v for k, v in resolved.items() if k != "tables"}  # the config as the previous version resolved it
    assert run_id_for(name, resolved) == run_id_for(name, before)
    _, _, _, mine = resolve_config(REGMIX, ["tables=[{name: t, mixtures: a.csv, metrics: b.csv, scale: 1M}]"])
    assert run_id_for(name, mine) != run_id_for(name, resolved)


def test_a_minimal_own_table_config_is_not_scored_on_regmix_tables(tmp_path, capsys):
    """test_tables defaulted to RegMix's published held-out runs: an own swarm with other sources failed with
    "has other sources than", and one with the Pile's sources was silently scored on RegMix's runs."""
    import yaml

    files = _own_tables(tmp_path)
    config = {"pipeline": "run_table", "name": "minimal", "tables": [files["my_swarm"]], "train_table": "my_swarm",
              "targets": ["arc_easy_bpb"], "methods": ["natural", "random_search"], "trials": 1}
    path = tmp_path / "minimal.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["run", str(path), "--dry-run"]) == 2  # no held-out runs at all: say how to get some
    assert "set test_fraction > 0" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({**config, "test_fraction": 0.25}, sort_keys=False))
    assert main(["run", str(path), "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["test_tables"] == []
    assert main(["run", str(path), "--quiet"]) == 0
    # written out, RegMix's tables are kept (and these sources are not theirs)
    path.write_text(yaml.safe_dump({**config, "test_fraction": 0.25, "test_tables": ["regmix_1m_test"]}))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "table 'regmix_1m_test' has other sources than 'my_swarm'" in capsys.readouterr().err


def test_a_run_left_unmeasured_beside_a_metrics_row_of_another_batch_is_no_shift(tmp_path, caplog):
    """The off-by-one check refused a table whose last run crashed (no metrics) while the metrics file held a run of
    the next batch: that is no shifted index."""
    files = _own_tables(tmp_path)
    _rewrite(files["my_swarm"]["metrics"], lambda f: f.assign(index=f["index"].where(f["index"] != 99, 500)))
    with caplog.at_level("WARNING", logger="mixmin.search"):
        table = load_run_table("my_swarm", own=tuple(OwnTable(**t) for t in files.values()))
    assert table.n_runs == 100 and np.isnan(table.target("arc_easy_bpb")[99])
    assert "1 of 100 runs have no row in" in caplog.text and "1 of its 100 rows name no run" in caplog.text


def test_a_seed_column_is_no_source_and_a_source_no_run_used_is_said(tmp_path, caplog):
    """A reviewer's repeated runs carried a `seed` column, read as a source (and the rows then summed past 1); a
    source at 0 in every run was taken silently."""
    files = _own_tables(tmp_path)
    _rewrite(files["my_swarm"]["mixtures"], lambda f: f.assign(seed=7, unused=0.0))
    _rewrite(files["my_swarm"]["metrics"], lambda f: f.assign(seed=7))
    with caplog.at_level("WARNING", logger="mixmin.search"):
        table = load_run_table("my_swarm", own=tuple(OwnTable(**t) for t in files.values()))
    assert "seed" not in table.source_names and "seed" not in table.metric_names
    assert table.source_names[-1] == "unused" and len(table.source_names) == 25
    assert "column(s) 'unused' are 0 in every run" in caplog.text


def test_a_setting_column_and_checkpoints_as_rows_are_said(tmp_path, caplog):
    """A reviewer's `lr` column (0.0003 in every run; rows then summed to 1.0003, within tolerance) became a sixth
    source silently, and every checkpoint of a run as a row of its own was read as seeds of one mixture."""
    files = _own_tables(tmp_path)
    _rewrite(files["my_swarm"]["mixtures"], lambda f: pd.concat([f, f.assign(index=f["index"] + 1000)]).assign(lr=3e-4))
    _rewrite(files["my_swarm"]["metrics"], lambda f: pd.concat([f, f.assign(index=f["index"] + 1000)]))
    with caplog.at_level("WARNING", logger="mixmin.search"):
        table = load_run_table("my_swarm", own=tuple(OwnTable(**t) for t in files.values()))
    assert table.n_runs == 200 and table.source_names[-1] == "lr"
    assert "column(s) 'lr' hold the same weight in every run (0.0003)" in caplog.text
    assert "its 200 runs hold 100 distinct mixtures" in caplog.text


def test_spaces_around_a_column_name_and_a_diverged_run_are_handled_and_said(tmp_path, caplog):
    """A reviewer's "books " kept its space as a source name, and a loss of inf was read as not measured unsaid."""
    files = _own_tables(tmp_path)
    first = load_run_table("my_swarm", own=tuple(OwnTable(**t) for t in files.values())).source_names[0]
    _rewrite(files["my_swarm"]["mixtures"], lambda f: f.rename(columns={first: f" {first} "}))
    _rewrite(files["my_swarm"]["metrics"], lambda f: f.assign(arc_easy_bpb=f["arc_easy_bpb"].where(f["index"] != 3, np.inf)))
    with caplog.at_level("WARNING", logger="mixmin.search"):
        table = load_run_table("my_swarm", own=tuple(OwnTable(**t) for t in files.values()))
    assert table.source_names[0] == first and np.isnan(table.target("arc_easy_bpb")[3])
    assert "1 value(s) are infinite (diverged runs?), e.g. column 'arc_easy_bpb'" in caplog.text
    _rewrite(files["my_swarm"]["mixtures"], lambda f: f.assign(**{f"{first}  ": 0.0}))
    with pytest.raises(InputError, match=rf"column names repeat once their surrounding spaces are dropped: \['{first}'\]"):
        load_run_table("my_swarm", own=tuple(OwnTable(**t) for t in files.values()))


def test_run_ids_beyond_int64_are_checked_for_an_offset_without_a_crash(tmp_path):
    """Ids above 2**63 (read as uint64) ended the shift check in an OverflowError traceback."""
    files = _own_tables(tmp_path)
    big = np.uint64(2**63)
    _rewrite(files["my_swarm"]["mixtures"], lambda f: f.assign(index=f["index"].astype(np.uint64) + big))
    _rewrite(files["my_swarm"]["metrics"], lambda f: f.assign(index=f["index"].astype(np.uint64) + big + np.uint64(1)))
    with pytest.raises(InputError, match=r"'index' columns are off by one"):
        load_run_table("my_swarm", own=tuple(OwnTable(**t) for t in files.values()))


def test_files_whose_index_pairs_different_run_ids_are_refused(tmp_path):
    """A reviewer sorted a metrics file by run id and renumbered its index: the join on index alone gave every run
    another's metrics, silently (the yardstick's Spearman fell from 0.62 to -0.07)."""
    files = _own_tables(tmp_path)
    mix, met = files["my_swarm"]["mixtures"], files["my_swarm"]["metrics"]
    ids = [f"run-{i:03d}" for i in range(100)]
    _rewrite(mix, lambda f: f.assign(run=ids))
    _rewrite(met, lambda f: f.assign(run=ids))
    own = tuple(OwnTable(**t) for t in files.values())
    assert load_run_table("my_swarm", own=own).n_runs == 100  # the same ids: fine
    _rewrite(met, lambda f: f.assign(run=ids[::-1]))  # renumbered after a sort: the index pairs other runs
    with pytest.raises(InputError, match=r"the 'index' column pairs runs whose 'run' differs in 100 of 100 rows "
                                         r"\(index 0 is 'run-000' in one and 'run-099' in the other\)"):
        load_run_table("my_swarm", own=own)
    # numeric ids with an empty cell read as floats (2.0 against 2): the same ids, which load
    _rewrite(mix, lambda f: f.assign(run=[None] + list(range(1, 100))))
    _rewrite(met, lambda f: f.assign(run=list(range(100))))
    assert load_run_table("my_swarm", own=own).n_runs == 100


def test_regmix_on_one_pool_fits_a_regressor_of_its_own_per_trial():
    """With a fixed yardstick table every trial searches the same pool: LightGBM's seed was 42 in every trial, so
    the regressor (and its Spearman, with an interval of zero width) was the same three times."""
    from mixmin_core.search.table_methods import choose_mixture, trial_runs

    runs = trial_runs("regmix_1m_train", ["regmix_1m_test"], test_fraction=0.0, yardstick="regmix_1m_test")
    rhos = {choose_mixture("regmix", runs, "pile_cc", rng=np.random.default_rng([0, trial, 2]), n_candidates=2000,
                           top_k=16).meta["metrics"]["spearman/regmix_1m_test"] for trial in range(3)}
    assert len(rhos) == 3 and min(rhos) > 0.95


def test_bo_on_one_pool_fits_its_gp_with_a_seed_of_its_own_per_trial(monkeypatch):
    """The GP's optimiser restarts drew from random_state 0 in every trial (its candidates and first runs did not)."""
    from mixmin_core.search import bayesopt
    from mixmin_core.search.table_methods import choose_mixture, trial_runs

    seeds, fit = [], bayesopt.fit_gp

    def spy(*args, seed=0, kernel=None, **kwargs):  # a fixed kernel (no optimiser) takes no seed
        seeds.extend([seed] if kernel is None else [])
        return fit(*args, seed=seed, kernel=kernel, **kwargs)

    monkeypatch.setattr(bayesopt, "fit_gp", spy)
    runs = trial_runs("regmix_1m_train", [], test_fraction=0.0, yardstick="regmix_1m_test")
    for trial in range(3):
        choose_mixture("bo", runs, "pile_cc", rng=np.random.default_rng([0, trial, 3]), bo_budget=8, bo_init=4)
    assert len(set(seeds)) == 3
