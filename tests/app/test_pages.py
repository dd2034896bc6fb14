"""AppTest tests of every page on fixture runs, with interactions."""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shlex
import signal
import time

import numpy as np
import pandas as pd
import pytest

from jobs import control as jobs_control
from mixmin_core import MixtureResult, mixmin, mixture_loss
from mixmin_core.runs import layout
from mixmin_core.runs.store import RunStore
from pages.common import data
from tests.app.conftest import open_app, shown
from tests.app.fixtures import (
    CHEM_RUN,
    METHODS,
    assay_table,
    binary_outputs,
    data_dir,
    toxcast_assays,
    write_chem_run,
    write_lm_budget_run,
)

pytestmark = pytest.mark.timeout(180)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def chart_titles(at) -> list[str]:
    import json

    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def svg_titles(at) -> list[str]:
    """Titles of the inline SVG charts (pages/common/svg.py), in page order."""
    import html
    import re

    return [html.unescape(t) for m in at.markdown for t in re.findall(r'<svg [^>]*data-chart="([^"]*)"', m.value)]


# ---- Runs ------------------------------------------------------------------------------------------
def test_runs_lists_every_run_with_key_results(home):
    at = open_app()
    table = at.dataframe[0].value
    assert set(table["name"]) == {"chem-fixture", "synthetic-demo"}
    assert (table["status"] == "done").all()
    chem = table[table["name"] == "chem-fixture"].iloc[0]
    assert chem["key result"].startswith("average_precision: mixmin")
    assert metric(at, "Runs") == "2"


