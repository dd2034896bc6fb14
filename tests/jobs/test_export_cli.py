"""``python -m jobs export``: every format from a run folder (written with the run-folder contract), the repeat
limit and its capped re-solve, ``--weights`` input, and bad input as one ``error:`` line with exit status 2."""
import ast
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from jobs.__main__ import main
from mixmin_core import MixtureResult, ProxyOutputs, mixmin, natural
from mixmin_core.engine.export import plan_training, round_weights, training_mixture
from mixmin_core.runs.fileio import write_json
from mixmin_core.runs.layout import Problem, mixture_path, outputs_path, write_sources
from mixmin_core.runs.store import RunStore
from mixmin_core.solver.synthetic import example_problem

from ..helpers import only_run

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = Problem("hellaswag", 0)


@pytest.fixture
def lm_run():
    """A language-model-style run: loglik proxy outputs, MixMin and natural mixtures, token counts per source."""
    outputs, _ = example_problem(n_sources=4, n_samples=2000, seed=3)
    run_id = "lm_export-0001"
    run_dir = RunStore().create_run(run_id, name="lm_export", pipeline="lm", config={"pipeline": "lm"})
    outputs.save(outputs_path(run_dir, PROBLEM))
    result = mixmin(outputs, max_iter=500)
    write_json(mixture_path(run_dir, PROBLEM, "mixmin"), result.to_dict())
    write_json(mixture_path(run_dir, PROBLEM, "natural"), natural(outputs).to_dict())
    tokens = np.full(4, 10_000_000)
    tokens[int(np.argmax(result.weights))] = 1_000_000  # the favourite source is small: repeated at 100M tokens
    write_sources(run_dir, pd.DataFrame({"source": outputs.source_names, "tokens": tokens}))
    return run_id, run_dir, result, dict(zip(outputs.source_names, tokens))


def _export(capsys, *args):
    code = main(["export", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _base(run_id, fmt, out, budget="1e8"):
    return ["--run", run_id, "--problem", PROBLEM.key, "--budget-tokens", budget, "--format", fmt, "--out", str(out)]


def _parse(fmt, text) -> dict:
    """Each format read back with its own parser: ``{source: weight}``."""
    if fmt == "json":
        return json.loads(text)["weights"]
    if fmt == "csv":
        return {r["source"]: float(r["weight"]) for r in csv.DictReader(io.StringIO(text))}
    if fmt == "olmix":
        return {n: e["weight"] for n, e in yaml.safe_load(text)["mix"].items()}
    if fmt == "megatron":
        tokens = text.split()
        assert tokens[0] == "--data-path"
        return {t.rsplit("/", 1)[-1]: float(v) for v, t in zip(tokens[1::2], tokens[2::2])}
    if fmt == "hf":
        found = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(text).body
                 if isinstance(node, ast.Assign) and node.targets[0].id in ("SOURCES", "PROBABILITIES")}
        return dict(zip(found["SOURCES"], found["PROBABILITIES"]))
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["json", "csv", "hf", "olmix", "megatron"])
def test_every_format_parses_back_to_the_runs_weights(capsys, tmp_path, lm_run, fmt):
    run_id, _, result, _ = lm_run
    out = tmp_path / f"mix.{fmt}"
    extra = ["--data-prefix", "/data/{source}"] if fmt == "megatron" else []
    code, _, err = _export(capsys, *_base(run_id, fmt, out), *extra)
    assert code == 0, err
    want = dict(zip(result.source_names, round_weights(result.weights)))
    parsed = _parse(fmt, out.read_text())
    assert parsed == {n: w for n, w in want.items() if w > 0 or fmt not in ("hf", "megatron")}
    np.testing.assert_allclose([want[n] for n in result.source_names], result.weights, atol=1e-7)
    assert f"{fmt}: 4 sources, 1e+08 tokens, method mixmin -> {out}" in err


