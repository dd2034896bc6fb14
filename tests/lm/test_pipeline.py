"""The LM pipeline end to end: the CI miniature twice (resume), measured compute against hand-computed
FLOPs, fresh search mixtures per trial, a user's own files, joint multi-target mixtures, bad input."""
import gzip
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from jobs.__main__ import main
from mixmin_core import ProxyOutputs, mixture_loss
from mixmin_core.runs.layout import (
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
    list_mixtures,
    list_problems,
)
from mixmin_core.runs.store import RunStore
from mixmin_core.solver.results import MixtureResult
from tests.helpers import only_run

ROOT = Path(__file__).resolve().parents[2]
CI = str(ROOT / "configs" / "lm_ci.yaml")
SEARCH = ("random_search", "regmix")
CI_METHODS = ("mixmin", "natural", "balanced") + SEARCH


def _tiny_params(vocab: int) -> int:
    """GPT-NeoX parameters of the ``tiny`` preset (hidden 128, 2 layers), counted by hand: input and
    output embeddings, per layer two LayerNorms, QKV and output projections and a 4x MLP (with biases),
    and the final LayerNorm."""
    h, layers = 128, 2
    per_layer = 2 * 2 * h + (3 * h * h + 3 * h) + (h * h + h) + (4 * h * h + 4 * h) + (4 * h * h + h)
    return 2 * vocab * h + layers * per_layer + 2 * h


def _mixture(run_dir, key, method):
    return MixtureResult.from_dict(json.loads((run_dir / "mixtures" / f"{key}__{method}.json").read_text()))


