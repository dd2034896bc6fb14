"""Fixture run stores for the app tests, the browser test and the app benchmark.

Built with the real library: the synthetic pipeline is run through ``python -m jobs``, and a
chemistry-like run is written through ``mixmin_core.runs.layout`` with binary ProxyOutputs over real
ToxCast assay names, titles and categories (read from ``$MIXMIN_DATA_DIR/chem/toxcast_assays.csv``).

    python -m tests.app.fixtures /tmp/home     # build a fixture store by hand (e.g. to look at the app)
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mixmin_core import ProxyOutputs, balanced, bootstrap_weights, mixmin, natural
from mixmin_core.engine.report import write_report
from mixmin_core.runs.fileio import write_json, write_text
from mixmin_core.runs.layout import (
    Problem,
    mixture_path,
    outputs_path,
    sources_path,
    topk_path,
)
from mixmin_core.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
CHEM_RUN = "chem-fixture-0001"
METHODS = ("mixmin", "natural", "balanced", "target_only", "ensemble", "random_search", "regmix")
VARIANTS = ("sources-10", "sources-all")


def data_dir() -> Path:
    return Path(os.environ.get("MIXMIN_DATA_DIR", ROOT.parent / "shared" / "data"))


def toxcast_assays() -> pd.DataFrame:
    return pd.read_csv(data_dir() / "chem" / "toxcast_assays.csv")


def assay_table(dataset: str) -> pd.DataFrame:
    """``task, title, category`` of a dataset's assays from its metadata file in the shared data."""
    if dataset == "toxcast":
        table = toxcast_assays()
        return table.assign(title=table["provider"] + ": " + table["task"])[["task", "title", "category"]]
    table = pd.read_csv(data_dir() / "chem" / "pcba128_assays.csv")
    return table.assign(title=table["title"].fillna(table["short_name"]))[["task", "title", "category"]]


