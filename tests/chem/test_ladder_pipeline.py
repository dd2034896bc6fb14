"""chem_ladder: the proxy-compute ladder on real ToxCast labels (400 molecules, five assays)."""
import json

import numpy as np
import pytest
import yaml

from jobs.__main__ import main
from jobs.config import build_dataclass
from jobs.pipelines import chem_ladder
from mixmin_core import MixtureResult
from mixmin_core.chem.splits import row_subset
from mixmin_core.chem.trainers import load_sources
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.layout import Problem, mixture_path, read_summary
from mixmin_core.runs.store import RunStore

from .conftest import ASSAYS

TARGETS = ASSAYS[:2]
SOURCES = ASSAYS[2:]
RUNGS = [[0.2, 2], [0.5, 5], [1.0, 10]]
SMALL = {"dataset": "", "targets": TARGETS, "sources": SOURCES, "rungs": RUNGS, "final_trees": 10,
         "max_final_rows": 1000, "n_workers": 1}


@pytest.fixture(autouse=True)
def _table(tmp_path, toxcast_head):
    path = tmp_path / "toxcast_head.csv"
    toxcast_head.to_csv(path, index=False)
    SMALL["path"] = str(path)


def _run(tmp_path, **fields):
    cfg = tmp_path / "ladder.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": "chem_ladder", "name": "ladder", **SMALL, **fields}))
    assert main(["run", str(cfg), "--quiet"]) == 0
    store = RunStore()
    run_id = store.list_runs()[0]["run_id"]
    return store, run_id, store.run_dir(run_id), cfg


def test_the_ladder_stops_at_the_first_stable_rung_and_trains_nothing_above(tmp_path):
    store, run_id, run_dir, cfg = _run(tmp_path, threshold=1.99)  # nearly any change counts as stable: rung 1
    for target in TARGETS:
        info = json.loads((run_dir / "ladder" / f"{target}.json").read_text())
        assert len(info["results"]) == 2 and info["stable_at"] == info["budgets"][1] == info["rungs"][1]["budget"]
        # budget = proxy compute (trees x rows over the sources) / final compute (final_trees x final rows)
        fit_rows = sum(rows.size for _, rows in load_sources(str(run_dir / info["sources_file"])).values())  # all sources' fit rows
        assert info["final_compute"] == 10 * min(1000, fit_rows)
        assert info["rungs"][1]["budget"] == pytest.approx(info["rungs"][1]["compute"] / info["final_compute"])
        assert all(0 <= a <= 1 for a in info["ap"]) and len(info["ap"]) == 2
        assert info["test_positives"] >= 1  # the Beyond page warns when the rungs' AP rests on few
    proxies = [u["unit_id"] for u in store.units(run_id) if u["kind"] == "proxy"]
    assert sorted(proxies) == sorted(f"proxy/rung{k}/{a}" for k in (0, 1) for a in SOURCES)  # shared by both targets
    cached = [json.loads(p.read_text()) for p in (store.root / "proxy_cache").glob("*.json")]
    assert sorted((c["trees"], c["assay"]) for c in cached) == sorted((t, a) for t in (2, 5) for a in SOURCES)
    rows = {c["assay"]: {} for c in cached}
    for c in cached:
        rows[c["assay"]][c["trees"]] = c["rows"]
    assert all(r[2] < r[5] for r in rows.values())  # 20% then 50% of the fit rows
    res = store.results(run_id)
    assert set(res.metric) == {"proxy_budget_fraction", "ladder_l1_change", "ladder_loss_regret", "ap"}
    assert len(res[res.metric == "ladder_l1_change"]) == len(TARGETS)
    # proxy_compute: what a rung's proxies really cost (trees x rows, measured); final_compute: its final model's
    spent = {k: sum(c["compute"] for c in cached if c["trees"] == t) for k, t in ((0, 2), (1, 5))}
    budget = res[res.metric == "proxy_budget_fraction"]
    assert {(r.variant, r.proxy_compute) for r in budget.itertuples()} == {(f"rung{k}", spent[k]) for k in (0, 1)}
    assert (res[res.metric == "ap"].final_compute > 0).all() and (budget.final_compute > 0).all()
    assert (res[res.metric == "ap"].test_positives >= 1).all()  # the Compare page names targets with few
    assert set(read_summary(run_dir).variant) == {"rung0", "rung1"}
    units = {u["unit_id"]: u["finished_at"] for u in store.units(run_id)}
    assert main(["run", str(cfg), "--quiet"]) == 0  # resume: every proxy and final model is skipped
    assert {u["unit_id"]: u["finished_at"] for u in store.units(run_id)} == units
    assert len(store.results(run_id)) == len(res)