def test_ci_miniature_runs_end_to_end_and_resumes(capsys):
    assert main(["run", CI, "--quiet"]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    assert run["status"] == "done"
    problems = list_problems(run_dir)
    assert {(p.target, p.trial) for p in problems} == {(t, k) for t in ("piqa", "arc_easy") for k in (0, 1)}
    for p in problems:
        out = ProxyOutputs.load(run_dir / "proxy_outputs" / p.key)
        assert out.kind == "loglik" and out.n_samples == 48  # 80% of 60
        assert out.n_sources == 7 and out.token_counts is not None
        answer = ProxyOutputs.load(run_dir / "proxy_outputs_answer" / p.key)
        # answer-only <= whole sequence; equal only where a long question was cut to fit the context
        assert (answer.values >= out.values).all() and (answer.token_counts <= out.token_counts).all()
        assert (answer.token_counts < out.token_counts).mean() > 0.9
        assert set(list_mixtures(run_dir, p)) == set(CI_METHODS)
    # 20,000 characters of each source were read; sizes and "natural" are the whole corpus's (c4: 340 documents)
    sources = __import__("pandas").read_csv(run_dir / "sources.csv").set_index("source")
    assert (sources.corpus_tokens > sources.tokens).all() and (sources.corpus_documents >= sources.documents).all()
    assert sources.corpus_documents["c4"] == 340
    np.testing.assert_allclose(sources.natural_weight, sources.corpus_tokens / sources.corpus_tokens.sum())
    natural_mix = _mixture(run_dir, "piqa__trial0", "natural")
    np.testing.assert_allclose(natural_mix.weights, sources.natural_weight[list(natural_mix.source_names)], atol=1e-6)
    res = store.results(run["run_id"])
    assert list(res.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    main_rows = res[res.variant == ""]
    for metric in ("generative_loss", "predictive_loss", "accuracy"):
        sel = main_rows[main_rows.metric == metric]
        assert set(zip(sel.target, sel.method)) == {(t, m) for t in ("piqa", "arc_easy") for m in CI_METHODS}
        assert sel.value.notna().all() and (sel.groupby(["target", "method"]).size() == 2).all()
    gen = main_rows[main_rows.metric == "generative_loss"].value
    assert ((gen > 0) & (gen < np.log(512) + 1)).all()  # per-token NLL of a 512-token vocabulary
    assert set(res.variant) == {"", "cross:piqa", "cross:arc_easy"}
    cross = json.loads((run_dir / "cross_task.json").read_text())
    assert cross["weights_from"] == ["piqa", "arc_easy"] and all(v is not None for row in cross["mixmin"] for v in row)
    summary = __import__("pandas").read_csv(run_dir / "summary.csv")
    assert list(summary.columns[:len(SUMMARY_COLUMNS)]) == list(SUMMARY_COLUMNS)
    assert {"overall", "piqa", "arc_easy"} <= set(summary.target) and "improvement" in summary
    assert not (run_dir / "results_summary.csv").exists()
    assert run["summary"]["metric"] == "generative_loss" and set(run["summary"]["methods"]) == set(CI_METHODS)
    units = store.units(run["run_id"])
    kinds = [u["kind"] for u in units]
    assert {"tokenizer", "tokens", "proxy", "final", "score"} <= set(kinds)
    # one search run per candidate and trial, shared by both targets (7 runs x 2 trials per method)
    assert kinds.count("random_search") == 14 and kinds.count("regmix") == 14 and kinds.count("proxy") == 7
    proxy = next(u for u in units if u["kind"] == "proxy")
    info = json.loads(proxy["info_json"]) if "info_json" in proxy else proxy["info"]
    assert info["flops"] == pytest.approx(6 * info["params"] * info["tokens"]) and info["compute"] == info["flops"]

    # measured compute against hand-computed FLOPs: 6 x parameters x tokens. 2,048 tokens per step
    # (batch 16 x context 128); a proxy gets 16,384 / 7 tokens -> 1 whole step; a RegMix run is the
    # paper's 1%-budget proxy (164 tokens -> 1 step); a final model 8 steps.
    params = _tiny_params(512)
    assert info["params"] == params
    proxies = 7 * 6 * params * 2048
    compute = res.groupby("method").proxy_compute.agg(["min", "max"])
    for m in ("mixmin",) + SEARCH:  # equal to MixMin's: 7 one-step runs each
        assert compute.loc[m, "min"] == compute.loc[m, "max"] == proxies, m
    assert (compute.loc[["natural", "balanced"]] == 0).all().all()
    assert (res.final_compute == 6 * params * 16384).all()
    for key in ("piqa__trial0", "arc_easy__trial1"):
        assert _mixture(run_dir, key, "random_search").meta["n_trials"] == 7
        assert _mixture(run_dir, key, "regmix").meta["runs"] == 7

    # fresh search mixtures per trial, the same for both targets within a trial
    for m, field in (("random_search", "candidates"), ("regmix", "swarm")):
        draws = {(t, k): np.array(_mixture(run_dir, f"{t}__trial{k}", m).meta[field]) for t in ("piqa", "arc_easy") for k in (0, 1)}
        assert draws["piqa", 0].shape == (7, 7)
        assert not np.allclose(draws["piqa", 0], draws["piqa", 1])
        assert np.array_equal(draws["piqa", 0], draws["arc_easy", 0]) and np.array_equal(draws["piqa", 1], draws["arc_easy", 1])

    mtimes = {p: p.stat().st_mtime_ns for p in (run_dir / "models").glob("*.pt")}
    n_units = len(units)
    capsys.readouterr()

    assert main(["run", CI, "--quiet"]) == 0  # second run: every unit is skipped
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "models").glob("*.pt")} == mtimes
    assert len(store.units(run["run_id"])) == n_units
    assert len(store.results(run["run_id"])) == len(res)


def _write_jsonl(path, records):
    data = "".join(json.dumps(r) + "\n" for r in records)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(data)
    else:
        Path(path).write_text(data, encoding="utf-8")
    return path


def _user_files(tmp_path):
    folder = tmp_path / "my_sources"
    folder.mkdir()
    rng = np.random.default_rng(0)
    animals, numbers = ["cat", "dog", "cow", "hen"], ["one", "two", "three", "four"]
    _write_jsonl(folder / "animals.jsonl", [{"text": " ".join(rng.choice(animals, 60))} for _ in range(30)])
    _write_jsonl(folder / "numbers.jsonl.gz", [{"text": " ".join(rng.choice(numbers, 60))} for _ in range(30)])
    _write_jsonl(folder / "mixed.jsonl", [{"text": " ".join(rng.choice(animals + numbers, 60))} for _ in range(30)])
    target = _write_jsonl(tmp_path / "my_target.jsonl", [{"text": " ".join(rng.choice(numbers, 12))} for _ in range(40)])
    return folder, target


