"""The chemistry pipeline end to end: the CI miniature twice (resume), a user's table and MUV through
the same command with only the config changed, and bad input that never leaves a half-written run."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from jobs.__main__ import main
from jobs.config import build_dataclass, read_config_file
from jobs.pipelines import chem
from mixmin_core import MixtureResult, ProxyOutputs
from mixmin_core.chem.experiment import load_metadata, load_table, make_plan
from mixmin_core.chem.proxies import training_weights
from mixmin_core.errors import ConfigError
from mixmin_core.runs.layout import (
    Problem,
    list_mixtures,
    list_problems,
    mixture_path,
    sources_path,
    topk_path,
)
from mixmin_core.runs.store import RunStore
from tests.helpers import only_run

from .conftest import ASSAYS

ROOT = Path(__file__).resolve().parents[2]
CI = str(ROOT / "configs" / "chem_ci.yaml")
ALL_METHODS = {"mixmin", "natural", "balanced", "random_search", "regmix", "target_only", "ensemble"}


def test_ci_miniature_runs_end_to_end_and_resumes(capsys):
    assert main(["run", CI, "--quiet"]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    assert run["status"] == "done"
    targets = ["ATG_ERE_CIS_up", "ATG_ERa_TRANS_up"]
    problems = list_problems(run_dir)
    assert {(p.target, p.variant, p.trial) for p in problems} == {
        (t, v, k) for t in targets for v in ("sources-3", "sources-all") for k in (0, 1)}
    for p in problems:
        out = ProxyOutputs.load(run_dir / "proxy_outputs" / p.key)
        assert out.kind == "binary" and p.target not in out.source_names  # the target's own proxy is left out
        assert out.n_sources == (2 if p.variant == "sources-3" else 5)
        assert set(list_mixtures(run_dir, p)) == {"mixmin", "natural", "balanced", "random_search", "regmix"}
        mm = MixtureResult.from_dict(json.loads(list_mixtures(run_dir, p)["mixmin"].read_text()))
        nat = MixtureResult.from_dict(json.loads(list_mixtures(run_dir, p)["natural"].read_text()))
        assert mm.loss <= nat.loss + 1e-6  # MixMin minimises the objective natural is scored on
        topk = json.loads(topk_path(run_dir, p).read_text())
        assert topk["k"] == min(3, out.n_sources) and topk["sources"][0]["weight"] == pytest.approx(float(mm.weights.max()))
        first = topk["sources"][0]
        assert first["lower"] <= first["weight"] + 1e-6 and first["title"] and first["category"]
        assert 0 <= topk["boot_converged"] <= 1  # the Assays page says when its intervals did not converge
    # random search is compute-matched: one search proxy per source, same trees x rows as MixMin's proxies
    rs = json.loads(list_mixtures(run_dir, problems[0])["random_search"].read_text())
    assert rs["meta"]["n_trials"] == rs["meta"]["runs"]
    sources = pd.read_csv(sources_path(run_dir))
    assert list(sources.columns[:3]) == ["source", "title", "category"] and len(sources) == 6
    res = store.results(run["run_id"])
    assert set(res.method) == ALL_METHODS and set(res.metric) == {"ap"}
    counts = res.groupby(["target", "variant", "method"]).size()
    assert len(counts) == 2 * 2 * 7 and (counts == 2).all()
    assert res.value.between(0, 1).all() and res.proxy_compute.notna().all()
    spends = res.groupby("method").proxy_compute.min()  # proxy compute each method spent
    assert (spends[["mixmin", "random_search", "regmix", "ensemble"]] > 0).all()
    assert (spends[["natural", "balanced", "target_only"]] == 0).all()
    assert (res[res.method != "ensemble"].final_compute > 0).all()  # measured: trees x rows of each final model
    assert (res.max_final_rows == 2000).all()  # a capped run says so in its results
    # each final model's test positives (the Compare page names targets whose AP rests on a handful): one per problem
    finals = res[res.method != "ensemble"]
    assert (finals.groupby(["target", "variant", "trial"]).test_positives.nunique() == 1).all()
    assert (finals.test_positives >= 1).all() and res[res.method == "ensemble"].test_positives.isna().all()
    assert_search_spent_mixmins_compute(run_dir, res)
    for t in targets:  # search candidates are drawn fresh per trial
        draws = [json.loads(list_mixtures(run_dir, Problem(t, k, "sources-all"))["random_search"].read_text())
                 ["meta"]["candidates"] for k in (0, 1)]
        assert not np.allclose(draws[0], draws[1])
    summary = pd.read_csv(run_dir / "summary.csv")
    assert {"target", "variant", "method", "metric", "mean", "ci_low", "ci_high", "n_trials", "proxy_compute",
            "p_vs_mixmin", "improvement"} <= set(summary.columns)
    assert "overall" in set(summary.target)
    dataset = json.loads((run_dir / "dataset.json").read_text())
    assert dataset["n_dropped_assays"] == 0 and dataset["n_invalid_smiles"] == 0
    # per-assay splits: most of a target's test molecules sit, labelled for another assay, in a source's fit rows
    assert set(dataset["test_molecules_in_sources"]) == set(targets)
    assert all(0.5 < v <= 1 for v in dataset["test_molecules_in_sources"].values()), dataset
    splits = np.load(run_dir / "splits" / "trial0.npz")["codes"]
    assert splits.shape == (400, 6)

    units = {u["unit_id"]: u["finished_at"] for u in store.units(run["run_id"])}
    assert sum(u.startswith("proxy/") for u in units) == 2 * 6
    proxies = {p: p.stat().st_mtime_ns for p in (Path(store.root) / "proxy_cache").rglob("*.npz")}
    assert len(proxies) == 2 * 6
    n_results = len(res)
    capsys.readouterr()

    assert main(["run", CI, "--quiet"]) == 0  # second run: every unit is skipped
    assert {u["unit_id"]: u["finished_at"] for u in store.units(run["run_id"])} == units
    assert {p: p.stat().st_mtime_ns for p in (Path(store.root) / "proxy_cache").rglob("*.npz")} == proxies
    assert len(store.results(run["run_id"])) == n_results


def test_include_target_gives_a_target_the_same_result_whichever_other_targets_the_run_has(capsys):
    """A reviewer's case: with include_target, every target of the run was cross-fitted as every problem's source
    (one unit), so ATG_ERE_CIS_up's MixMin weight on ATG_ERa_TRANS_up was 0.1 beside it as a second target and 0.8
    alone, with other proxy compute. Only a problem's own target is cross-fitted, under its own unit."""
    runs = {}
    for n in (2, 1):
        assert main(["run", CI, "--quiet", "--set", "include_target=true", "--set", "trials=1",
                     "--set", "source_counts=[all]", "--set", f"n_targets={n}"]) == 0
        run = next(r for r in RunStore().list_runs() if r["run_id"] not in runs.values())
        runs[n] = run["run_id"]
    store = RunStore()
    target = "ATG_ERE_CIS_up"
    found = []
    for n, run_id in runs.items():
        run_dir = Path(store.run_dir(run_id))
        mixture = json.loads(list_mixtures(run_dir, Problem(target, 0, "sources-all"))["mixmin"].read_text())
        res = pd.read_csv(run_dir / "results.csv").query("target == @target")
        found.append((mixture["weights"], res.sort_values(["method", "metric"])[["method", "value", "proxy_compute"]]))
        if n == 2:  # the first run trains every unit (the second finds them in the store's proxy cache)
            units = [u["unit_id"] for u in store.units(run_id)]
            assert sorted(u for u in units if u.startswith("proxy-crossfit/")) == [
                "proxy-crossfit/trial0/ATG_ERE_CIS_up", "proxy-crossfit/trial0/ATG_ERa_TRANS_up"]
        shares = json.loads((run_dir / "dataset.json").read_text())["fit_molecules_in_each_source"]
        assert 0.3 < shares[target] < 1, shares  # per-assay splits: the proxies are scored on molecules they trained on
    assert found[0][0] == found[1][0]
    pd.testing.assert_frame_equal(found[0][1].reset_index(drop=True), found[1][1].reset_index(drop=True))