def test_run_all_climbs_every_rung_and_the_changes_match_the_saved_mixtures(tmp_path):
    store, run_id, run_dir, _ = _run(tmp_path, threshold=1e-9, run_all=True, score_rungs=False)
    info = json.loads((run_dir / "ladder" / f"{TARGETS[0]}.json").read_text())
    assert len(info["results"]) == 3 and info["ap"] == [None] * 3 and info["stable_at"] is None
    w = [MixtureResult.from_dict(json.loads(mixture_path(run_dir, Problem(TARGETS[0], 0, f"rung{k}"), "mixmin")
                                            .read_text())).weights for k in range(3)]
    assert info["l1_changes"][0] is None and info["loss_regret"][0] is None
    # the previous rung's mixture is no better under this rung's proxies than the optimum (up to the FW gap)
    assert all(info["loss_regret"][k] >= -info["results"][k]["gap"] - 1e-7 for k in (1, 2))
    assert info["l1_changes"][1:] == pytest.approx([np.abs(w[1] - w[0]).sum(), np.abs(w[2] - w[1]).sum()], abs=1e-6)
    summary = json.loads((run_dir / "ladder.json").read_text())
    assert summary["summary"][TARGETS[0]]["rungs_climbed"] == 3 and summary["summary"][TARGETS[0]]["stable_at_rung"] is None


def test_the_loss_regret_rule_writes_the_measure_it_compares(tmp_path):
    """results.csv and ladder.json gave the absolute regret (0.0073, read as under a 0.01 threshold) while the rule
    compared the relative one (0.015)."""
    store, run_id, run_dir, _ = _run(tmp_path, rule="loss_regret", threshold=1e-9, run_all=True, score_rungs=False)
    info = json.loads((run_dir / "ladder" / f"{TARGETS[0]}.json").read_text())
    res = store.results(run_id)
    rel = res[(res.metric == "ladder_relative_loss_regret") & (res.target == TARGETS[0])].sort_values("variant")
    assert rel["value"].tolist() == pytest.approx(info["measures"][1:], rel=1e-9)
    assert set(rel["stable"]) == {False}  # none under 1e-9
    summary = json.loads((run_dir / "ladder.json").read_text())["summary"][TARGETS[0]]
    assert summary["relative_loss_regret"][1:] == pytest.approx(info["measures"][1:], abs=1e-5)


def test_a_stop_between_solves_stopped_at_max_iter_says_so(tmp_path):
    """max_iter=1: the weights barely left the start at every rung, moved little, and the ladder said "stable at
    10%" with nothing to tell the solves had stopped at max_iter."""
    store, run_id, run_dir, _ = _run(tmp_path, threshold=1.99, max_iter=1, score_rungs=False)
    log = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    info = json.loads((run_dir / "ladder" / f"{TARGETS[0]}.json").read_text())
    assert info["stable_at"] == info["budgets"][1] and info["unconverged"] == info["budgets"]
    assert info["stable_unconverged"] is True
    summary = json.loads((run_dir / "ladder.json").read_text())["summary"][TARGETS[0]]
    assert summary["stable_unconverged"] is True and summary["unconverged_rungs"] == [0, 1]
    assert set(store.results(run_id)["converged"]) == {False}
    assert "MixMin did not converge at 2 of 2 rungs" in log
    assert "MixMin stopped at its iteration limit, not converged (gap " in log and "a larger max_iter" in log
    assert "stable at" in log and "between solves that did not converge (not to be trusted: see the warning" in log


def test_row_subsets_are_nested_and_seeded():
    fit = np.arange(100, 300)
    small, big = (row_subset(fit, f, seed=0, assay="A") for f in (0.1, 0.5))
    assert small.size == 20 and big.size == 100 and set(small) <= set(big)
    assert np.array_equal(small, row_subset(fit, 0.1, seed=0, assay="A"))
    assert not np.array_equal(small, row_subset(fit, 0.1, seed=1, assay="A"))


