"""Shareable views (issue 15): each page's selections in the query string, read back on load, with
a notice (never an exception) for values that do not fit; and the pages read the run folder's
results.csv / summary.csv (issue 11)."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mixmin_core.engine.report import write_report
from mixmin_core.runs import layout
from mixmin_core.runs.store import RunStore
from tests.app.conftest import open_app
from tests.app.fixtures import CHEM_RUN, ROOT, write_chem_run

pytestmark = pytest.mark.timeout(180)


def open_link(page: str, params: dict) -> AppTest:
    """A fresh session that opens ``/<page>?<params>`` (as a shared link does)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.query_params = dict(params)
    if page != "runs":
        at.run()  # AppTest can only switch to a page registered by a first run
        at.switch_page(f"pages/{page}.py")
        at.query_params = dict(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def weights(at) -> pd.Series:
    return at.dataframe[0].value.set_index("source")["weight"]


def table(at) -> pd.DataFrame:
    value = at.dataframe[0].value
    return value.data if hasattr(value, "data") else value  # a pandas Styler


def notices(at) -> list[str]:
    return [i.value for i in at.info if "link" in i.value]


def chem_problem(variant="sources-10", trial=1, target_index=0) -> layout.Problem:
    problems = [p for p in layout.list_problems(RunStore().run_dir(CHEM_RUN)) if p.variant == variant and p.trial == trial]
    return sorted(problems, key=lambda p: p.target)[target_index]


# ---- Solver ------------------------------------------------------------------------------------------
def test_solver_link_shows_the_same_weights_as_setting_the_controls_by_hand(home):
    problem = chem_problem()
    link = {"run": CHEM_RUN, "problem": problem.key, "step_size": "3", "max_iter": "200", "max_weight": "0.3"}
    at = open_link("solver", link)
    assert not notices(at)
    assert at.selectbox(key="w:solve.problem").value == f"run:{CHEM_RUN}:{problem.key}"
    assert at.select_slider(key="w:solve.step_size").value == 3.0
    assert at.slider(key="w:solve.max_iter").value == 200
    assert at.slider(key="w:solve.max_weight").value == pytest.approx(0.3)

    by_hand = open_app("solver")
    by_hand.selectbox(key="w:solve.problem").set_value(f"run:{CHEM_RUN}:{problem.key}").run()
    by_hand.select_slider(key="w:solve.step_size").set_value(3.0).run()
    by_hand.slider(key="w:solve.max_iter").set_value(200).run()
    by_hand.slider(key="w:solve.max_weight").set_value(0.3).run()
    assert not by_hand.exception
    assert metric(at, "Final loss") == metric(by_hand, "Final loss")
    assert metric(at, "Iterations") == metric(by_hand, "Iterations")
    assert weights(at).max() <= 0.3 + 1e-4
    pd.testing.assert_series_equal(weights(at), weights(by_hand))
    # the page wrote the same view back to its URL
    assert {k: at.query_params[k] for k in link} == link
    assert {k: by_hand.query_params[k] for k in link} == link


def test_solver_writes_its_settings_to_the_url_as_they_change(home):
    at = open_app("solver")
    at.select_slider(key="w:solve.step_size").set_value(0.3).run()
    at.number_input(key="w:solve.prior_strength").set_value(0.5).run()
    assert at.query_params["step_size"] == "0.3" and at.query_params["prior_strength"] == "0.5"
    assert at.query_params["run"] == at.session_state["app.run_id"]
    assert at.session_state["solve.problem"].endswith(":" + at.query_params["problem"])


def test_solver_link_to_the_example_and_bad_values_fall_back_with_a_notice(home):
    at = open_link("solver", {"problem": "example", "step_size": "7", "max_iter": "lots", "top_k": "3"})
    assert at.selectbox(key="w:solve.problem").value == "example"
    assert at.select_slider(key="w:solve.step_size").value == 1.0  # 7 is not on the slider
    assert at.slider(key="w:solve.max_iter").value == 100
    assert at.number_input(key="w:solve.top_k").value == 3
    text = " ".join(notices(at))
    assert "`step_size=7`" in text and "`max_iter=lots`" in text


def test_a_link_to_a_run_that_does_not_exist_opens_with_a_notice(home):
    for page in ("runs", "solver", "compare", "assays"):
        at = open_link(page, {"run": "deleted-run-0001", "target": "nope", "metric": "nope"})
        assert any("`run=deleted-run-0001`" in n for n in notices(at)), page
        assert at.session_state["app.run_id"] in {r["run_id"] for r in RunStore().list_runs()}
    at = open_link("solver", {"run": "chem_ci-8ec3dd53\x00\x07"})  # a NUL showed as "\ufffd", a bell as nothing
    assert any("`run=chem_ci-8ec3dd53\\u0000\\u0007`" in n for n in notices(at)), notices(at)


def test_a_solver_link_to_a_missing_run_falls_back_to_the_newest_run_it_can_show(home):
    """/solver?run=<deleted> fell back to the newest run, a run-table run the Solver cannot show ("A run on run
    tables trains no proxies"), after the first notice."""
    RunStore().create_run("table-run-0001", name="table", pipeline="run_table", config={})  # the newest, no outputs
    at = open_link("solver", {"run": "deleted-run-0001"})
    run_id = at.session_state["app.run_id"]
    assert run_id != "table-run-0001" and at.selectbox(key="w:solve.problem").value.startswith(f"run:{run_id}:")
    notice = next(n for n in notices(at) if "`run=deleted-run-0001`" in n)
    assert f"showing the newest run this page can show, `{run_id}`, instead" in notice
    assert not any("trains no proxies" in i.value or "Pick an upload" in i.value for i in at.info)
    at = open_link("compare", {"run": "deleted-run-0001"})  # a page that shows any run: the newest
    assert at.session_state["app.run_id"] == "table-run-0001"


def test_a_long_link_value_is_cut_short_and_an_empty_store_says_so(empty_home):
    at = open_link("compare", {"run": "x" * 5000})
    (notice,) = [i.value for i in at.info if "link" in i.value]
    assert len(notice) < 300 and "x" * 79 + "…" in notice  # it repeated all 5,000 characters
    assert "showing no run (the store is empty) instead" in notice  # not "another run": there is none


def test_a_link_to_a_target_not_in_the_run_falls_back_with_a_notice(home):
    at = open_link("assays", {"run": CHEM_RUN, "setting": "sources-10", "target": "NOT_AN_ASSAY"})
    assert any("`target=NOT_AN_ASSAY`" in n for n in notices(at))
    assert at.selectbox(key="w:assays.variant").value == "sources-10"
    assert at.selectbox(key="w:assays.target").value == at.selectbox(key="w:assays.target").options[0]


# ---- Compare and Assays ---------------------------------------------------------------------------
def test_compare_link_opens_the_same_metric_setting_and_baseline(home):
    link = {"run": CHEM_RUN, "metric": "average_precision", "setting": "sources-10", "baseline": "target_only"}
    at = open_link("compare", link)
    assert not notices(at)
    assert at.selectbox(key="w:compare.variant").value == "sources-10"
    assert at.selectbox(key="w:compare.baseline").value == "target_only"
    by_hand = open_app("compare")
    by_hand.selectbox(key="w:compare.variant").set_value("sources-10").run()
    by_hand.selectbox(key="w:compare.baseline").set_value("target_only").run()
    pd.testing.assert_frame_equal(at.dataframe[0].value, by_hand.dataframe[0].value)
    assert "vs target_only" in at.dataframe[0].value.columns
    assert {k: at.query_params[k] for k in link} == link


def test_assays_link_opens_the_same_target_trial_and_top_k(home):
    problem = chem_problem("sources-all", trial=2, target_index=1)
    link = {"run": CHEM_RUN, "setting": "sources-all", "target": problem.target, "trial": "2", "top_k": "5"}
    at = open_link("assays", link)
    assert not notices(at)
    assert at.selectbox(key="w:assays.target").value == problem.target
    assert at.selectbox(key="w:assays.trial").value == 2
    shown = table(at)
    assert len(shown) == 5
    topk = json.loads(layout.topk_path(RunStore().run_dir(CHEM_RUN), problem).read_text())
    assert list(shown["source"]) == [row["source"] for row in topk["sources"][:5]]
    # categories: a subset in the link filters the table
    cats = sorted(set(shown["category"]))
    at2 = open_link("assays", {**link, "categories": cats[:1]})
    assert set(table(at2)["category"]) == set(cats[:1])
    assert at2.query_params["categories"] in (cats[:1], cats[0])
    # no category at all is a view too: it stays in the link (an empty list dropped out, and the link showed all)
    at2.multiselect(key="w:assays.categories").set_value([]).run()
    assert at2.query_params["categories"] in ([""], "")
    at3 = open_link("assays", {**link, "categories": ""})
    assert table(at3).empty and at3.multiselect(key="w:assays.categories").value == []
    assert any("No category is selected" in i.value for i in at3.info)


# ---- results.csv / summary.csv ----------------------------------------------------------------------
def test_runs_key_result_is_the_main_setting_the_compare_page_opens_on(home):
    runs = open_app()
    chem = runs.dataframe[0].value.set_index("name").loc["chem-fixture", "key result"]
    assert chem.endswith("(sources-all)")
    compare = open_app("compare")
    assert compare.selectbox(key="w:compare.variant").value == "sources-all"
    summary = compare.dataframe[0].value
    overall = summary[summary["target"] == "overall"].set_index("method")["mean"]
    assert f"mixmin {overall['mixmin']:#.3g}" in chem and f"natural {overall['natural']:#.3g}" in chem
    # and both agree with the run's summary.csv
    written = layout.read_summary(RunStore().run_dir(CHEM_RUN))
    row = written[(written["target"] == "overall") & (written["variant"] == "sources-all")
                  & (written["method"] == "mixmin")]
    assert row["mean"].iloc[0] == pytest.approx(overall["mixmin"])


def test_runs_key_result_names_a_method_that_beat_the_first_three(home):
    """target_only's 0.601 went unsaid beside "mixmin 0.429, natural 0.378, balanced 0.368"."""
    run_dir = RunStore().run_dir(CHEM_RUN)
    summary = layout.read_summary(run_dir)
    summary.loc[summary["method"] == "target_only", "mean"] = 0.987
    layout.write_summary(run_dir, summary)
    chem = open_app().dataframe[0].value.set_index("name").loc["chem-fixture", "key result"]
    assert chem.split(" (")[0].endswith("target_only 0.987"), chem
    overall = summary[(summary["target"] == "overall") & (summary["variant"] == "sources-all")
                      & (summary["metric"] == "average_precision")].set_index("method")["mean"]
    summary.loc[summary["method"] == "target_only", "mean"] = overall[["mixmin", "natural", "balanced"]].max() + 1e-5
    layout.write_summary(run_dir, summary)  # a tie at the digits shown is no win to name
    chem = open_app().dataframe[0].value.set_index("name").loc["chem-fixture", "key result"]
    assert "target_only" not in chem, chem


def test_compare_says_which_methods_were_not_run_in_a_setting_and_why(home):
    write_chem_run(home, run_id="chem-capped", n_sources=30, n_targets=2, n_trials=2, search_max_sources=20)
    at = open_link("compare", {"run": "chem-capped"})
    assert at.selectbox(key="w:compare.variant").value == "sources-all"
    assert {"random_search", "regmix"}.isdisjoint(at.dataframe[0].value["method"])
    note = next(i.value for i in at.info if "Not run in this setting" in i.value)
    assert "random_search, regmix" in note and "search_max_sources=20" in note
    at.selectbox(key="w:compare.variant").set_value("sources-10").run()
    assert not any("Not run in this setting" in i.value for i in at.info)
    assert {"random_search", "regmix"} <= set(at.dataframe[0].value["method"])
    write_chem_run(home, run_id="chem-none", n_sources=30, n_targets=2, n_trials=2, search_max_sources=5)
    at = open_link("compare", {"run": "chem-none"})  # (PCBA-128 at [all]: no setting ran them, and nothing was said)
    note = next(i.value for i in at.info if "Not run in this setting" in i.value)
    assert "random_search, regmix" in note and "search_max_sources=5" in note, note
    assert "No setting of this run is that small" in note and "pool holds every assay" in note
    from mixmin_core.engine.report import write_report

    # a run-table run: RegMix's Spearman is RegMix's alone
    run_dir = RunStore().create_run("table-run", name="table-run", pipeline="run_table", config={
        "pipeline": "run_table", "methods": ["natural", "random_search", "regmix"]})
    write_report(run_dir, [{"target": "t", "method": m, "trial": k, "metric": metric, "value": 0.5 + 0.01 * k}
                           for k in range(2) for m, metric in (("natural", "loss"), ("random_search", "loss"),
                                                               ("regmix", "loss"), ("regmix", "spearman/held"))])
    at = open_link("compare", {"run": "table-run", "metric": "spearman/held"})
    assert not any("Not run in this setting" in i.value for i in at.info)  # it said random_search did not run


def test_compare_says_the_final_models_were_capped(home):
    at = open_app("compare")
    assert any("capped at 50,000 training rows" in c.value for c in at.caption)


def test_compare_says_a_cap_no_final_model_reached_was_not_reached(home):
    """chem_ci sets max_final_rows 2,000 and its final models train on 218-548 rows: the page said they were capped."""
    write_chem_run(home, run_id="chem-cap", n_sources=12, n_targets=2, n_trials=2, max_final_rows=2000)
    results = RunStore().run_dir("chem-cap") / "results.csv"
    frame = pd.read_csv(results)
    frame.assign(rows=500).to_csv(results, index=False)
    captions = [c.value for c in open_link("compare", {"run": "chem-cap"}).caption]
    assert any("A cap of 2,000 training rows was set" in c and "no final model reached it" in c for c in captions)
    assert not any("were capped" in c for c in captions)
    rows = np.where(frame["method"] == "natural", 2000, np.where(frame["method"] == "ensemble", np.nan, 500))
    frame.assign(rows=rows).to_csv(results, index=False)  # the ensemble trains no final model
    captions = [c.value for c in open_link("compare", {"run": "chem-cap"}).caption]
    found = [re.search(r"capped at 2,000 training rows \(`max_final_rows`; (\d+) of (\d+) reached it\)", c)
             for c in captions]
    capped, finals = next(map(int, m.groups()) for m in found if m)
    assert capped * (frame["method"].nunique() - 1) == finals  # natural's of the final models (one variant shown)


def test_compare_opens_on_a_measured_metric_and_labels_surrogates(home):
    run_dir = RunStore().create_run("table-run", name="table-run", pipeline="run_table", config={})
    rng = np.random.default_rng(0)
    methods = ("mixmin", "natural", "balanced", "regmix")
    rows = [{"trial": k, "target": t, "method": m, "metric": "surrogate:loss", "value": rng.normal()}
            for k in range(2) for t in ("a", "b") for m in methods]
    rows += [{"trial": k, "target": t, "method": m, "metric": "ap", "value": rng.normal()}
             for k in range(2) for t in ("a", "b") for m in methods[:2]]
    write_report(run_dir, rows)
    at = open_link("compare", {"run": "table-run"})
    box = at.selectbox(key="w:compare.metric")
    assert box.value == "ap"  # measured first, although the surrogate compares more methods
    assert "surrogate:loss (surrogate estimate)" in box.options
    box.set_value("surrogate:loss").run()
    assert "surrogate estimate" in at.warning[0].value
    # a run on run tables has mixtures but no proxy outputs: its weights are shown (it said it saved none), and a
    # search that did not succeed is said (the warning looked for mixtures of problems with proxy outputs only)
    for method, weights in (("natural", {"web": 0.7, "code": 0.3}), ("regmix", {"web": 0.2, "code": 0.8})):
        path = layout.mixture_path(run_dir, layout.Problem("a", 0), method)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"method": method, "weights": weights, "success": method != "regmix",
                                    "message": "regressor predicts a constant"}))
    at = open_link("compare", {"run": "table-run"})
    assert not any("saved no mixtures" in c.value for c in at.caption)
    assert any("Weights each method found" in t for t in (json.loads(c.proto.spec)["layout"]["title"]["text"]
                                                          for c in at.get("plotly_chart")))
    assert any("regmix did not succeed" in w.value for w in at.warning)
    for page in ("assays", "targets", "solver"):  # pages that read proxy outputs say why a run-table run has none
        shown = open_link(page, {"run": "table-run"})
        assert any("A run on run tables trains no proxies" in i.value for i in shown.info), page