def test_include_target_works_for_a_target_outside_the_settings_sources(capsys):
    """A reviewer's case: the target's own data was looked up among the setting's sources (the first 3 assays),
    so a target outside them failed at the start with KeyError (and --dry-run passed)."""
    assert main(["run", CI, "--quiet", "--set", "include_target=true", "--set", "trials=1", "--set", "source_counts=[3]",
                 "--set", "targets=[ATG_PXR_TRANS_up]", "--set", "methods=[mixmin, natural]"]) == 0
    run, run_dir = only_run(RunStore())
    units = [u["unit_id"] for u in RunStore().units(run["run_id"])]
    assert "proxy-crossfit/trial0/ATG_PXR_TRANS_up" in units
    problem = Problem("ATG_PXR_TRANS_up", 0, "sources-3")
    weights = json.loads(list_mixtures(run_dir, problem)["mixmin"].read_text())["weights"]
    assert list(weights) == ["ATG_ERE_CIS_up", "ATG_ERa_TRANS_up", "ATG_NRF2_ARE_CIS_up", "ATG_PXR_TRANS_up"]


def test_drop_target_test_molecules_leaves_no_test_molecule_in_any_source(capsys):
    assert main(["run", CI, "--quiet", "--set", "drop_target_test_molecules=true", "--set", "trials=1",
                 "--set", "source_counts=[all]"]) == 0
    _, run_dir = only_run(RunStore())
    dataset = json.loads((run_dir / "dataset.json").read_text())
    assert dataset["drop_target_test_molecules"] is True
    assert dataset["test_molecules_in_sources"] == {t: 0.0 for t in dataset["targets"]}
    from mixmin_core.chem.splits import load_splits, part
    from mixmin_core.chem.trainers import load_sources

    codes, assays = load_splits(str(run_dir / "splits" / "trial0.npz"))
    sources = load_sources(str(run_dir / "sources" / "trial0.npz"))
    held_out = np.concatenate([part(codes[:, assays.index(t)], "test") for t in dataset["targets"]])
    assert held_out.size > 0
    for name, (_, rows) in sources.items():
        if not name.endswith("@train"):  # a target's own fit + validation rows never hold its test molecules
            assert not np.isin(held_out, rows).any(), name