@pytest.mark.parametrize("fields, match", [
    ({"rungs": [[0.5, 5], [1.0, 2]]}, r"rungs: must grow in compute"),
    ({"rungs": [[0, 5], [1, 5]]}, r"rungs: must be a list of 2 to 50 \[row_fraction in \(0, 1\], trees in 1..10000\]"),
    ({"rungs": [[0.5, 2.5], [1, 5]]}, r"rungs: must be a list of 2 to 50 \[row_fraction"),
    ({"rungs": [[1.0, 5]]}, r"rungs: must be a list of 2 to 50 .*compares each rung"),  # it ran, "never moved less"
    ({"rungs": [[0.5, 2], [1.0, 1e9]]}, r"rungs: must be a list of 2 to 50 \[row_fraction"),  # a billion trees ran on
    ({"rungs": [[0.5, "x"]]}, r"rungs: must be a list of lists of numbers; got \[\[0.5, 'x'\]\]"),
    ({"threshold": 0}, r"threshold: must be > 0; got 0"),
    ({"rule": "kl"}, r"rule: must be one of \['l1', 'loss_regret'\]; got 'kl'"),
    ({"threshold": 3}, r"threshold: 3 with rule l1 stops at the second rung whatever the weights do"),
    ({"targets": []}, r"targets: must be a non-empty list"),
    ({"sources": 0}, r"sources: must be >= 2; got 0"),
    ({"sources": 1}, r"sources: must be >= 2; got 1"),  # one source is no mixture: it failed after the first rung
])
def test_bad_ladder_configs_raise_config_errors(fields, match):
    with pytest.raises(ConfigError, match=match):
        build_dataclass(chem_ladder.CONFIG, {**SMALL, **fields})


def test_a_source_that_is_a_target_fails_before_any_run_folder(tmp_path, capsys):
    config = build_dataclass(chem_ladder.CONFIG, {**SMALL, "sources": SOURCES + [TARGETS[0]]})
    with pytest.raises(InputError, match="is also a target"):
        chem_ladder.validate(config)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": "chem_ladder", "name": "bad", **SMALL, "targets": ["ATG_nope"]}))
    assert main(["run", str(cfg), "--quiet"]) == 2
    assert "assay 'ATG_nope' does not exist" in capsys.readouterr().err
    assert not (RunStore().root / "runs").exists()


def test_ladder_and_evolve_read_a_table_with_another_smiles_column_and_id_columns(tmp_path, toxcast_head):
    """They refused both fields, while their own error said "set smiles_column"; the main pipeline's data fields are
    theirs too now (at the defaults, runs made before keep their ids)."""
    from jobs.pipelines import chem_evolve

    own = toxcast_head.rename(columns={"smiles": "Canonical_SMILES"}).assign(CAS="50-00-0")
    path = tmp_path / "own.csv"
    own.to_csv(path, index=False)
    fields = {"path": str(path), "smiles_column": "Canonical_SMILES", "ignore_columns": ["CAS"]}
    chem_ladder.validate(build_dataclass(chem_ladder.CONFIG, {**SMALL, **fields}))
    evolve = build_dataclass(chem_evolve.CONFIG, {"dataset": "", **fields, "target": TARGETS[0], "initial": SOURCES})
    chem_evolve.validate(evolve)
    assert evolve.data.smiles_column == "Canonical_SMILES" and evolve.data.ignore_columns == ("CAS",)


def test_errors_of_ones_own_table_name_the_default_targets_and_the_label_counts(tmp_path, toxcast_head):
    """Without `targets:` a user table failed with "assay 'ACEA_T47D_80hr_Negative' does not exist" (the default
    ToxCast targets, unsaid); a source without positives "has no positive or no negative label", without counts."""
    fields = {k: v for k, v in SMALL.items() if k != "targets"}
    with pytest.raises(InputError, match=r"targets: not given, so the default \['ACEA_T47D_80hr_Negative', .*\] "
                                         r"\(ToxCast assays\) is used, and assay 'ACEA_T47D_80hr_Negative' does not "
                                         r"exist .* Give `targets:` with assays of your table"):
        chem_ladder.validate(build_dataclass(chem_ladder.CONFIG, fields))
    with pytest.raises(InputError, match=r"^assay 'ATG_nope' does not exist"):  # given: no word of a default
        chem_ladder.validate(build_dataclass(chem_ladder.CONFIG, {**SMALL, "targets": ["ATG_nope"]}))
    path = tmp_path / "none.csv"
    toxcast_head.assign(inactive=0).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"sources: assay 'inactive' has 0 positives and 400 negatives among the 400 "
                                         r"molecules read of .*none.csv; a source needs both"):
        chem_ladder.validate(build_dataclass(chem_ladder.CONFIG, {**SMALL, "path": str(path),
                                                                  "sources": [*SOURCES, "inactive"]}))
