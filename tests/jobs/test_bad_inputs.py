"""Every bad input is one clear error, before any work: a table across the job CLI, the configs,
jobs the app starts, the Upload page's parsing and the library.

Each row must fail with the given error type and a message that names the field or file (the
regex); a row that is accepted (exit 0, no exception) fails the test, so none passes silently.
CLI rows call ``python -m jobs``'s ``main`` with ``--dry-run`` (which validates fully, so a row
that slipped through would print a config and exit 0); a few run as real processes to show that
nothing prints a traceback. The library rows are ``tests/core/test_bad_inputs.BAD_LIBRARY_INPUTS``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.__main__ import main
from mixmin_core.errors import InputError
from mixmin_core.runs import datasets
from pages.common.uploads import parse_upload
from tests.core.test_bad_inputs import BAD_LIBRARY_INPUTS

ROOT = Path(__file__).resolve().parents[2]
SYN, CHEM, LM = "configs/synthetic_demo.yaml", "configs/chem_ci.yaml", "configs/lm_ci.yaml"
LEAD = pytest.mark.xfail(strict=True, reason="lead's engine rewrite moves this config onto the schema")

pytestmark = pytest.mark.timeout(600)


def _sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


# (id, config, overrides, match): `python -m jobs run CONFIG --set ... --dry-run` exits 2 with one
# line "error: ..." matching `match`.
CLI = [
    # synthetic: the schema (types, ranges, choices) and the pipeline's size check
    ("seed-text", SYN, ["seed=abc"], r"seed: must be an integer >= 0, <= 2147483647; got 'abc'"),
    ("seed-huge", SYN, ["seed=18446744073709551617"], r"seed: must be <= 2147483647"),  # crashed XGBoost after launch
    ("seed-negative", SYN, ["seed=-1"], r"seed: must be >= 0; got -1"),
    ("seed-float", SYN, ["seed=1.5"], r"seed: must be an integer"),
    ("trials-zero", SYN, ["trials=0"], r"trials: must be >= 1; got 0"),
    ("chem-dataset-not-a-table", CHEM, ["dataset=pythia_tokenizer"],  # read as a table: a two-line pandas error
     r"--set dataset: must be one of \['', 'toxcast', 'muv', 'tox21', 'sider', 'clintox', 'pcba128', 'pcba1328'\]"),
    # values without an upper bound took infinity; a ladder's N sources were silently cut to those available
    ("bo-fidelity-cost-inf", "configs/regmix_bo.yaml", ["bo_fidelity_cost=.inf"], r"--set bo_fidelity_cost: must be <= 1; got inf"),
    ("ladder-threshold-inf", "configs/chem_ladder.yaml", ["threshold=.inf"], r"--set threshold: must be <= 1000000.0; got inf"),
    ("ladder-too-many-sources", "configs/chem_ladder.yaml", ["sources=100000"],
     r"sources: asks for the first 100000 informative assays besides the targets, but there are 614"),
    # accepted and unused, it only changed the run id
    ("synthetic-device", "configs/synthetic_demo.yaml", ["device=cuda"],
     r"--set device: must be 'auto' \(this pipeline trains no model\); got 'cuda'"),
    ("run-table-device", "configs/regmix_1m.yaml", ["device=cpu"], r"--set device: must be 'auto'"),
    ("run-table-yardstick-too-small", "configs/olmix_dclm.yaml", ["test_fraction=0.03"],  # failed after the run folder
     (r"yardstick: the runs test_fraction holds out of 'olmix_dclm' hold 4 distinct mixtures with a measured .* in "
      r"trial 0; the yardstick needs at least 5")),
    # two metrics alike once made file names shared every result (and a target named overall broke the Runs page)
    ("run-table-targets-share-files", "configs/olmix_dclm.yaml", ["targets=[a-b, 'a:b']"],
     r"targets: 'a-b' and 'a:b' would share files"),
    # a table of your own was called the default dataset in the error: "given explicitly for dataset 'toxcast'"
    ("chem-own-table-missing", CHEM, ["path=/nonexistent/mine.csv"],
     r"/nonexistent/mine.csv: file not found \(given explicitly for dataset 'your assay table'\)"),
    ("set-dataset-empty", "configs/chem_ci.yaml", ["dataset=''"],  # the override is blamed, not the config file
     r"^error: --set dataset or path: one must be given"),
    ("set-twice", SYN, ["trials=1", "trials=2"], r"--set trials is given twice; give it once"),  # was last-wins
    ("set-deep", SYN, ["name=" + "[" * 1000 + "]" * 1000], r"--set name: the value is nested too deeply"),
    ("trials-float", SYN, ["trials=2.7"], r"trials: must be an integer"),
    ("trials-text", SYN, ["trials=abc"], r"trials: must be an integer"),
    ("trials-bool", SYN, ["trials=true"], r"trials: must be an integer"),
    ("trials-huge", SYN, ["trials=101"], r"trials: must be <= 100"),
    # sizes that hung (a billion-bit fingerprint) or trained on a few repeated tokens without a word
    ("n_bits-huge", CHEM, ["n_bits=1000000000"], r"n_bits: must be <= 65536; got 1000000000"),
    ("final_tokens-huge", LM, ["final_tokens=1000000000000000"], r"final_tokens: must be <= 100000000000"),
    ("max_molecules-one", CHEM, ["max_molecules=1"], r"among its 1 molecules read; need at least 2 \(if max_molecules"),
    ("max_source_chars-tiny", LM, ["max_source_chars=1"], r"max_source_chars: must be 0 \(all\) or at least 1,000; got 1"),
    ("n_workers-text", SYN, ["n_workers=abc"], r"n_workers: must be an integer"),
    ("n_workers-zero", SYN, ["n_workers=0"], r"n_workers: must be >= 1; got 0"),
    ("n_workers-negative", SYN, ["n_workers=-3"], r"n_workers: must be >= 1"),
    ("n_sources-one", SYN, ["n_sources=1"], r"n_sources: must be >= 2; got 1"),
    ("n_sources-text", SYN, ["n_sources=abc"], r"n_sources: must be an integer"),
    ("n_sources-list", SYN, ["n_sources=[1, 2]"], r"n_sources: must be an integer"),
    ("n_sources-mapping", SYN, ["n_sources={a: 1}"], r"n_sources: must be an integer"),
    ("n_categories-one", SYN, ["n_categories=1"], r"n_categories: must be >= 2"),
    ("source_samples-zero", SYN, ["source_samples=0"], r"source_samples: must be >= 1"),
    ("target_samples-small", SYN, ["target_samples=5"], r"target_samples: must be >= 10"),
    ("step_size-negative", SYN, ["step_size=-1"], r"step_size: must be > 0; got -1"),
    ("step_size-zero", SYN, ["step_size=0"], r"step_size: must be > 0; got 0"),
    ("step_size-text", SYN, ["step_size=abc"], r"step_size: must be a number"),
    ("step_size-nan", SYN, ["step_size=.nan"], r"step_size: must be a number, not NaN"),
    ("step_size-inf", SYN, ["step_size=.inf"], r"step_size: must be <= 1000000.0; got inf"),
    ("step_size-bool", SYN, ["step_size=true"], r"step_size: must be a number"),
    ("max_iter-zero", SYN, ["max_iter=0"], r"max_iter: must be >= 1"),
    ("max_iter-float", SYN, ["max_iter=1.5"], r"max_iter: must be an integer"),
    ("chem-trees-huge", CHEM, ["proxy_trees=1e9"], r"proxy_trees: must be <= 10000; got 1000000000"),
    ("chem-candidates-huge", CHEM, ["regmix_candidates=1000000000000"], r"regmix_candidates: must be <= 10000000"),
    ("chem-candidates-few", CHEM, ["regmix_candidates=50"], r"regmix_candidates: must be >= 128; got 50"),  # failed after training
    ("lm-candidates-few", LM, ["regmix_candidates=10"], r"regmix_candidates: must be >= 128; got 10"),
    # metadata was read only after the run folder and fingerprints existed
    ("evolve-metadata-unknown", "configs/chem_evolve.yaml", ["metadata=nosuch_meta"], r"metadata: unknown dataset 'nosuch_meta'"),
    ("ladder-metadata-folder", "configs/chem_ladder.yaml", ["metadata=configs"],
     r"metadata: configs is a folder, not a file: give an assay metadata CSV"),
    ("chem-metadata-missing", CHEM, ["metadata=nosuch/meta"], r"metadata: nosuch/meta not found"),
    ("chem-metadata-a-table", CHEM, ["metadata=toxcast"],  # read ToxCast's labels as metadata, listing columns
     r"metadata: 'toxcast' is a registered assay table, not assay metadata; did you mean toxcast_assays\?"),
    ("lm-target-path-and-dataset", LM, ["targets=[{name: a, kind: jsonl, path: x.jsonl, dataset: text/piqa_validation}]"],
     r"targets\[0\]: give a 'path' or a registry 'dataset', not both"),
    ("lm-target-folder", LM, ["targets=[{name: a, kind: jsonl, path: configs}]"],
     r"target 'a': file configs is a folder, not a file"),  # said "not found"
    ("lm-sources-dir-file", LM, ["sources_dir=README.md"], r"sources folder README.md is a file; expected a folder"),
    ("name-bidi", SYN, ["name=run\u202egnp.exe"], r"name must not hold line breaks, control, invisible or direction"),
    # the Runs table downloads as CSV, and the Jobs page lets a visitor name a run
    ("name-formula", SYN, ['name==HYPERLINK("http://x")'], r"name must not start with =, \+, -, @ .*HYPERLINK"),
    ("chem-methods-repeated", CHEM, ["methods=[mixmin,natural,natural]"], r"--set methods: must not repeat an item"),
    ("lm-joint-modes-repeated", LM, ["joint_modes=[mean,mean]"], r"--set joint_modes: must not repeat an item"),
    # a repeated target or method counted each trial twice in summary.csv (n_trials 4 of 2 trials)
    ("run-table-methods-repeated", "configs/regmix_1m.yaml", ["methods=[natural,random_search,random_search]"],
     r"--set methods: must not repeat an item"),
    ("run-table-targets-repeated", "configs/regmix_1m.yaml", ["targets=[pile_cc,pile_cc]"],
     r"--set targets: must not repeat an item"),
    ("chem-boot-huge", CHEM, ["n_boot=1e9"], r"n_boot: must be <= 10000"),
    ("chem-threads-huge", CHEM, ["xgb_threads=100000"], r"xgb_threads: must be <= 256"),
    ("resume-choice", SYN, ["resume=sometimes"], r"resume: must be one of \['if_available', 'never'\]"),
    ("backend-choice", SYN, ["backend=spark"], r"backend: must be one of \['local', 'ray'\]"),
    ("device-choice", CHEM, ["device=tpu"], r"device: must be one of \[.auto., .cpu., .cuda.\]"),
    ("lm-sources-repeated", LM, ["sources=[wikipedia,wikipedia]"], r"--set sources: must not repeat an item"),
    ("lm-bpe-vocab-small", LM, ["bpe_vocab_size=100"], r"--set bpe_vocab_size: must be 0 \(the preset's\) or at least 300"),
    ("unknown-field", SYN, ["n_sorces=5"], (r"--set unknown field\(s\) \['n_sorces'\] in SyntheticConfig; did you mean "
                                            r"'n_sources' for 'n_sorces'\?")),
    ("too-large", SYN, ["n_sources=10000", "target_samples=100000"], r"n_sources x target_samples is 1,000,000,000"),
    # --set syntax: YAML errors name the key; anchors, aliases and tags are refused
    ("yaml-unclosed", SYN, ["assays=[unclosed"], r"--set assays: cannot parse the value '\[unclosed' as YAML"),
    ("yaml-unclosed-map", SYN, ["n_sources={a: 1"], r"--set n_sources: cannot parse the value"),
    ("yaml-anchor", SYN, ["n_sources=&a 3"], r"--set n_sources: YAML anchors \(&name\) are not accepted"),
    ("yaml-alias", SYN, ["n_sources=*a"], r"--set n_sources: YAML aliases \(\*name\) are not accepted"),
    ("yaml-alias-bomb", SYN, [("name=[&a [x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                               "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b], [*c,*c,*c,*c,*c,*c,*c,*c,*c]]")],
     r"--set name: YAML anchors \(&name\) are not accepted"),
    ("yaml-tag", SYN, ["seed=!!python/object/apply:os.system [ls]"], r"--set seed: YAML tags \(!!type\) are not accepted"),
    ("yaml-tag-binary", SYN, ["name=!!binary aGVsbG8="], r"--set name: YAML tags"),
    ("set-no-equals", SYN, ["trials"], r"--set expects key=value; got 'trials'"),
    ("set-empty-key", SYN, ["=3"], r"--set key must be a field name"),
    ("set-bad-key", SYN, ["tri als=3"], r"--set key must be a field name .* got 'tri als'"),
    ("set-not-a-section", SYN, ["n_sources.x=1"], r"--set n_sources.x: 'n_sources' is not a section"),
    ("set-no-value", SYN, ["trials="], r"--set trials: no value after '='; write one, e.g. --set trials=3, or"),
    ("set-blank-value", SYN, ["seed=  "], r"--set seed: no value after '='"),
    ("set-too-long", SYN, ["name=" + "x" * 10_001], r"--set name: the value has 10,001 characters"),
    ("pipeline-unknown", SYN, ["pipeline=nope"], r"pipeline must be one of .*got 'nope'"),
    ("pipeline-list", SYN, ["pipeline=[1]"], r"pipeline must be a pipeline name"),
    # the other pipeline's fields are the override's doing, not the file's
    ("pipeline-other", SYN, ["pipeline=lm"], r"^error: --set unknown field\(s\) \['n_categories'.* in LMConfig"),
    ("name-list", SYN, ["name=[a, b]"], r"name must be a non-empty text"),
    ("name-empty", SYN, ["name=''"], r"name must be a non-empty text"),
    ("name-no-value", SYN, ["name="], r"--set name: no value after '='"),
    # chemistry and LM configs (every field on the schema once the lead's rewrite lands)
    ("chem-seed-text", CHEM, ["seed=abc"], r"seed: must be an integer"),
    ("chem-n_workers-zero", CHEM, ["n_workers=0"], r"n_workers: must be >= 1"),
    ("chem-n_workers-text", CHEM, ["n_workers=abc"], r"n_workers: must be an integer"),
    ("chem-trials-float", CHEM, ["trials=2.7"], r"trials: must be an integer"),
    ("chem-resume", CHEM, ["resume=later"], r"resume: must be one of"),
    ("chem-assays-unclosed", CHEM, ["assays=[unclosed"], r"--set assays: cannot parse"),
    ("chem-unknown-field", CHEM, ["n_trees=5"], r"unknown field\(s\) \['n_trees'\]"),
    ("chem-dataset-unknown", CHEM, ["dataset=nope"], r"dataset"),
    ("chem-path-missing", CHEM, ["path=/nonexistent/assays.csv"], r"/nonexistent/assays.csv"),
    # a newcomer puts the data beside the config and runs from the checkout: say where it was looked for, and why
    ("chem-path-relative", CHEM, ["path=my_assays.csv"],
     r"my_assays.csv: file not found \(looked for /.*/my_assays.csv: a config's paths are read relative to the folder "),
    ("chem-path-dev-zero", CHEM, ["path=/dev/zero"], r"/dev/zero: not a regular file"),
    ("chem-path-directory", CHEM, ["path=configs"], r"configs: not a regular file"),
    ("chem-step_size-negative", CHEM, ["step_size=-1"], r"step_size"),
    ("chem-source_counts-too-large", CHEM, ["source_counts=[50]"], r"source_counts"),
    ("chem-max_molecules-negative", CHEM, ["max_molecules=-5"], r"max_molecules"),
    ("chem-n_targets-zero", CHEM, ["n_targets=0"], r"n_targets"),
    ("chem-test_fraction", CHEM, ["test_fraction=1.5"], r"test_fraction"),
    # passed validation, then failed after every proxy (bootstrap on 1 fit molecule); with n_boot 0 it "succeeded"
    ("chem-test_fraction-leaves-no-fit", CHEM, ["test_fraction=0.99", "trials=1"],
     (r"target 'ATG_ERE_CIS_up': with test_fraction 0.99 and val_fraction 0.2 its fit split holds 0 positive\(s\) and 1 "
      r"negative\(s\) .*Lower test_fraction or val_fraction")),
    ("chem-val_fraction-leaves-no-fit", CHEM, ["val_fraction=0.99", "n_boot=0", "trials=1"],
     r"with test_fraction 0.2 and val_fraction 0.99 its fit split holds 0 positive"),
    ("chem-methods-unknown", CHEM, ["methods=[bogus]"], r"methods"),
    ("chem-assay-unknown", CHEM, ["assays=[NOT_AN_ASSAY, ATG_ERE_CIS_up]"], r"NOT_AN_ASSAY"),
    # a count k is "the first k assays minus the target": k=2 leaves a target among them one source
    ("chem-source_counts-leaves-one", CHEM, ["source_counts=[2]", "trials=1"],
     (r"source_counts: 2 leaves 1 source\(s\) for target 'ATG_ERE_CIS_up' .*at least 2 sources: use a count of at "
      r"least 3 or 'all'")),
    ("chem-source_counts-all-leaves-one", CHEM, ["assays=[ATG_ERE_CIS_up, ATG_ERa_TRANS_up]", "source_counts=[all]",
                                                 "n_targets=1"],
     r"source_counts: 'all' leaves 1 source\(s\) for target 'ATG_ERE_CIS_up' .*or set include_target: true"),
    ("chem-source_counts-budgets-leaves-one", CHEM, ["source_counts=[2]", "proxy_budgets=[0.5]"],
     r"source_counts: 2 leaves 1 source"),
    ("chem-source_counts-repeated", CHEM, ["source_counts=[3, 3]"], r"source_counts: must not repeat an item \(repeated: \[3\]\)"),
    # 'all' of 6 informative assays is 6: both settings ran with the same sources
    ("chem-source_counts-same-sources", CHEM, ["source_counts=[6, all]", "trials=1"],
     (r"source_counts: \[6, 'all'\] all give the same sources to every target \(5 each, of the 6 informative assays of "
      r"\S+toxcast.csv.gz\); the sweep would repeat one point. Keep one of them \('all' is 6 here\)")),
    ("chem-targets-repeated", CHEM, ["targets=[ATG_ERE_CIS_up, ATG_ERE_CIS_up]"],
     r"targets: must not repeat an item \(repeated: \['ATG_ERE_CIS_up'\]\)"),
    ("chem-assays-repeated", CHEM, ["assays=[ATG_ERE_CIS_up, ATG_ERa_TRANS_up, ATG_ERE_CIS_up]"],
     r"assays: must not repeat an item \(repeated: \['ATG_ERE_CIS_up'\]\)"),
    ("chem-n_targets-too-many", CHEM, ["n_targets=7"],
     r"n_targets: 7 targets asked for, but \S+toxcast.csv.gz has 6 informative assays .*use n_targets up to 6"),
    # the row floor (20 rows a source, one tree) made both budgets one set of proxies: the sweep ran it twice
    ("chem-budgets-same-proxies", CHEM, ["source_counts=[all]", "proxy_budgets=[0.0001, 0.0005]", "trials=1"],
     (r"proxy_budgets: \[0.0001, 0.0005\] all give the same proxies \(1 tree\(s\) on 120 rows over 6 sources: at "
      r"least 20 rows of each source")),
    ("lm-budgets-same-proxies", LM, ["proxy_budgets=[0.01, 0.05, 1.0]", "final_tokens=16384"],
     r"proxy_budgets: \[0.01, 0.05, 1.0\] all give the same proxies \(2,048 training tokens each"),
    ("lm-trials-text", LM, ["trials=abc"], r"trials: must be an integer"),
    ("lm-trials-float", LM, ["trials=2.7"], r"trials: must be an integer"),
    ("lm-seed-text", LM, ["seed=abc"], r"seed: must be an integer"),
    ("lm-n_workers-zero", LM, ["n_workers=0"], r"n_workers: must be >= 1"),
    ("lm-preset", LM, ["preset=huge"], r"preset"),
    ("lm-step_size-negative", LM, ["step_size=-1"], r"step_size"),
    ("lm-proxy_budget-negative", LM, ["proxy_budget=-1"], r"proxy_budget"),
    ("lm-fit_fraction", LM, ["fit_fraction=1.5"], r"fit_fraction"),
    ("lm-targets-unknown-key", LM, [("targets=[{name: x, kind: piqa, dataset: text/piqa_validation, extar: 1, "
                                     "max_samples: 5}]")],
     r"targets\[0\]: unknown key\(s\) \['extar'\]; valid: \['dataset', 'kind', 'max_samples', 'name', 'path'\]"),
    ("lm-targets-max_samples-text", LM, [("targets=[{name: x, kind: piqa, dataset: text/piqa_validation, "
                                          "max_samples: abc}]")],
     r"targets\[0\]\.max_samples: must be an integer or null; got 'abc'"),
    ("set-duplicate-key", LM, ["targets=[{name: x, kind: piqa, name: y, dataset: text/piqa_validation}]"],
     r"--set targets: cannot parse the value .* \(duplicate key 'name', first at line 1"),
]
#: Rows that still pass silently or fail late until the lead's engine rewrite lands (see the report).
LEAD_ROWS: set[str] = set()


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0], marks=[LEAD] if c[0] in LEAD_ROWS else [])
                                  for c in CLI])
def test_cli_bad_input_is_one_error_line(case, capsys):
    _, config, overrides, match = case
    code = main(["run", config, *_sets(*overrides), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, f"accepted (exit {code}); stderr: {err[-500:]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize("config,library", [(LM, "PyTorch"), (CHEM, "XGBoost")])
def test_cuda_on_a_machine_without_one_is_one_error_line(capsys, monkeypatch, config, library):
    """device: cuda passed --dry-run, then LM training died in a 40-frame traceback (XGBoost fell back to the CPU)."""
    import torch

    from mixmin_core.chem.proxies import resolve_device

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # every GPU hidden, as people hide them (it read as a GPU)
    if torch.cuda.is_available() or resolve_device("auto") == "cuda":
        pytest.skip("this machine has CUDA")
    for backend in ("local", "ray"):  # a fresh local Ray instance is this machine: it failed after fingerprints
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        code = main(["run", config, "--set", "device=cuda", "--dry-run", "--backend", backend])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"device: 'cuda', but this machine has no CUDA GPU that {library}" in err[0]


def _write(tmp_path: Path, name: str, content: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


FILES = [  # (id, file name, content, match): the config file itself is bad
    ("file-yaml-syntax", "bad.yaml", "pipeline: synthetic\nn_sources: [1, 2\n", r"bad.yaml: not valid YAML at line 3"),
    ("file-toml-syntax", "bad.toml", "pipeline = 'synthetic'\nn_sources = [1,\n", r"bad.toml: not valid TOML"),
    ("file-list", "list.yaml", "- pipeline: synthetic\n", r"list.yaml: a config is a mapping with a 'pipeline' key; got list"),
    ("file-no-pipeline", "nopipe.yaml", "n_sources: 3\n", r"nopipe.yaml: a config is a mapping with a 'pipeline' key"),
    ("file-no-pipeline-names-them", "nopipe.yaml", "n_sources: 3\n",
     (r"nopipe.yaml: .*the 'pipeline' key is missing: add one naming a pipeline out of \['chem', 'chem_evolve', "
      r"'chem_ladder', 'lm', 'run_table', 'synthetic'\]")),
    ("file-duplicate-key", "dup.yaml", "pipeline: synthetic\npipeline: chem\n",
     r"dup.yaml: not valid YAML at line 2, column 1 \(duplicate key 'pipeline', first at line 1; keep one"),
    ("file-duplicate-nested-key", "dupnest.yaml",
     "pipeline: lm\ntargets:\n  - name: x\n    kind: piqa\n    dataset: text/piqa_validation\n    kind: sciq\n",
     r"dupnest.yaml: not valid YAML at line 6, column 5 \(duplicate key 'kind', first at line 4"),
    ("file-empty", "empty.yaml", "", r"empty.yaml: the file is empty \(or only comments\); a config is a mapping"),
    ("file-only-comments", "comments.yaml", "# nothing yet\n", r"comments.yaml: the file is empty"),
    ("file-not-utf8", "latin.yaml", b"pipeline: synthetic\nname: caf\xe9\n", r"latin.yaml is not UTF-8 text"),
    ("file-too-large", "big.yaml", "pipeline: synthetic\n" + "#" * (1 << 20), r"big.yaml is 1,048,596 bytes; a config is at most"),
    ("file-nested-value", "nested.yaml", "pipeline: synthetic\nn_sources: {a: 1}\n", r"n_sources: must be an integer"),
    ("file-alias-bomb", "bomb.yaml", "pipeline: synthetic\nname: synthetic\nn_sources: &a 3\nn_categories: *a\nseed: [*a]\n",
     r"seed: must be an integer"),
    # 9 levels of 9 aliases: 9**10 values, past 1.7 GB and 60 s before it was stopped
    ("file-alias-bomb-expanding", "bomb9.yaml", "pipeline: synthetic\na0: &a0 [1, 2, 3]\n" + "".join(
        f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]\n" for k in range(1, 10)),
     r"bomb9.yaml: uses 81 YAML aliases \(\*name\); a config may use at most 20"),
    ("file-tag-unreadable", "tag.yaml", "pipeline: synthetic\nseed: !!int abc\n",
     r"tag.yaml: a value cannot be read \(ValueError"),  # a ValueError traceback
    ("file-tag-bool", "tagb.yaml", "pipeline: synthetic\nseed: !!bool maybe\n", r"tagb.yaml: a value cannot be read \(KeyError"),
    ("file-tag-empty-int", "tagi.yaml", "pipeline: synthetic\nseed: !!int ''\n", r"tagi.yaml: a value cannot be read \(IndexError"),
    # a file's tags ran as Python reprs: name b'hello', name "{'a', 'b'}" (--set refused tags already)
    ("file-tag-binary", "bin.yaml", "pipeline: synthetic\nname: !!binary aGVsbG8=\n",
     r"bin.yaml: name: unsupported value type bytes; use a number, text"),
    ("file-tag-set", "set.yaml", "pipeline: synthetic\nname: !!set {a, b}\n", r"set.yaml: name: unsupported value type set"),
    ("file-deep", "deep.yaml", "pipeline: synthetic\nx: " + "[" * 50_000 + "]" * 50_000 + "\n",
     r"deep.yaml: values are nested too deeply \(at most 32 levels"),  # a RecursionError traceback
    ("file-deep-toml", "deep.toml", "pipeline = 'synthetic'\nx = " + "[" * 500 + "]" * 500 + "\n",
     r"deep.toml: values are nested too deeply"),
]


@pytest.mark.parametrize("case", FILES, ids=[c[0] for c in FILES])
def test_bad_config_file_is_one_error_line(case, tmp_path, capsys):
    _, name, content, match = case
    code = main(["run", _write(tmp_path, name, content), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert re.search(match, err), err


@pytest.mark.parametrize("overrides", [
    ["source_counts=[2, all]", "targets=[ATG_PXR_TRANS_up]"],  # the target is not among the first 2
    ["source_counts=[2]", "include_target=true"],  # the target's own data is the second source
    ["n_targets=6", "source_counts=[3, all]"],
], ids=["target-outside-count", "include-target", "every-assay-a-target"])
def test_source_counts_that_leave_every_target_two_sources_are_accepted(overrides, capsys):
    assert main(["run", CHEM, *_sets(*overrides, "trials=1"), "--dry-run"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("text,value", [("1e-3", 0.001), ("5E+2", 500.0), (".5e1", 5.0), ("1.5e3", 1500.0),
                                        ("-2e-1", -0.2), ("1_000", 1000)])
def test_numbers_in_scientific_notation_are_numbers(text, value, tmp_path):
    from jobs.config import parse_override_value, read_config_file

    assert parse_override_value("step_size", text) == value
    assert read_config_file(_write(tmp_path, "sci.yaml", f"pipeline: synthetic\nstep_size: {text}\n"))["step_size"] == value


@pytest.mark.parametrize("text,value", [("010", 10), ("1:30", "1:30"), ("0b11", "0b11"), ("190:20:30.15", "190:20:30.15"),
                                        ("0x10", 16), ("1_000_000", 1_000_000), ("._", "._"), ("0x_", "0x_")])
def test_numbers_read_as_yaml_1_2_reads_them(text, value, tmp_path):
    """YAML 1.1 read seed: 010 as 8 (octal), trials: 1:30 as 90 (base 60) and 0b11 as 3, silently."""
    from jobs.config import parse_override_value, read_config_file

    assert parse_override_value("seed", text) == value
    assert read_config_file(_write(tmp_path, "n.yaml", f"pipeline: synthetic\nseed: {text}\n"))["seed"] == value


def test_a_whole_number_in_scientific_notation_is_a_count(tmp_path, capsys):
    """`final_tokens: 6e5` read as a float and was refused: 'must be an integer; got 600000.0'."""
    path = _write(tmp_path, "sci.yaml", "pipeline: synthetic\nseed: 1e3\n")
    assert main(["run", path, "--dry-run"]) == 0 and "seed: 1000\n" in capsys.readouterr().out
    assert main(["run", SYN, "--set", "n_sources=1e1", "--dry-run"]) == 0 and "n_sources: 10\n" in capsys.readouterr().out
    assert main(["run", SYN, "--set", "n_sources=1.5e1", "--dry-run"]) == 0  # 15
    assert main(["run", SYN, "--set", "n_sources=1.05e1", "--dry-run"]) == 2  # 10.5 is no count
    assert "n_sources: must be an integer" in capsys.readouterr().err
    evolve = str(ROOT / "configs" / "chem_evolve.yaml")  # a count or a list: `initial=4e1` was refused
    assert main(["run", evolve, "--set", "initial=4e1", "--dry-run"]) == 0 and "initial: 40\n" in capsys.readouterr().out
    assert main(["run", evolve, "--set", "initial=4.5", "--dry-run"]) == 2
    assert "initial: must be an integer or a list of strings >= 1; got 4.5." in capsys.readouterr().err
    assert main(["run", CHEM, "--set", "source_counts=[1.5]", "--dry-run"]) == 2  # a union inside a list, plural too
    assert "source_counts: must be a list of integers or strings; got [1.5]." in capsys.readouterr().err


def test_step_size_in_scientific_notation_is_accepted(tmp_path, capsys):
    path = _write(tmp_path, "sci.yaml", "pipeline: synthetic\nstep_size: 1e-3\n")
    assert main(["run", path, "--dry-run"]) == 0 and "step_size: 0.001" in capsys.readouterr().out
    assert main(["run", SYN, "--set", "step_size=5E-2", "--dry-run"]) == 0 and "step_size: 0.05" in capsys.readouterr().out


def test_a_table_whose_smiles_are_all_invalid_names_the_smiles_before_any_work(tmp_path, capsys):
    table = _write(tmp_path, "bad_smiles.csv", "smiles,A1,A2,A3\nnot-a-smiles,1,0,1\nxx,0,1,0\nyy,1,1,0\nzz,0,0,1\n")
    code = main(["run", CHEM, *_sets(f"path={table}", "assays=[]", "source_counts=[all]", "n_targets=1"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and re.search(r"bad_smiles.csv: .*SMILES", err), err


@pytest.mark.parametrize("path,match", [
    ("configs/nope.yaml", r"config file configs/nope.yaml not found"),
    ("configs", r"config file configs is not a regular file"),
    ("/dev/zero", r"config file /dev/zero is not a regular file"),
], ids=["missing", "directory", "dev-zero"])
def test_bad_config_path_is_one_error_line(path, match, capsys):
    assert main(["run", path, "--dry-run"]) == 2
    assert re.search(match, capsys.readouterr().err)


@pytest.mark.parametrize("argv,match", [
    (["run", SYN, "--workers", "abc"], r"argument --workers: must be a whole number >= 1; got 'abc'"),
    (["run", SYN, "--workers", "0"], r"argument --workers: must be >= 1; got 0"),
    (["run", SYN, "--workers", "99999999999999999999"], r"argument --workers: must be at most 256; got 99999999999999999999"),
    (["run", SYN, "--backend", "spark"], r"argument --backend: invalid choice: 'spark'"),
    ([], r"required: "),
    (["frobnicate"], r"invalid choice: 'frobnicate'"),
], ids=["workers-text", "workers-zero", "workers-huge", "backend-choice", "no-command", "unknown-command"])
def test_bad_arguments_are_argparse_usage_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err, err


def test_status_into_a_closed_pipe_exits_quietly():
    """``python -m jobs status | head``: the reader leaves early; no traceback, no exit-time message."""
    proc = subprocess.Popen([sys.executable, "-m", "jobs", "status"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the job prints anything
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and err == "", err


def test_status_lists_the_job_id_that_cancel_takes(capsys):
    from mixmin_core.runs.store import RunStore

    store = RunStore()
    store.create_run("r-1", name="r", pipeline="synthetic", config={})
    job_id = store.start_job("r-1", log_path="x.log")
    assert main(["status"]) == 0
    header, line = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[:4] == ["run", "pipeline", "status", "job"] and line.split()[3] == str(job_id)


def test_cancel_given_a_run_id_names_its_job(capsys):
    """`jobs status` lists the run id first, and people pass it: argparse said "invalid int value"."""
    from mixmin_core.runs.store import RunStore

    store = RunStore()
    store.create_run("r-1", name="r", pipeline="synthetic", config={})
    job_id = store.start_job("r-1", log_path="x.log")
    for arg, hint in (("r-1", f"; run r-1's latest job is {job_id}."), ("abc", "; got 'abc'."), ("²", "; got '²'.")):
        assert main(["cancel", arg]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cancel takes a job id, the number in `python -m jobs status`'s job column" in err[0]
        assert err[0].endswith(hint), err


def test_a_run_named_before_the_formula_rule_still_resumes(monkeypatch, capsys):
    """`-v2` was a fine run name until names could not start as a formula: such a run must still resume."""
    from mixmin_core.runs.store import RunStore

    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr("jobs.__main__.starts_as_formula", lambda name: False)
        assert main(["run", SYN, "--set", "name=-v2", "--set", "trials=1", "--set", "source_samples=500", "--quiet"]) == 0
    (run,) = RunStore().list_runs()
    assert main(["run", SYN, "--set", "name=-v2", "--dry-run"]) == 2  # a new run may not take such a name
    assert "name must not start with =, +, -, @" in capsys.readouterr().err
    assert main(["resume", run["run_id"], "--quiet"]) == 0, capsys.readouterr().err


def test_unknown_run_and_job_ids_are_named(capsys):
    assert main(["cancel", "999"]) == 2
    assert "no job 999" in capsys.readouterr().err
    assert main(["resume", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
    assert main(["status", "--run", "no-such-run"]) == 2
    assert "error: no run 'no-such-run'" in capsys.readouterr().err
    assert main(["status", "--run", ""]) == 2  # listed every run
    assert "error: no run ''" in capsys.readouterr().err
    assert main(["resume", "x" * 5000]) == 2  # echoed in full
    err = capsys.readouterr().err
    assert f"no run {'x' * 60!r}... (5,000 characters)" in err and len(err) < 300


# ---- jobs the app starts (MIXMIN_CONFINE_PATHS=1): the page's rules, checked again by the job ------
CONFINED = [
    ("chem-path-passwd", CHEM, ["path=/etc/passwd"], r"override 'path' cannot be set from the app"),
    ("chem-metadata-shadow", CHEM, ["metadata=/etc/shadow"], r"override 'metadata' cannot be set"),
    ("chem-smiles_column", CHEM, ["smiles_column=password"], r"override 'smiles_column' cannot be set"),
    ("chem-ignore_columns", CHEM, ["ignore_columns=[]"], r"override 'ignore_columns' cannot be set"),
    ("chem-format", CHEM, ["format=pcba128"], r"override 'format' cannot be set"),
    ("lm-tokenizer_path", LM, ["tokenizer_path=/etc/passwd"], r"override 'tokenizer_path' cannot be set"),
    ("lm-sources_dir", LM, ["sources_dir=/etc"], r"override 'sources_dir' cannot be set"),
    ("lm-targets-path", LM, ["targets=[{name: x, kind: piqa, path: /etc/passwd}]"], r"override 'targets' cannot be set"),
    ("lm-sources-traversal", LM, ["sources=[../../../etc/passwd]"], r"override 'sources' cannot be set"),
    ("syn-backend", SYN, ["backend=ray"], r"override 'backend' cannot be set"),
    ("syn-resume-never", SYN, ["resume=never"], r"override 'resume' cannot be set"),
    ("syn-alias-bomb", SYN, ["trials=[&a [1,1,1,1,1,1,1,1,1,1], [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]]"], r"trials: YAML anchors"),
    ("syn-alias", SYN, ["trials=*a"], r"trials: YAML aliases"),
    ("syn-tag", SYN, ["trials=!!str 3"], r"trials: YAML tags"),
    ("syn-multiline", SYN, ["name=a\nb"], r"override name must be a single line"),
    ("outside-configs", "/etc/passwd", [], r"config '/etc/passwd': the app starts configs from .*configs only"),
    ("traversal-configs", "configs/../README.md", [], r"the app starts configs from .*configs only"),
]


@pytest.mark.parametrize("case", CONFINED, ids=[c[0] for c in CONFINED])
def test_app_started_job_refuses_what_the_page_may_not_set(case, monkeypatch, capsys):
    _, config, overrides, match = case
    monkeypatch.setenv(datasets.CONFINE_ENV, "1")
    code = main(["run", config, *_sets(*overrides), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, err[-1000:]
    assert re.search(match, err), err
    assert "root:" not in err  # never a line of the file


def test_app_started_job_reads_no_file_outside_the_data_dir_and_store(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.CONFINE_ENV, "1")
    home = Path(os.environ["MIXMIN_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "link.csv").symlink_to("/etc/passwd")
    for value, where in (("/etc/passwd", "path"), (str(home / "link.csv"), "path"), ("/dev/zero", "path")):
        with pytest.raises(InputError, match=rf"{where}: '{value}' is outside the data directory and the run store"):
            datasets.check_config_paths({"pipeline": "chem", "name": "x", where: value})
    with pytest.raises(InputError, match=r"targets\[0\].path: '/etc/passwd' is outside"):
        datasets.check_config_paths({"targets": [{"name": "t", "path": "/etc/passwd"}]})
    # whether the file exists or not, the same error: it said which of the owner's files exist
    for value in ("/etc/zzz_nope", "~/.zzz_nope", "~/.cache", "../secret/x.csv"):
        with pytest.raises(InputError, match=r"targets\[0\]: '.*' is outside the data directory and the run store"):
            datasets.check_config_paths({"targets": [value]})
    datasets.check_config_paths({"targets": ["no_such_assay"], "dataset": "toxcast"})  # a name, not a path
    datasets.check_config_paths({"targets": [{"name": "piqa", "dataset": "text/piqa_validation"}]})  # registered
    with pytest.raises(InputError, match=r"the path of dataset 'toxcast': '/etc/passwd' is outside"):
        datasets.resolve("toxcast", "/etc/passwd")
    inside = Path(os.environ["MIXMIN_DATA_DIR"]) / "chem" / "toxcast.csv.gz"
    datasets.check_config_paths({"path": str(inside), "dataset": "toxcast", "methods": ["mixmin"]})  # allowed
    assert datasets.resolve("toxcast", inside) == inside


# ---- the Upload page's parsing ---------------------------------------------------------------------
def _npz(values, **arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, values=values, **arrays)
    return buf.getvalue()


def _sidecar(npz: bytes, **fields) -> bytes:
    sidecar = {"kind": "binary", "source_names": ["a", "b"], "sha256": hashlib.sha256(npz).hexdigest()}
    return json.dumps({**sidecar, **fields}).encode()


_GOOD = _npz(np.full((2, 4), 0.5, np.float32), labels=np.array([0, 1, 0, 1], np.float32))


def _zip(**members: bytes) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


_OBJ = _npz(np.array([{"a": 1}, {"b": 2}], dtype=object))
_NOT_NPY = _zip(**{"values.npy": b"hello", "evil.txt": b"x"})
_MANY = _zip(**{f"a{i}.npy": b"x" for i in range(20)})

UPLOADS = [  # (id, files, kwargs, match)
    ("no-files", [], {}, r"no file uploaded"),
    ("three-files", [("a.csv", b"a,b\n1,2\n")] * 3, {}, r"3 files uploaded"),
    ("two-tables", [("a.csv", b"a,b\n1,2\n"), ("b.csv", b"a,b\n1,2\n")], {}, r"unsupported upload \['a.csv', 'b.csv'\]"),
    ("text-file", [("notes.txt", b"hello")], {}, r"unsupported upload \['notes.txt'\]"),
    ("oversized", [("x.csv", b"a,b\n0.1,0.2\n")], {"max_bytes": 5}, r"x.csv: 0.0 MB is over the 0 MB upload limit"),
    ("npz-alone", [("x.npz", _GOOD)], {}, r"x.npz: the .npz format needs both files"),
    ("json-alone", [("x.json", _sidecar(_GOOD))], {}, r"x.json: the .npz format needs both files"),
    ("two-npz", [("a.npz", _GOOD), ("b.npz", _GOOD)], {}, r"one .npz file with its .json sidecar"),
    ("sidecar-not-json", [("x.npz", _GOOD), ("x.json", b"{nope")], {}, r"x.json: not valid JSON"),
    ("sidecar-not-utf8", [("x.npz", _GOOD), ("x.json", b"\xff\xfe")], {}, r"x.json: not valid JSON \(not UTF-8"),
    ("sidecar-list", [("x.npz", _GOOD), ("x.json", b"[1]")], {}, r"x.json: expected a JSON object"),
    ("sidecar-no-kind", [("x.npz", _GOOD), ("x.json", b'{"source_names": ["a", "b"]}')], {}, r"x.json: expected .* without 'kind'"),
    ("sidecar-no-sha", [("x.npz", _GOOD), ("x.json", b'{"kind": "binary"}')], {}, r"x.json: missing 'sha256'"),
    ("sidecar-wrong-sha", [("x.npz", _GOOD), ("x.json", _sidecar(b"other"))], {}, r"x.npz: checksum mismatch with x.json"),
    ("sidecar-kind", [("x.npz", _GOOD), ("x.json", _sidecar(_GOOD, kind="probability"))], {}, r"x.npz: kind"),
    ("sidecar-names-length", [("x.npz", _GOOD), ("x.json", _sidecar(_GOOD, source_names=["a"]))], {}, r"x.npz: source_names"),
    ("npz-not-zip", [("x.npz", b"not a zip"), ("x.json", _sidecar(b"not a zip"))], {}, r"x.npz: cannot read arrays"),
    ("npz-object-array", [("x.npz", _OBJ), ("x.json", _sidecar(_OBJ))], {}, r"x.npz: array 'values.npy' holds Python objects"),
    ("npz-foreign-member", [("x.npz", _NOT_NPY), ("x.json", _sidecar(_NOT_NPY))], {}, r"x.npz: (unexpected member|array 'values.npy' has no valid .npy header)"),
    ("npz-many-members", [("x.npz", _MANY), ("x.json", _sidecar(_MANY))], {}, r"x.npz: 20 arrays in the archive"),
    ("npz-over-cap", [("x.npz", _GOOD), ("x.json", _sidecar(_GOOD))], {"max_expanded": 100}, r"x.npz: its arrays would take"),
    ("csv-empty", [("x.csv", b"")], {}, r"x.csv: cannot read it as csv"),
    ("csv-no-rows", [("x.csv", b"a,b\n")], {}, r"x.csv: the table has no rows"),
    ("csv-text-sources", [("x.csv", b"a,b\nx,y\n")], {}, r"x.csv: source columns must be numeric"),
    ("csv-one-source", [("x.csv", b"a,label\n0.5,1\n")], {}, r"x.csv: need at least two source columns"),
    ("csv-labels-yes-no", [("x.csv", b"a,b,label\n0.2,0.3,yes\n0.5,0.1,no\n")], {}, r"x.csv: column 'label' must hold numeric labels"),
    ("csv-labels-two", [("x.csv", b"a,b,label\n0.5,0.2,3\n")], {"kind": "binary"}, r"x.csv: labels must be 0 or 1"),
    ("csv-binary-no-labels", [("x.csv", b"a,b\n0.5,0.2\n")], {"kind": "binary"},
     r"x.csv: objective binary needs the labels in a column named one of 'label', 'labels', 'y'; the columns are"),
    ("csv-mse-no-labels", [("x.csv", b"a,b\n0.5,0.2\n")], {"kind": "mse"},
     r"x.csv: objective mse needs the labels in a column named one of 'label', 'labels', 'y'"),
    ("csv-loglik-positive", [("x.csv", b"a,b\n-1,0.5\n")], {"kind": "loglik"}, r"x.csv: .*log-probabilities <= 0"),
    ("csv-no-labels-positive", [("x.csv", b"a,b\n-1,0.5\n")], {}, r"x.csv: no label column .* was found"),
    ("csv-binary-out-of-range", [("x.csv", b"a,b,label\n1.5,0.2,1\n")], {"kind": "binary"}, r"x.csv: .*\[0, 1\]"),
    ("csv-nan", [("x.csv", b"a,b,label\n0.5,,1\n0.2,0.3,0\n")], {"kind": "binary"},
     r"x.csv: column 'b' has 1 empty or non-finite cell\(s\), the first in data row 1"),
    ("csv-inf", [("x.csv", b"a,b,label\n0.5,0.1,1\n0.2,-inf,0\n")], {}, r"x.csv: column 'b' .* data row 2 \(-inf\)"),
    ("csv-repeated-column", [("x.csv", b"a,a,label\n0.5,0.1,1\n")], {}, r"x.csv: column names must be unique; repeated: \['a'\]"),
    ("csv-token-text", [("x.csv", b"a,b,token_count\n-2,-3,many\n")], {}, r"x.csv: column 'token_count' must hold numeric"),
    ("kind-unknown", [("x.csv", b"a,b\n0.5,0.2\n")], {"kind": "probability"}, r"kind must be 'auto' or one of"),
    ("parquet-garbage", [("x.parquet", b"garbage")], {}, r"x.parquet: cannot read it as parquet"),
    ("pickle-as-csv", [("x.csv", pickle.dumps({"a": [1, 2]}))], {}, r"x.csv"),
]


@pytest.mark.parametrize("case", UPLOADS, ids=[c[0] for c in UPLOADS])
def test_bad_upload_is_one_clear_error(case):
    _, files, kwargs, match = case
    with pytest.raises(InputError, match=match):
        parse_upload(files, **kwargs)


def test_upload_page_shows_a_yes_no_label_error_without_a_traceback(home):
    from tests.app.conftest import open_app, shown

    at = open_app("upload")
    at.file_uploader(key="upload.files").set_value(("labels.csv", b"a,b,label\n0.2,0.3,yes\n0.5,0.1,no\n", "text/csv")).run()
    assert not at.exception
    assert "labels.csv: column 'label' must hold numeric labels" in shown(at.error[0])


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("MIXMIN_HOME", str(path))
    monkeypatch.chdir(ROOT)
    return path


# ---- the library (tests/core/test_bad_inputs.py's table) --------------------------------------------
@pytest.mark.parametrize("case", BAD_LIBRARY_INPUTS, ids=[c.id for c in BAD_LIBRARY_INPUTS])
def test_bad_library_input(case):
    with pytest.raises(case.error, match=case.match):
        case.call()


# ---- real processes: no traceback, nothing created --------------------------------------------------
@pytest.mark.parametrize("argv,match", [
    (["run", SYN, "--set", "n_workers=abc"], "error: --set n_workers: must be an integer"),
    (["run", SYN, "--set", "assays=[unclosed"], "error: --set assays: cannot parse"),
    (["run", SYN, "--set", "seed=abc"], "error: --set seed: must be an integer"),
    (["run", SYN, "--workers", "abc"], "argument --workers: must be a whole number"),
], ids=["n_workers", "yaml", "seed", "workers"])
def test_real_cli_process_prints_no_traceback_and_creates_nothing(argv, match):
    home = Path(os.environ["MIXMIN_HOME"])
    proc = subprocess.run([sys.executable, "-m", "jobs", *argv], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and match in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert not (home / "runs").exists()  # no run folder for bad input


def test_app_started_jobs_cache_in_the_store_and_never_download(tmp_path, monkeypatch):
    """A visitor's `dataset=pcba128` made the app itself download 40 MB into ~/.cache/mixmin, and jobs kept
    fingerprints there: outside the run store and the data directory."""
    import urllib.request

    from jobs import control

    def no_network(*args, **kwargs):
        raise AssertionError("a confined job reached the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("MIXMIN_CACHE", str(tmp_path / "outside_cache"))
    home = Path(os.environ["MIXMIN_HOME"])
    assert datasets.cache_dir() == tmp_path / "outside_cache"  # the command line keeps the user's cache
    with datasets.confinement():
        assert datasets.cache_dir() == home / "cache"
        with pytest.raises(InputError, match=r"jobs started from the app do not download"):
            datasets.resolve("pcba128")
    assert not datasets.confined()  # the scope ends with the block
    with pytest.raises(InputError, match=r"jobs started from the app do not download"):
        control.start_job("configs/chem_ci.yaml", {"dataset": "pcba128"}, home=home)
    monkeypatch.setenv(datasets.CONFINE_ENV, "1")
    assert datasets.cache_dir() == home / "cache"
    assert not (tmp_path / "outside_cache").exists()


def test_the_table_has_at_least_100_cases():
    n = len(CLI) + len(FILES) + 1 + 3 + 6 + len(CONFINED) + len(UPLOADS) + len(BAD_LIBRARY_INPUTS)
    assert n >= 100, n


def test_numpy_float32_step_size_is_accepted():
    from mixmin_core import ProxyOutputs, mixmin

    outputs = ProxyOutputs(np.array([[0.2, 0.8, 0.4], [0.6, 0.3, 0.5]]), "binary", labels=[0, 1, 0])
    assert mixmin(outputs, step_size=np.float32(0.5), max_iter=5).weights.shape == (2,)



def test_dry_run_prints_names_as_they_are(capsys):
    r"""It printed "\xD6strogen \u03B1-Agonist" for a target written Östrogen α-Agonist."""
    assert main(["run", CHEM, "--set", "name=Östrogen-α", "--dry-run"]) == 0
    assert "name: Östrogen-α" in capsys.readouterr().out