def test_repeat_limit_warns_and_respect_limit_solves_again(capsys, tmp_path, lm_run):
    run_id, _, result, tokens = lm_run
    top = result.source_names[int(np.argmax(result.weights))]
    assert result.weights.max() * 1e8 / tokens[top] > 4  # over the limit at 100M tokens
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "a.json"), "--max-epochs", "4")
    assert code == 0
    assert f"warning: source '{top}' would be repeated" in err and "--respect-limit" in err
    plan = json.loads((tmp_path / "a.json").read_text())
    assert [r["source"] for r in plan["sources"] if r["over_limit"]] == [top]

    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "b.json"), "--max-epochs", "4", "--respect-limit")
    assert code == 0 and "solved again with caps" in err and "warning" not in err
    assert f"step size {result.meta['step_size']:g}, {result.meta['max_iter']} iterations, as the mixture was" in err
    again = json.loads((tmp_path / "b.json").read_text())
    assert not any(r["over_limit"] for r in again["sources"])
    epochs = {r["source"]: r["epochs"] for r in again["sources"]}
    assert epochs[top] == pytest.approx(4.0, rel=1e-3)  # the cap binds at the limit
    assert again["meta"]["resolved_within_limit"] is True


def test_respect_limit_solves_a_joint_mixture_again_over_every_target(capsys, tmp_path, lm_run):
    """`--respect-limit --method mixmin_joint_mean` was refused, though the Targets page solves joint mixtures again
    within the limit: the mixture's record names its targets and mode."""
    from mixmin_core.solver.multi_target import mixmin_multi

    run_id, run_dir, _, tokens = lm_run
    other = Problem("piqa", 0)
    second, _ = example_problem(n_sources=4, n_samples=1500, seed=4)
    second.save(outputs_path(run_dir, other))
    outputs = {p.target: ProxyOutputs.load(outputs_path(run_dir, p)) for p in (PROBLEM, other)}
    joint = mixmin_multi(outputs, mode="mean", max_iter=500, step_size=0.05)  # slow steps: 100 would not do
    for p in (PROBLEM, other):
        write_json(mixture_path(run_dir, p, "mixmin_joint_mean"), joint.to_dict())
    top = joint.source_names[int(np.argmax(joint.weights))]
    assert joint.weights.max() * 1e8 / tokens[top] > 4
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "j.json"), "--max-epochs", "4", "--respect-limit",
                           "--method", "mixmin_joint_mean")
    assert code == 0, err
    again = json.loads((tmp_path / "j.json").read_text())
    assert again["method"] == "mixmin_joint_mean" and again["meta"]["resolved_within_limit"] is True
    assert not any(r["over_limit"] for r in again["sources"])
    assert "500 iterations, as the mixture was" in err  # it took 100, mixmin's default, and said 100
    capped = mixmin_multi(outputs, mode="mean", max_iter=500, tol=1e-6, step_size=0.05,
                          caps=[min(1.0, 4 * tokens[n] / 1e8) for n in joint.source_names])
    np.testing.assert_allclose([r["weight"] for r in again["sources"]], round_weights(capped.weights), atol=1e-5)


def test_other_method_and_weights_file_with_sizes_csv(capsys, tmp_path, lm_run):
    run_id, run_dir, _, _ = lm_run
    code, out, _ = _export(capsys, "--run", run_id, "--problem", PROBLEM.key, "--method", "natural",
                           "--budget-tokens", "1e6", "--format", "csv")
    assert code == 0
    natural_w = json.loads(mixture_path(run_dir, PROBLEM, "natural").read_text())["weights"]
    parsed = _parse("csv", out)  # --out defaults to standard output
    assert parsed == pytest.approx(natural_w, abs=1e-8)
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("source,size\n" + "".join(f"{n},1000\n" for n in natural_w))
    code, out, _ = _export(capsys, "--weights", str(mixture_path(run_dir, PROBLEM, "natural")), "--sizes", str(sizes),
                           "--budget-tokens", "3000", "--format", "json")
    assert code == 0
    plan = json.loads(out)
    assert plan["weights"] == pytest.approx(natural_w, abs=1e-8)
    assert {r["source"]: r["epochs"] for r in plan["sources"]} == pytest.approx({n: 3 * w for n, w in natural_w.items()})


