import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixmin_core.engine.report import write_report
from mixmin_core.errors import InputError
from mixmin_core.runs import fileio, layout
from mixmin_core.runs.layout import (
    Problem,
    list_mixtures,
    list_problems,
    mixture_path,
    mixture_problems,
    outputs_path,
)
from mixmin_core.runs.store import RunStore, default_home
from mixmin_core.solver.results import (
    MixtureResult,
    mean_ci,
    mean_over_targets,
    paired_pvalue,
    summarize,
    welch_pvalue,
)


def test_default_home_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / "h"))
    assert default_home() == (tmp_path / "h").resolve()
    store = RunStore()
    assert store.db_path.exists()
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_runs_jobs_units_results_round_trip(tmp_path):
    store = RunStore(tmp_path)
    folder = store.create_run("r1", name="demo", pipeline="synthetic", config={"a": 1}, dataset="toy")
    assert fileio.read_json(folder / "config.json") == {"a": 1}
    store.create_run("r1", name="demo", pipeline="synthetic", config={"a": 2})  # idempotent
    assert fileio.read_json(folder / "config.json") == {"a": 1}
    job = store.start_job("r1")
    store.update_job(job, n_done=3, n_total=10, message="proxies")
    (j,) = store.list_jobs("r1")
    assert (j["n_done"], j["n_total"], j["message"], j["status"]) == (3, 10, "proxies", "running")
    assert not store.cancel_requested(job)
    store.request_cancel(job)
    assert store.cancel_requested(job)
    store.finish_job(job, "cancelled", "by user")
    assert store.list_jobs()[0]["status"] == "cancelled"
    store.record_unit("r1", "proxy/a", kind="proxy", path="x", info={"rows": 5}, seconds=0.1)
    assert store.unit_info("r1", "proxy/a") == {"rows": 5}
    assert store.results("r1").empty and list(store.results("r1").columns[:8]) == list(layout.RESULT_COLUMNS)
    write_report(folder, [{"trial": 0, "target": "t", "method": "mixmin", "metric": "ap", "value": 0.5,
                           "proxy_compute": 10}])
    write_report(folder, [{"trial": 0, "target": "t", "method": "mixmin", "metric": "ap", "value": 0.6}])  # replaces
    res = store.results("r1")  # results.csv of the run folder: one source of truth
    assert len(res) == 1 and res["value"].iloc[0] == 0.6 and res["proxy_compute"].iloc[0] == 0
    assert set(store.results().run_id) == {"r1"}
    store.set_run_status("r1", "done", {"best": "a"})
    assert store.get_run("r1")["summary"] == {"best": "a"} and store.get_run("nope") is None


def test_a_read_only_store_reads_and_creates_or_writes_nothing(tmp_path):
    """The app's read-only mode: the catalog was opened for writing (schema, WAL), so a demo of a store the app
    cannot write showed tracebacks, and a store that did not exist yet was created."""
    import sqlite3

    missing = RunStore(tmp_path / "none", read_only=True)
    assert missing.list_runs() == [] and missing.list_jobs() == [] and not (tmp_path / "none").exists()
    store = RunStore(tmp_path / "home")
    store.create_run("r1", name="r", pipeline="synthetic", config={"a": 1})
    store.start_job("r1")
    reader = RunStore(tmp_path / "home", read_only=True)
    assert [r["run_id"] for r in reader.list_runs()] == ["r1"] and len(reader.list_jobs("r1")) == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.set_run_status("r1", "done")
    assert store.get_run("r1")["status"] == "created"


def test_a_store_path_that_cannot_be_a_folder_is_one_error(tmp_path):
    from mixmin_core.errors import MixminError

    (tmp_path / "file").write_text("x")
    with pytest.raises(MixminError, match=r"the run store .*file cannot be used \(it is a file, not a folder\); set MIXMIN_HOME"):
        RunStore(tmp_path / "file")  # was FileExistsError's traceback from every command