def test_a_run_whose_folder_was_deleted_says_so(home):
    """A reviewer deleted two run folders by hand: the runs read "done", "no results yet", and the pages promised
    results "when its job finishes"."""
    import shutil

    shutil.rmtree(RunStore(home).run_dir(CHEM_RUN))
    at = open_app()
    chem = at.dataframe[0].value.set_index("name").loc["chem-fixture"]
    assert (chem["status"], chem["key result"]) == ("folder gone", "its folder was deleted")
    at.sidebar.selectbox(key="w:app.run_id").set_value(CHEM_RUN).run()
    for page in ("compare", "solver"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception and any("This run's folder is gone from the run store" in i.value for i in at.info), page


def test_a_run_deleted_while_the_app_shows_it_gives_way_to_another(home):
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value(CHEM_RUN).run()
    RunStore(home).delete_run(CHEM_RUN)  # as `python -m jobs delete` does, while the page is open
    at.run()
    assert not at.exception and at.session_state["app.run_id"] not in (CHEM_RUN, None)
    assert any(f"Run `{CHEM_RUN}` is no longer in the run store" in i.value for i in at.sidebar.info)  # not unsaid
    at.run()
    assert not any("no longer in the run store" in i.value for i in at.sidebar.info)  # said once
    assert not any("chem-fixture" in label for label in at.sidebar.selectbox(key="w:app.run_id").options)
    at.session_state["app.run_id"] = CHEM_RUN  # a page that still holds the id (AppTest renders no sidebar here)
    at.switch_page("pages/compare.py").run()
    assert not at.exception and any("was deleted from the run store" in i.value for i in at.info)


def test_one_unreadable_summary_leaves_the_other_runs_listed(home):
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    layout.summary_path(run_dir).write_bytes(b"garbage\x00\xff,,\n")  # a UnicodeDecodeError took the page down
    at = open_app()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {"chem-fixture", "synthetic-demo"}
    chem = table[table["name"] == "chem-fixture"].iloc[0]
    assert chem["key result"].startswith("unreadable summary.csv:") and "cannot read it as CSV" in chem["key result"]
    assert table[table["name"] == "synthetic-demo"].iloc[0]["key result"] != "no results yet"


def test_compare_names_the_columns_a_results_file_lacks(home):
    layout.results_path(RunStore(home).run_dir(CHEM_RUN)).write_text("a,b\n1,2\n")  # a KeyError before
    at = open_app("compare")
    assert not at.exception
    assert re.search(r"results.csv: columns \['trial', .*\] missing", shown(at.error[0])), shown(at.error[0])


def test_empty_store_offers_the_example_and_the_demo(empty_home):
    at = open_app()
    assert "empty" in at.info[0].value
    assert not at.button(key="runs.start_demo").disabled  # configs/chem_demo.yaml is in the repo
    at.button(key="runs.open_example").click().run()
    assert not at.exception
    assert at.session_state["solve.problem"] == "example"
    assert at.title[0].value == "Solver"
    assert any("Known true weights" in m.value for m in at.markdown)


def test_get_started_button_starts_the_demo_job_in_the_background(empty_home):
    at = open_app()
    at.button(key="runs.start_demo").click().run()
    assert not at.exception
    assert "Started" in at.success[0].value
    launches = jobs_control.list_launches(empty_home)
    assert launches and launches[0]["argv"][2:5] == ["jobs", "run", "configs/chem_demo.yaml"]
    pid = launches[0]["pid"]
    os.killpg(pid, signal.SIGTERM)  # do not run the whole demo inside the test suite
    jobs_control._CHILDREN[pid].wait(timeout=30)


# ---- Solver ------------------------------------------------------------------------------------------
def test_solver_solves_live_when_the_step_size_changes(home):
    at = open_app("solver")
    assert "sources-all" in at.selectbox(key="w:solve.problem").value  # the main setting comes first
    loss_before = metric(at, "Final loss")
    assert svg_titles(at) == ["Weight trajectories", "Loss and Frank–Wolfe gap", "Final weights (95% bootstrap intervals)"]
    assert not chart_titles(at)  # no Plotly chart to remount on every move
    at.select_slider(key="w:solve.step_size").set_value(0.01).run()
    assert not at.exception
    assert at.session_state["solve.step_size"] == 0.01
    assert metric(at, "Final loss") != loss_before
    table = at.dataframe[0].value
    assert np.isclose(table["weight"].sum(), 1.0, atol=1e-4)
    assert {"ci_low", "ci_high"} <= set(table.columns)  # bootstrap intervals on for small problems
    # at a step of 0.01 no resample converges in 100 steps: the intervals show where they stopped, and say so
    assert any("of the resamples stopped at the iteration limit" in c.value for c in at.caption)


def test_solver_warns_when_the_step_size_makes_the_loss_rise(home):
    at = open_app("solver")
    at.selectbox(key="w:solve.problem").set_value("example").run()
    assert not at.warning
    at.select_slider(key="w:solve.step_size").set_value(30.0).run()
    assert not at.exception
    assert "step size is too large" in at.warning[0].value


def test_solver_says_what_gets_an_unfinished_solve_further_and_a_large_step_that_converged_is_no_warning(home):
    """At the slider's most iterations the page still said to raise them (a dead end: a larger step converges);
    a step whose loss rose on the way but converged was told to shrink."""
    from mixmin_core.solver.synthetic import example_problem
    from pages.common.figures import step_warning

    at = open_app("solver")
    at.selectbox(key="w:solve.problem").set_value("example").run()
    at.select_slider(key="w:solve.step_size").set_value(0.01).run()
    captions = " ".join(c.value for c in at.caption)
    assert "reached max_iter=100 before the gap fell to tol=1e-06; more iterations take it further." in captions
    assert "more than where the weights would settle; more iterations take it further." in captions  # resamples
    at.slider(key="w:solve.max_iter").set_value(1000).run()
    captions = " ".join(c.value for c in at.caption)
    larger = "at the most iterations, a larger step size gets there in fewer"
    assert f"reached max_iter=1000 before the gap fell to tol=1e-06; {larger}" in captions
    assert f"would settle; {larger}" in captions and not at.warning
    # where the loss rises (or at the largest step) a larger step is no advice: the warning says to take a smaller one
    at.select_slider(key="w:solve.step_size").set_value(100.0).run()
    assert "step size is too large" in at.warning[0].value
    captions = " ".join(c.value for c in at.caption)
    assert larger not in captions and "would settle; at the most iterations, a smaller step size (the loss rises at " \
                                       "this one)." in captions
    converged = mixmin(example_problem()[0], step_size=4.0, max_iter=1000)
    assert converged.success and step_warning(converged.losses) is not None  # it rose on the way
    assert step_warning(converged.losses, converged=True) == ("The loss went up at 4 of 50 iterations on the way: a "
                                                              "large step, which converged all the same")
    at.select_slider(key="w:solve.step_size").set_value(3.0).run()  # converged: its message ends the sentence
    assert any(c.value.startswith("Frank-Wolfe gap ") and c.value.endswith("at iteration 27.") for c in at.caption)


def test_solver_caps_and_prior_pull(home):
    at = open_app("solver")
    at.selectbox(key="w:solve.problem").set_value("example").run()
    top = at.dataframe[0].value["weight"].max()
    assert top > 0.4
    at.slider(key="w:solve.max_weight").set_value(0.3).run()
    assert not at.exception and at.session_state["solve.max_weight"] == 0.3
    weights = at.dataframe[0].value["weight"]
    assert weights.max() <= 0.3 + 1e-4 and np.isclose(weights.sum(), 1.0, atol=1e-4)
    capped = at.dataframe[0].value  # intervals of the capped solves (they were hidden under a cap)
    assert capped["ci_high"].notna().all() and (capped["ci_high"] <= 0.3 + 1e-4).all()
    # 6 sources x 0.1 < 1 is infeasible: every value under 0.17 replaced the results with an error; they are solved
    # at the lowest cap these sources can meet, and the page says so
    at.slider(key="w:solve.max_weight").set_value(0.1).run()
    assert not at.exception and not at.error
    assert any("solved at the lowest cap they can meet, 0.17" in c.value for c in at.caption)
    assert at.dataframe[0].value["weight"].max() <= 0.17 + 1e-4
    at.slider(key="w:solve.max_weight").set_value(1.0).run()
    loss = float(metric(at, "Final loss"))
    at.number_input(key="w:solve.prior_strength").set_value(5.0).run()
    assert not at.exception
    assert at.dataframe[0].value["weight"].max() < top
    # the metric is what the solver minimised (loss + pull); the target loss alone is said beside it
    penalised = float(metric(at, "Final loss + KL pull"))
    target = float(next(c.value for c in at.caption if c.value.startswith("Target loss at these weights")).split("**")[1])
    outputs = data.load_problem("example")
    assert target == pytest.approx(mixture_loss(outputs, at.dataframe[0].value["weight"].to_numpy()), rel=1e-4)
    assert loss <= target < penalised  # the unpulled optimum is lower; the pull adds a positive KL term


def test_solver_pick_another_target_and_natural_start(home):
    at = open_app("solver")
    problems = layout.list_problems(RunStore().run_dir(CHEM_RUN))
    other = next(p for p in problems if p.variant == "sources-10" and p.trial == 1)
    at.selectbox(key="w:solve.problem").set_value(f"run:{CHEM_RUN}:{other.key}").run()
    assert not at.exception
    assert at.caption[0].value.startswith("10 sources × 400 target samples")
    assert len(at.dataframe[0].value) == 10
    at.radio(key="w:solve.init").set_value("natural").run()
    assert not at.exception
    assert at.session_state["solve.init"] == "natural"


def test_solver_settings_survive_a_page_switch(home):
    at = open_app("solver")
    at.select_slider(key="w:solve.step_size").set_value(3.0).run()
    at.slider(key="w:solve.max_iter").set_value(50).run()
    at.switch_page("pages/compare.py").run()
    at.switch_page("pages/solver.py").run()
    assert at.select_slider(key="w:solve.step_size").value == 3.0
    assert at.slider(key="w:solve.max_iter").value == 50
    assert metric(at, "Iterations") == "50"


def test_solver_solves_a_large_binary_problem_on_a_float16_copy_and_says_so(home):
    """Live solves of a matrix larger than cache read a float16 copy (half the bytes per move); the page says so
    and the weights stay within 1e-3 (L1) of the library's float32 solve."""
    from mixmin_core.solver.kernels import HALF_SUPPORTED

    if not HALF_SUPPORTED:
        pytest.skip("this CPU has no hardware float16 conversion")
    outputs = binary_outputs(64, 100_000, np.random.default_rng(0), source_names=[f"s{i}" for i in range(64)])
    outputs.save(home / "uploads" / "big")
    at = open_app("solver")
    assert not any("float16" in c.value for c in at.caption)  # a small problem: float32, nothing to say
    at.selectbox(key="w:solve.problem").set_value("upload:big").run()
    assert not at.exception
    assert any("Solved live on a float16 copy" in c.value for c in at.caption)
    shown = at.dataframe[0].value.set_index("source")["weight"]
    exact = pd.Series(mixmin(outputs).weights, index=outputs.source_names)
    assert np.abs(shown - exact[shown.index]).sum() < 1e-3


def test_solver_offers_the_settings_the_run_solved_with(home):
    """An evolve run solved with 1000 iterations; the page opened at 100 and showed other weights, unsaid."""
    at = open_app("solver")
    problem = at.session_state["solve.problem"]
    ref = problem.split(":", 2)
    path = layout.mixture_path(RunStore(home).run_dir(ref[1]), layout.Problem.from_key(ref[2]), "mixmin")
    mixture = json.loads(path.read_text())
    mixture["meta"].update(step_size=0.5, max_iter=300)
    path.write_text(json.dumps(mixture))
    at = open_app("solver")
    note = next(c.value for c in at.caption if "The run solved this problem" in c.value)
    assert "step size 0.5 and 300 iterations" in note
    at.button(key="solve.use_run_settings").click().run()
    assert not at.exception
    assert (at.session_state["solve.step_size"], at.session_state["solve.max_iter"]) == (0.5, 300)
    assert at.slider(key="w:solve.max_iter").value == 300 and at.select_slider(key="w:solve.step_size").value == 0.5
    assert not any("The run solved this problem" in c.value for c in at.caption)


def test_solver_lists_no_upload_that_is_a_link_out_of_the_store(home, tmp_path):
    """A symbolic link planted in uploads/ was listed and read the file it points to, wherever that is."""
    outside = tmp_path / "secret"
    binary_outputs(6, 50, np.random.default_rng(0), source_names=[f"SECRET_{i}" for i in range(6)]).save(outside)
    (home / "uploads").mkdir(exist_ok=True)
    for suffix in (".npz", ".json"):
        (home / "uploads" / f"evil{suffix}").symlink_to(outside.with_suffix(suffix))
    binary_outputs(6, 50, np.random.default_rng(1)).save(home / "uploads" / "mine")
    at = open_app("solver")
    options = at.selectbox(key="w:solve.problem").options
    assert any("mine" in o for o in options) and not any("evil" in o for o in options)
    (home / "uploads").rename(home / "real_uploads")
    (home / "uploads").symlink_to(tmp_path)  # the folder itself a link: nothing in it is listed
    assert not any(o.startswith("upload:") for o in open_app("solver").selectbox(key="w:solve.problem").options)


def test_solver_downloads_the_mixture(home):
    at = open_app("solver")
    csv = at.get("download_button")
    assert len(csv) == 2


# ---- Compare --------------------------------------------------------------------------------------
def test_compare_every_method_with_cis_pvalues_and_sweep(home):
    at = open_app("compare")
    summary = at.dataframe[0].value
    assert set(summary["method"]) == set(METHODS)
    assert {"overall"} < set(summary["target"])
    assert "vs natural" in summary.columns and "p_vs_mixmin" in summary.columns
    titles = chart_titles(at)
    assert any("Sweep over the source pool size" in t for t in titles)
    assert any("Proxy compute" in t for t in titles)
    compute = next(json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")
                   if "Proxy compute" in json.loads(c.proto.spec)["layout"]["title"]["text"])
    assert compute["yaxis"]["title"]["text"] == "proxy compute (trees x rows)"  # it had no unit
    assert compute["title"]["text"] == "Proxy compute per method (XGBoost trees x training rows)"  # the axis is short
    assert any("Weights each method found" in t for t in titles)
    assert any("95% CIs over trials (kept within [0, 1])" in c.value for c in at.caption)  # average precision
    # methods differ by more than colour: a bar pattern and a line dash and symbol each
    specs = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)["data"]
             for c in at.get("plotly_chart")}
    per_target = next(d for t, d in specs.items() if t.startswith("Per target"))
    assert len({tr["marker"]["pattern"]["shape"] for tr in per_target}) == len(per_target) == len(METHODS)
    sweep = next(d for t, d in specs.items() if t.startswith("Sweep over the source pool size"))
    assert len({(tr["line"]["dash"], tr["marker"]["symbol"]) for tr in sweep}) == len(sweep) > 2
    numbers = next(e for e in at.expander if e.label == "The sweep's numbers").dataframe[0].value  # the lines as a table
    assert set(numbers["method"]) == {tr["name"] for tr in sweep} and {"setting", "mean", "ci_low"} <= set(numbers)
    at.selectbox(key="w:compare.baseline").set_value("target_only").run()
    assert "vs target_only" in at.dataframe[0].value.columns
    at.selectbox(key="w:compare.variant").set_value("sources-10").run()
    assert not at.exception


def test_compare_says_how_many_test_molecules_the_sources_train_on(home):
    path = RunStore(home).run_dir(CHEM_RUN) / "dataset.json"
    path.write_text(json.dumps({"test_molecules_in_sources": {"A": 0.9, "B": 0.7}}))
    at = open_app("compare")
    assert not at.exception
    assert any("80% of the targets' test molecules" in i.value for i in at.info), [i.value for i in at.info]
    path.write_text(json.dumps({"test_molecules_in_sources": {"A": 0.0, "B": 0.0}}))
    at = open_app("compare")
    assert any("removed from every source" in c.value for c in at.caption)
    path.write_text("[1, 2]")  # not a mapping: no note, no error
    at = open_app("compare")
    assert not at.exception and not any("test molecules" in i.value for i in at.info)