def _chem_run():
    """A chemistry-style run folder: molecules, a label matrix (-1 = unlabelled), sources.csv with n_labelled."""
    run_id = "chem_export-0001"
    run_dir = RunStore().create_run(run_id, name="chem_export", pipeline="chem", config={"pipeline": "chem"})
    (run_dir / "features").mkdir(parents=True)
    smiles = np.array(["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCl"])
    labels = np.array([[1, 0, -1, 1], [0, -1, 1, 0], [1, 1, 0, -1], [-1, 0, 1, 1], [0, 1, -1, 0]], dtype=np.int8)
    np.savez(run_dir / "features" / "smiles.npz", smiles=smiles)
    np.savez(run_dir / "features" / "labels.npz", labels=labels, assays=np.array(["A1", "A2", "A3", "T"]))
    write_sources(run_dir, pd.DataFrame({"source": ["A1", "A2", "A3"], "n_labelled": (labels[:, :3] >= 0).sum(0)}))
    problem = Problem("T", 0)
    weights = {"weights": {"A1": 0.5, "A2": 0.2, "A3": 0.3}, "method": "mixmin"}
    write_json(mixture_path(run_dir, problem, "mixmin"), weights)
    return run_id, problem


def test_a_chemistry_run_sized_by_a_file_keeps_its_rows(capsys, tmp_path):
    """--sizes made a chemistry run's plan one of tokens: --budget-rows was refused, and --budget wrote max_tokens."""
    run_id, problem = _chem_run()
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("source,size\nA1,40\nA2,40\nA3,40\n")
    code, out, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--sizes", str(sizes), "--budget-rows",
                             "100", "--format", "olmix")
    assert code == 0, err
    assert "max_rows: 100" in out and "rows" in err
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--budget-rows", "10.5")
    assert code == 2 and "budget must be a whole number of rows; got 10.5" in err  # it planned 10 and said 10.5
    sizes.write_text("source,size\nA1,40.5\nA2,40\nA3,40\n")  # the table's default budget is their sum, rounded
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--sizes", str(sizes), "--format",
                           "chem-table", "--out", str(tmp_path / "t.csv"))
    assert code == 0, err


def test_chem_table_leaves_out_molecules_rdkit_cannot_parse(capsys, tmp_path):
    """The table listed a molecule the run left out (in no split), and its row count disagreed with the budget."""
    run_id, problem = _chem_run()
    run_dir = RunStore().run_dir(run_id)
    np.savez(run_dir / "features" / "fingerprints.npz", valid=np.array([True, True, True, True, False]))
    out = tmp_path / "table.csv"
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--format", "chem-table", "--out", str(out))
    assert code == 0, err
    table = pd.read_csv(out)
    assert "CCCl" not in set(table.molecule) and len(table) == 11 - 2  # its two source labels are gone


def test_chem_table_from_a_chemistry_run(capsys, tmp_path):
    run_id, problem = _chem_run()
    out = tmp_path / "table.csv"
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--budget-rows", "8",
                           "--format", "chem-table", "--out", str(out))
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table.columns) == ["molecule", "assay", "label", "weight"]
    # the same weights to the float32 precision mixtures are held in, times the rows: sample weights of mean 1
    shares = (table.groupby("assay")["weight"].sum() / len(table)).to_dict()
    assert shares == pytest.approx({"A1": 0.5, "A2": 0.2, "A3": 0.3}, abs=1e-7)
    assert len(table) == 4 + 4 + 3 and "T" not in set(table.assay)  # every labelled row of the sources, no target rows
    assert set(table.loc[table.assay == "A3", "molecule"]) == {"CCN", "c1ccccc1", "CC(=O)O"}
    assert "8 rows" in err  # chemistry sizes and budget are rows
    # the table is every weighted row whatever the budget: it may be left out, and the summary says what it means
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--format", "chem-table", "--out",
                           str(tmp_path / "nobudget.csv"), "--max-epochs", "1")  # A1: 0.5 x 11 rows / 4 > 1
    assert code == 0, err
    assert (tmp_path / "nobudget.csv").read_text() == out.read_text()
    assert "11 rows (every labelled row of its weighted sources" in err and "sample weights" in err
    assert "warning" not in err  # no budget, no draws: nothing is repeated
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--format", "chem-table",
                           "--respect-limit")
    assert code == 2 and "--respect-limit solves again so no source is drawn more than" in err
    for args, message in ((["--budget-tokens", "8"], "--budget-tokens: this plan's sizes are in rows, so its budget is"),
                          (["--budget-rows", "8", "--budget-tokens", "8"], "give one budget; got --budget-tokens and"),
                          (["--budget-rows", "0.5"], "--budget-rows: a budget is at least one row; got 0.5"),
                          (["--format", "csv"], "--budget-tokens (or --budget-rows) is required")):
        code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--format", "chem-table", *args)
        assert code == 2 and message in err, err