def test_the_solver_follows_the_run_after_one_without_outputs_unless_the_example_was_chosen(home):
    """A reviewer's session: after a run without proxy outputs the page fell back to the built-in example, which
    then stayed for every run picked after it, unsaid. A problem the user picks still sticks."""
    from tests.app.conftest import open_app

    RunStore().create_run("no-outputs", name="no-outputs", pipeline="chem", config={})
    at = open_app()

    def solver_after_picking(run_id: str) -> str:
        at.session_state["app.run_id"] = run_id  # the sidebar's pick (AppTest runs a switched-to page alone)
        at.switch_page("pages/solver.py").run()
        assert not at.exception
        return at.selectbox(key="w:solve.problem").value

    first = solver_after_picking(CHEM_RUN)
    assert first.startswith(f"run:{CHEM_RUN}:")
    assert solver_after_picking("no-outputs") == "example"
    assert solver_after_picking(CHEM_RUN) == first  # it stayed at the example
    at.selectbox(key="w:solve.problem").set_value("example").run()  # the user's own choice sticks
    assert solver_after_picking(CHEM_RUN) == "example"
    # a button's choice sticks too, also where it equals a value the page once chose itself (a diff reviewer's case)
    at = open_app()
    assert solver_after_picking(CHEM_RUN) == first and solver_after_picking("no-outputs") == "example"
    at.session_state["app.run_id"] = CHEM_RUN
    at.switch_page("pages/runs.py").run()
    at.button(key="runs.open_example").click().run()
    at.switch_page("pages/solver.py").run()
    assert at.selectbox(key="w:solve.problem").value == "example"