def test_job_whose_process_died_is_reported(tmp_path):
    store = RunStore(tmp_path)
    store.create_run("r", name="n", pipeline="p", config={})
    store.start_job("r", pid=2 ** 22 + 12345)  # no such process
    assert store.list_jobs()[0]["status"] == "died"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    fileio.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), fileio.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert fileio.read_json(target) == {"v": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_layout_paths_round_trip(tmp_path):
    from mixmin_core.solver.synthetic import example_problem

    outputs, _ = example_problem(n_samples=20)
    p1, p2 = Problem("TOX21 a/b", 0, "sources-10"), Problem("t2", 2)
    outputs.save(outputs_path(tmp_path, p1))
    outputs.save(outputs_path(tmp_path, p2))
    probs = list_problems(tmp_path)
    assert [(p.target, p.variant, p.trial) for p in probs] == [("TOX21-a-b", "sources-10", 0), ("t2", "", 2)]
    fileio.write_json(mixture_path(tmp_path, p2, "mixmin"), {})
    fileio.write_json(mixture_path(tmp_path, p2, "random_search"), {})
    assert sorted(list_mixtures(tmp_path, p2)) == ["mixmin", "random_search"]
    for key in ("arc_easy__nonsense__more__trial0", "arc_easy", "a__b", "__trial0"):  # the middle parts were dropped silently
        with pytest.raises(ValueError, match="not a problem key"):
            Problem.from_key(key)
    fileio.write_json(tmp_path / "proxy_outputs" / "notes__x__y__trial0.json", {})
    assert len(list_problems(tmp_path)) == 2  # a file that is not a problem's is passed over
    # a run names its targets: the pages showed SIDER's 'Hepatobiliary disorders' as its file key, which no
    # results row matched (its own data read as another source's); an LM target is a mapping with a name
    fileio.write_json(tmp_path / "config.json", {"targets": [{"name": "t2"}, "TOX21 a/b"]})
    assert [p.target for p in list_problems(tmp_path)] == ["TOX21 a/b", "t2"]
    assert [p.target for p in mixture_problems(tmp_path)] == ["t2"]
    assert list_problems(tmp_path)[0].key == p1.key
    fileio.write_json(tmp_path / "config.json", {"targets": []})  # chosen by n_targets: dataset.json names them
    fileio.write_json(tmp_path / "dataset.json", {"targets": ["TOX21 a/b"]})
    assert list_problems(tmp_path)[0].target == "TOX21 a/b"


def test_mean_ci_and_welch():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and lo == pytest.approx(2 - 4.302653 * 1 / np.sqrt(3), rel=1e-5) and hi > m
    assert np.isnan(mean_ci([1.0])[1])
    assert welch_pvalue([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert welch_pvalue([0, 0.1, 0.05], [5, 5.1, 5.05]) < 1e-3


def test_welch_is_undefined_without_spread_beyond_float32_rounding():
    """Constant trials (the same accuracy on a small test set) gave p = 0, and float32 rounding noise
    (7/24 as 0.29166666 and 0.29166664) gave p = 3e-8: 'significant' differences that are not."""
    assert np.isnan(welch_pvalue([0.5, 0.5], [5 / 12, 5 / 12]))
    assert np.isnan(welch_pvalue([0.29166666, 0.29166664], [0.25, 0.25]))
    assert welch_pvalue([0.29166666, 0.29166664], [0.29166665, 0.29166665]) == 1.0
    assert 0 < welch_pvalue([0.5, 0.5], [0.40, 0.45]) < 1  # one side's spread is real: the test applies
    assert np.isnan(welch_pvalue([1.0], [2.0, 3.0]))


def test_summarize_improvement_and_pvalues():
    rows = []
    for trial in range(3):
        rows += [{"target": "t", "method": "target_only", "trial": trial, "metric": "ap", "value": 0.1 + 0.01 * trial},
                 {"target": "t", "method": "mixmin", "trial": trial, "metric": "ap", "value": 0.3 + 0.01 * trial},
                 {"target": "t", "method": "natural", "trial": trial, "metric": "ap", "value": 0.2 + 0.02 * trial}]
    out = summarize(pd.DataFrame(rows), reference="target_only").set_index("method")
    assert out.loc["mixmin", "improvement"] == pytest.approx(0.2)
    assert out.loc["mixmin", "improvement_low"] == pytest.approx(0.2)  # constant difference: zero width
    assert out.loc["natural", "p_vs_mixmin"] < 0.05 and np.isnan(out.loc["mixmin", "p_vs_mixmin"])
    with pytest.raises(InputError, match=r"frame must be a DataFrame with columns .*; missing \['trial'\]"):
        summarize(pd.DataFrame(rows).drop(columns="trial"))
    by_method = summarize(pd.DataFrame(rows), by="method", reference="target_only").set_index("method")  # IndexError
    assert by_method.loc["mixmin", "improvement"] == pytest.approx(0.2) and by_method.loc["natural", "p_vs_mixmin"] < 0.05
    one_method = pd.DataFrame(rows).query("method == 'mixmin'").drop(columns="method")
    no_methods = summarize(one_method, by=("target", "metric"))  # KeyError: 'method'
    assert no_methods.loc[0, "n_trials"] == 3 and "improvement" not in no_methods
    # three methods' values under one group were "9 trials"; a duplicated row was one trial more
    with pytest.raises(InputError, match=r"frame repeats 9 rows of one group and trial, e.g. target=t, metric=ap, "
                                         r"trial=0: each group holds one row per trial .* add the column that tells "
                                         r"them apart to by"):
        summarize(pd.DataFrame(rows).drop(columns="method"), by=("target", "metric"))
    with pytest.raises(InputError, match=r"frame repeats 2 rows .*drop_duplicates\(\['target', 'method', 'metric', "
                                         r"'trial'\]\)"):
        summarize(pd.concat([pd.DataFrame(rows), pd.DataFrame(rows[:1])]))


def test_summarize_refuses_pooled_targets_and_misspelt_methods_and_takes_a_direction():
    """Two targets grouped by method alone were 'ten trials'; reference='natral' and focus='MixMin' silently added
    nothing; bits_per_byte (Olmix's metric) was read as higher-is-better, with no way to say otherwise."""
    rng = np.random.default_rng(0)
    rows = [{"target": t, "method": m, "trial": k, "metric": "bits_per_byte", "value": base + rng.normal(0, 0.01)}
            for t in ("a", "b") for k in range(5) for m, base in (("natural", 1.0), ("mixmin", 0.9))]
    frame = pd.DataFrame(rows)
    with pytest.raises(InputError, match=r"frame holds 2 targets, which summarize would pool as extra trials; group "
                                         r"by target too .* or average over targets first \(mean_over_targets"):
        summarize(frame, by=("method", "metric"), reference="natural")
    overall = summarize(mean_over_targets(frame), reference="natural").set_index("method")
    assert overall.loc["mixmin", "n_trials"] == 5 and overall.loc["mixmin", "improvement"] > 0.05  # lower is better
    for kw, match in (({"reference": "natral"}, (r"reference='natral' is not a method of the frame; did you mean "
                                                 r"'natural'\? Its methods: mixmin, natural")),
                      ({"focus": "MixMin"}, r"focus='MixMin' is not a method of the frame; did you mean 'mixmin'")):
        with pytest.raises(InputError, match=match):
            summarize(frame, **kw)
    assert "improvement" not in summarize(frame, reference="target_only")  # a method the frame lacks: nothing added
    renamed = frame.assign(metric="val_quality")  # a name that says nothing: the caller says which way is better
    worse = summarize(renamed, reference="natural").set_index(["target", "method"])
    better = summarize(renamed, reference="natural", lower_is_better=True).set_index(["target", "method"])
    by_metric = summarize(renamed, reference="natural", lower_is_better={"val_quality": True})
    assert worse.loc[("a", "mixmin"), "improvement"] < 0 < better.loc[("a", "mixmin"), "improvement"]
    assert by_metric["improvement"].tolist() == better.reset_index()["improvement"].tolist()
    with pytest.raises(InputError, match=r"lower_is_better must be None, True, False or a dict"):
        summarize(frame, lower_is_better="yes")
    with pytest.raises(InputError, match=r"lower_is_better names \['val_qualty'\], which are not metrics of the "
                                         r"frame; its metrics: val_quality"):
        summarize(renamed, reference="natural", lower_is_better={"val_qualty": True})
    assert summarize(renamed, reference="natural", lower_is_better=np.True_)["improvement"].tolist() == \
        better.reset_index()["improvement"].tolist()
    # no typo: a method that extends another, absent ones beside such, numbers as method names
    variants = frame.assign(method=frame["method"].map({"natural": "random_search_bo", "mixmin": "mixmin_kl"}))
    assert "improvement" not in summarize(variants, reference="random_search")  # nothing to compare with: nothing
    assert "p_vs_mixmin" not in summarize(variants)  # the default focus, absent beside mixmin_kl
    numbered = frame.assign(method=frame["method"].map({"natural": 3, "mixmin": 1}))
    out = summarize(numbered, reference=3, focus=1).set_index(["target", "method"])
    assert out.loc[("a", 1), "improvement"] > 0.05 and "p_vs_1" in out


def test_higher_is_better_names_win_over_loss_words():
    """brier_skill_score (higher is better) and a weight entropy read as losses once 'brier' and 'entropy' did."""
    from mixmin_core.solver.results import lower_is_better

    assert not any(lower_is_better(m) for m in ("brier_skill_score", "weight_entropy", "normalized_entropy"))
    assert lower_is_better("cross_entropy") and lower_is_better("brier")


def test_p_values_are_paired_and_agree_with_the_improvements_interval():
    """Welch's test ignored that trials pair the methods: on chem_ci it gave p = 0.0097 beside a paired improvement
    interval of [-0.012, 0.236] (paired p = 0.060). Here Welch says 0.042 where the paired interval holds 0."""
    mixmin, natural = [0.515, 0.476, 0.571], [0.414, 0.432, 0.322]
    assert welch_pvalue(mixmin, natural) < 0.05 and paired_pvalue(mixmin, natural) == pytest.approx(0.1646, abs=1e-4)
    rows = [{"target": "t", "method": m, "trial": k, "metric": "ap", "value": v}
            for m, values in (("mixmin", mixmin), ("natural", natural)) for k, v in enumerate(values)]
    out = summarize(pd.DataFrame(rows), reference="natural").set_index("method")
    assert out.loc["mixmin", "improvement_low"] < 0 < out.loc["mixmin", "improvement_high"]
    assert out.loc["natural", "p_vs_mixmin"] == pytest.approx(0.1646, abs=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(200):  # p < 0.05 exactly when the paired 95% interval leaves out 0
        shared = rng.normal(0, 0.1, 3)
        a, b = 0.5 + shared + rng.normal(0, 0.03, 3), 0.45 - shared + rng.normal(0, 0.03, 3)
        _, lo, hi = mean_ci(a - b)
        assert (paired_pvalue(a, b) < 0.05) == (lo > 0 or hi < 0)
    assert np.isnan(paired_pvalue([0.5, 0.5], [0.4, 0.4])) and paired_pvalue([0.5, 0.6], [0.5, 0.6]) == 1.0
    assert paired_pvalue([0.5, np.inf, 0.6, 0.7], [0.4, 0.4, 0.45, 0.62]) == pytest.approx(
        paired_pvalue([0.5, 0.6, 0.7], [0.4, 0.45, 0.62]))  # a diverged trial's pair is left out
    with pytest.raises(InputError, match="must pair up trial by trial; got 2 and 3"):
        paired_pvalue([1, 2], [1, 2, 3])


def test_a_diverged_trial_is_not_counted_and_settings_are_not_pooled():
    """n_trials counted an infinite loss the mean left out; a run's results.csv through summarize with its
    defaults pooled two settings as 6 trials (intervals too narrow)."""
    rows = [{"target": "t", "variant": v, "method": m, "trial": k, "metric": "loss", "value": x}
            for v in ("sources-3", "sources-all") for m, values in (("mixmin", [0.5, np.inf, 0.6]),
                                                                    ("natural", [0.7, 0.72, 0.75]))
            for k, x in enumerate(values)]
    frame = pd.DataFrame(rows)
    one = summarize(frame[frame.variant == "sources-3"], reference="natural").set_index("method")
    assert one.loc["mixmin", "n_trials"] == 2 and one.loc["mixmin", "mean"] == pytest.approx(0.55)
    assert np.isfinite(one.loc["natural", "p_vs_mixmin"])
    for call in (lambda: summarize(frame), lambda: mean_over_targets(frame)):
        with pytest.raises(InputError, match=r"frame holds 2 settings in its 'variant' column \(sources-3, "
                                             r"sources-all\), which \w+ would pool as extra trials"):
            call()
    empty = frame.assign(variant=[None] * 6 + ["sources-3"] * 6)  # an empty setting is one too ("1 settings")
    with pytest.raises(InputError, match=r"frame holds 2 settings in its 'variant' column \(nan, sources-3\)"):
        summarize(empty)
    both = summarize(frame, by=("variant", "target", "method", "metric"))
    assert len(both) == 4 and (both.n_trials[both.method == "natural"] == 3).all()
    assert len(mean_over_targets(frame, keep=("variant",))) == 12


def test_intervals_of_proportions_stay_in_0_1():
    """Two trials of AP 0.1 and 0.9 gave a t-interval of [-4.6, 5.6] on the Compare page."""
    rows = [{"target": "t", "method": "m", "trial": k, "metric": metric, "value": v}
            for metric, values in (("ap", [0.1, 0.9]), ("accuracy_raw", [0.2, 0.95]), ("generative_loss", [1.0, 5.0]))
            for k, v in enumerate(values)]
    out = summarize(pd.DataFrame(rows)).set_index("metric")
    assert out.loc["ap", ["ci_low", "ci_high"]].tolist() == [0.0, 1.0]
    assert out.loc["accuracy_raw", ["ci_low", "ci_high"]].tolist() == [0.0, 1.0]
    assert out.loc["generative_loss", "ci_low"] < 0 and out.loc["generative_loss", "ci_high"] > 5  # a loss: as computed
    assert out.loc["ap", "mean"] == pytest.approx(0.5)
    rows = [{"target": "t", "method": "m", "trial": k, "metric": "yardstick_spearman", "value": v}
            for k, v in enumerate([0.3, 0.95])]
    assert summarize(pd.DataFrame(rows)).loc[0, ["ci_low", "ci_high"]].tolist() == [-1.0, 1.0]  # reached 1.24


def test_improvement_intervals_stay_within_what_a_difference_can_be():
    """RegMix's improvement in AP over natural had an interval of [-1.08, 0.96] with 2 trials."""
    rows = [{"target": "t", "method": method, "trial": k, "metric": metric, "value": v}
            for metric in ("ap", "generative_loss")
            for method, values in (("natural", [0.1, 0.9]), ("regmix", [0.95, 0.05]))
            for k, v in enumerate(values)]
    out = summarize(pd.DataFrame(rows), reference="natural").set_index(["metric", "method"])
    assert out.loc[("ap", "regmix"), ["improvement_low", "improvement_high"]].tolist() == [-1.0, 1.0]
    assert out.loc[("generative_loss", "regmix"), "improvement_low"] < -2  # a loss: as computed
    assert out.loc[("ap", "regmix"), "improvement"] == pytest.approx(0.0)


def test_a_metric_with_no_value_in_any_trial_is_summarised_blank():
    """A constant target's yardstick Spearman is NaN in every trial: summarize raised KeyError after all the work."""
    rows = [{"target": "t", "method": m, "trial": k, "metric": metric, "value": v}
            for k in range(2) for m in ("natural", "regmix")
            for metric, v in (("loss", 2.0 + k), ("yardstick_spearman", float("nan")))]
    out = summarize(pd.DataFrame(rows), reference="natural").set_index(["metric", "method"])
    assert np.isnan(out.loc[("yardstick_spearman", "regmix"), "mean"])
    assert np.isnan(out.loc[("yardstick_spearman", "regmix"), "improvement"])
    assert out.loc[("loss", "regmix"), "improvement"] == pytest.approx(0.0)


def test_a_yardsticks_distance_beyond_its_runs_is_lower_is_better():
    """RegMix's prediction 0.18 beyond every run the yardstick saw read as a +0.18 improvement over natural."""
    from mixmin_core.solver.results import lower_is_better

    assert lower_is_better("yardstick_beyond_runs") and lower_is_better("yardstick_rmse")
    assert not lower_is_better("yardstick_spearman") and not lower_is_better("ap")
    # short words count whole: a Spearman on a test table named model1 read as an L1 distance
    assert not lower_is_better("spearman/model1") and not lower_is_better("best_run_score")
    assert all(lower_is_better(m) for m in ("l1_to_true", "ladder_l1_change", "test_nll", "val_mse", "best_run_loss",
                                            "surrogate:yardstick_loss", "trainloss", "valNLL", "nmse", "rmse",
                                            "best_loss/my_runs"))
    # after a "/" a run-table metric names a table: a Spearman on table heldout_loss is still a Spearman
    assert not any(lower_is_better(m) for m in ("spearman/heldout_loss", "spearman/val_errors", "spearman/mse_runs"))
    from mixmin_core.solver.results import metric_range

    assert metric_range("top1_loss/accuracy_swarm") == (-np.inf, np.inf)  # a loss, on a table named accuracy_swarm
    assert metric_range("spearman/auc_tab") == (-1.0, 1.0)


def test_diagnostics_of_the_yardstick_or_the_table_get_no_improvement_or_p_value():
    """summary.csv gave RegMix an "improvement" of -0.19 in yardstick_beyond_runs and 0.0 in yardstick_rmse (the
    same yardstick for every method), and the pool's best run an improvement: facts, not scores."""
    from mixmin_core.solver.results import is_diagnostic

    rows = [{"target": "t", "method": m, "trial": k, "metric": metric, "value": v + (0.01 * k if m == "regmix" else 0)}
            for k in range(3) for metric in ("yardstick_beyond_runs", "yardstick_rmse", "best_run_loss", "measured_loss")
            for m, v in (("natural", 0.0), ("regmix", 0.18), ("mixmin", 0.1))]
    out = summarize(pd.DataFrame(rows), reference="natural").set_index(["metric", "method"])
    for metric in ("yardstick_beyond_runs", "yardstick_rmse", "best_run_loss"):
        assert is_diagnostic(metric)
        assert out.loc[(metric, "regmix"), ["improvement", "p_vs_mixmin"]].isna().all()
        assert out.loc[(metric, "regmix"), "mean"] == pytest.approx(0.19)  # still summarised
    assert out.loc[("measured_loss", "regmix"), "improvement"] == pytest.approx(-0.19)  # a score: compared
    assert np.isfinite(out.loc[("measured_loss", "regmix"), "p_vs_mixmin"]) and not is_diagnostic("measured_loss")


def test_top_weights_take_a_count():
    result = MixtureResult(weights=np.array([0.2, 0.5, 0.3], dtype=np.float32), source_names=("a", "b", "c"))
    assert [n for n, _ in result.top(2)] == ["b", "c"] and result.top(0) == []
    for k in (-1, "2", 1.5):  # [:-1] silently dropped the smallest
        with pytest.raises(InputError, match="k must be a non-negative integer"):
            result.top(k)


def test_atomic_writes_get_the_permissions_open_would_give(tmp_path):
    """mkstemp makes a private (0600) file; a store or an export others read must follow the umask."""
    import os
    import stat

    path, plain = tmp_path / "x.json", tmp_path / "plain.json"
    fileio.write_json(path, {"a": 1})
    plain.write_text("{}")
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_improvement_is_positive_for_a_lower_loss():
    """For a loss the improvement was value - reference, so a method with a lower (better) loss read as worse."""
    rows = []
    for trial in range(3):
        rows += [{"target": "t", "method": "natural", "trial": trial, "metric": "generative_loss", "value": 5.5 + 0.01 * trial},
                 {"target": "t", "method": "mixmin", "trial": trial, "metric": "generative_loss", "value": 5.4 + 0.01 * trial}]
    out = summarize(pd.DataFrame(rows), reference="natural").set_index("method")
    assert out.loc["mixmin", "improvement"] == pytest.approx(0.1)
    assert out.loc["mixmin", "improvement_low"] <= out.loc["mixmin", "improvement_high"]


def test_overall_averages_every_method_over_the_same_targets():
    """A method run on one (hard) target only was averaged over that target, other methods over all."""
    from mixmin_core.solver.results import mean_over_targets

    rows = [{"target": t, "method": m, "trial": k, "metric": "ap", "value": v + 0.01 * k}
            for k in range(3) for t, m, v in [("easy", "mixmin", 0.9), ("hard", "mixmin", 0.3), ("hard", "regmix", 0.4),
                                              ("easy", "natural", 0.8), ("hard", "natural", 0.2)]]
    rows.append({"target": "easy", "method": "natural", "trial": 0, "metric": "loss", "value": 1.0})  # another metric
    out = mean_over_targets(pd.DataFrame(rows)).set_index(["metric", "method", "trial"])["value"]
    assert out["ap", "mixmin", 0] == pytest.approx(0.3) and out["ap", "regmix", 0] == pytest.approx(0.4)
    assert out["ap", "natural", 0] == pytest.approx(0.2) and out["loss", "natural", 0] == 1.0
    rows = [r for r in rows if r["method"] != "regmix"]  # all methods on both targets: the plain mean
    out = mean_over_targets(pd.DataFrame(rows)).set_index(["metric", "method", "trial"])
    assert out.loc[("ap", "mixmin", 1), "value"] == pytest.approx(0.61)
    # a target one method lacks in trial 1 only: that trial's mean covers one target, and says so
    rows = [r for r in rows if not (r["target"] == "hard" and r["method"] == "natural" and r["trial"] == 1)]
    out = mean_over_targets(pd.DataFrame(rows)).set_index(["metric", "method", "trial"])
    assert out.loc["ap", "n_targets"].to_dict() == {(m, k): 1 if k == 1 else 2 for m in ("mixmin", "natural")
                                                    for k in range(3)}
    assert out.loc[("ap", "mixmin", 1), "value"] == pytest.approx(0.91)


def test_metric_ranges_and_directions_by_name():
    """A yardstick's distance beyond its runs (never negative) got intervals below 0; compute spent was
    higher-is-better."""
    from mixmin_core.solver.results import lower_is_better, metric_ci, metric_range

    assert metric_range("yardstick_beyond_runs") == metric_range("yardstick_rmse") == (0.0, np.inf)
    assert metric_range("mixture_l1_change") == (0.0, np.inf) and metric_range("ap") == (0.0, 1.0)
    assert metric_range("spearman/heldout_mse") == (-1.0, 1.0) and metric_range("val_loss") == (-np.inf, np.inf)
    assert metric_ci([0.0, 0.0, 0.02], "yardstick_beyond_runs")[1] == 0.0
    assert metric_range("average_precision") == metric_range("f1") == (0.0, 1.0)  # it was unbounded
    assert metric_ci([0.98, 0.99, 1.0], "average_precision")[2] == 1.0
    assert lower_is_better("proxy_compute_spent") and not lower_is_better("proxy_compute_saved_fraction")
    for name in ("mae", "bpb", "bits_per_byte", "cross_entropy", "brier", "ppl", "wer", "kl", "val_mae"):
        assert lower_is_better(name), name  # read as higher-is-better, with no way to say otherwise
    assert not any(lower_is_better(m) for m in ("power", "weekly_score", "apple_acc", "cancer_auc"))
    assert lower_is_better("surrogate:own_prediction_loss") and not lower_is_better("surrogate:own_prediction_score")


def test_a_damaged_catalog_says_how_to_recover_and_an_empty_home_is_the_default(tmp_path, monkeypatch):
    """A damaged mixmin.db said "set MIXMIN_HOME to a folder you can write"; MIXMIN_HOME= put the store in the
    working folder."""
    from mixmin_core.errors import MixminError

    (tmp_path / "mixmin.db").write_text("garbage")
    with pytest.raises(MixminError, match=r"catalog .*mixmin.db cannot be read .* move it aside .* runs its units again"):
        RunStore(tmp_path)
    (tmp_path / "mixmin.db").write_bytes(b"")  # emptied (a full disk, a bad copy) beside runs: it read as "no runs"
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    with pytest.raises(MixminError, match=r"mixmin.db cannot be read \(the file is empty, but runs/ holds runs\)"):
        RunStore(tmp_path)
    (tmp_path / "runs" / "r1").rmdir()
    assert RunStore(tmp_path).list_runs() == []  # no run to lose: an empty catalog is made
    (tmp_path / "mixmin.db").unlink()
    (tmp_path / "mixmin.db").mkdir()  # cannot be opened: the folder's doing, not a damaged catalog
    with pytest.raises(MixminError, match=r"cannot be used .*set MIXMIN_HOME to a folder you can write"):
        RunStore(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIXMIN_HOME", "")
    assert default_home() == tmp_path / "data"


def test_a_run_whose_folder_cannot_be_moved_keeps_its_catalog_rows(tmp_path, monkeypatch):
    """A runs/ folder it could not write lost the catalog rows, then failed with a traceback."""
    store = RunStore(tmp_path / "store")
    store.create_run("r-1", name="r", pipeline="synthetic", config={})
    store.record_unit("r-1", "u", kind="proxy", path=None, info={}, seconds=1.0)

    def refuse(self, target):
        raise PermissionError(1, "Operation not permitted")

    with monkeypatch.context() as m:
        m.setattr(Path, "rename", refuse)
        with pytest.raises(InputError, match=r"cannot move the run folder .* nothing was removed"):
            store.delete_run("r-1")
    assert store.get_run("r-1") and store.units("r-1") and store.run_dir("r-1").is_dir()
    store.delete_run("r-1")
    assert store.get_run("r-1") is None and not store.units("r-1") and not store.run_dir("r-1").exists()