def test_compare_says_when_regmix_could_not_rank_its_held_out_runs(home):
    """On MUV RegMix's regressor ranked its held-out runs at Spearman <= 0.03 in 7 of 12 problems, unremarked."""
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    problems = [p for p in layout.list_problems(run_dir) if p.variant == "sources-all"]
    for i, problem in enumerate(problems):  # the fixture's natural mixtures, filed as RegMix's with its check
        mix = json.loads(layout.mixture_path(run_dir, problem, "natural").read_text())
        mix.update(method="regmix", meta={"spearman": 0.05 if i == 0 else 0.8})
        layout.mixture_path(run_dir, problem, "regmix").write_text(json.dumps(mix))
    at = open_app("compare")
    assert not at.exception
    assert any(f"Spearman below 0.3 on 1 of the {len(problems)} problems where it was checked" in c.value
               for c in at.caption)


def test_compare_says_which_targets_have_few_test_positives(home):
    """A MUV run's test splits held 5-6 actives; one ranked first decided a method's mean, and nothing said so."""
    path = layout.results_path(RunStore(home).run_dir(CHEM_RUN))
    frame = pd.read_csv(path)
    targets = sorted(frame["target"].unique())
    at = open_app("compare")
    assert not any("Few positives" in w.value for w in at.warning)  # results written before: no column, no note
    frame["test_positives"] = frame["target"].map({targets[0]: 3}).fillna(40) + frame["trial"]
    frame.to_csv(path, index=False)
    at = open_app("compare")
    assert not at.exception
    warned = [w.value for w in at.warning if "Few positives in the test split" in w.value]
    assert warned and f"{targets[0]}` 3" in warned[0] and targets[1] not in warned[0]


def test_compare_overall_rows_say_when_a_trial_covers_fewer_targets_and_skip_a_single_target(home):
    """A target one method lacked in one trial made that trial's overall mean cover fewer targets, unsaid; a
    one-target run showed "overall" rows and chart repeating that target."""
    path = layout.results_path(RunStore(home).run_dir(CHEM_RUN))
    results = pd.read_csv(path)
    first, target = results["trial"].min(), min(results["target"].unique())
    gone = (results["target"] == target) & (results["trial"] == first) & (results["method"] == "natural")
    results[~gone].to_csv(path, index=False)
    at = open_app("compare")
    n = results["target"].nunique()
    assert any(f"Overall covers fewer targets in some trials: trial {first}: {n - 1} of the {n}." in c.value
               for c in at.caption), [c.value for c in at.caption]
    last = results["trial"].max()  # no target with a value from every method: the trial drops out of overall
    drop = (results["trial"] == last) & (((results["target"] == target) & (results["method"] == "natural"))
                                         | ((results["target"] != target) & (results["method"] == "mixmin")))
    results[~gone & ~drop].to_csv(path, index=False)
    at = open_app("compare")
    assert any(f"trial {last}: none (that trial is left out)" in c.value for c in at.caption)
    results[results["target"] == target].to_csv(path, index=False)
    at = open_app("compare")
    assert not at.exception
    assert set(at.dataframe[0].value["target"]) == {target}
    assert chart_titles(at)[0] == "Per target" and "Overall (mean over targets)" not in chart_titles(at)
    assert not any("overall" in c.value.lower() for c in at.caption)


def test_names_from_users_files_are_text_in_every_chart(home):
    """An assay named <a href="https://evil.example/">CLICKME</a> was a live link in Compare's charts (Plotly
    renders a subset of HTML in labels), <b>BOLD</b> bold."""
    link, bold = '<a href="https://evil.example/">CLICKME</a>', "<b>BOLDSRC</b>"
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    path = layout.results_path(run_dir)
    results = pd.read_csv(path)
    results["target"] = results["target"].replace(min(results["target"].unique()), link)
    results.to_csv(path, index=False)
    for mixture in run_dir.glob("mixtures/**/*.json"):
        record = json.loads(mixture.read_text())
        record["weights"] = {bold + n: w for n, w in record["weights"].items()}
        mixture.write_text(json.dumps(record))
    at = open_app("compare")
    assert not at.exception
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("CLICKME" in s for s in specs) and any("BOLDSRC" in s for s in specs)
    assert not any("<a " in s or "<b>" in s for s in specs)
    assert any("&lt;a href" in s for s in specs)


def test_compare_says_which_targets_examples_the_sources_hold(home):
    path = RunStore(home).run_dir(CHEM_RUN) / "dataset.json"
    path.write_text(json.dumps({"target_examples_in_sources": {"piqa": 0.0, "mc": 0.5},
                                "target_examples_by_source": {"mc": {"leak": 40}}}))
    at = open_app("compare")
    warning = next(w.value for w in at.warning if "word for word" in w.value)
    assert "`mc` 50% (`leak` 40)" in warning and "piqa" not in warning
    path.write_text(json.dumps({"target_examples_in_sources": {"piqa": 0.0}}))
    at = open_app("compare")
    assert not any("word for word" in w.value for w in at.warning)


def test_compare_says_which_sources_hold_the_same_documents(home):
    path = RunStore(home).run_dir(CHEM_RUN) / "dataset.json"
    pairs = [{"sources": ["web", "web_copy"], "shared": 900, "documents": [1000, 950]},
             {"sources": ["web", "news"], "shared": 30, "documents": [1000, 2000]},  # 3%: recorded, not warned
             {"sources": "bad"}, 7]  # a damaged entry: skipped
    path.write_text(json.dumps({"documents_shared_by_sources": pairs}))
    at = open_app("compare")
    assert not at.exception
    warning = next(w.value for w in at.warning if "hold the same documents" in w.value)
    assert "`web` and `web_copy` share 900 documents (90% of `web`'s, 95% of `web_copy`'s)" in warning
    assert "news" not in warning


def test_compare_says_when_a_search_measured_less_compute_than_planned(home):
    """On MUV, random search measured 13% less proxy compute than MixMin's (runs without a positive train no trees),
    while the README promises equal proxy compute, and nothing said so."""
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    at = open_app("compare")
    assert not any("Measured below the proxy compute planned" in c.value for c in at.caption)
    variant = at.session_state["compare.variant"]
    for problem in (p for p in layout.list_problems(run_dir) if p.variant == variant):
        mix = json.loads(layout.mixture_path(run_dir, problem, "mixmin").read_text())
        mix.update(method="random_search", meta={"compute": 870.0, "planned_compute": 1000.0})
        layout.mixture_path(run_dir, problem, "random_search").write_text(json.dumps(mix))
    at = open_app("compare")
    assert any("`random_search` 87%" in c.value for c in at.caption), [c.value for c in at.caption]


def test_compare_flags_yardstick_predictions_beyond_every_run_it_was_fitted_on(home):
    from mixmin_core.engine.report import write_report

    run_dir = RunStore(home).create_run("table-run", name="table-run", pipeline="run_table",
                                        config={"pipeline": "run_table"})
    rows = []
    for k in range(2):
        # a mean over targets hid pile_cc's: extrapolation 0.05 of 0.1, Spearman 0.50 of 0.30; and its error
        # 0.13 of 0.06 and 0.2 (0.1 beyond the runs read as within it)
        for target, far, rho, rmse in (("pile_cc", 0.1, 0.3, 0.06), ("hellaswag", 0.0, 0.7, 0.2)):
            for m, pred, beyond in (("natural", 5.3, 0.0), ("regmix", 4.9, far), ("random_search", 5.1, 0.0),
                                    ("bo", 5.0, 0.0)):
                rows += [{"target": target, "method": m, "trial": k, "metric": metric, "value": v}
                         for metric, v in (("surrogate:yardstick_loss", pred + 0.01 * k), ("yardstick_rmse", rmse),
                                           ("yardstick_beyond_runs", beyond), ("yardstick_spearman", rho))]
    write_report(run_dir, rows, reference="natural")
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("table-run").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    at.selectbox(key="w:compare.metric").set_value("surrogate:yardstick_loss").run()
    warning = next(w.value for w in at.warning if "yardstick's cross-validated errors are" in w.value)
    assert "errors are `hellaswag` 0.2, `pile_cc` 0.06 (RMSE)" in warning, warning
    assert "`regmix` on `pile_cc` 0.1 beyond the best run" in warning and "random_search" not in warning
    assert "ranks its own runs at a Spearman of only `pile_cc` 0.3 " in warning
    assert "on `hellaswag`" not in warning and "`hellaswag` 0.7" not in warning
    # the Runs page's key result showed regmix's 4.9 unflagged, and left BO out (the first three methods only)
    key = open_app().dataframe[0].value.set_index("name").loc["table-run", "key result"]
    assert key.endswith(": natural 5.30, random_search 5.10, regmix 4.91 (extrapolated), bo 5.00"), key