def assert_search_spent_mixmins_compute(run_dir, res):
    """Per problem, random search and RegMix spent (measured, trees x rows of the runs they trained)
    MixMin's measured proxy compute, up to one search run."""
    mm = res[res.method == "mixmin"].set_index(["target", "trial", "variant"]).proxy_compute
    for m in ("random_search", "regmix"):
        for _, row in res[res.method == m].iterrows():
            meta = json.loads(list_mixtures(run_dir, Problem(row.target, row.trial, row.variant))[m].read_text())["meta"]
            one_run = meta["compute"] / meta["runs"]
            assert meta["compute"] == pytest.approx(row.proxy_compute)
            assert abs(row.proxy_compute - mm[row.target, row.trial, row.variant]) <= 1.05 * one_run, (m, row)
            if m == "random_search" and not row.variant.startswith("budget-"):
                # runs the size of an average proxy: as many as MixMin trained proxies (a row count rounded
                # up left one run out, 1 of 2 at sources-3)
                n_sources = len(json.loads(list_mixtures(run_dir, Problem(row.target, row.trial, row.variant))[m]
                                           .read_text())["weights"])
                assert meta["runs"] >= n_sources, (row, meta["runs"], n_sources)


def test_a_budget_the_row_floor_lifts_is_said_in_the_log():
    """proxy_budgets [0.0001] spent about 91x its label (20 rows of each source at least) with no log line."""
    assert main(["run", CI, "--quiet", "--set", "source_counts=[all]", "--set", "proxy_budgets=[0.0001]", "--set",
                 "trials=1", "--set", "methods=[mixmin]", "--set", "n_boot=0", "--set", "n_targets=1"]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    log = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert "proxy budget 0.0001: its proxies cost" in log and "x the label (at least 20 rows of each source" in log
    spent = store.results(run["run_id"]).proxy_compute.max()
    assert spent > 10 * 0.0001 * 20 * json.loads((run_dir / "config.json").read_text())["final_trees"]  # the floor


def test_compute_budget_sweep(capsys):
    assert main(["run", CI, "--quiet", "--set", "source_counts=[all]", "--set", "proxy_budgets=[0.01, 1.0]",
                 "--set", "trials=2"]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    res = store.results(run["run_id"])
    assert set(res.variant) == {"budget-0.01", "budget-1"}
    units = {u["unit_id"]: json.loads(u["info_json"]) if "info_json" in u else u["info"] for u in store.units(run["run_id"])}
    small = [i for k, i in units.items() if k.startswith("proxy/trial0/budget-0.01/")]
    full = [i for k, i in units.items() if k.startswith("proxy/trial0/budget-1/")]
    assert len(small) == len(full) == 6
    # 1%: one tree on a fifth of the rows; 100%: as many trees as the final model on every row
    assert all(i["trees"] == 1 for i in small) and all(i["trees"] == 20 for i in full)
    assert sum(i["rows"] for i in small) == pytest.approx(0.2 * sum(i["rows"] for i in full), rel=0.05)
    final_rows = sum(i["rows"] for i in full)  # all six sources' fit rows (< max_final_rows)
    mm = res[res.method == "mixmin"].groupby("variant").proxy_compute.mean()
    for v, budget in (("budget-0.01", 0.01), ("budget-1", 1.0)):
        # the target's own proxy is left out: 5 of 6 sources
        assert mm[v] == pytest.approx(budget * 20 * final_rows * 5 / 6, rel=0.15)
    assert_search_spent_mixmins_compute(run_dir, res)
    nat = res[res.method == "natural"].pivot_table(index=["target", "trial"], columns="variant", values="value")
    assert np.allclose(nat["budget-0.01"], nat["budget-1"])  # one natural final model serves every budget
    finals = {k for k in units if k.startswith("final/")}
    distinct = res[res.method.isin(["mixmin", "natural", "balanced", "random_search", "regmix"])]
    assert len(finals) < len(distinct)  # natural and balanced: one final model for both budgets
    summary = pd.read_csv(run_dir / "summary.csv")
    sweep = summary[summary.target == "overall"]
    assert set(sweep.variant) == {"budget-0.01", "budget-1"} and sweep.improvement.notna().all()
    assert (sweep[sweep.method == "mixmin"].n_trials == 2).all()


def test_search_methods_left_out_by_search_max_sources_are_said(capsys):
    """PCBA-128 at source_counts [all] (127 sources > 100): random search and RegMix were left out without a word."""
    assert main(["run", CI, "--quiet", "--set", "trials=1", "--set", "search_max_sources=2",
                 "--set", "methods=[mixmin, natural, random_search]"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines()  # (a warning elsewhere may quote this test's lines)
            if "mixmin.engine:" in line and "search_max_sources=2" in line]
    assert len(said) == 2 and said[0].endswith(  # once per setting and target, not per problem
        "mixmin.engine: sources-all: random_search for target ATG_ERE_CIS_up not run: 5 sources > search_max_sources=2"
    ), said
    res = RunStore().results(only_run(RunStore())[0]["run_id"])
    assert set(res[res.variant == "sources-3"].method) == {"mixmin", "natural", "random_search"}
    assert set(res[res.variant == "sources-all"].method) == {"mixmin", "natural"}


def test_a_killed_run_retrains_only_missing_units():
    assert main(["run", CI, "--quiet", "--set", "trials=1", "--set", "source_counts=[all]"]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    before = {u["unit_id"]: u["finished_at"] for u in store.units(run["run_id"])}
    paths = {u["unit_id"]: u["path"] for u in store.units(run["run_id"])}
    Path(paths["proxy/trial0/ATG_PXRE_CIS_up"]).unlink()  # as if killed while this proxy was training
    for f in (run_dir / "mixtures").glob("*.json"):
        f.unlink()
    assert main(["run", CI, "--quiet", "--set", "trials=1", "--set", "source_counts=[all]"]) == 0
    after = {u["unit_id"]: u["finished_at"] for u in store.units(run["run_id"])}
    rerun = {u for u in after if after[u] != before[u]}
    assert {u for u in rerun if u.startswith("proxy/")} == {"proxy/trial0/ATG_PXRE_CIS_up"}
    assert not any(u.startswith(("final/", "target_only/", "features", "splits")) for u in rerun)


def _write_config(tmp_path, **fields):
    path = tmp_path / "my_chem.yaml"
    path.write_text(yaml.safe_dump({"pipeline": "chem", "name": "my_chem", **fields}))
    return str(path)


SMALL = {"trials": 2, "proxy_trees": 10, "final_trees": 20, "max_final_rows": 2000, "n_boot": 0,
         "regmix_candidates": 1000, "n_workers": 1}


def test_users_own_table_runs_with_only_the_config_changed(tmp_path, toxcast_head):
    frame = toxcast_head.rename(columns={a: f"my_assay_{i}" for i, a in enumerate(ASSAYS)})
    frame.insert(0, "compound", [f"X{i}" for i in range(len(frame))])
    frame.loc[5, "smiles"] = "C1CC(("  # one unparsable SMILES: counted, excluded, reported
    frame.loc[5, "my_assay_0"] = 0.0  # and labelled
    frame.loc[6, "smiles"], frame.loc[7, "smiles"] = "C[C@H](N)CC(=O)O", "C[C@@H](N)CC(=O)O"  # enantiomers
    path = tmp_path / "my_assays.csv"
    frame.to_csv(path, index=False)
    cfg = _write_config(tmp_path, dataset="", path=str(path), ignore_columns=["compound"],
                        targets=["my_assay_1"], source_counts=["all"],
                        methods=["mixmin", "natural", "target_only"], **SMALL)
    assert main(["run", cfg, "--quiet"]) == 0
    run, run_dir = only_run(RunStore())
    res = RunStore().results(run["run_id"])
    assert set(res.method) == {"mixmin", "natural", "target_only"} and set(res.target) == {"my_assay_1"}
    assert set(res.variant) == {"sources-all"} and len(res) == 3 * 2
    dataset = json.loads((run_dir / "dataset.json").read_text())
    assert dataset["n_invalid_smiles"] == 1 and dataset["invalid_examples"] == ["C1CC(("]
    from mixmin_core.chem.fingerprints import featurize_smiles, fingerprint_twins

    fps = featurize_smiles(list(frame.smiles))  # one fingerprint for the enantiomers: recorded (and logged)
    twins = fingerprint_twins(list(frame.smiles), fps.matrix, fps.valid)
    assert dataset["molecules_sharing_a_fingerprint"] == len({i for pair in twins for i in pair}) >= 2
    sources = pd.read_csv(sources_path(run_dir))
    assert list(sources.source) == [f"my_assay_{i}" for i in range(5)] and (sources.title == sources.source).all()
    codes = np.load(run_dir / "splits" / "trial0.npz")["codes"]
    assert (codes[5] == -1).all()  # the invalid molecule is in no split
    labelled = frame.drop(index=5)[[f"my_assay_{i}" for i in range(5)]].notna().sum().to_numpy()
    np.testing.assert_array_equal(sources.n_labelled, labelled)  # it counted the unparsable molecule too
    mixture = json.loads(mixture_path(run_dir, Problem("my_assay_1", 0, "sources-all"), "mixmin").read_text())
    trained = [json.loads(p.read_text()) for p in (run_dir / "finals").glob("my_assay_1__trial0-*.json")]
    used = [f for f in trained if f["weights"] == training_weights(list(mixture["weights"].values()))]
    assert len(used) == 1 and used[0]["sources"] == list(mixture["weights"])  # what MixMin's final model trained on
    # what each final model was scored on is on record: one test set for every method of a problem
    assert len({(f["test_rows"], f["test_rows_sha256"]) for f in trained}) == 1 and trained[0]["test_rows"] > 0

    # the table edited in place: a run of its own (it resumed the old run, training on the old labels.npz)
    flipped = frame.assign(my_assay_1=frame["my_assay_1"].map({0.0: 1.0, 1.0: 0.0}))
    flipped.to_csv(path, index=False)
    assert main(["run", cfg, "--quiet"]) == 0
    runs = RunStore().list_runs()
    assert len(runs) == 2 and runs[0]["run_id"] != run["run_id"] and all(r["status"] == "done" for r in runs)
    with np.load(RunStore().run_dir(runs[0]["run_id"]) / "features" / "labels.npz") as z:
        column = list(z["assays"]).index("my_assay_1")
        np.testing.assert_array_equal(np.nan_to_num(z["labels"][:, column], nan=-1),
                                      np.nan_to_num(chemdata_labels(flipped, "my_assay_1"), nan=-1))


def chemdata_labels(frame, assay):
    """An assay column as the run's label matrix holds it: 1, 0, or -1 for untested."""
    return frame[assay].fillna(-1).to_numpy()


def test_muv_config_only_changes_the_dataset():
    demo = read_config_file(ROOT / "configs" / "chem_demo.yaml")
    muv = read_config_file(ROOT / "configs" / "chem_muv.yaml")
    changed = {k for k in demo.keys() | muv.keys() if demo.get(k) != muv.get(k)}
    assert changed <= {"name", "dataset", "source_counts", "step_size"}  # MUV's rare actives need a larger step
    config = build_dataclass(chem.CONFIG, {k: v for k, v in muv.items() if k not in ("pipeline", "name")})
    table = load_table(config.data)
    assert (table.n_molecules, table.n_assays) == (93087, 17)
    plan, dropped = make_plan(table, targets=config.targets, n_targets=config.n_targets,
                              source_counts=config.source_counts, proxy_budgets=[], trials=config.trials)
    assert len(plan.targets) == 10 and dropped == []
    meta = load_metadata(config.data)
    assert meta is not None and "MUV-466" in set(meta.source)


@pytest.mark.slow
def test_muv_runs_through_the_same_command():
    cfg = str(ROOT / "configs" / "chem_muv.yaml")
    overrides = ["n_targets=2", "trials=2", "source_counts=[all]", "max_final_rows=5000", "n_boot=0",
                 "methods=[mixmin,natural,balanced,target_only,ensemble]"]
    assert main(["run", cfg, "--quiet"] + [x for o in overrides for x in ("--set", o)]) == 0
    run, _ = only_run(RunStore())
    res = RunStore().results(run["run_id"])
    assert set(res.target) == {"MUV-466", "MUV-548"} and res.value.notna().all()


# ---- bad input: one clear error, no run folder ------------------------------------------------
def _bad_tables(tmp_path, toxcast_head):
    no_smiles = tmp_path / "no_smiles.csv"
    toxcast_head.rename(columns={"smiles": "structure"}).to_csv(no_smiles, index=False)
    bad_label = tmp_path / "bad_label.csv"
    frame = toxcast_head.astype(object)
    frame.loc[7, ASSAYS[0]] = "active"
    frame.to_csv(bad_label, index=False)
    unreadable = tmp_path / "unreadable.parquet"
    unreadable.write_bytes(b"PAR1 garbage")
    good = tmp_path / "good.csv"
    toxcast_head.to_csv(good, index=False)
    return [
        ({"path": str(no_smiles)}, r"no_smiles\.csv: no 'smiles' column"),
        ({"path": str(bad_label)}, r"bad_label\.csv: column 'ATG_ERE_CIS_up' has label values other than 0, 1 or empty, e.g. \['active'\]"),
        ({"path": str(unreadable)}, r"unreadable\.parquet: cannot read the table"),
        ({"path": str(good), "targets": ["ATG_ERE_CIS_upp"]}, r"assay 'ATG_ERE_CIS_upp' does not exist"),
        ({"path": str(tmp_path / "missing.csv")}, r"missing\.csv: file not found"),
    ]


def test_bad_input_gives_one_clear_error_and_no_run(tmp_path, toxcast_head, capsys):
    for fields, message in _bad_tables(tmp_path, toxcast_head):
        cfg = _write_config(tmp_path, dataset="", **fields, **SMALL)
        assert main(["run", cfg, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1
        assert pytest.importorskip("re").search(message, err), err
    assert RunStore().list_runs() == []
    assert not (Path(RunStore().root) / "runs").exists() or not any((Path(RunStore().root) / "runs").iterdir())


@pytest.mark.parametrize("fields, message", [
    ({"methods": ["natural"]}, "methods: must include 'mixmin'"),
    ({"methods": ["mixmin", "magic"]}, r"methods: items must be one of \[.*'regmix'"),
    ({"source_counts": [1]}, "source_counts: must be a non-empty list of integers >= 2 or 'all'"),
    ({"format": "sdf"}, "format: must be one of"),
    ({"trials": 0}, "trials: must be >= 1; got 0"),
    ({"trials": 2.7}, "trials: must be an integer"),
    ({"seed": "abc"}, "seed: must be an integer >= 0, <= 2147483647; got 'abc'"),
    ({"n_workers": 0}, "n_workers: must be >= 1"),
    ({"step_size": -1.0}, "step_size: must be > 0"),
    ({"test_fraction": 1.0}, "test_fraction: must be < 1"),
    ({"n_boot": 1}, "n_boot: must be 0"),
    ({"proxy_budgets": [0.1, 0.1]}, r"proxy_budgets: must not repeat an item \(repeated: \[0.1\]\)"),
    ({"proxy_budgets": [0.1], "source_counts": [10, 100]}, "proxy_budgets: sweeps compute at one source count"),
    ({"proxy_budgets": [0.1], "source_counts": [10], "tune": True}, "cannot be combined with tune"),
])
def test_config_errors_name_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        chem.ChemConfig(**fields)


def test_a_second_run_reuses_cached_proxies_and_still_reports_their_compute():
    """Proxies are content-addressed in the store: a run with other final-model settings trains none,
    and its ledger reads what they cost from their files."""
    small = ["--quiet", "--set", "trials=1", "--set", "source_counts=[all]",
             "--set", "methods=[mixmin,natural]"]
    assert main(["run", CI, *small]) == 0
    assert main(["run", CI, *small, "--set", "max_final_rows=0"]) == 0
    store = RunStore()
    (first, second) = sorted(store.list_runs(), key=lambda r: r["created_at"])
    assert not any(u["unit_id"].startswith("proxy/") for u in store.units(second["run_id"]))
    spent = [store.results(r["run_id"]).query("method == 'mixmin'").set_index("target").proxy_compute
             for r in (first, second)]
    assert (spent[0] > 0).all() and spent[0].equals(spent[1])
    assert (store.results(second["run_id"]).max_final_rows == 0).all()