def test_chem_table_leaves_out_sources_the_final_models_train_on_no_rows_of(capsys, tmp_path):
    """A weight of 3.5e-7 (solver noise) is 0 at the 5 decimals the final models train with; the table still listed
    all that source's rows (a third of a reviewer's table), so it was not what the pipeline trained on."""
    run_id, problem = _chem_run()
    write_json(mixture_path(RunStore().run_dir(run_id), problem, "mixmin"),
               {"weights": {"A1": 0.7, "A2": 3.5e-7, "A3": 0.3 - 3.5e-7}, "method": "mixmin"})
    out = tmp_path / "table.csv"
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--format", "chem-table", "--out", str(out))
    assert code == 0, err
    table = pd.read_csv(out)
    assert "A2" not in set(table.assay) and len(table) == 4 + 3
    assert (table.groupby("assay")["weight"].sum() / len(table)).to_dict() == pytest.approx({"A1": 0.7, "A3": 0.3})
    assert "2 weighted of 3 sources, 7 rows" in err
    # rounding must not rescale weights off the simplex into a table (a file summing to 2 passed as chem-table only)
    (tmp_path / "sum2.json").write_text(json.dumps({"weights": {"A1": 1.0, "A2": 0.5, "A3": 0.5}}))
    code, _, err = _export(capsys, "--run", run_id, "--weights", str(tmp_path / "sum2.json"), "--format", "chem-table")
    assert code == 2 and "sum2.json: result.weights must be non-negative numbers summing to 1; got sum 2" in err, err


def test_chem_table_of_the_rows_the_final_models_trained_on(capsys, tmp_path):
    """A reviewer trained on the export to reproduce a run's final model: the table held every labelled row (the
    sources' test splits too), the final models only their fit splits. --fit-rows gives those."""
    from mixmin_core.chem.trainers import save_sources

    run_id, problem = _chem_run()
    run_dir = RunStore().run_dir(run_id)
    base = ["--run", run_id, "--problem", problem.key, "--format", "chem-table"]
    code, _, err = _export(capsys, *base, "--fit-rows")
    assert code == 2 and "trial0.npz: not found; --fit-rows needs a chemistry run" in err
    (run_dir / "sources").mkdir()
    save_sources(run_dir / "sources" / "trial0.npz", ["A1", "A2", "A3", "T@train"], ["A1", "A2", "A3", "T"],
                 [np.array([0, 1]), np.array([0, 2, 3]), np.array([1]), np.array([0])])
    code, _, err = _export(capsys, *base, "--fit-rows", "--out", str(tmp_path / "fit.csv"))
    assert code == 0, err
    table = pd.read_csv(tmp_path / "fit.csv")
    assert table.groupby("assay").size().to_dict() == {"A1": 2, "A2": 3, "A3": 1}
    assert set(table.loc[table.assay == "A1", "molecule"]) == {"CCO", "CCN"}
    assert "each source's fit split in trial 0" in err
    assert "the repeat check assumes 6 rows" in err  # the table's rows (it counted every label: 11)
    code, _, err = _export(capsys, *base, "--out", str(tmp_path / "all.csv"))
    assert len(pd.read_csv(tmp_path / "all.csv")) == 11 and "their test and validation splits too" in err
    code, _, err = _export(capsys, "--run", run_id, "--problem", problem.key, "--format", "json", "--budget-rows", "5",
                           "--fit-rows")
    assert code == 2 and "--fit-rows selects a chemistry run's training rows for --format chem-table" in err