def test_compare_says_when_methods_did_not_spend_equal_proxy_compute(home):
    """RegMix on every pool run (192 runs) beside searches of 17 runs read as a normal comparison."""
    from mixmin_core.engine.report import write_report

    run_dir = RunStore(home).create_run("table-run", name="table-run", pipeline="run_table",
                                        config={"pipeline": "run_table"})
    spent = {"natural": 0.0, "random_search": 17.0, "regmix": 192.0, "bo": 16.8}
    rows = [{"target": "pile_cc", "method": m, "trial": k, "metric": "surrogate:yardstick_loss", "value": 5 + 0.01 * k,
             "proxy_compute": c, "final_compute": 0.0} for k in range(3) for m, c in spent.items()]
    write_report(run_dir, rows, reference="natural")
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("table-run").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    warning = [w.value for w in at.warning if "Not an equal-compute comparison" in w.value]
    assert warning and "`regmix` spent 11.4x the proxy compute of `bo`" in warning[0], [w.value for w in at.warning]
    assert "random_search" not in warning[0]


def test_compare_says_what_a_cross_setting_is_instead_of_a_config_limit(home):
    """`cross:piqa` (PIQA's MixMin model scored on the other targets) read "Not run in this setting: natural, ...
    Its config may limit them"."""
    from mixmin_core.engine.report import write_report

    run_dir = RunStore(home).create_run("lm-run", name="lm-run", pipeline="lm", config={"pipeline": "lm"})
    rows = [{"target": t, "variant": "", "method": m, "trial": k, "metric": "generative_loss", "value": 5 + 0.01 * k}
            for k in range(2) for t in ("piqa", "arc_easy") for m in ("mixmin", "natural")]
    rows += [{"target": "arc_easy", "variant": "cross:piqa", "method": "mixmin", "trial": k,
              "metric": "generative_loss", "value": 5.2} for k in range(2)]
    write_report(run_dir, rows, reference="natural")
    for target in ("piqa", "arc_easy"):
        for method in ("mixmin", "natural"):
            path = layout.mixture_path(run_dir, layout.Problem(target, 0), method)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(MixtureResult(weights=np.array([0.5, 0.5], np.float32), source_names=("a", "b"),
                                                     method=method).to_dict()))
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("lm-run").run()
    at.switch_page("pages/compare.py").run()
    # losses of 5.0 and 5.01 drawn from 0 looked equal: the axis starts near them, and says so
    fig = json.loads(next(c for c in at.get("plotly_chart") if "Overall" in c.proto.spec).proto.spec)
    assert fig["layout"]["yaxis"]["range"][0] > 4.9 and "(axis from 4.93)" in fig["layout"]["yaxis"]["title"]["text"]
    at.selectbox(key="w:compare.variant").set_value("cross:piqa").run()
    assert not at.exception
    notes = [i.value for i in at.info if "cross:piqa" in i.value]
    assert notes and "scores the MixMin model of `piqa`" in notes[0] and "config may limit" not in notes[0]
    # the weights shown are those of the model scored here: piqa's mixtures (it showed arc_easy's own)
    assert {o.split(" · ")[0] for o in at.selectbox(key="w:compare.problem").options} == {"piqa"}


def test_equal_compute_within_a_few_percent_is_not_flagged():
    import pandas as pd

    chem = pd.DataFrame({"method": ["natural", "mixmin", "random_search", "regmix", "target_only"],
                         "proxy_compute": [0.0, 5470.0, 5460.0, 5465.0, 0.0]})
    assert data.unmatched(chem, "proxy_compute") == ""
    assert data.unmatched(chem.assign(proxy_compute=0.0), "proxy_compute") == ""


def test_compare_opens_on_a_score_not_on_the_yardsticks_diagnostics():
    """Every run-table run opened on yardstick_beyond_runs (every method near 0.0), not on a score."""
    import pandas as pd

    from pages.common.data import metrics_by_default

    every = [{"metric": m, "method": meth} for m in ("yardstick_beyond_runs", "yardstick_spearman", "best_run_loss",
                                                     "surrogate:yardstick_loss") for meth in ("natural", "regmix", "bo")]
    regmix_only = [{"metric": "best_loss/test_split", "method": "regmix"}]  # a run table's own best held-out run
    assert metrics_by_default(pd.DataFrame(every + regmix_only))[0] == "surrogate:yardstick_loss"
    searched = [{"metric": "measured_loss", "method": meth} for meth in ("random_search", "bo")]  # only they measure
    # a run-table run's headline (its catalog summary) is the yardstick's: it opened on measured_loss
    assert metrics_by_default(pd.DataFrame(every + searched), "surrogate:yardstick_loss")[0] == "surrogate:yardstick_loss"
    assert metrics_by_default(pd.DataFrame(every + searched))[0] == "measured_loss"  # measured first otherwise
    chem = [{"metric": m, "method": meth} for m in ("auc", "ap") for meth in ("natural", "mixmin")]
    assert metrics_by_default(pd.DataFrame(chem + [{"metric": "yardstick_x", "method": "mixmin"}]), "ap")[0] == "ap"
    assert metrics_by_default(pd.DataFrame(chem), "auc")[0] == "auc"  # the run's own headline, from its catalog entry


def test_compare_warns_when_mixmin_stopped_at_its_iteration_limit(home):
    """An LM run's MixMin stopped at max_iter with weights near their start, and nothing said so."""
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    at = open_app("compare")
    variant = at.session_state["compare.variant"]
    for problem in layout.list_problems(run_dir):
        path = layout.mixture_path(run_dir, problem, "mixmin")
        mix = json.loads(path.read_text())
        mix.update(status="converged" if problem.variant != variant or problem.trial else "max_iter", gap=0.0048)
        path.write_text(json.dumps(mix))
    at = open_app("compare")
    warning = next(w.value for w in at.warning if "iteration limit" in w.value)
    n = len({p.target for p in layout.list_problems(run_dir) if p.variant == variant})
    assert f"not converged, on {n} of this setting's problems (largest Frank–Wolfe gap 0.0048" in warning


def test_compare_warns_about_an_unconverged_joint_mixture_not_as_a_failed_search(home):
    """lm_joint's joint mixture stopped at 100 iterations, gap 0.0036, and nothing said so."""
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    at = open_app("compare")
    variant = at.session_state["compare.variant"]
    before = next((w.value for w in at.warning if "iteration limit" in w.value), "on 0 of")
    n_before = int(before.split(" of this setting's")[0].rsplit("on ", 1)[1])
    problem = next(p for p in layout.list_problems(run_dir) if p.variant == variant)
    mix = json.loads(layout.mixture_path(run_dir, problem, "mixmin").read_text())
    mix.update(method="mixmin_joint_mean", status="max_iter", success=False, gap=0.0036)
    others = [p for p in layout.list_problems(run_dir) if p.variant == variant and p.trial == problem.trial]
    for p in others:  # one joint solve per trial, filed under every target's problem
        layout.mixture_path(run_dir, p, "mixmin_joint_mean").write_text(json.dumps(mix))
    at = open_app("compare")
    warning = next(w.value for w in at.warning if "iteration limit" in w.value)
    assert len(others) > 1 and f"on {n_before + 1} of this setting's problems" in warning  # once, not per target
    assert f"mixmin_joint_mean, trial {problem.trial}" in warning and "0.0036" in warning
    assert "`joint_max_iter`" in warning and not any("did not succeed" in w.value for w in at.warning)
    mix.update(status="non_finite", message="the loss turned non-finite")
    layout.mixture_path(run_dir, problem, "mixmin_joint_mean").write_text(json.dumps(mix))
    at = open_app("compare")  # a joint solve that failed otherwise is still said
    assert any("mixmin_joint_mean did not succeed" in w.value for w in at.warning)


def test_compare_warns_about_search_mixtures_that_did_not_succeed(home):
    """A RegMix regressor that predicts a constant chose its mixture arbitrarily, and its score looked normal."""
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    at = open_app("compare")
    variant = at.session_state["compare.variant"]
    assert not any("did not succeed" in w.value for w in at.warning)
    problem = next(p for p in layout.list_problems(run_dir) if p.variant == variant)
    method, path = next((m, p) for m, p in sorted(layout.list_mixtures(run_dir, problem).items()) if m != "mixmin")
    mix = json.loads(path.read_text())
    path.write_text(json.dumps({**mix, "success": False, "message": "WARNING: regressor predicts a constant"}))
    at = open_app("compare")
    warning = next(w.value for w in at.warning if "did not succeed" in w.value)
    assert warning.startswith(f"{method} did not succeed on 1 of this setting's problems") and "constant" in warning