def test_a_run_without_results_csv_says_no_results_yet(home):
    RunStore().create_run("fresh-run", name="fresh-run", pipeline="chem", config={})
    runs = open_app()
    assert runs.dataframe[0].value.set_index("name").loc["fresh-run", "key result"] == "no results yet"
    at = open_link("compare", {"run": "fresh-run"})
    assert "No results yet" in at.info[0].value
    at.switch_page("pages/assays.py").run()
    assert not at.exception
    RunStore().set_run_status("fresh-run", "failed")  # it said "it does when its job finishes" of a failed run
    note = open_link("compare", {"run": "fresh-run"}).info[0].value
    assert "this run's job failed before it wrote results.csv" in note and "jobs resume fresh-run" in note


# ---- Jobs --------------------------------------------------------------------------------------------
def test_jobs_link_opens_the_same_config_and_a_bad_one_falls_back_with_a_notice(home):
    at = open_link("jobs", {"config": "configs/synthetic_demo.yaml"})
    assert at.selectbox(key="w:jobs.config").value == "configs/synthetic_demo.yaml"
    assert at.text_input(key="jobs.field.synthetic_demo.trials")  # the form is that config's
    by_hand = open_app("jobs")
    by_hand.selectbox(key="w:jobs.config").set_value("configs/synthetic_demo.yaml").run()
    assert by_hand.query_params["config"] == "configs/synthetic_demo.yaml"  # so a reload keeps it
    at = open_link("jobs", {"config": "../../etc/passwd"})
    assert at.selectbox(key="w:jobs.config").value != "../../etc/passwd"
    assert any("config=../../etc/passwd" in n for n in notices(at)), notices(at)


