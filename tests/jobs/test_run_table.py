"""The run_table pipeline and the published run-table loaders, on the real RegMix / Olmix tables."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from jobs.__main__ import main
from mixmin_core.errors import InputError
from mixmin_core.runs.layout import Problem, list_mixtures
from mixmin_core.runs.store import RunStore
from mixmin_core.search.run_tables import load_run_table, prior_for
from mixmin_core.solver.results import MixtureResult

ROOT = Path(__file__).resolve().parents[2]
REGMIX = str(ROOT / "configs" / "regmix_1m.yaml")
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
    with pytest.raises(InputError, match="mixture rows must be non-negative and sum to 1"):
        load_run_table("olmix_dclm", mixtures_path=bad)


def _only_run(store):
    (run,) = store.list_runs()
    return run


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
    # the chosen mixture puts most weight on Pile-CC itself and beats the natural mixture on the yardstick
    saved = MixtureResult.from_dict(json.loads(
        list_mixtures(store.run_dir(run["run_id"]), Problem("pile_cc", 0))["regmix"].read_text()))
    assert saved.top(1)[0][0] == "pile_cc" and saved.meta["compute"] == 512.0
    assert value["regmix", "surrogate_loss"] < value["natural", "surrogate_loss"]
    # random search = 17 lookups (one per source); its measured loss is a real run's loss
    rs = results[results["method"] == "random_search"]
    assert set(rs["compute"]) == {17.0}
    train = load_run_table("regmix_1m_train").target("pile_cc")
    assert np.isclose(train, value["random_search", "measured_loss"]).any()
    assert value["random_search", "measured_loss"] >= value["random_search", "best_run_in_table"]
    assert set(results[results["method"] == "natural"]["compute"]) == {0.0}
    folder = store.run_dir(run["run_id"]) / "mixtures"
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main(["run", REGMIX, *FAST]) == 0  # second run: every unit is skipped
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert (store.run_dir(run["run_id"]) / "sources.csv").read_text().startswith("source,title,category")


def test_olmix_run_with_a_held_out_split():
    assert main(["run", OLMIX, *FAST, "--set", "targets=[hellaswag:rc::olmes]"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    value = results.set_index(["method", "metric"])["value"]
    assert -1 <= value["regmix", "spearman/test_split"] <= 1
    assert set(results[results["method"] == "random_search"]["compute"]) == {24.0}


def test_regmix_subset_and_paper_preset():
    assert main(["run", REGMIX, *FAST, "--set", "methods=[regmix]", "--set", "regmix_runs=7",
                 "--set", "preset=mixmin-paper", "--set", "test_tables=[regmix_1m_test]"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    assert set(results["compute"]) == {7.0} and set(results["method"]) == {"regmix"}


def test_bo_method_on_the_1m_table():
    assert main(["run", REGMIX, *FAST, "--set", "methods=[bo,random_search]", "--set", "bo_budget=12",
                 "--set", "bo_init=6", "--set", "test_tables=[regmix_1m_test]"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    value = results.set_index(["method", "metric"])["value"]
    assert set(results[results["method"] == "bo"]["compute"]) == {12.0}
    assert value["bo", "measured_loss"] >= value["bo", "best_run_in_table"]
    assert 0.3 < value["bo", "spearman/regmix_1m_test"] <= 1


@pytest.mark.slow
def test_multi_fidelity_bo_config_finds_the_best_60m_run():
    assert main(["run", str(ROOT / "configs" / "regmix_bo.yaml"), "--quiet", "--set", "trials=1",
                 "--set", "methods=[bo]"]) == 0
    results = RunStore().results(_only_run(RunStore())["run_id"])
    value = results.set_index(["method", "metric"])["value"]
    assert value["bo", "measured_loss"] == pytest.approx(value["bo", "best_run_in_table"])
    assert results["compute"].to_numpy() == pytest.approx(17 + 768 / 60, rel=1e-3)


@pytest.mark.parametrize("overrides,match", [
    (["targets=[pile]"], "target 'pile' is not a metric"),
    (["methods=[grid]"], "methods must be a non-empty subset"),
    (["random_search_trials=600"], "random_search_trials must be at most the 512 training runs"),
    (["train_table=pile"], "train_table must be one of"),
    (["test_tables=[olmix_dclm]"], "has sources"),
    (["test_fraction=0.95"], r"test_fraction must be in \[0, 0.9\)"),
    (["top_k=200", "n_candidates=100"], "top_k must be at most n_candidates"),
    (["preset=fast"], "preset must be one of"),
    (["trials=0"], "trials must be an integer >= 1"),
    (["bo_fidelity_tables=[pile_1m]"], "bo_fidelity_tables must be a list of known tables"),
    (["bo_fidelity_tables=[olmix_dclm]"], "bo_fidelity_tables: 'olmix_dclm' has other sources"),
    (["bo_budget=513"], "bo_budget must be at most the 512 training runs"),
])
def test_config_errors_leave_no_run(overrides, match, capsys):
    args = ["run", REGMIX]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    assert re.search(match, capsys.readouterr().err)
    assert RunStore().list_runs() == []