def test_compare_and_assays_work_on_the_synthetic_run(home):
    at = open_app()
    synthetic = next(r["run_id"] for r in RunStore().list_runs() if r["pipeline"] == "synthetic")
    at.sidebar.selectbox(key="w:app.run_id").set_value(synthetic).run()  # (AppTest sees the sidebar on the main page only)
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert set(at.dataframe[0].value["method"]) == {"mixmin", "natural", "balanced"}
    at.switch_page("pages/assays.py").run()
    assert not at.exception
    # the Solver draws the weights that made the problem, as for the built-in example (the README's "known true
    # weights" showed nowhere for the run): its distance is the run's own weight_l1_error at the run's settings
    at.switch_page("pages/solver.py").run()
    assert not at.exception and at.session_state["solve.problem"] == f"run:{synthetic}:target__trial0"
    note = next(m.value for m in at.markdown if "Known true weights" in m.value)
    results = RunStore().results(synthetic).set_index(["trial", "method", "metric"])["value"]
    assert f"**{results[0, 'mixmin', 'weight_l1_error']:.3f}**" in note, note


# ---- Assays ---------------------------------------------------------------------------------------
def test_assays_say_when_the_stored_intervals_did_not_converge(home):
    """The Solver page said so of its own resamples; the Assays page showed the run's (0% converged) as they were."""
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    files = list(layout.topk_path(run_dir, layout.Problem("x", 0)).parent.glob("*.json"))
    for converged, warned in ((0.3, True), (1.0, False)):
        for path in files:
            path.write_text(json.dumps({**json.loads(path.read_text()), "n_boot": 20, "boot_converged": converged}))
        at = open_app("assays")
        assert any("70% of these resamples stopped at the iteration limit" in w.value for w in at.warning) == warned
        assert any("this trial's proxies fixed" in c.value for c in at.caption)


def test_assays_show_how_much_data_each_source_had_and_what_it_measures(home):
    """A source of 8 labels ranked second with no word said, and the assay descriptions in sources.csv were unseen."""
    def table_of(at):
        table = at.dataframe[0].value
        return table.data if hasattr(table, "data") else table

    second = str(table_of(open_app("assays"))["source"].iloc[1])
    path = layout.sources_path(RunStore(home).run_dir(CHEM_RUN))
    sources = pd.read_csv(path)
    sources["n_labelled"] = np.where(sources["source"] == second, 8, 500)
    sources["n_pos"], sources["description"] = 40, "measures " + sources["source"]
    sources.to_csv(path, index=False)
    at = open_app("assays")
    table = table_of(at)
    assert {"labelled", "positives", "description"} <= set(table.columns)
    assert (table["description"] == "measures " + table["source"]).all()
    # the weight's range over the trials (the bootstrap intervals are one trial's): a reviewer saw 0.07 and 0.24
    assert table["trials"].str.fullmatch(r"\d\.\d{3}–\d\.\d{3}").all()
    assert any("over this setting's 3 trials" in c.value for c in at.caption)
    notes = [c.value for c in at.caption if "Few labels behind" in c.value]
    assert len(notes) == 1 and f"`{second}` (8 labelled, 40 positive)" in notes[0] and "Few labels behind 1 " in notes[0]


def test_assays_show_toxcast_titles_categories_and_filter(home):
    at = open_app("assays")
    assert at.dataframe[0].proto.placeholder == "—"  # a missing interval end showed as "None"
    table = at.dataframe[0].value
    if hasattr(table, "data"):  # a pandas Styler
        table = table.data
    meta = toxcast_assays().set_index("task")
    assert len(table) == 10
    assert (table["category"] == meta.loc[table["source"], "category"].to_numpy()).all()
    assert table["title"].str.len().gt(0).all()
    assert (table["lower"] <= table["weight"] + 1e-6).all()
    # the legend names every category the table shows in the colour the table draws it (it listed the four groups
    # only: 'cell-based reporter (receptor/pathway)' was drawn in orange and named nowhere)
    from pages.common import figures as figs

    legend = next(m.value for m in at.markdown if "paper's Table 1" in m.value and "<span" in m.value)
    for category in table["category"].unique():
        colour = figs.CATEGORY_COLOURS[figs.category_group(category)]
        assert f"background:{colour};" in legend.split(f">{html.escape(category)}</span>")[0].rsplit("<span", 1)[-1]
    assert "orange other" in legend and "red cytotoxicity" in legend
    keep = at.multiselect(key="w:assays.categories").value[:1]
    at.multiselect(key="w:assays.categories").set_value(keep).run()
    filtered = at.dataframe[0].value
    filtered = filtered.data if hasattr(filtered, "data") else filtered
    assert set(filtered["category"]) == set(keep) and len(filtered) < 10
    # the filter said nothing of the rows it hid; a category's summed weight holds where single assays change places
    assert f"{10 - len(filtered)} of the top 10 source assays are hidden by the category filter." in [
        c.value for c in at.caption]
    shares = next(c.value for c in at.caption if c.value.startswith("Weight by category, over all sources: "))
    mixture = json.loads(layout.mixture_path(RunStore(home).run_dir(CHEM_RUN), layout.Problem(
        at.selectbox(key="w:assays.target").value, 0, "sources-all"), "mixmin").read_text())["weights"]
    total = sum(w for s, w in mixture.items() if meta["category"].get(s) == keep[0])
    assert f"{html.escape(keep[0])} {total:.3f}" in shares
    assert "a guide and not ground truth" in legend
    targets = at.selectbox(key="w:assays.target").options
    at.selectbox(key="w:assays.target").set_value(targets[-1]).run()
    assert not at.exception
    assert any("Targets × their top-10" in t for t in chart_titles(at))


# ---- Jobs -------------------------------------------------------------------------------------------
def test_a_jobs_newest_log_lines_are_in_full_view(home):
    """The log box opened at the oldest line of its 20 KB tail (half a progress bar), the newest out of view."""
    store = RunStore(home)
    log = home / "long.log"
    log.write_text("".join(f"line {k}\n" for k in range(1, 101)))
    job = store.start_job(CHEM_RUN, log_path=str(log))
    store.finish_job(job, "done")
    at = open_app("jobs")
    at.selectbox(key="jobs.job_widget").set_value(job).run()
    shown = next(c.value for c in at.code if "line 100" in c.value)
    assert shown.splitlines()[0] == "line 86" and shown.splitlines()[-1] == "line 100"
    earlier = next(e for e in at.expander if e.label.startswith("Earlier lines (85 more"))
    assert earlier.code[0].value.splitlines()[-1] == "line 85"


def test_jobs_page_describes_a_config_without_its_command_line(home):
    """chem_demo's description ended "...100-source variants). MIXMIN_DATA_DIR=../shared/data python -m jobs run"."""
    at = open_app("jobs")
    at.selectbox(key="w:jobs.config").set_value("configs/chem_demo.yaml").run()
    note = next(c.value for c in at.caption if c.value.startswith("Offline chemistry demo"))
    assert note.endswith("variants).") and "python -m" not in note
    at.selectbox(key="w:jobs.config").set_value("configs/lm_demo.yaml").run()  # a command inside a sentence
    assert any(c.value.startswith("The paper's first experiment offline on CPU: seven source domains") for c in at.caption)


def test_jobs_page_starts_a_job_from_the_form_and_shows_its_progress(home):
    at = open_app("jobs")
    at.selectbox(key="w:jobs.config").set_value("configs/synthetic_demo.yaml").run()
    at.text_input(key="jobs.field.synthetic_demo.trials").input("1")
    at.text_input(key="jobs.field.synthetic_demo.n_sources").input("4")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    assert "Started process" in at.success[0].value
    # a command one can paste, quoted as a shell reads it (it was shown unquoted, its backticks as ')
    command = next(c.value for c in at.code if c.value.startswith("python -m jobs run "))
    assert shlex.split(command)[-4:] == ["--set", "n_sources=4", "--set", "trials=1"]
    store = RunStore()
    deadline = time.time() + 90
    while time.time() < deadline and not any(j["status"] == "done" and "synthetic" in j["run_id"]
                                             and j["run_id"] not in _template_runs() for j in store.list_jobs()):
        time.sleep(0.5)
    new = [r for r in store.list_runs() if r["run_id"] not in _template_runs()]
    assert new and new[0]["config"]["trials"] == 1 and new[0]["config"]["n_sources"] == 4
    at.run()
    jobs = at.dataframe[0].value
    assert "done" in set(jobs["status"])
    assert any("proxies" in c.value or "INFO" in c.value for c in at.code)  # the job's log
    # the details show the job started here (they kept showing the job picked before, another run's log)
    started = next(j["job_id"] for j in store.list_jobs() if j["run_id"] == new[0]["run_id"])
    assert at.selectbox(key="jobs.job_widget").value == started
    # and they name its run, told apart from the fixture's run of the same config (it said only "job 2 · done")
    hash_part = new[0]["run_id"].removeprefix(new[0]["name"] + "-")
    assert f"job {started} · {new[0]['name']} · {hash_part} · done" in at.selectbox(key="jobs.job_widget").options
    assert f"{new[0]['name']} · {hash_part}" in set(jobs["run"])


def _template_runs():
    return {CHEM_RUN, "synthetic-demo-6434063b"}