@pytest.mark.parametrize("args, message", [
    (["--problem", "hellaswag__trial0", "--format", "json"], "--budget-tokens (or --budget-rows) is required"),
    (["--budget-tokens", "-5"], "--budget-tokens must be a positive number; got '-5'"),
    (["--budget-tokens", "lots"], "--budget-tokens must be a positive number; got 'lots'"),
    (["--budget-tokens", "1e6", "--max-epochs", "0"], "--max-epochs must be a positive number"),
    (["--budget-tokens", "1e6", "--format", "parquet"], "--format must be one of json, csv, hf"),
    (["--budget-tokens", "1e6", "--method", "regmix"], "no 'regmix' mixture for problem 'hellaswag__trial0'; --method can be one of ['mixmin', 'natural']"),
    (["--budget-tokens", "1e6", "--problem", "nonsense"], "--problem 'nonsense' is not a problem key"),
    (["--budget-tokens", "1e6", "--problem", "arc__trial0"], "run has no mixtures for problem 'arc__trial0'"),
    # a target named from a letter outside ASCII ("Östrogen") has a key starting '-': argparse took it for an option
    (["--budget-tokens", "1e6", "--problem", "-strogen__trial0"], "run has no mixtures for problem '-strogen__trial0'"),
    (["--budget-tokens", "1e6", "--format", "megatron", "--data-prefix", "/x"], "the data prefix (path_template; --data-prefix on the command line) must contain '{source}'"),
    (["--budget-tokens", "1e6", "--unit", "bytes"], "unit must be one of"),
    (["--budget-tokens", "1e6", "--unit", "rows"], "--unit rows: this run's source sizes (its sources.csv) are in tokens"),
    (["--budget-tokens", "1e9", "--max-epochs", "1", "--respect-limit"], "cannot be filled within max_epochs=1"),
    (["--budget-tokens", "1e8", "--method", "natural", "--respect-limit"],
     ("--respect-limit solves MixMin again under the repeat limit, so it applies to --method mixmin (or a joint "
      "mixmin_joint_<mode>) only")),
])
def test_bad_input_is_one_error_line(capsys, lm_run, args, message):
    run_id, *_ = lm_run
    full = ["--run", run_id] + (["--problem", PROBLEM.key] if "--problem" not in args else []) + args
    code, out, err = _export(capsys, *full)
    assert code == 2 and out == ""
    lines = [l for l in err.splitlines() if not l.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_the_run_alone_lists_its_problem_keys(capsys, lm_run):
    """The first thing a user without a key tries; it asked for a budget first."""
    code, out, err = _export(capsys, "--run", lm_run[0])
    assert code == 0 and out.splitlines() == [PROBLEM.key] and err == ""  # a listing, not an error
    for more in (["--budget-tokens", "1e6"], ["--format", "chem-table"], ["--out", "x.csv"]):  # an export, keyless
        code, out, err = _export(capsys, "--run", lm_run[0], *more)
        assert code == 2 and out == "", more
        assert f"--problem is required with --run; problems with mixtures: ['{PROBLEM.key}'" in err, (more, err)


def test_bad_input_without_a_run(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases = [
        ([], "say which mixture to export"),
        (["--run", "nope"], "no run 'nope'"),
        (["--weights", str(tmp_path / "missing.json"), "--sizes", "x.csv"], "missing.json: file not found"),
        (["--weights", str(bad), "--sizes", "x.csv"], "bad.json: not valid JSON"),
        (["--weights", str(bad.with_name("ok.json"))], "--weights needs the source sizes"),
        (["--weights", str(bad.with_name("ok.json")), "--sizes", str(tmp_path / "s.csv"), "--format", "chem-table"],
         "--format chem-table needs --run"),
        (["--weights", str(bad.with_name("ok.json")), "--sizes", str(tmp_path / "s.csv"), "--respect-limit", "--max-epochs", "1"],
         "--respect-limit solves again on the run's proxy outputs"),
        (["--weights", str(bad.with_name("list.json")), "--sizes", str(tmp_path / "s.csv")], "not a mixture"),
        # tracebacks before: a folder given for a file, a seed past numpy's range
        (["--weights", str(tmp_path), "--sizes", str(tmp_path / "s.csv")], "not a regular file; --weights takes a mixture JSON"),
        # /dev/zero was read until memory ran out; flags the file makes meaningless were ignored
        (["--weights", "/dev/zero", "--sizes", str(tmp_path / "s.csv")], "/dev/zero: not a regular file"),
        (["--weights", str(bad.with_name("neg.json")), "--sizes", str(tmp_path / "s.csv")],
         "neg.json: not a mixture: weights must be non-negative; got -0.5 for 'a'"),
        (["--weights", str(bad.with_name("ok.json")), "--sizes", str(tmp_path / "s.csv"), "--method", "regmix"],
         "--method picks a run's mixture; --weights"),
        (["--weights", str(bad.with_name("ok.json")), "--sizes", str(tmp_path / "s.csv"), "--problem", "a__trial0"],
         "--problem names a problem of --run RUN_ID"),
        (["--weights", str(bad.with_name("ok.json")), "--sizes", str(tmp_path / "s.csv"), "--format", ""],
         "--format must be one of json, csv, hf, olmix, megatron, chem-table; got ''"),
        (["--weights", str(bad.with_name("ok.json")), "--sizes", str(tmp_path)], "cannot read it as a sizes CSV (Is a directory)"),
        (["--weights", str(bad.with_name("ok.json")), "--sizes", str(tmp_path / "s.csv"), "--format", "hf", "--seed",
          "99999999999999999999999"], "--seed must be an integer from 0 to 4294967295"),
        # a run is one the catalog knows: a path was read as a run folder anywhere on the machine
        (["--run", "../../" + tmp_path.name, "--problem", "a__trial0"], "no run '../../"),
        (["--run", ".", "--problem", "a__trial0"], "no run '.'"),
    ]
    (tmp_path / "ok.json").write_text(json.dumps({"weights": {"a": 0.9, "b": 0.1}}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "neg.json").write_text(json.dumps({"weights": {"a": -0.5, "b": 1.5}}))  # said "got sum 1"
    (tmp_path / "s.csv").write_text("source,size\na,10\nb,10\n")
    for args, message in cases:
        code, out, err = _export(capsys, "--budget-tokens", "100", *args)
        lines = [l for l in err.splitlines() if not l.startswith("warning:")]
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, err)


def test_a_weights_file_saved_with_a_bom_reads(capsys, tmp_path):
    """An editor on Windows saves JSON with a UTF-8 BOM; it was refused ("Unexpected UTF-8 BOM"), CSVs were not."""
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"weights": {"a": 0.9, "b": 0.1}}).encode())
    (tmp_path / "s.csv").write_text("source,size\na,1000\nb,1000\n")
    code, out, err = _export(capsys, "--weights", str(tmp_path / "bom.json"), "--sizes", str(tmp_path / "s.csv"),
                             "--budget-tokens", "100")
    assert code == 0 and json.loads(out)["weights"] == {"a": 0.9, "b": 0.1}, err