def run_synthetic(home: Path) -> str:
    """Run ``configs/synthetic_demo.yaml`` into ``home`` with the real job CLI; return its run id."""
    env = {**os.environ, "MIXMIN_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "jobs", "run", "configs/synthetic_demo.yaml", "--quiet", "--workers", "1"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return RunStore(home).list_runs()[0]["run_id"]


def binary_outputs(n_sources: int, n_samples: int, rng: np.random.Generator, *, n_informative: int = 4,
                   source_names=None, meta=None) -> ProxyOutputs:
    """Binary proxy outputs where a few sources predict the labels and the rest are noise."""
    labels = (rng.random(n_samples) < 0.25).astype(np.float32)
    logits = rng.normal(-1.0, 1.0, (n_sources, n_samples)).astype(np.float32)
    strength = np.zeros(n_sources, np.float32)
    strength[rng.choice(n_sources, n_informative, replace=False)] = rng.uniform(1.0, 2.5, n_informative)
    logits += strength[:, None] * (labels[None, :] - 0.25) * 2
    values = 1 / (1 + np.exp(-logits))
    sizes = rng.integers(200, 8000, n_sources)
    return ProxyOutputs(values.astype(np.float32), "binary", labels=labels, source_names=source_names,
                        natural_weights=sizes, meta=meta or {})


def write_chem_run(home: Path, *, n_sources: int = 40, n_targets: int = 3, n_trials: int = 3,
                   n_samples: int = 400, seed: int = 0, dataset: str = "toxcast", run_id: str = CHEM_RUN,
                   search_max_sources: int | None = None, max_final_rows: int = 50_000) -> str:
    """A chemistry-like run: real source assays of ``dataset`` (toxcast or pcba128), targets, two
    source-count variants, all methods (random search and RegMix only where a variant has at most
    ``search_max_sources`` sources, as the chemistry pipeline does), results written by the engine's
    report writer."""
    rng = np.random.default_rng(seed)
    assays = assay_table(dataset)
    picked = assays.iloc[rng.choice(len(assays), n_sources + n_targets, replace=False)]
    sources, targets = picked.iloc[:n_sources], list(picked["task"].iloc[n_sources:])
    store = RunStore(home)
    name = "chem-fixture" if dataset == "toxcast" else f"chem-fixture-{dataset}"
    config = {"pipeline": "chem", "name": name, "dataset": dataset, "n_sources": n_sources,
              "max_final_rows": max_final_rows, "methods": list(METHODS)}
    if search_max_sources is not None:
        config["search_max_sources"] = search_max_sources
    run_dir = store.create_run(run_id, name=name, pipeline="chem", config=config, dataset=dataset)
    write_text(sources_path(run_dir), sources.rename(columns={"task": "source"}).to_csv(index=False))
    names = list(sources["task"])
    rows = []
    for t, target in enumerate(targets):
        for trial in range(n_trials):
            full = binary_outputs(n_sources, n_samples, np.random.default_rng([seed, t, trial]), source_names=names,
                                  meta={"dataset": dataset, "target": target, "split": "fit"})
            for variant in VARIANTS:
                outputs = full.select(sources=names[:10]) if variant == "sources-10" else full
                _write_problem(run_dir, Problem(target, trial, variant), outputs)
                n_variant = outputs.n_sources
                methods = [m for m in METHODS if search_max_sources is None or n_variant <= search_max_sources
                           or m not in ("random_search", "regmix")]
                rows += _result_rows(target, trial, variant, np.random.default_rng([seed, t, trial, len(variant)]),
                                     methods=methods, max_final_rows=max_final_rows)
    write_report(run_dir, rows, reference="natural")
    store.set_run_status(run_id, "done", {"targets": targets})
    job = store.start_job(run_id, log_path=str(run_dir / "logs" / "job-fixture.log"))
    write_text(run_dir / "logs" / "job-fixture.log", "fixture job: all units done\n")
    store.update_job(job, n_done=10, n_total=10, message="done")
    store.finish_job(job, "done")
    return run_id


def _write_problem(run_dir: Path, problem: Problem, outputs: ProxyOutputs) -> None:
    outputs.save(outputs_path(run_dir, problem))
    result = mixmin(outputs)
    for res in (result, natural(outputs), balanced(outputs)):
        write_json(mixture_path(run_dir, problem, res.method), res.to_dict())
    boot = bootstrap_weights(outputs, n_boot=20)
    order = np.argsort(-result.weights)[:20]
    top = [{"rank": r, "source": result.source_names[i], "weight": float(result.weights[i]),
            "lower": float(boot.lower[i]), "upper": float(boot.upper[i])} for r, i in enumerate(order, 1)]
    write_json(topk_path(run_dir, problem), {"target": problem.target, "variant": problem.variant, "trial": problem.trial,
                                             "method": "mixmin", "k": len(top), "sources": top})


def _result_rows(target: str, trial: int, variant: str, rng: np.random.Generator, *, methods=METHODS,
                 max_final_rows: int = 0) -> list[dict]:
    base = rng.uniform(0.2, 0.4)
    bonus = {"mixmin": 0.08, "ensemble": 0.05, "regmix": 0.04, "random_search": 0.03, "natural": 0.0,
             "balanced": -0.01, "target_only": -0.03}
    compute = {"mixmin": 1.0, "natural": 0.0, "balanced": 0.0, "target_only": 0.1, "ensemble": 1.0,
               "random_search": 1.0, "regmix": 1.0}
    values = {m: base + bonus[m] + rng.normal(0, 0.01) for m in METHODS}  # same draws whichever methods ran
    return [{"target": target, "method": m, "trial": trial, "metric": "average_precision", "variant": variant,
             "value": values[m], "proxy_compute": compute[m], "final_compute": 100.0 * (m != "ensemble"),
             "max_final_rows": max_final_rows} for m in methods]


def write_lm_budget_run(home: Path, budgets=(0.01, 0.1, 1.0)) -> str:
    """An LM-like run (results only) with one ``budget-<b>`` variant per proxy budget: a compute sweep."""
    store = RunStore(home)
    run_id = "lm-fixture"
    run_dir = store.create_run(run_id, name="lm-fixture", pipeline="lm", dataset="text domains",
                     config={"pipeline": "lm", "name": "lm-fixture", "proxy_budgets": list(budgets)})
    rng = np.random.default_rng(7)
    rows = [{"target": t, "method": m, "trial": trial, "metric": "nll", "variant": f"budget-{budget:g}",
             "value": 3.0 - 0.1 * np.log10(budget) * (m == "mixmin") + rng.normal(0, 0.01),
             "proxy_compute": {0.01: 0.0239}.get(budget, budget), "final_compute": 1.0}  # 0.01: whole steps
            for budget in budgets for t in ("piqa", "arc_easy") for m in ("mixmin", "natural", "balanced", "regmix")
            for trial in range(2)]
    write_report(run_dir, rows, reference="natural")
    store.set_run_status(run_id, "done")
    return run_id


def build_home(home: Path, *, synthetic: bool = True, chem: bool = True) -> Path:
    """A fixture run store in ``home`` holding the synthetic demo run and/or the chemistry-like run."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    if synthetic:
        run_synthetic(home)
    if chem:
        write_chem_run(home)
    return home


if __name__ == "__main__":
    print(build_home(Path(sys.argv[1])))