def _refused_start(home, config: str, fields: dict | None = None, extra: str | None = None) -> str:
    """Fill the Jobs page's form for ``configs/<config>.yaml`` and press Start: the page's error, after checking
    that nothing started (no "Started" message, no launch)."""
    at = open_app("jobs")
    at.selectbox(key="w:jobs.config").set_value(f"configs/{config}.yaml").run()
    for key, value in (fields or {}).items():
        at.text_input(key=f"jobs.field.{config}.{key}").input(value)
    if extra is not None:
        at.text_area(key=f"jobs.extra.{config}").input(extra)
    at.button[0].click().run()
    assert not at.exception and not at.success
    assert not jobs_control.list_launches(home)
    return shown(at.error[0])


def test_jobs_page_reports_a_bad_override_without_a_traceback(home):
    assert "key=value" in _refused_start(home, "synthetic_demo", extra="trials 2; rm -rf /")


def test_jobs_page_refuses_a_bad_value_before_launching(home):
    """A value the schema refuses is an error on the page, not a "Started" message and a failed launch."""
    assert "trials: must be an integer >= 1" in _refused_start(home, "synthetic_demo", {"trials": "abc"})


def test_jobs_page_refuses_cuda_on_a_machine_without_one(home, monkeypatch):
    """The page said "Started" and the error went to the launch log only: its checks skipped the CLI's device check."""
    from mixmin_core.chem.proxies import resolve_device

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # every GPU hidden
    if resolve_device("auto") == "cuda":
        pytest.skip("this machine has CUDA")
    error = _refused_start(home, "chem_ci", extra="device=cuda")
    assert "device: 'cuda', but this machine has no CUDA GPU that XGBoost can use" in error


@pytest.mark.parametrize("field,extra,match", [
    (None, "n_workers=abc\nn_workers=1", r"extra overrides set 'n_workers' twice \('abc' and '1'\); keep one line"),
    ("abc", "trials=1", r"extra overrides set 'trials', which has its own field above; change it there"),
])
def test_jobs_page_refuses_a_key_set_twice(home, field, extra, match):
    """The last value used to win silently, over a repeated line or over the field itself."""
    error = _refused_start(home, "synthetic_demo", None if field is None else {"trials": field}, extra)
    assert re.search(match, error), error


# ---- Upload -------------------------------------------------------------------------------------
def test_upload_bad_file_gets_a_clear_message(home):
    at = open_app("upload")
    at.file_uploader(key="upload.files").set_value(("outputs.csv", b"a,b\nx,y\n", "text/csv")).run()
    assert not at.exception
    assert "source columns must be numeric" in shown(at.error[0])


def test_an_upload_kept_in_the_store_can_be_deleted_there(home):
    """Uploads counted against the store's budget with no way out but its folder (the error said to delete files
    there by hand)."""
    from mixmin_core.solver.synthetic import example_problem

    outputs, _ = example_problem(n_sources=3, n_samples=50)
    for name in ("first-aaa", "second-bbb"):
        outputs.save(home / "uploads" / name, compress=True)
    os.utime(home / "uploads" / "first-aaa.npz", (time.time() - 100,) * 2)  # the older one
    at = open_app("upload")
    assert at.selectbox(key="upload.manage").value.endswith("second-bbb")  # newest first
    at.button(key="upload.delete").click().run()
    assert not at.exception
    assert sorted(p.name for p in (home / "uploads").iterdir()) == ["first-aaa.json", "first-aaa.npz"]
    assert [p.rsplit("/", 1)[-1] for p in data.list_uploads()] == ["first-aaa"]
    assert at.selectbox(key="upload.manage").options == ["upload: first-aaa (loglik)"]  # its objective named


def test_upload_a_csv_and_solve_it(home, monkeypatch):
    rng = np.random.default_rng(0)
    labels = (rng.random(100) < 0.3).astype(int)
    frame = pd.DataFrame({"good": np.where(labels == 1, 0.8, 0.2), "noise": rng.uniform(0.1, 0.9, 100),
                          "label": labels})
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    at = open_app("upload")
    solves = []
    with monkeypatch.context() as m:  # a spy: the real solver still runs
        m.setattr(data, "mixmin", lambda *a, **k: solves.append(1) or mixmin(*a, **k))
        at.file_uploader(key="upload.files").set_value(("mine.csv", buf.getvalue().encode(), "text/csv")).run()
        assert not at.exception
        assert "2 sources × 100 samples" in at.success[0].value
        kept = f"Uploads kept in the run store ({len(data.list_uploads())})"  # this upload counted in this run
        assert any(e.label == kept for e in at.expander), [e.label for e in at.expander]
        problem = at.session_state["solve.problem"]
        assert problem.startswith("upload:")
        at.switch_page("pages/solver.py").run()
        assert not at.exception
    assert len(solves) == 1  # the Solver's first solve is the Upload page's, cached (it solved it again)
    weights = at.dataframe[0].value.set_index("source")["weight"]
    assert weights["good"] > 0.9
    # another upload, then the first file again: it is the newest upload (it stayed last in the list, unwritten)
    other = frame.assign(noise=frame["noise"][::-1].to_numpy()).to_csv(index=False).encode()
    at.switch_page("pages/upload.py").run()
    at.file_uploader(key="upload.files").set_value(("other.csv", other, "text/csv")).run()
    for path in (home / "uploads").iterdir():  # whole seconds apart: a file system may keep no finer times
        os.utime(path, (time.time() - (100 if path.name.startswith("mine") else 50),) * 2)
    assert data.list_uploads()[0] != problem
    at.file_uploader(key="upload.files").set_value(("mine.csv", buf.getvalue().encode(), "text/csv")).run()
    assert not at.exception and data.list_uploads()[0] == problem
    for path in (home / "uploads").glob("mine*"):
        os.utime(path, (time.time() - 200,) * 2)
    stamp = data.problem_stamp(problem)
    at.run()  # a rerun of the page (any click) with the file still there is no new upload: its version stays
    assert data.problem_stamp(problem) == stamp


@pytest.mark.parametrize("page", ["solver", "compare", "assays", "jobs", "upload", "beyond"])
def test_every_page_works_on_an_empty_store(empty_home, page):
    at = open_app(page)
    assert not at.error
    if page in ("compare", "assays"):
        assert "No runs yet" in at.info[0].value
    if page == "solver":  # the built-in example is always there
        assert at.selectbox(key="w:solve.problem").value == "example"


def test_solver_reports_a_corrupted_outputs_file_without_a_traceback(home):
    problem = next(p for p in layout.list_problems(RunStore().run_dir(CHEM_RUN)) if p.variant == "sources-all")
    npz = layout.outputs_path(RunStore().run_dir(CHEM_RUN), problem).with_name(problem.key + ".npz")
    npz.write_bytes(npz.read_bytes()[:-100])
    at = open_app("solver")
    assert "checksum mismatch" in shown(at.error[0])


def test_compare_of_a_single_method_shows_no_improvement_over_itself(home):
    from mixmin_core.engine.report import write_report

    run_dir = RunStore(home).create_run("one-method", name="one-method", pipeline="synthetic",
                                        config={"pipeline": "synthetic"})
    write_report(run_dir, [{"target": t, "method": "mixmin", "trial": k, "metric": "loss", "variant": "",
                            "value": 0.5 + 0.01 * k} for t in ("a", "b") for k in range(3)])
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("one-method").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert not any(c.startswith(("vs ", "improvement")) for c in table.columns), list(table.columns)
    assert any("Only `mixmin` ran for this metric" in c.value for c in at.caption)
    assert any("p-values: paired t-test against MixMin over trials (none where the difference is the same in every "
               "trial" in c.value for c in at.caption)


def test_compare_and_runs_give_a_language_models_loss_its_unit(home):
    """An LM's losses are nats per token of the run's own tokenizer: the axis said only `generative_loss`, which a
    reader of published run tables (bits per byte) misreads."""
    from mixmin_core.engine.report import write_report

    run_dir = RunStore(home).create_run("lm-units", name="lm-units", pipeline="lm", config={"pipeline": "lm"})
    write_report(run_dir, [{"target": "piqa", "method": m, "trial": k, "metric": "generative_loss", "variant": v,
                            "value": 5.0 + 0.01 * k + 0.1 * i - 0.5 * bool(v)}
                           for v in ("", "transfer:small") for i, m in enumerate(("mixmin", "natural")) for k in range(3)])
    at = open_app()
    key = at.dataframe[0].value.set_index("name").loc["lm-units", "key result"]
    assert key.startswith("generative_loss (nats per token): mixmin 5.01"), key
    assert key.endswith("(proxy-size models; transfer:small on the Compare page)"), key  # lm_transfer's question
    at.sidebar.selectbox(key="w:app.run_id").set_value("lm-units").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    axes = [json.loads(c.proto.spec)["layout"].get("yaxis", {}).get("title", {}).get("text") for c in at.get("plotly_chart")]
    assert any(str(a).startswith("generative_loss (nats per token)") for a in axes), axes