def _user_overrides(folder, target, **extra):
    sets = {"sources_dir": str(folder), "targets": json.dumps([{"name": "mine", "kind": "jsonl", "path": str(target)}]),
            "bpe_vocab_size": 300, "final_tokens": 4096, "trials": 2, "max_target_samples": 40, **extra}
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def test_user_folder_and_target_with_only_config_changes(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    methods = "[mixmin, natural, balanced, random_search, regmix]"
    assert main(["run", CI, "--quiet", *_user_overrides(folder, target, methods=methods, regmix_runs_per_source=2,
                                                        transfer_preset="small", final_tokens=24576)]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    out = ProxyOutputs.load(run_dir / "proxy_outputs" / "mine__trial0")
    assert out.source_names == ("animals", "mixed", "numbers") and out.n_samples == 32
    found = {m: _mixture(run_dir, "mine__trial0", m) for m in ("mixmin", "random_search", "regmix")}
    assert found["mixmin"].top(1)[0][0] == "numbers"  # the target is made of number words
    proxy_compute = out.meta["proxy_compute"]
    assert found["mixmin"].meta["compute"] == proxy_compute == 3 * 6 * _tiny_params(320) * 4 * 2048  # 3 proxies x 4 steps
    assert found["random_search"].meta["n_trials"] == 3  # compute-matched: as many proxies as sources
    for m in ("random_search", "regmix"):
        assert found[m].meta["compute"] == pytest.approx(proxy_compute, rel=0.05)
    assert found["regmix"].meta["n_runs"] == 6  # more, smaller runs at equal compute
    assert found["regmix"].meta["preset"] == "mixmin-paper"  # auto: too few runs for the faithful regressor
    res = store.results(run["run_id"])
    assert set(res.metric) == {"generative_loss"}  # documents: no answers, no accuracy
    gen = res[res.variant == ""].groupby("method").value.mean()
    assert gen["mixmin"] < gen["balanced"]
    transfer = res[res.variant == "transfer:small"]  # tiny-proxy weights used to train the small preset
    assert set(transfer.method) == {"mixmin", "natural", "balanced"} and len(transfer) == 6
    small = [u for u in store.units(run["run_id"]) if u["unit_id"].startswith("model/small-")]
    assert len(small) >= 4  # mixmin per trial (2) + natural and balanced, at least
    assert (transfer.final_compute > res[res.variant == ""].final_compute.max()).all()  # a larger model, same tokens


@pytest.mark.slow  # the chemistry sweep test covers compute sweeps in the default suite
def test_compute_budget_sweep_in_one_run(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    methods = "[mixmin, natural, balanced, random_search, regmix]"
    assert main(["run", CI, "--quiet", *_user_overrides(folder, target, methods=methods, regmix_runs_per_source=2,
                                                        proxy_budgets="[0.25, 1.0]", final_tokens=24576)]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    res = store.results(run["run_id"])
    assert set(res.variant) == {"budget-0.25", "budget-1"}
    flops = {v: ProxyOutputs.load(run_dir / "proxy_outputs" / f"mine__{v}__trial0").meta["proxy_compute"]
             for v in ("budget-0.25", "budget-1")}
    assert flops["budget-0.25"] == pytest.approx(0.25 * flops["budget-1"])  # 1 and 4 whole steps per proxy
    # proxy_compute: every search method spends MixMin's proxy compute at each budget (up to one run); natural none
    compute = res.groupby(["variant", "method"]).proxy_compute.mean()
    for v in flops:
        for m in ("mixmin", "random_search", "regmix"):
            assert compute[v, m] == pytest.approx(flops[v], rel=0.05)
        assert compute[v, "natural"] == 0
    # natural and balanced do not depend on the budget: one final model per trial, shared by both budgets
    nat = res[res.method == "natural"]
    assert nat.groupby("trial").model.nunique().eq(1).all()
    assert nat.groupby("trial").value.nunique().eq(1).all()
    summary = __import__("pandas").read_csv(run_dir / "summary.csv")
    gen = summary[(summary.target == "mine") & (summary.metric == "generative_loss")]
    assert set(zip(gen.variant, gen.method)) == {(v, m) for v in flops for m in
                                                 ("mixmin", "natural", "balanced", "random_search", "regmix")}
    assert gen.improvement.notna().all() and (gen.n_trials == 2).all()
    assert main(["run", CI, "--set", "proxy_budgets=[0.1, 0.1]"]) == 2
    assert "proxy_budgets: must not repeat an item" in capsys.readouterr().err
    assert main(["run", CI, "--set", "proxy_budgets=[0.1, 1]", "--set", "transfer_preset=small"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert main(["run", CI, "--set", "proxy_budgets=[0.1, 1]", "--set", "proxy_budget=0.5", "--dry-run"]) == 2
    assert "proxy_budget: 0.5 is not used when proxy_budgets sets a compute sweep" in capsys.readouterr().err


def test_joint_mixture_for_two_targets_is_evaluated_on_both(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    rng = np.random.default_rng(1)
    animals = _write_jsonl(tmp_path / "animals_target.jsonl",
                           [{"text": " ".join(rng.choice(["cat", "dog", "cow", "hen"], 12))} for _ in range(40)])
    targets = json.dumps([{"name": "nums", "kind": "jsonl", "path": str(target)},
                          {"name": "pets", "kind": "jsonl", "path": str(animals)}])
    assert main(["run", CI, "--quiet", *_user_overrides(folder, target, targets=targets, final_tokens=12288,
                                                        joint_modes="[mean, worst]", cross_task="false",
                                                        joint_max_iter="3")]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    res = store.results(run["run_id"])
    joint = res[res.method.str.startswith("mixmin_joint_")]
    assert set(zip(joint.method, joint.target)) == {(f"mixmin_joint_{m}", t) for m in ("mean", "worst") for t in ("nums", "pets")}
    assert (joint.groupby(["method", "trial"]).model.nunique() == 1).all()  # one final model per trial serves both targets
    mm = res[res.method == "mixmin"]
    assert (joint.proxy_compute == mm.proxy_compute.iloc[0]).all()  # it used MixMin's proxies, nothing more
    for k in (0, 1):
        outs = {t: ProxyOutputs.load(run_dir / "proxy_outputs" / f"{t}__trial{k}") for t in ("nums", "pets")}
        own = {t: _mixture(run_dir, f"{t}__trial{k}", "mixmin") for t in outs}
        assert own["nums"].top(1)[0][0] == "numbers" and own["pets"].top(1)[0][0] == "animals"
        worst = _mixture(run_dir, f"nums__trial{k}", "mixmin_joint_worst")
        assert np.array_equal(worst.weights, _mixture(run_dir, f"pets__trial{k}", "mixmin_joint_worst").weights)
        # the worst-case mixture's larger fit-split loss is below that of either target's own MixMin mixture
        worst_loss = max(mixture_loss(o, worst.weights) for o in outs.values())
        for t in outs:
            assert worst_loss <= max(mixture_loss(o, own[t].weights) for o in outs.values()) + worst.gap + 1e-6
    mean = _mixture(run_dir, "nums__trial0", "mixmin_joint_mean")  # joint_max_iter, not MixMin's max_iter
    assert mean.n_iter == 3 and mean.status == "max_iter"
    log = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert "the joint (mean) mixture stopped at its iteration limit, not converged" in log
    assert "reached max_iter=3 before" in log and "a larger joint_max_iter helps" in log
    summary = __import__("pandas").read_csv(run_dir / "summary.csv")
    sel = summary[summary.method.str.startswith("mixmin_joint_") & (summary.target != "overall")]
    assert len(sel) == 4 and (sel.n_trials == 2).all() and sel.ci_low.notna().all()


def test_target_examples_in_a_source_are_recorded_and_said(tmp_path, caplog):
    """A source holding 40 of a target's 80 questions with their answers got 0.77 of the weight, and the run
    reported the gain over natural without a word."""
    folder, target = _user_files(tmp_path)
    texts = [json.loads(line)["text"] for line in target.read_text().splitlines()]
    _write_jsonl(folder / "leak.jsonl", [{"text": f"notes: {t} and more"} for t in texts[:10]]
                 + [{"text": "one two three four"} for _ in range(20)])
    assert main(["run", CI, "--quiet", *_user_overrides(folder, target, trials=1, final_tokens=4096)]) == 0
    _, run_dir = only_run(RunStore())
    info = json.loads((run_dir / "dataset.json").read_text())
    assert info["target_examples_in_sources"] == {"mine": pytest.approx(10 / 40)}
    assert info["target_examples_by_source"] == {"mine": {"leak": 10}}
    log = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert "target 'mine': 10 of its 40 examples appear word for word in the sources' text (leak: 10)" in log
    assert info["documents_shared_by_sources"] == []  # the fixture's sources share no document


def test_sources_holding_the_same_documents_are_recorded_and_said(tmp_path):
    """A source that copies most of another's documents gets a near-identical proxy: MixMin's split of weight
    between the two says nothing, and a mixture of both repeats the copies."""
    folder, target = _user_files(tmp_path)
    animals = [json.loads(line) for line in (folder / "animals.jsonl").read_text().splitlines()]
    _write_jsonl(folder / "copy.jsonl", animals[:24] + [{"text": "fresh words here"}])
    assert main(["run", CI, "--quiet", *_user_overrides(folder, target, trials=1, final_tokens=4096)]) == 0
    _, run_dir = only_run(RunStore())
    info = json.loads((run_dir / "dataset.json").read_text())
    assert info["documents_shared_by_sources"] == [{"sources": ["animals", "copy"], "shared": 24, "documents": [30, 25]}]
    log = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert "sources 'animals' and 'copy' hold 24 of the same documents (30 of 'animals''s, 25 of 'copy''s)" in log


def test_a_source_its_proxy_repeats_many_times_is_said(tmp_path):
    """A one-line file's proxy repeated its 14 tokens about 230 times, unsaid."""
    folder, target = _user_files(tmp_path)
    _write_jsonl(folder / "thin.jsonl", [{"text": "just five words here ok"}])
    assert main(["run", CI, "--quiet", *_user_overrides(folder, target, trials=1, final_tokens=4096)]) == 0
    _, run_dir = only_run(RunStore())
    log = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    said = re.search(r"proxies train on [\d,]+ tokens each, which repeats (.*?); their proxies learn", log)
    assert said and said.group(1).startswith("'thin' ") and "animals" not in said.group(1), log[-2000:]


def _assert_fails_before_run(args, capsys, match):
    assert main(["run", CI, "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert match in err, err
    home = Path(os.environ["MIXMIN_HOME"])
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    return err


def test_sources_pick_source_sets_of_slimpajama_shards(tmp_path, capsys):
    """A reviewer's `sources: [a, b]` beside `slimpajama_files` was ignored (all three sets were mixed), and a typo
    in it passed validation."""
    folder, target = _user_files(tmp_path)
    records = []
    for name in ("animals", "mixed"):
        records += [{"text": json.loads(line)["text"], "meta": {"redpajama_set_name": f"RedPajama{name.title()}"}}
                    for line in (folder / f"{name}.jsonl").read_text().splitlines()]
    with gzip.open(folder / "numbers.jsonl.gz", "rt", encoding="utf-8") as fh:
        records += [{"text": json.loads(line)["text"], "meta": {"redpajama_set_name": "RedPajamaNumbers"}} for line in fh]
    shard = _write_jsonl(tmp_path / "shard.jsonl.gz", records)
    overrides = [*_user_overrides(folder, target, trials=1, methods="[mixmin, natural]"),
                 "--set", f"slimpajama_files=[{shard}]"]
    _assert_fails_before_run([*overrides, "--set", "sources=[RedPajamaNumbers, RedPajamaTypo]"], capsys,
                             "sources ['RedPajamaTypo'] are no source set of slimpajama_files; they hold "
                             "['RedPajamaAnimals', 'RedPajamaMixed', 'RedPajamaNumbers']")
    assert main(["run", CI, "--quiet", *overrides, "--set", "sources=[RedPajamaNumbers, RedPajamaAnimals]"]) == 0
    _, run_dir = only_run(RunStore())
    assert ProxyOutputs.load(run_dir / "proxy_outputs" / "mine__trial0").source_names == (
        "RedPajamaNumbers", "RedPajamaAnimals")  # in the order `sources` names them, as from a folder


def test_error_empty_domain(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    _write_jsonl(folder / "empty.jsonl", [{"text": ""}])
    _assert_fails_before_run(_user_overrides(folder, target), capsys, "empty.jsonl: no non-empty 'text' records")


def test_error_source_without_text(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    _write_jsonl(folder / "notext.jsonl", [{"content": "no text field"}])
    _assert_fails_before_run(_user_overrides(folder, target), capsys, "notext.jsonl: line 1 has no field 'text'")


def test_error_target_with_no_answers(data_dir, capsys):
    path = data_dir / "text" / "target" / "piqa_test_unlabeled.jsonl.gz"
    targets = json.dumps([{"name": "piqa", "kind": "piqa", "path": str(path)}])
    _assert_fails_before_run(["--set", f"targets={targets}"], capsys,
                             "piqa_test_unlabeled.jsonl.gz: no record of target kind 'piqa' can be scored (")


def test_error_tokenizer_path_missing(tmp_path, capsys):
    _assert_fails_before_run(["--set", "tokenizer=pythia", "--set", f"tokenizer_path={tmp_path}/nope/tokenizer.json"],
                             capsys, "nope/tokenizer.json: file not found")


def test_error_bad_config_fields(capsys):
    assert main(["run", CI, "--set", "methods=[mixmin, magic]"]) == 2
    assert "methods: items must be one of" in capsys.readouterr().err
    assert main(["run", CI, "--set", "methods=[natural]"]) == 2
    assert "methods: must include 'mixmin'" in capsys.readouterr().err
    assert main(["run", CI, "--set", "preset=huge"]) == 2
    assert "preset: must be one of" in capsys.readouterr().err
    assert main(["run", CI, "--set", "proxy_budget=0"]) == 2
    assert "proxy_budget: must be > 0" in capsys.readouterr().err
    assert main(["run", CI, "--set", "joint_modes=[best]"]) == 2
    assert "joint_modes: items must be one of ['mean', 'worst']" in capsys.readouterr().err
    assert main(["run", CI, "--set", "joint_modes=[mean]", "--set", "targets=[{kind: piqa, dataset: text/piqa_validation}]"]) == 2
    assert "joint_modes: a joint mixture needs at least two targets" in capsys.readouterr().err
    assert main(["run", CI, "--set", "transfer_preset=pythia-160m"]) == 2
    assert "set tokenizer explicitly" in capsys.readouterr().err
    assert main(["run", CI, "--set", "transfer_preset=tiny"]) == 2  # the final models' own size: trained twice
    assert "transfer_preset: 'tiny' is the final models' own preset; name another" in capsys.readouterr().err


def test_a_one_example_test_split_is_warned_about_and_recorded():
    """max_target_samples 5: one held-out example per target (accuracy 0 or 1 per trial), and nothing said so."""
    assert main(["run", CI, "--quiet", "--set", "max_target_samples=5", "--set", "trials=1", "--set",
                 "methods=[mixmin, natural]"]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    log = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert "target 'piqa': its 5 examples split into 4 to fit MixMin on and 1 held out" in log
    assert set(store.results(run["run_id"]).test_examples) == {1}