def test_out_must_be_a_plain_file_path(capsys, tmp_path):
    """The file is written beside --out and renamed onto it: a link, a pipe or a device was replaced by a plain
    file (as root, /dev/full became one) and the export reported success."""
    (tmp_path / "ok.json").write_text(json.dumps({"weights": {"a": 0.9, "b": 0.1}}))
    (tmp_path / "s.csv").write_text("source,size\na,10\nb,10\n")
    (tmp_path / "target.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "target.json")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for out in ("link.json", "fifo", "folder", ""):
        code, _, err = _export(capsys, "--weights", str(tmp_path / "ok.json"), "--sizes", str(tmp_path / "s.csv"),
                               "--budget-tokens", "100", "--out", str(tmp_path / out) if out else "")
        assert code == 2 and "not a plain file path" in err, (out, err)
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "target.json").read_text() == "{}"
    code, _, _ = _export(capsys, "--weights", str(tmp_path / "ok.json"), "--sizes", str(tmp_path / "s.csv"),
                         "--budget-tokens", "100", "--out", str(tmp_path / "mixture.json"))
    assert code == 0 and json.loads((tmp_path / "mixture.json").read_text())


def test_cli_process_bad_flag_and_bad_value_are_one_line_no_traceback(tmp_path):
    env = {**os.environ, "MIXMIN_HOME": str(tmp_path / "home")}
    for args, message in ((["--budget-tokens", "0"], "error: --budget-tokens must be a positive number"),
                          (["--no-such-flag"], "error: unrecognized arguments: --no-such-flag")):
        proc = subprocess.run([sys.executable, "-m", "jobs", "export", "--weights", "w.json", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(message), proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_chem_ci_run_exports_every_format(capsys, tmp_path):
    """End to end on a real chemistry run (configs/chem_ci.yaml): the table and the capped re-solve."""
    assert main(["run", str(ROOT / "configs" / "chem_ci.yaml"), "--quiet"]) == 0
    run, run_dir = only_run(RunStore())
    key = sorted(p.name.split("__mixmin")[0] for p in (run_dir / "mixtures").glob("*__mixmin.json"))[0]
    weights = json.loads(Path(mixture_path(run_dir, Problem.from_key(key), "mixmin")).read_text())["weights"]
    sizes = pd.read_csv(run_dir / "sources.csv").set_index("source")["n_labelled"][list(weights)]
    base = ["--run", run["run_id"], "--problem", key, "--budget-rows", str(int(sizes.sum())), "--max-epochs", "1.5"]
    code, _, err = _export(capsys, *base, "--format", "chem-table", "--out", str(tmp_path / "t.csv"))
    assert code == 0, err
    assert "warning: source" in err  # MixMin favours some assays beyond 1.5 passes over their rows
    table = pd.read_csv(tmp_path / "t.csv")
    summed = table.groupby("assay")["weight"].sum() / len(table)
    # the weights the final models train on: rounded to 5 decimals (solver noise below 5e-6 trains on no rows)
    trained = training_mixture(MixtureResult.from_dict({"weights": weights}))
    rounded = dict(zip(trained.source_names, round_weights(trained.weights)))
    assert summed.to_dict() == pytest.approx({a: w for a, w in rounded.items() if w > 0}, abs=1e-9)
    code, _, err = _export(capsys, *base, "--format", "json", "--respect-limit", "--out", str(tmp_path / "p.json"))
    assert code == 0, err
    assert "solved again with caps" in err and "warning" not in err
    assert not any(r["over_limit"] for r in json.loads((tmp_path / "p.json").read_text())["sources"])


def test_a_sizes_file_without_a_source_of_the_mixture_is_named(capsys, tmp_path, lm_run):
    """The error said "sizes is keyed by source name but has no entry for ..." without naming the file."""
    run_id, _, result, _ = lm_run
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("source,size\n" + "".join(f"{n},1000000\n" for n in result.source_names[1:]))
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "a.json"), "--sizes", str(sizes))
    assert code == 2 and f"{sizes}: no row for 1 source(s) of the mixture, e.g. ['{result.source_names[0]}']" in err
    assert not (tmp_path / "a.json").exists()


