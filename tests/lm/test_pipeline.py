"""The LM pipeline end to end: the CI miniature twice (resume), a user's own files, bad input."""
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from jobs.__main__ import main
from mixmin_core import ProxyOutputs
from mixmin_core.runs.layout import list_mixtures, list_problems
from mixmin_core.runs.store import RunStore
from tests.helpers import only_run

ROOT = Path(__file__).resolve().parents[2]
CI = str(ROOT / "configs" / "lm_ci.yaml")


def test_ci_miniature_runs_end_to_end_and_resumes(capsys):
    assert main(["run", CI, "--quiet"]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    assert run["status"] == "done"
    problems = list_problems(run_dir)
    assert {(p.target, p.trial) for p in problems} == {(t, k) for t in ("piqa", "arc_easy") for k in (0, 1)}
    for p in problems:
        out = ProxyOutputs.load(run_dir / "proxy_outputs" / p.key)
        assert out.kind == "loglik" and out.n_sources == 7 and out.token_counts is not None
        assert out.n_samples == 48  # 80% of 60
        answer = ProxyOutputs.load(run_dir / "proxy_outputs_answer" / p.key)
        # answer-only <= whole sequence; equal only where a long question was cut to fit the context
        assert (answer.values >= out.values).all() and (answer.token_counts <= out.token_counts).all()
        assert (answer.token_counts < out.token_counts).mean() > 0.9
        assert set(list_mixtures(run_dir, p)) == {"mixmin", "natural", "balanced"}
    res = store.results(run["run_id"])
    main_rows = res[res.variant == ""]
    for metric in ("generative_loss", "predictive_loss", "accuracy"):
        sel = main_rows[main_rows.metric == metric]
        assert set(zip(sel.target, sel.method)) == {(t, m) for t in ("piqa", "arc_easy") for m in ("mixmin", "natural", "balanced")}
        assert sel.value.notna().all() and (sel.groupby(["target", "method"]).size() == 2).all()
    gen = main_rows[main_rows.metric == "generative_loss"].value
    assert ((gen > 0) & (gen < np.log(512) + 1)).all()  # per-token NLL of a 512-token vocabulary
    assert set(res.variant) == {"", "cross:piqa", "cross:arc_easy"}
    cross = json.loads((run_dir / "cross_task.json").read_text())
    assert cross["weights_from"] == ["piqa", "arc_easy"] and all(v is not None for row in cross["mixmin"] for v in row)
    summary = (run_dir / "results_summary.csv").read_text()
    assert "ci_low" in summary.splitlines()[0]
    units = store.units(run["run_id"])
    kinds = {u["kind"] for u in units}
    assert {"tokenizer", "tokens", "proxy", "final", "score"} <= kinds
    proxy = next(u for u in units if u["kind"] == "proxy")
    info = json.loads(proxy["info_json"]) if "info_json" in proxy else proxy["info"]
    assert info["flops"] == pytest.approx(6 * info["params"] * info["tokens"])
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
    from mixmin_core.solver.results import MixtureResult

    found = {m: MixtureResult.from_dict(json.loads((run_dir / "mixtures" / f"mine__trial0__{m}.json").read_text()))
             for m in ("mixmin", "random_search", "regmix")}
    assert found["mixmin"].top(1)[0][0] == "numbers"  # the target is made of number words
    proxy_flops = out.meta["proxy_flops"]
    assert found["random_search"].meta["n_trials"] == 3  # compute-matched: as many proxies as sources
    for m in ("random_search", "regmix"):
        assert found[m].meta["compute"] == pytest.approx(proxy_flops, rel=0.05)
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


def test_compute_budget_sweep_in_one_run(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    methods = "[mixmin, natural, balanced, random_search, regmix]"
    assert main(["run", CI, "--quiet", *_user_overrides(folder, target, methods=methods, regmix_runs_per_source=2,
                                                        proxy_budgets="[0.25, 1.0]", final_tokens=24576)]) == 0
    store = RunStore()
    run, run_dir = only_run(store)
    res = store.results(run["run_id"])
    assert set(res.variant) == {"budget-0.25", "budget-1"}
    flops = {v: ProxyOutputs.load(run_dir / "proxy_outputs" / f"mine__{v}__trial0").meta["proxy_flops"]
             for v in ("budget-0.25", "budget-1")}
    assert flops["budget-0.25"] == pytest.approx(0.25 * flops["budget-1"])  # 1 and 4 whole steps per proxy
    # the compute column: every search method spends MixMin's proxy compute at each budget; natural none
    compute = res.groupby(["variant", "method"]).compute.mean()
    for v in flops:
        for m in ("mixmin", "random_search", "regmix"):
            assert compute[v, m] == pytest.approx(flops[v], rel=0.05)
        assert compute[v, "natural"] == 0
    # natural and balanced do not depend on the budget: one final model per trial, shared by both budgets
    extra = res.extra_json.map(json.loads)
    nat = res[res.method == "natural"].assign(model=extra.map(lambda e: e["model"]))
    assert nat.groupby("trial").model.nunique().eq(1).all()
    assert nat.groupby("trial").value.nunique().eq(1).all()
    sweep = __import__("pandas").read_csv(run_dir / "budget_sweep.csv")
    gen = sweep[sweep.metric == "generative_loss"]
    assert set(zip(gen.variant, gen.method)) == {(v, m) for v in flops for m in
                                                 ("mixmin", "natural", "balanced", "random_search", "regmix")}
    assert gen.improvement.notna().all() and (gen.n_trials == 2).all()
    assert main(["run", CI, "--set", "proxy_budgets=[0.1, 0.1]"]) == 2
    assert "must not repeat a budget" in capsys.readouterr().err
    assert main(["run", CI, "--set", "proxy_budgets=[0.1, 1]", "--set", "transfer_preset=small"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def _assert_fails_before_run(args, capsys, match):
    assert main(["run", CI, "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert match in err, err
    home = Path(os.environ["MIXMIN_HOME"])
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    return err


def test_error_empty_domain(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    _write_jsonl(folder / "empty.jsonl", [{"text": ""}])
    _assert_fails_before_run(_user_overrides(folder, target), capsys, "empty.jsonl: no non-empty 'text' records")


def test_error_source_without_text(tmp_path, capsys):
    folder, target = _user_files(tmp_path)
    _write_jsonl(folder / "notext.jsonl", [{"content": "no text field"}])
    _assert_fails_before_run(_user_overrides(folder, target), capsys, "notext.jsonl: line 1 has no string field 'text'")


def test_error_target_with_no_answers(data_dir, capsys):
    path = data_dir / "text" / "target" / "piqa_test_unlabeled.jsonl.gz"
    targets = json.dumps([{"name": "piqa", "kind": "piqa", "path": str(path)}])
    _assert_fails_before_run(["--set", f"targets={targets}"], capsys,
                             "piqa_test_unlabeled.jsonl.gz: no record of target kind 'piqa' has an answer")


def test_error_tokenizer_path_missing(tmp_path, capsys):
    _assert_fails_before_run(["--set", "tokenizer=pythia", "--set", f"tokenizer_path={tmp_path}/nope/tokenizer.json"],
                             capsys, "nope/tokenizer.json: file not found")


def test_error_bad_config_fields(capsys):
    assert main(["run", CI, "--set", "methods=[mixmin, magic]"]) == 2
    assert "methods must be a non-empty list" in capsys.readouterr().err
    assert main(["run", CI, "--set", "preset=huge"]) == 2
    assert "preset must be one of" in capsys.readouterr().err
    assert main(["run", CI, "--set", "proxy_budget=0"]) == 2
    assert "proxy_budget must be in (0, 100]" in capsys.readouterr().err
    assert main(["run", CI, "--set", "transfer_preset=pythia-160m"]) == 2
    assert "set tokenizer explicitly" in capsys.readouterr().err
