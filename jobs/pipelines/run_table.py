"""The run_table pipeline: search baselines directly on a published table of proxy runs.

A run table maps mixtures to measured losses (RegMix's 1M/60M/1B Pile runs, Olmix's DCLM swarm;
see ``mixmin_core.search.run_tables``). Per target metric and trial, each method picks a mixture:

* ``regmix``: LightGBM fitted on the training runs (early stopping on a held-out part of them),
  mean of the 128 best-predicted of 100,000 ``Dirichlet(natural)`` candidates. Its Spearman
  correlation with the measured losses of every test table (held-out runs, other model scales)
  is reported as ``spearman/<test table>``, and on its early-stopping hold-out as ``spearman_holdout``;
  ``top1_loss/<test table>`` is the measured loss of the test run it predicts best (``best_loss/...``
  the best measured there): a measured check of its choice where the mixture itself was never run.
* ``random_search``: on a table, "evaluating" a mixture means looking up a run that exists: sample
  ``random_search_trials`` runs (default: one per source, MixMin's proxy compute), keep the best
  measured (``measured_loss``).
* ``natural``: the table's natural weights (no runs spent).
* ``bo``: Gaussian-process Bayesian optimisation over the table's runs (``mixmin_core.search.bayesopt``).

Every method is also scored by ``surrogate_loss``: the prediction of a reference LightGBM fitted on
all runs of the training scale (training and same-scale test runs), the same yardstick for all.
``compute`` is the number of proxy runs a method used. Mixtures are saved with
``layout.mixture_path(run_dir, Problem(target, trial), method)``; rows go to the results table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.fileio import atomic_path, read_json, write_json, write_text
from mixmin_core.runs.layout import Problem, mixture_path, safe_name, sources_path
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.search.run_tables import (
    PRIORS,
    TABLES,
    RunTable,
    load_run_table,
    prior_for,
)
from mixmin_core.search.swarm import (
    PRESETS,
    fit_regressor,
    random_search_table,
    regmix_fit_choose,
)
from mixmin_core.solver.results import MixtureResult

METHODS = ("natural", "random_search", "regmix", "bo")
_METHOD_IDS = {m: i for i, m in enumerate(METHODS)}


@dataclass
class RunTableConfig:
    train_table: str = "regmix_1m_train"
    # scored, never fitted on: held-out runs at the same or other model scales
    test_tables: list = field(default_factory=lambda: ["regmix_1m_test", "regmix_60m_test", "regmix_1b_test"])
    test_fraction: float = 0.0  # > 0: also hold out this fraction of train_table per trial (test "test_split")
    targets: list = field(default_factory=lambda: ["pile_cc"])  # metric names of the tables (lower is better)
    methods: list = field(default_factory=lambda: ["natural", "random_search", "regmix"])
    trials: int = 3
    seed: int = 0
    preset: str = "faithful"  # RegMix regressor: "faithful" or "mixmin-paper"
    prior: str = "natural"  # candidates' Dirichlet prior: natural | table_mean | uniform
    n_candidates: int = 100_000
    top_k: int = 128
    random_search_trials: int = 0  # 0: one run per source (compute-matched with MixMin)
    regmix_runs: int = 0  # 0: all training runs; else a random subset of this many per trial
    bo_budget: int = 0  # runs BO may look up; 0: same as random search
    bo_init: int = 0  # BO's initial random runs; 0: one per source (capped at half the budget)
    bo_fidelity_tables: list = field(default_factory=list)  # cheaper runs for multi-fidelity BO, e.g. 1M runs
    bo_fidelity_cost: float = 1 / 60  # cost of one such run in train_table runs (RegMix 1M vs 60M parameters)
    resume: str = "if_available"
    backend: str = "local"
    n_workers: int = 1  # units take seconds; LightGBM runs single-threaded

    def __post_init__(self):
        if self.train_table not in TABLES:
            raise ConfigError(f"train_table must be one of {sorted(TABLES)}; got {self.train_table!r}.")
        for name in ("test_tables", "targets", "methods"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a list of strings; got {value!r}.")
        bad = [t for t in self.test_tables if t not in TABLES]
        if bad:
            raise ConfigError(f"test_tables must name known tables {sorted(TABLES)}; got unknown {bad}.")
        if not self.targets:
            raise ConfigError("targets must list at least one metric (e.g. ['pile_cc']); got [].")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ConfigError(f"methods must be a non-empty subset of {list(METHODS)}; got {self.methods!r}.")
        if not (isinstance(self.test_fraction, (int, float)) and 0 <= self.test_fraction < 0.9):
            raise ConfigError(f"test_fraction must be in [0, 0.9); got {self.test_fraction!r}.")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {sorted(PRESETS)}; got {self.preset!r}.")
        if self.prior not in PRIORS:
            raise ConfigError(f"prior must be one of {list(PRIORS)}; got {self.prior!r}.")
        for name, minimum in (("trials", 1), ("n_candidates", 1), ("top_k", 1), ("random_search_trials", 0),
                              ("regmix_runs", 0), ("bo_budget", 0), ("bo_init", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}.")
        if self.top_k > self.n_candidates:
            raise ConfigError(f"top_k must be at most n_candidates ({self.n_candidates}); got {self.top_k}.")
        if not isinstance(self.bo_fidelity_tables, list) or any(t not in TABLES for t in self.bo_fidelity_tables):
            raise ConfigError(f"bo_fidelity_tables must be a list of known tables {sorted(TABLES)}; "
                              f"got {self.bo_fidelity_tables!r}.")
        if not (isinstance(self.bo_fidelity_cost, (int, float)) and self.bo_fidelity_cost >= 0):
            raise ConfigError(f"bo_fidelity_cost must be a number >= 0; got {self.bo_fidelity_cost!r}.")


CONFIG = RunTableConfig


def dataset(config: RunTableConfig) -> str:
    return f"run table {config.train_table}" + (f" (tests: {', '.join(config.test_tables)})" if config.test_tables else "")


# ----------------------------------------------------------------------------- tables

def _tables(cfg: RunTableConfig, trial: int) -> tuple[RunTable, dict[str, RunTable]]:
    """The training runs and the test tables of one trial (a seeded hold-out if test_fraction > 0)."""
    train = load_run_table(cfg.train_table)
    tests = {name: load_run_table(name) for name in cfg.test_tables}
    if cfg.test_fraction > 0:
        order = np.random.default_rng([cfg.seed, 99, trial]).permutation(train.n_runs)
        n_test = max(1, int(round(cfg.test_fraction * train.n_runs)))
        tests["test_split"] = train.subset(np.sort(order[:n_test]))
        train = train.subset(np.sort(order[n_test:]))
    return train, tests


def _finite(table: RunTable, target: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    y = table.target(target)
    ok = np.isfinite(y)
    return table.weights[ok], y[ok], tuple(np.asarray(table.run_ids, dtype=object)[ok].tolist())


def _n_random(cfg: RunTableConfig, train: RunTable) -> int:
    return cfg.random_search_trials or len(train.source_names)


def validate(config: RunTableConfig) -> None:
    """Load every table and check the targets and run counts before a run folder exists."""
    train, tests = _tables(config, 0)
    for table in [train, *tests.values()]:
        if table.source_names != train.source_names:
            raise InputError(f"test table {table.name!r} has sources {table.source_names[:3]}..., "
                             f"not those of {train.name!r}; pick tables of one family.")
        for target in config.targets:
            table.target(target)
    n_finite = min(int(np.isfinite(train.target(t)).sum()) for t in config.targets)
    for name, value in (("random_search_trials", _n_random(config, train)), ("regmix_runs", config.regmix_runs),
                        ("bo_budget", config.bo_budget)):
        if value > n_finite:
            raise ConfigError(f"{name} must be at most the {n_finite} training runs with a measured target; got {value}.")
    for name in config.bo_fidelity_tables:
        low = load_run_table(name)
        if low.source_names != train.source_names:
            raise InputError(f"bo_fidelity_tables: {name!r} has other sources than {train.name!r}.")
        for target in config.targets:
            low.target(target)


# ----------------------------------------------------------------------------- units

def fit_reference(*, config: dict, target: str, output: str) -> dict:
    """The yardstick for every method: LightGBM on all runs of the training scale (trial 0 split
    undone: training runs plus same-scale test runs). Saved as a LightGBM model text file."""
    cfg = RunTableConfig(**config)
    train = load_run_table(cfg.train_table)
    parts = [_finite(train, target)] + [_finite(load_run_table(n), target) for n in cfg.test_tables
                                        if TABLES[n][2] == TABLES[cfg.train_table][2]]
    W = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    model = fit_regressor(W, y, preset="faithful", seed=42, val_fraction=0.0)  # all runs, all 1000 trees
    with atomic_path(output) as tmp:
        model.regressor.booster_.save_model(str(tmp))
    return {"rows": len(W)}


def solve(*, config: dict, target: str, method: str, trial: int, output: str, reference: str) -> dict:
    """One method on one target and trial: choose a mixture, score it, save its MixtureResult."""
    import lightgbm as lgb

    cfg = RunTableConfig(**config)
    train, tests = _tables(cfg, trial)
    W, y, ids = _finite(train, target)
    names = train.source_names
    prior = prior_for(train, cfg.prior)
    rng = np.random.default_rng([cfg.seed, trial, _METHOD_IDS[method]])
    test_sets = {name: _finite(t, target)[:2] for name, t in tests.items()}
    metrics: dict[str, float] = {}
    if method == "natural":
        result = MixtureResult(weights=(prior / prior.sum()).astype(np.float32), source_names=names, method="natural",
                               meta={"compute": 0.0, "prior": cfg.prior}, message=f"{cfg.prior} prior of the table")
    elif method == "random_search":
        result = random_search_table(W, y, source_names=names, n_trials=_n_random(cfg, train), rng=rng, run_ids=ids)
        metrics["measured_loss"] = result.loss
        metrics["best_run_in_table"] = float(y.min())
    elif method == "regmix":
        if cfg.regmix_runs:
            keep = np.sort(rng.choice(len(W), size=cfg.regmix_runs, replace=False))
            W, y = W[keep], y[keep]
        result = regmix_fit_choose(W, y, source_names=names, prior=prior, rng=rng, preset=cfg.preset,
                                   n_candidates=cfg.n_candidates, top_k=cfg.top_k, tests=test_sets,
                                   meta={"table": train.name, "prior": cfg.prior})
        if result.meta["spearman"] is not None:
            metrics["spearman_holdout"] = result.meta["spearman"]
        metrics.update({f"spearman/{k}": v for k, v in result.meta["spearman_tests"].items() if v is not None})
        for k, v in result.meta["tests_top1"].items():
            metrics.update({f"top1_loss/{k}": v["top1"], f"best_loss/{k}": v["best"]})
        metrics["predicted_loss"] = result.loss
    else:
        result = _solve_bo(cfg, train, W, y, ids, names, target, rng, test_sets)
        metrics.update(result.meta.pop("metrics", {}))
    metrics["surrogate_loss"] = float(lgb.Booster(model_file=reference).predict(result.weights[None, :].astype(np.float64))[0])
    result.meta.update(metrics=metrics, target=target, trial=trial, table=train.name, scale=train.scale)
    write_json(output, result.to_dict())
    return {"rows": len(W), **{k: v for k, v in metrics.items() if np.isfinite(v)}}


def _solve_bo(cfg, train, W, y, ids, names, target, rng, test_sets) -> MixtureResult:
    from mixmin_core.search.bayesopt import bo_table

    budget = cfg.bo_budget or _n_random(cfg, train)
    n_init = cfg.bo_init or max(1, min(len(names), budget // 2))
    low = None
    if cfg.bo_fidelity_tables:
        parts = [_finite(load_run_table(name), target) for name in cfg.bo_fidelity_tables]
        low = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return bo_table(W, y, source_names=names, budget=budget, n_init=min(n_init, budget), rng=rng, run_ids=ids,
                    low_fidelity=low, low_fidelity_cost=cfg.bo_fidelity_cost, tests=test_sets)


def _write_sources(ctx: RunContext, table: RunTable) -> None:
    prior = table.natural_weights
    lines = ["source,title,category,natural_weight"]
    for i, s in enumerate(table.source_names):
        weight = "" if prior is None else f"{prior[i]:.6g}"
        lines.append(f"{s},{s.replace('_', ' ').title()},{table.name.split('_')[0]},{weight}")
    write_text(sources_path(ctx.run_dir), "\n".join(lines) + "\n")


def run(config: RunTableConfig, ctx: RunContext) -> dict:
    train, _ = _tables(config, 0)
    _write_sources(ctx, train)
    cfg = asdict(config)
    refs = {t: ctx.path("reference", f"{safe_name(t)}.txt") for t in config.targets}
    ctx.run_units([Unit(f"reference/{t}", fit_reference, {"config": cfg, "target": t, "output": str(p)}, output=p,
                        kind="reference") for t, p in refs.items()], "reference models")
    units = []
    for target in config.targets:
        for trial in range(config.trials):
            for method in config.methods:
                out = mixture_path(ctx.run_dir, Problem(target, trial), method)
                out.parent.mkdir(parents=True, exist_ok=True)
                units.append(Unit(f"{method}/{target}/trial{trial}", solve,
                                  {"config": cfg, "target": target, "method": method, "trial": trial,
                                   "output": str(out), "reference": str(refs[target])}, output=out, kind="mixture"))
    ctx.run_units(units, "mixtures")
    rows, summary = [], {}
    for unit in units:
        saved = read_json(unit.output)
        kw = unit.kwargs
        for metric, value in saved["meta"]["metrics"].items():
            rows.append({"target": kw["target"], "method": kw["method"], "trial": kw["trial"], "metric": metric,
                         "value": value, "compute": saved["meta"].get("compute"),
                         "extra": {"table": config.train_table}})
        if kw["trial"] == 0:
            top = sorted(saved["weights"].items(), key=lambda kv: -kv[1])[:5]
            summary.setdefault(kw["target"], {})[kw["method"]] = {
                "top": {k: round(v, 4) for k, v in top},
                **{k: round(v, 4) for k, v in saved["meta"]["metrics"].items() if v is not None},
            }
    ctx.store.add_results(ctx.run_id, rows)
    return summary