def test_the_main_setting_of_a_ladder_or_an_evolving_run_is_its_last_stage():
    """rung0 (a 4% budget) and v0 (the initial sources) were picked, sorted as plain text."""
    from pages.common.data import main_first

    assert sorted(["rung0", "rung2", "rung1"], key=main_first) == ["rung2", "rung1", "rung0"]
    assert sorted(["v0", "v10", "v4"], key=main_first) == ["v10", "v4", "v0"]
    assert sorted(["rung1", "budget-0.1", "", "other"], key=main_first) == ["", "budget-0.1", "rung1", "other"]


def test_compare_shows_the_weights_of_the_chosen_setting(home):
    """The "Weights of" list stayed on the main setting's problems after the Setting changed."""
    at = open_app("compare")
    for variant in ("sources-10", "sources-all"):
        at.selectbox(key="w:compare.variant").set_value(variant).run()
        assert not at.exception
        options = at.selectbox(key="w:compare.problem").options
        assert options and all(variant in o for o in options), (variant, options)


@pytest.mark.parametrize("page", ["upload", "beyond", "jobs"])
def test_pages_without_run_controls_keep_the_links_run(home, page):
    """/upload?run=... fell back to the newest run, so "Explore in the Solver" opened another run."""
    for run in [r["run_id"] for r in RunStore().list_runs()]:  # the newest and an older one
        at = open_link(page, {"run": run})
        assert at.session_state["app.run_id"] == run
        assert at.query_params.get("run") in (run, [run])