def test_sizes_of_a_run_that_read_part_of_each_source_come_with_a_warning(capsys, tmp_path, lm_run):
    """lm_ci reads 20,000 characters per source: its 'sizes' are that sample's, and the export used them silently."""
    run_id, run_dir, _, _ = lm_run
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "max_source_chars": 20000}))
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "a.json"))
    assert code == 0
    assert "warning: sizes: the run read the first 20,000 characters of each source (max_source_chars)" in err
    assert "with --sizes FILE.csv" in err and err.count("max_source_chars") == 1
    # the file says so too (its warnings were empty: a trainer reading only the file never saw it)
    warnings = json.loads((tmp_path / "a.json").read_text())["warnings"]  # then the sample's repeats
    assert warnings[0].startswith("sizes: the run read the first 20,000 characters")
    code, _, err = _export(capsys, *_base(run_id, "hf", tmp_path / "a.py"))
    assert code == 0 and "# WARNING: sizes: the run read the first 20,000" in (tmp_path / "a.py").read_text()
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("source,size\n" + "".join(f"{n},1000000000\n" for n in json.loads(
        (tmp_path / "a.json").read_text())["weights"]))
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "b.json"), "--sizes", str(sizes))
    assert code == 0 and "max_source_chars" not in err  # full sizes given: nothing to warn about