def test_compare_measures_improvement_over_its_default_baseline_not_the_first(home):
    """With mixmin, balanced and target_only the page meant target_only as the baseline and showed balanced: a
    default it chose itself was taken for one to replace with the first option."""
    from mixmin_core.engine.report import write_report

    run_dir = RunStore(home).create_run("three-methods", name="three-methods", pipeline="synthetic",
                                        config={"pipeline": "synthetic"})
    write_report(run_dir, [{"target": "a", "method": m, "trial": k, "metric": "loss", "variant": "",
                            "value": 0.5 + 0.01 * k + 0.1 * i}
                           for i, m in enumerate(("mixmin", "balanced", "target_only")) for k in range(3)])
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("three-methods").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert at.selectbox(key="w:compare.baseline").value == "target_only"
    at.session_state["app.run_id"] = CHEM_RUN  # a run with natural: the page's own default follows it
    at.switch_page("pages/compare.py").run()
    assert at.selectbox(key="w:compare.baseline").value == "natural"
    at.selectbox(key="w:compare.baseline").set_value("balanced").run()  # the user's choice stays
    at.session_state["app.run_id"] = "three-methods"
    at.switch_page("pages/compare.py").run()
    assert at.selectbox(key="w:compare.baseline").value == "balanced"


def test_compare_says_what_a_single_trial_run_and_a_run_without_mixmin_lack(home):
    """The caption promised CIs and p-values against MixMin on a one-trial run and on run tables without MixMin."""
    from mixmin_core.engine.report import write_report

    for run_id, methods, trials in (("one-trial", ("mixmin", "natural"), 1), ("no-mixmin", ("natural", "regmix"), 3)):
        run_dir = RunStore(home).create_run(run_id, name=run_id, pipeline="synthetic", config={"pipeline": "synthetic"})
        write_report(run_dir, [{"target": "a", "method": m, "trial": k, "metric": "loss", "variant": "",
                                "value": 0.5 + 0.01 * k + 0.1 * i} for i, m in enumerate(methods) for k in range(trials)])
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("one-trial").run()
    at.switch_page("pages/compare.py").run()
    assert any("one trial: no intervals or p-values" in c.value for c in at.caption)
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("no-mixmin").run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    caption = next(c.value for c in at.caption if "95% CIs over trials" in c.value)
    assert "against MixMin" not in caption
    assert "[0, 1]" not in caption  # said of AP and accuracy also beside a loss


def test_compare_shows_the_compute_budget_sweep_of_a_run(home):
    run_id = write_lm_budget_run(home)
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value(run_id).run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert "lower is better" in at.caption[0].value
    assert at.selectbox(key="w:compare.variant").value == "budget-1"  # the largest budget first
    assert any(t.startswith("Sweep over the proxy compute budget") for t in chart_titles(at))
    said = next(c.value for c in at.caption if "other shares of its final model's compute" in c.value)
    assert "0.01 → 0.0239 (" in said and "0.1 →" not in said  # lm_sweep's 1% trains whole steps: 2.4%


def test_runs_and_jobs_pages_follow_a_running_job_and_cancel_it(home):
    config = "configs/synthetic_demo.yaml"
    jobs_control.start_job(config, {"n_sources": 400, "source_samples": 200000, "n_workers": 1}, home=home)
    store = RunStore()
    deadline = time.time() + 60
    while time.time() < deadline and not any(j["status"] == "running" and j["n_total"] for j in store.list_jobs()):
        time.sleep(0.2)
    at = open_app()
    assert metric(at, "Running") == "1"
    row = at.dataframe[0].value.iloc[0]
    assert row["status"] == "running" and 0 <= row["progress"] < 1 and row["step"].startswith("proxies")
    at.switch_page("pages/jobs.py").run()
    assert at.dataframe[0].value.iloc[0]["status"] == "running"
    at.button(key="jobs.kill").click().run()
    assert not at.exception
    assert "it stopped" in at.info[0].value
    assert store.list_jobs()[0]["status"] == "cancelled"


def _table(at):
    value = at.dataframe[0].value
    return value.data if hasattr(value, "data") else value  # a pandas Styler


def test_assays_work_for_pcba_with_the_pcba128_metadata(home):
    write_chem_run(home, dataset="pcba128", run_id="pcba-fixture", n_sources=30, n_targets=2, n_trials=1)
    sources = layout.sources_path(RunStore(home).run_dir("pcba-fixture"))  # as a PCBA run writes it: a summary of
    shipped = pd.read_csv(data_dir() / "chem" / "pcba128_assays.csv").set_index("task")  # each assay, not ToxCast's
    frame = pd.read_csv(sources)                                                          # `description`
    frame.assign(description_summary=frame["source"].map(shipped["description_summary"])).to_csv(sources, index=False)
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value("pcba-fixture").run()
    at.switch_page("pages/assays.py").run()
    assert not at.exception
    table = _table(at)
    meta = assay_table("pcba128").set_index("task")
    assert table["source"].str.startswith("PCBA-").all()
    assert (table["title"] == meta.loc[table["source"], "title"].to_numpy()).all()
    assert set(table["group"]) <= {"cytotoxicity", "phenotypic", "protein", "other"}
    assert (table["description"] == shipped.loc[table["source"], "description_summary"].to_numpy()).all()


