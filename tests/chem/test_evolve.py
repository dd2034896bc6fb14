"""chem_evolve: evolving source sets on real ToxCast labels (400 molecules, a handful of assays).

An update trains only the proxies of new or changed sources; the unchanged sources' cached proxy
files are reused byte for byte; caps from the config are respected, and infeasible caps fail
before any run folder exists."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from jobs.__main__ import main
from jobs.config import build_dataclass
from jobs.pipelines import chem_evolve
from mixmin_core import MixtureResult
from mixmin_core.engine.evolving import mixture_change
from mixmin_core.engine.export import run_chem_examples, run_source_sizes
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.fileio import sha256_file
from mixmin_core.runs.layout import RESULT_COLUMNS, Problem, list_problems, mixture_path, read_summary
from mixmin_core.runs.store import RunStore

TARGET = "ATG_ERE_CIS_up"
INITIAL = ["ATG_ERa_TRANS_up", "ATG_NRF2_ARE_CIS_up", "ATG_PPARg_TRANS_up"]
SMALL = {"pipeline": "chem_evolve", "dataset": "", "target": TARGET, "initial": INITIAL, "proxy_trees": 10,
         "final_trees": 10, "max_final_rows": 1000, "n_workers": 1}


@pytest.fixture(scope="module", autouse=True)
def _table(tmp_path_factory, toxcast_head):
    """The first 400 ToxCast molecules with five assays, as a user's table (path: ...)."""
    path = tmp_path_factory.mktemp("evolve") / "toxcast_head.csv"
    toxcast_head.to_csv(path, index=False)
    SMALL["path"] = str(path)


def _config(tmp_path, name, **fields):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "name": name, **fields}))
    return str(path)


def _run(tmp_path, name, **fields):
    assert main(["run", _config(tmp_path, name, **fields), "--quiet"]) == 0
    store = RunStore()
    run = next(r for r in store.list_runs() if r["name"] == name)
    return store, run["run_id"], store.run_dir(run["run_id"])


def _cache(store) -> dict:
    return {p.name: (sha256_file(p), p.stat().st_mtime_ns) for p in sorted((store.root / "proxy_cache").glob("*.npz"))}


def _proxy_units(store, run_id) -> list:
    return [u for u in store.units(run_id) if u["kind"] == "proxy"]