def test_hf_export_of_a_sampled_run_uses_the_corpus_sizes_and_documents(capsys, tmp_path, lm_run):
    """A run that read a sample records the whole corpus's tokens (estimated) and documents: the plan's sizes
    are those, and the datasets snippet turns token weights into per-document probabilities."""
    run_id, run_dir, result, _ = lm_run
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "max_source_chars": 20000}))
    names = list(result.source_names)
    corpus = np.array([4e8, 3e8, 2e8, 1e8])
    documents = np.array([4e5, 3e3, 2e5, 1e4])  # mean lengths 1000, 100000, 1000, 10000 tokens
    write_sources(run_dir, pd.DataFrame({"source": names, "tokens": [5000] * 4, "documents": [5, 1, 5, 2],
                                         "corpus_tokens": corpus.astype(int), "corpus_documents": documents.astype(int)}))
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "p.json"))
    assert code == 0, err
    assert "its sizes are the whole sources' documents, with tokens estimated" in err
    assert [s["size"] for s in json.loads((tmp_path / "p.json").read_text())["sources"]] == corpus.tolist()
    code, _, err = _export(capsys, *_base(run_id, "hf", tmp_path / "mix.py"))
    assert code == 0, err
    text = (tmp_path / "mix.py").read_text()
    found = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(text).body
             if isinstance(node, ast.Assign) and node.targets[0].id.isupper()}
    w = dict(zip(result.source_names, round_weights(result.weights)))
    per_doc = {n: w[n] * d / c for n, d, c in zip(names, documents, corpus) if w[n] > 0}
    total = sum(per_doc.values())
    assert found["SOURCES"] == list(per_doc)
    np.testing.assert_allclose(found["PROBABILITIES"], [p / total for p in per_doc.values()], atol=2e-9)
    assert found["EXAMPLES"] == round(1e8 * total)  # the budget in documents


def test_exports_name_the_tokenizer_and_warn_when_the_snippet_cannot_draw_per_document(capsys, tmp_path, lm_run):
    """Sizes are the run tokenizer's tokens (a user counting in another got 0.44x the budget), and a --sizes
    file without documents made the snippet use token weights per example with only a comment inside it."""
    import shutil

    from mixmin_core.lm.tokenizer import pythia_tokenizer_path

    run_id, run_dir, result, _ = lm_run
    (run_dir / "tokenizer").mkdir()
    shutil.copy(pythia_tokenizer_path(), run_dir / "tokenizer" / "tokenizer.json")  # as an LM run keeps its own
    code, _, err = _export(capsys, *_base(run_id, "olmix", tmp_path / "mix.yaml"))
    assert code == 0, err
    header = (tmp_path / "mix.yaml").read_text()
    assert re.search(r"# Tokens are counted with the run's tokenizer \(tokenizer/tokenizer.json, a 50,\d{3}-token "
                     r"vocabulary\); a trainer with another tokenizer", header), header
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("source,size\n" + "".join(f"{n},1000000000\n" for n in result.source_names))
    code, _, err = _export(capsys, *_base(run_id, "hf", tmp_path / "mix.py"), "--sizes", str(sizes))
    assert code == 0 and "warning: the datasets snippet draws examples, and without documents per source" in err
    assert "can neither repeat sources nor cut the stream at the budget" in err  # it fell 38% short, unsaid
    assert "Tokens are counted with" not in (tmp_path / "mix.py").read_text()  # your sizes: your tokenizer


def test_export_flags_that_would_be_ignored_or_misread_are_one_error(capsys, tmp_path, lm_run):
    """--data-prefix was ignored silently outside megatron; chem-table on a language-model run named a missing
    features/smiles.npz; a UTF-16 sizes file gave pandas' codec message."""
    run_id, _, result, _ = lm_run
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "a.json"), "--data-prefix", "/d/{source}")
    assert code == 2 and "--data-prefix applies to --format megatron only" in err
    code, _, err = _export(capsys, "--run", run_id, "--problem", PROBLEM.key, "--format", "chem-table")
    assert code == 2 and "--format chem-table lists a chemistry run's molecules; these sources are sized in tokens" in err
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("source,size\n" + "".join(f"{n},1000\n" for n in result.source_names), encoding="utf-16")
    code, _, err = _export(capsys, *_base(run_id, "json", tmp_path / "b.json"), "--sizes", str(sizes))
    assert code == 2 and f"{sizes}: not UTF-8 text" in err and "save it as UTF-8 CSV" in err
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()


def test_a_mixture_other_than_mixmins_over_the_limit_is_not_told_to_respect_it():
    """The warning told a RegMix export to use --respect-limit, which refuses any mixture but MixMin's."""
    result = MixtureResult(weights=np.array([0.9, 0.1], np.float32), source_names=("a", "b"), loss=0.0, method="regmix")
    warnings = plan_training(result, {"a": 10.0, "b": 1e9}, budget=1e4, max_epochs=4).warnings()
    assert "would be repeated" in warnings[0] and "--respect-limit" not in " ".join(warnings)
    assert "this regmix mixture is exported as it was chosen" in warnings[-1]