def test_assays_heatmap_leaves_a_target_blank_in_its_own_column(home):
    """A target that is another target's source (every target among ToxCast's first 10 is) drew a weight of 0 in
    its own column, as if MixMin had given itself none."""
    run_dir = RunStore(home).run_dir(CHEM_RUN)
    problems = [p for p in layout.list_problems(run_dir) if p.variant == "sources-all" and p.trial == 0]
    first, second = problems[0], problems[1]
    path = layout.mixture_path(run_dir, first, "mixmin")
    mixture = json.loads(path.read_text())
    top = max(mixture["weights"], key=mixture["weights"].get)  # the first target's top source: the second's assay
    mixture["weights"] = {second.target if s == top else s: w for s, w in mixture["weights"].items()}
    path.write_text(json.dumps(mixture))
    heat = next(json.loads(c.proto.spec) for c in _open_assays(CHEM_RUN).get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Targets ×"))["data"][0]
    z = heat["z"]
    if isinstance(z, dict):  # a typed array: base64 bytes and their shape
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(
            [int(n) for n in str(z["shape"]).split(",")])
    grid = pd.DataFrame(np.asarray(z, dtype=float), index=heat["y"], columns=heat["x"])
    assert np.isnan(grid.loc[second.target, second.target])  # blank, beside the first target's weight on it
    assert grid.loc[first.target, second.target] == pytest.approx(mixture["weights"][second.target])
    # a source outside a target's top 10 was drawn as 0 beside its real weight, and the scale ran to 1 (near white)
    outside = [(t, c) for t in grid.index for c in grid.columns if t != c and np.isnan(grid.loc[t, c])]
    assert outside and not (grid.fillna(1.0).to_numpy() == 0).any()
    for t, c in outside[:5]:
        weights = json.loads(layout.mixture_path(run_dir, layout.Problem(t, 0, "sources-all"), "mixmin").read_text())
        ranked = sorted(weights["weights"], key=weights["weights"].get, reverse=True)
        assert c not in ranked[:10]
    at = _open_assays(CHEM_RUN)
    heat_layout = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                       if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Targets ×"))["layout"]
    assert heat_layout["coloraxis"]["cmax"] == pytest.approx(np.nanmax(grid.to_numpy()), rel=1e-6)
    caption = next(c.value for c in at.caption if "in some target's top 10" in c.value)
    fewest = grid.notna().sum(axis=1).idxmin()
    assert re.fullmatch(r"\d+ of the \d+ source assays in some target's top 10: those with the largest weight "
                        r"\(at most 30, and only those some target gives 1% or more\), so a row may draw only part of "
                        rf"its target's top 10 \(fewest: {fewest}, {grid.loc[fewest].notna().sum()} of 10\)\. A blank "
                        r"cell is .*", caption), caption


def _write_topk(run_dir, problem, rows: list) -> None:
    layout.topk_path(run_dir, problem).parent.mkdir(parents=True, exist_ok=True)
    layout.topk_path(run_dir, problem).write_text(json.dumps({"sources": rows}))


def _open_assays(run_id: str):
    at = open_app()
    at.sidebar.selectbox(key="w:app.run_id").set_value(run_id).run()
    at.switch_page("pages/assays.py").run()
    assert not at.exception
    return at


def test_assays_rank_every_source_and_name_the_targets_own_data(home):
    """With `include_target` the target's own fit split is a source named like the target: it looked like another
    assay the target borrows from. And a topk file keeps the top `top_k`; the saved mixture has every source."""
    from mixmin_core.solver.synthetic import example_problem

    run_dir = RunStore().create_run("chem-own", name="chem-own", pipeline="chem",
                                    config={"pipeline": "chem", "include_target": True})
    outputs, _ = example_problem(n_sources=4, n_samples=200, seed=1)
    names = ["ATG_ERE_CIS_up", "ATG_ERa_TRANS_up", "ATG_PXR_TRANS_up", "ATG_NRF2_ARE_CIS_up"]
    problem = layout.Problem("ATG_ERE_CIS_up", 0, "sources-all")
    outputs.save(layout.outputs_path(run_dir, problem))
    weights = dict(zip(names, (0.6, 0.25, 0.1, 0.05)))
    path = layout.mixture_path(run_dir, problem, "mixmin")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": "mixmin", "weights": weights, "status": "max_iter", "gap": 8e-4}))
    rows = [{"source": n, "weight": w, "lower": w / 2, "upper": min(1, 2 * w)} for n, w in list(weights.items())[:2]]
    _write_topk(run_dir, problem, rows)
    outputs.save(layout.outputs_path(run_dir, layout.Problem("ATG_ERE_CIS_up", 1, "sources-all")))  # a 2nd trial
    other = layout.mixture_path(run_dir, layout.Problem("ATG_ERE_CIS_up", 1, "sources-all"), "mixmin")
    other.write_text(json.dumps({"method": "mixmin", "weights": dict(zip(names, (0.4, 0.3, 0.2, 0.1)))}))
    layout.write_sources(run_dir, pd.DataFrame({"source": names, "n_labelled": 300, "n_pos": 30}))
    at = _open_assays("chem-own")
    shown = _table(at)
    assert list(shown["source"]) == ["(target's own data)", *names[1:]]  # every source, by weight
    assert "own fit split" in shown["title"].iloc[0]
    # its range over the trials was blank (looked up by the renamed source), and its counts were the whole column's
    assert shown["trials"].tolist()[:2] == ["0.400–0.600", "0.250–0.300"]
    assert np.isnan(shown["labelled"].iloc[0]) and (shown["labelled"].iloc[1:] == 300).all()
    assert shown["lower"].notna().tolist() == [True, True, False, False]
    captions = " ".join(c.value for c in at.caption)
    assert "This setting gives ATG_ERE_CIS_up 3 source assays and its own data" in captions  # it said 4
    assert "bootstrap intervals for its top 2 source assays" in captions
    assert "stopped at its iteration limit (Frank–Wolfe gap 0.0008)" in captions
    assert "Targets × their top-4 source assays (weight, trial 0)" in chart_titles(at)
    heat = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Targets ×"))
    # from 0 to the largest weight drawn (0.998 drew white on a scale from its own minimum; 0 to 1 left a map of
    # weights under 0.3 nearly white)
    assert (heat["layout"]["coloraxis"]["cmin"], heat["layout"]["coloraxis"]["cmax"]) == (0, 0.6)


def test_a_target_named_with_spaces_is_shown_by_its_name_and_its_own_data_as_such(home):
    """SIDER's targets: the pages took names from file keys ('Hepatobiliary-disorders'), so the target's own data
    (the source 'Hepatobiliary disorders') read as an assay it borrows 70% from, and titles, heatmap rows and the
    CSV export named the target in a form no config or results row knows."""
    from mixmin_core.solver.synthetic import example_problem

    target = "Hepatobiliary disorders"
    names = ["Product issues", "Eye disorders", "Vascular disorders", target]
    run_dir = RunStore().create_run("sider-own", name="sider-own", pipeline="chem",
                                    config={"pipeline": "chem", "include_target": True, "targets": [target]})
    outputs, _ = example_problem(n_sources=4, n_samples=200, seed=1)
    problem = layout.Problem(target, 0, "sources-all")
    assert problem.key.startswith("Hepatobiliary-disorders__")
    outputs.save(layout.outputs_path(run_dir, problem))
    path = layout.mixture_path(run_dir, problem, "mixmin")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": "mixmin", "weights": dict(zip(names, (0.1, 0.1, 0.1, 0.7)))}))
    layout.write_sources(run_dir, pd.DataFrame({"source": names, "n_labelled": 300, "n_pos": 30}))
    at = _open_assays("sider-own")
    assert _table(at)["source"].iloc[0] == "(target's own data)"
    assert target in [sb.value for sb in at.selectbox]
    assert f"Top source assays for {target}" in chart_titles(at)


def test_solver_names_the_targets_own_data(home):
    """With include_target the Solver listed the target among its sources, as if it borrowed from another assay."""
    from mixmin_core import ProxyOutputs
    from mixmin_core.solver.synthetic import example_problem
    from tests.app.test_links import open_link

    base, _ = example_problem(n_sources=3, n_samples=200, seed=2)
    names = ["ATG_ERE_CIS_up", "ATG_ERa_TRANS_up", "ATG_PXR_TRANS_up"]
    problem = layout.Problem("ATG_ERE_CIS_up", 0, "sources-all")
    for run_id, own in (("chem-own2", True), ("lm-like", False)):  # without include_target a name is just a name
        run_dir = RunStore().create_run(run_id, name=run_id, pipeline="chem",
                                        config={"pipeline": "chem", "include_target": own})
        ProxyOutputs(np.asarray(base.values), base.kind, labels=base.labels, source_names=names).save(
            layout.outputs_path(run_dir, problem))
        shown = set(open_link("solver", {"run": run_id, "problem": problem.key}).dataframe[0].value["source"])
        assert ("(target's own data)" in shown) == own and ("ATG_ERE_CIS_up" in shown) == (not own)
        assert {"ATG_ERa_TRANS_up", "ATG_PXR_TRANS_up"} <= shown


def test_solver_on_a_problem_of_one_target_sample_shows_no_intervals_and_no_traceback(home):
    """The bootstrap of one sample gave zero-width "95% intervals"; refused by the library now, said by the page."""
    from mixmin_core import ProxyOutputs
    from tests.app.test_links import open_link

    run_dir = RunStore().create_run("one-sample", name="one-sample", pipeline="synthetic", config={"pipeline": "synthetic"})
    problem = layout.Problem("t", 0, "")
    ProxyOutputs(np.array([[0.9], [0.2]], dtype=np.float32), "binary", labels=np.array([1.0], dtype=np.float32),
                 source_names=["a", "b"]).save(layout.outputs_path(run_dir, problem))
    at = open_link("solver", {"run": "one-sample", "problem": problem.key})
    assert not at.exception and at.dataframe[0].value["source"].tolist()
    assert any("the target has one sample" in c.value for c in at.caption)
    assert at.caption[0].value.startswith("2 sources × 1 target sample ·")  # "1 target samples"


def test_assays_speak_of_text_domains_on_a_language_model_run_and_of_the_top_k_it_kept(home):
    from mixmin_core.solver.synthetic import example_problem

    run_dir = RunStore().create_run("lm-assays", name="lm-assays", pipeline="lm", config={"pipeline": "lm", "top_k": 3})
    outputs, _ = example_problem(n_sources=5, n_samples=200, seed=1)
    for target in ("piqa", "sciq"):
        problem = layout.Problem(target, 0)
        outputs.save(layout.outputs_path(run_dir, problem))
        rows = [{"source": n, "weight": w} for n, w in zip(outputs.source_names[:3], (0.5, 0.3, 0.1))]
        _write_topk(run_dir, problem, rows)
    at = _open_assays("lm-assays")
    assert len(_table(at)) == 3
    assert "Top source domains for piqa" in chart_titles(at)
    assert "Targets × their top-3 source domains (weight, trial 0)" in chart_titles(at)  # not the box's top-10
    assert any("3 source domains are on record" in c.value for c in at.caption)
    assert not any("protein binding / inhibition" in m.value for m in at.markdown)  # no assay-category legend


def test_assays_fall_back_to_the_titles_in_the_topk_file(home):
    run_dir = RunStore().run_dir(CHEM_RUN)
    (run_dir / "sources.csv").unlink()
    problem = next(p for p in layout.list_problems(run_dir) if p.variant == "sources-all" and p.trial == 0)
    path = layout.topk_path(run_dir, problem)
    data = json.loads(path.read_text())
    for row in data["sources"]:
        row.update(title=f"title of {row['source']}", category="cytotoxicity/cell viability")
    path.write_text(json.dumps(data))
    at = open_app("assays")
    table = _table(at)
    assert (table["title"] == "title of " + table["source"]).all()
    assert (table["group"] == "cytotoxicity").all()


def test_every_page_is_routed_and_runs_on_the_fixture_store(home):
    at = open_app()
    for page in ("solver", "compare", "assays", "jobs", "upload", "beyond"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_category_chips_and_cells_use_the_text_colour_that_reads_on_them():
    """White on the paper's orange and green was 2.5:1 and 3.4:1 (text needs 4.5:1)."""
    from pages.common.figures import CATEGORY_COLOURS, text_on

    assert [text_on(CATEGORY_COLOURS[g]) for g in ("other", "phenotypic", "protein")] == ["black", "black", "white"]
    assert text_on(float("nan")) == "inherit"  # a source without a category