def test_add_and_split_train_only_their_proxies_and_reuse_the_rest_byte_for_byte(tmp_path):
    store, first_id, _ = _run(tmp_path, "base", updates=[])
    before = _cache(store)
    assert len(before) == 3 and len(_proxy_units(store, first_id)) == 3

    updates = [{"add": ["ATG_PXRE_CIS_up"]}, {"split": "ATG_NRF2_ARE_CIS_up"}]
    store, run_id, run_dir = _run(tmp_path, "grow", updates=updates)
    trained = _proxy_units(store, run_id)
    assert len(trained) == 3  # the added assay and the two halves; the initial three come from the cache
    assert sorted(json.loads((store.root / "proxy_cache" / Path(u["path"]).name.replace(".npz", ".json")).read_text())
                  ["first_source"] for u in trained) == ["ATG_NRF2_ARE_CIS_up#1", "ATG_NRF2_ARE_CIS_up#2",
                                                         "ATG_PXRE_CIS_up"]
    after = _cache(store)
    assert {k: after[k] for k in before} == before  # same bytes, never rewritten
    assert len(after) == 6

    evolve = json.loads((run_dir / "evolve.json").read_text())
    v0, v1, v2 = evolve["versions"]
    assert v0["trained_in_this_job"] == [] and v0["trained"] == INITIAL  # logically trained in v0, cached from "base"
    assert v1["trained"] == ["ATG_PXRE_CIS_up"] and sorted(v1["reused"]) == sorted(INITIAL)
    assert v2["trained"] == ["ATG_NRF2_ARE_CIS_up#1", "ATG_NRF2_ARE_CIS_up#2"]
    assert v2["removed"] == ["ATG_NRF2_ARE_CIS_up"] and v2["n_sources"] == 5
    # compute = trees x rows of each proxy; saved = everything but the trained ones
    costs = {n: 10 * json.loads((store.root / "proxy_cache" / f"{k}.json").read_text())["rows"]
             for n, k in v2["proxy_keys"].items()}
    spent = sum(costs[n] for n in v2["trained"])
    assert v2["compute"]["spent"] == spent and v2["compute"]["total"] == sum(costs.values())
    assert v2["compute"]["saved_fraction"] == pytest.approx(1 - spent / sum(costs.values()))
    # the halves partition the assay's fit rows
    halves = costs["ATG_NRF2_ARE_CIS_up#1"] + costs["ATG_NRF2_ARE_CIS_up#2"]
    assert halves == 10 * json.loads((store.root / "proxy_cache" / f"{v1['proxy_keys']['ATG_NRF2_ARE_CIS_up']}.json")
                                     .read_text())["rows"]

    assert [p.variant for p in list_problems(run_dir)] == ["v0", "v1", "v2"]
    results = [MixtureResult.from_dict(json.loads(mixture_path(run_dir, Problem(TARGET, 0, f"v{k}"), "mixmin")
                                                  .read_text())) for k in range(3)]
    assert all(abs(r.weights.sum() - 1) < 1e-5 for r in results)
    assert v2["mixture_change"]["l1"] == pytest.approx(mixture_change(results[1], results[2])["l1"])
    assert results[1].meta["warm_start"] and not results[0].meta["warm_start"]
    res = store.results(run_id)
    assert set(res.metric) == {"ap", "proxy_compute_spent", "proxy_compute_saved_fraction", "mixture_l1_change",
                               "mixture_l1_change_by_assay"}  # v2 splits an assay: its L1 without the renaming
    assert list(res[res.metric == "mixture_l1_change_by_assay"].variant) == ["v2"]
    assert (res[res.metric == "ap"].test_positives >= 1).all()  # the Compare page names targets with few
    assert sorted(res[res.metric == "ap"].variant) == ["v0", "v1", "v2"] and res[res.metric == "ap"].value.between(0, 1).all()
    # the run-folder contract: proxy_compute is what each version really trained, final_compute its final model's
    assert list(res.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    ap = res[res.metric == "ap"].set_index("variant")
    for v in (v0, v1, v2):
        assert ap.loc[v["variant"], "proxy_compute"] == v["compute"]["spent"]
        assert ap.loc[v["variant"], "final_compute"] == v["final_compute"] > 0
        assert ap.loc[v["variant"], "proxy_compute_total"] == v["compute"]["total"]
    assert ap.loc["v0", "proxy_compute"] == ap.loc["v0", "proxy_compute_total"] > 0  # v0 trains every source
    assert ap.loc["v1", "proxy_compute"] == costs["ATG_PXRE_CIS_up"]  # v1 only the added one
    summary = read_summary(run_dir)
    assert set(summary[summary.metric == "ap"].variant) == {"v0", "v1", "v2"}

    # an export of v2 sizes and lists the halves, which no assay column holds (it failed from v2 on)
    sizes = run_source_sizes(run_dir, "v2").sizes
    whole = run_source_sizes(run_dir, "v1").sizes["ATG_NRF2_ARE_CIS_up"]
    assert sizes["ATG_NRF2_ARE_CIS_up#1"] + sizes["ATG_NRF2_ARE_CIS_up#2"] == whole and set(sizes) == set(v2["weights"])
    table = run_chem_examples(run_dir, list(sizes), "v2")
    assert table.groupby("assay").size().to_dict() == {n: int(v) for n, v in sizes.items()}
    halves = table[table["assay"].str.startswith("ATG_NRF2_ARE_CIS_up#")]
    assert not halves["molecule"].duplicated().any()  # each molecule in one half
    for fmt in ("json", "chem-table"):
        assert main(["export", "--run", run_id, "--problem", Problem(TARGET, 0, "v2").key, "--format", fmt,
                     "--budget-rows", "500", "--out", str(tmp_path / f"v2.{fmt}")]) == 0

    n_units = len(store.units(run_id))
    assert main(["run", _config(tmp_path, "grow", updates=updates), "--quiet"]) == 0  # resume: nothing retrained
    assert len(store.units(run_id)) == n_units and _cache(store) == after


def test_revise_retrains_the_new_release_and_remove_trains_nothing(tmp_path):
    updates = [{"revise": "ATG_PPARg_TRANS_up"}, {"remove": ["ATG_ERa_TRANS_up"]}]
    store, run_id, run_dir = _run(tmp_path, "revise", updates=updates)
    v0, v1, v2 = json.loads((run_dir / "evolve.json").read_text())["versions"]
    assert v1["trained"] == ["ATG_PPARg_TRANS_up"] and v1["proxy_keys"]["ATG_PPARg_TRANS_up"] != \
        v0["proxy_keys"]["ATG_PPARg_TRANS_up"]
    assert v2["trained"] == [] and v2["compute"]["saved_fraction"] == 1.0 and v2["removed"] == ["ATG_ERa_TRANS_up"]
    assert len(_proxy_units(store, run_id)) == 4
    before, after = (run_source_sizes(run_dir, v).sizes["ATG_PPARg_TRANS_up"] for v in ("v0", "v1"))
    assert after < before  # the new release's molecules, not the assay's first release


def test_caps_from_the_config_are_respected(tmp_path):
    # uncapped, ATG_ERa_TRANS_up takes almost all the weight for this target; cap it (and its halves) at 0.3
    store, run_id, run_dir = _run(tmp_path, "capped", updates=[{"split": "ATG_ERa_TRANS_up"}],
                                  caps={"ATG_ERa_TRANS_up": 0.3}, prior_strength=0.01)
    evolve = json.loads((run_dir / "evolve.json").read_text())
    assert evolve["versions"][1]["caps"]["ATG_ERa_TRANS_up#2"] == 0.3
    for k in (0, 1):
        r = MixtureResult.from_dict(json.loads(mixture_path(run_dir, Problem(TARGET, 0, f"v{k}"), "mixmin").read_text()))
        caps = np.array(r.meta["caps"])
        assert (r.weights <= caps + 1e-6).all() and abs(r.weights.sum() - 1) < 1e-5
        assert r.meta["prior_strength"] == 0.01  # passed on to mixmin
    r0 = MixtureResult.from_dict(json.loads(mixture_path(run_dir, Problem(TARGET, 0, "v0"), "mixmin").read_text()))
    assert r0.weights[0] == pytest.approx(0.3, abs=1e-4)  # the cap binds


def _fields(**extra):
    return {k: v for k, v in {**SMALL, **extra}.items() if k != "pipeline"}


def test_infeasible_caps_fail_before_any_run_folder(tmp_path, capsys):
    config = build_dataclass(chem_evolve.CONFIG, _fields(caps=0.2))
    with pytest.raises(InputError, match=r"caps over the 3 sources of version v0 sum to 0.6 < 1"):
        chem_evolve.validate(config)
    # feasible at v0 (3 x 0.4) but not after a removal leaves two sources
    config = build_dataclass(chem_evolve.CONFIG, _fields(caps=0.4, updates=[{"remove": ["ATG_ERa_TRANS_up"]}]))
    with pytest.raises(InputError, match="version v1"):
        chem_evolve.validate(config)
    with pytest.raises(InputError, match=r"caps name \['ATG_nope'\]"):
        chem_evolve.validate(build_dataclass(chem_evolve.CONFIG, _fields(caps={"ATG_nope": 0.5})))
    assert main(["run", _config(tmp_path, "infeasible", caps=0.2), "--quiet"]) == 2
    assert "sum to 0.6 < 1" in capsys.readouterr().err
    assert RunStore().list_runs() == [] and not (RunStore().root / "runs").exists()


@pytest.mark.parametrize("fields, match", [
    ({"caps": 1.5}, r"caps: must be <= 1; got 1.5"),
    ({"caps": {"ATG_ERa_TRANS_up": 0}}, r"caps: must be a number in \(0, 1\] or a non-empty mapping"),
    ({"caps": "all"}, r"caps: must be a number or a mapping or null.*; got 'all'"),
    ({"prior_strength": -1}, r"prior_strength: must be >= 0; got -1"),
    ({"updates": [{"merge": "x"}]}, r"updates\[0\]: must be a mapping with exactly one key"),
    ({"updates": ["add"]}, r"updates: must be a list of mappings; got \['add'\]"),
    ({"updates": [{"add": 0}]}, r"updates\[0\].add: must be a positive count"),
    ({"initial": []}, r"initial: must be a positive count or a non-empty list"),
    ({"initial": 0}, r"initial: must be >= 1; got 0"),
    ({"revise_fraction": 1.0}, r"revise_fraction: must be < 1; got 1.0"),
    ({"trials": 3}, r"trials: must be <= 1; got 3"),
])
def test_bad_config_fields_raise_config_errors(fields, match):
    with pytest.raises(ConfigError, match=match):
        build_dataclass(chem_evolve.CONFIG, _fields(**fields))


@pytest.mark.parametrize("fields, match", [
    ({"updates": [{"split": "ATG_PXRE_CIS_up"}]}, r"updates\[0\] \(split\): 'ATG_PXRE_CIS_up' is not a source of version 0"),
    ({"updates": [{"add": ["ATG_ERa_TRANS_up"]}]}, "is already a source of version 0"),
    ({"initial": [TARGET, "ATG_ERa_TRANS_up"]}, "is the target"),
    ({"target": "ATG_nope"}, "assay 'ATG_nope' does not exist"),
    ({"updates": [{"remove": ["ATG_ERa_TRANS_up", "ATG_NRF2_ARE_CIS_up"]}]}, "leaves 1 source"),
    # these passed validation, then failed (or ran) after proxies had trained
    ({"initial": ["ATG_ERa_TRANS_up"]}, r"initial: version 0 has 1 source\(s\); a mixture needs at least 2"),
    ({"initial": ["ATG_ERa_TRANS_up", "ATG_ERa_TRANS_up"]}, r"initial: names 'ATG_ERa_TRANS_up' more than once"),
    ({"updates": [{"revise": ["ATG_ERa_TRANS_up", "ATG_ERa_TRANS_up"]}]}, r"\(revise\): names 'ATG_ERa_TRANS_up' more than"),
    ({"updates": [{"add": ["ATG_PXRE_CIS_up", "ATG_PXRE_CIS_up"]}]}, r"\(add\): names 'ATG_PXRE_CIS_up' more than once"),
    ({"updates": [{"revise": "ATG_ERa_TRANS_up"}], "revise_fraction": 0.999},
     r"\(revise\): leaves 'ATG_ERa_TRANS_up' with \d+ molecule\(s\) and no (positive|negative) label"),
    ({"updates": [{"remove": TARGET}]}, r"updates\[0\] \(remove\): 'ATG_ERE_CIS_up' is the target, not a source"),
    # it read ToxCast's label table as metadata and listed its columns
    ({"metadata": "toxcast"}, (r"metadata: 'toxcast' is a registered assay table, not assay metadata; did you mean "
                               r"toxcast_assays\?")),
    ({"initial": 5}, (r"^initial: asks for the first 5 informative assays besides the target, but .* has 4; ask for "
                      r"at most 4")),  # it said "asks for 5 more assays", of the first version
    ({"target": "ATG_PXRE_CIS_up", "ignore_columns": ["ATG_PXRE_CIS_up"]},  # it said "does not exist"
     r"assay 'ATG_PXRE_CIS_up' is a column of .* listed in ignore_columns, so it is not read as an assay; remove it"),
])
def test_bad_updates_fail_in_validate(fields, match):
    with pytest.raises(InputError, match=match):
        chem_evolve.validate(build_dataclass(chem_evolve.CONFIG, _fields(**fields)))


def test_other_proxy_settings_never_reuse_cached_proxies(tmp_path):
    store, _, _ = _run(tmp_path, "ten_trees", updates=[])
    store, run_id, run_dir = _run(tmp_path, "five_trees", updates=[], proxy_trees=5)
    assert len(_proxy_units(store, run_id)) == 3 and len(_cache(store)) == 6
    v0 = json.loads((run_dir / "evolve.json").read_text())["versions"][0]
    assert v0["compute"]["total"] == 5 * sum(
        json.loads((store.root / "proxy_cache" / f"{k}.json").read_text())["rows"] for k in v0["proxy_keys"].values())


def test_a_schema_error_fails_before_any_run_folder(tmp_path, capsys):
    assert main(["run", _config(tmp_path, "typo"), "--set", "proxy_trees=abc", "--dry-run"]) == 2
    assert "proxy_trees: must be an integer >= 1, <= 10000; got 'abc'." in capsys.readouterr().err
    assert main(["run", _config(tmp_path, "typo"), "--set", "updates=[{add: [A]}, {merge: B}]"]) == 2
    assert "updates[1]: must be a mapping with exactly one key" in capsys.readouterr().err
    assert not (RunStore().root / "runs").exists()


def test_proxies_are_shared_with_the_chemistry_pipeline(tmp_path):
    """A chem run's per-assay proxies (same table, split, trees and seed) are the evolving run's v0 proxies."""
    chem = tmp_path / "chem.yaml"
    chem.write_text(yaml.safe_dump({"pipeline": "chem", "name": "chem", "dataset": "", "path": SMALL["path"],
                                    "targets": [TARGET], "assays": [TARGET, *INITIAL], "source_counts": ["all"],
                                    "methods": ["mixmin"], "trials": 1, "proxy_trees": 10, "final_trees": 10,
                                    "n_boot": 0, "n_workers": 1}))
    assert main(["run", str(chem), "--quiet"]) == 0
    before = _cache(RunStore())
    assert len(before) == 3
    store, run_id, run_dir = _run(tmp_path, "after_chem", updates=[])
    assert _proxy_units(store, run_id) == [] and _cache(store) == before
    assert json.loads((run_dir / "evolve.json").read_text())["versions"][0]["trained_in_this_job"] == []


def test_a_split_half_splits_again_and_a_missing_target_names_its_default(tmp_path, toxcast_head):
    """Splitting ASSAY#1 again put every molecule of the half on one side (the same seeded hash made the half) and
    failed advising revise_fraction; without `target:` a user table's error did not say the target was a default."""
    from mixmin_core.chem.experiment import load_table

    config = build_dataclass(chem_evolve.CONFIG, _fields(updates=[{"split": "ATG_ERa_TRANS_up"},
                                                                 {"split": "ATG_ERa_TRANS_up#1"}]))
    versions = chem_evolve._checked_versions(config, load_table(config.data))
    half = versions[1].sources["ATG_ERa_TRANS_up#1"].members
    quarters = [versions[2].sources[f"ATG_ERa_TRANS_up#1#{k}"].members for k in (1, 2)]
    assert all(q.size > half.size // 4 for q in quarters)  # about half each, not all on one side
    assert np.array_equal(np.sort(np.concatenate(quarters)), half)
    assert versions[2].sources["ATG_ERa_TRANS_up#2"].members.tolist() == versions[1].sources["ATG_ERa_TRANS_up#2"].members.tolist()
    with pytest.raises(InputError, match=r"^target: not given, so the default 'APR_HepG2_CellLoss_72h_dn' \(ToxCast "
                                         r"assays\) is used, and assay 'APR_HepG2_CellLoss_72h_dn' does not exist"):
        chem_evolve.validate(build_dataclass(chem_evolve.CONFIG, {k: v for k, v in _fields().items() if k != "target"}))
    path = tmp_path / "one_positive.csv"
    toxcast_head.assign(rare=[1] + [0] * (len(toxcast_head) - 1)).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"\(split\): leaves 'rare#\d' with \d+ molecule\(s\) and no positive label; a "
                                         r"source needs both \(leave it whole\)"):  # no word of revise_fraction
        chem_evolve.validate(build_dataclass(chem_evolve.CONFIG, _fields(path=str(path), initial=[*INITIAL, "rare"],
                                                                         updates=[{"split": "rare"}])))
