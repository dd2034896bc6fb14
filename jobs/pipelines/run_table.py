"""The run_table pipeline: search baselines directly on a published table of proxy runs.

A run table maps mixtures to measured losses (RegMix's 1M/60M/1B Pile runs, Olmix's DCLM swarm,
ADMIRE's instruction-tuning runs; see ``mixmin_core.search.run_tables``), or one of your own declared
under ``tables`` (:class:`~mixmin_core.search.run_tables.OwnTable`). Per target and trial
each method picks a mixture (``mixmin_core.search.table_methods``):

* ``natural``: the table's natural weights (no runs spent);
* ``random_search``: look up ``random_search_trials`` runs of the pool (default one per source,
  MixMin's proxy compute), keep the best measured;
* ``regmix``: LightGBM on the pool's runs, mean of the 128 best-predicted of 100,000 candidates;
  its Spearman with held-out runs is ``spearman/<test table>``;
* ``bo``: Gaussian-process BO over the pool's runs; with ``bo_fidelity_tables`` multi-fidelity BO
  that buys smaller-scale runs of pool mixtures itself (none bought up front).

Scores (no method is scored by a model fitted on its own runs): ``measured_loss`` where the choice
is a measured run, ``surrogate:yardstick_loss`` for every method (a ridge model fitted only on
runs no method was given, see ``yardstick``) and ``yardstick_spearman`` (that model's held-out
Spearman). Score tables (ADMIRE) report ``*_score`` instead of ``*_loss``. ``proxy_compute`` is
what a method spent (runs looked up, or the table's published costs); ``final_compute`` is 0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from jobs.config import ExecutionConfig, no_device, setting
from mixmin_core.engine.report import write_report
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import read_json, write_json
from mixmin_core.runs.layout import Problem, mixture_path
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.search.multifidelity import check_fidelity_tables
from mixmin_core.search.run_tables import (
    PRIORS,
    TABLES,
    load_run_table,
    own_tables,
)
from mixmin_core.search.swarm import FAITHFUL_MIN_RUNS, PRESETS
from mixmin_core.search.table_methods import (
    METHODS,
    TEST_SPLIT,
    choose_mixture,
    fit_trial_yardstick,
    orient,
    resolve_yardstick,
    score_mixture,
    trial_runs,
)
from mixmin_core.search.yardstick import MIN_YARDSTICK_RUNS

_METHOD_IDS = {m: i for i, m in enumerate(METHODS)}
#: RegMix's held-out tables: the default test_tables (for RegMix's train table; none for one of your own).
PUBLISHED_TESTS = ["regmix_1m_test", "regmix_60m_test", "regmix_1b_test"]
OWN_TABLE_KEYS = {"name": str, "mixtures": str, "metrics": str, "scale": str, "higher_is_better": bool}
_TABLES = tuple(TABLES)
_PRESETS = (*PRESETS, "auto")  # auto: RegMix's regressor where it can split (47+ runs), else the paper's


@dataclass
class RunTableConfig(ExecutionConfig):
    device: str = no_device()
    tables: list[dict] = setting([], keys=OWN_TABLE_KEYS,  # noqa: RUF009 - setting() returns a dataclasses.field
                                 doc="your own run tables, in RegMix's layout: [{name, mixtures: runs.csv, metrics: "
                                     "metrics.csv, scale: 30M, higher_is_better: false}]; name them below")
    train_table: str = setting("regmix_1m_train", choices=_TABLES, also="tables")
    test_tables: list[str] = setting(None, items={"choices": _TABLES}, also="tables",
                                     doc="scored, never fitted on: held-out runs at the same or other model scales; "
                                         "not given: RegMix's held-out tables, none for a train_table of your own")
    test_fraction: float = setting(0.0, min=0, lt=0.9,
                                   doc="> 0: also hold out this fraction of train_table per trial (test 'test_split')")
    yardstick: str = setting("auto", choices=("auto", TEST_SPLIT, *TABLES), also="tables",
                             doc="runs the yardstick is fitted on, given to no method: auto (a same-scale test "
                                 "table, else test_split), test_split, or a table at train_table's scale")
    targets: list[str] = setting(["pile_cc"], unique=True, doc="metric names of the tables")
    methods: list[str] = setting(["natural", "random_search", "regmix"], items={"choices": METHODS}, unique=True)
    preset: str = setting("auto", choices=_PRESETS, doc="RegMix's regressor (auto: faithful where it can split)")
    prior: str = setting("natural", choices=PRIORS, doc="candidates' Dirichlet prior")
    n_candidates: int = setting(100_000, min=1, max=10_000_000)
    top_k: int = setting(128, min=1, max=100_000)
    random_search_trials: int = setting(0, min=0, max=1_000_000, doc="0: one run per source (compute-matched with MixMin)")
    regmix_runs: int = setting(0, min=0, max=1_000_000, doc="0: all pool runs; else a random subset of this many per trial")
    bo_budget: int = setting(0, min=0, max=1_000_000, doc="train_table runs BO may spend; 0: same as random search")
    bo_init: int = setting(0, min=0, max=10_000, doc="BO's first random runs; 0: one per source (at most half the budget), "
                                          "2 when multi-fidelity")
    bo_fidelity_tables: list[str] = setting([], items={"choices": _TABLES}, also="tables",
                                            doc="smaller-scale runs of pool mixtures BO may buy, e.g. 1M runs")
    bo_fidelity_cost: float = setting(0.0, min=0, max=1, doc="one such run's cost in train_table runs (e.g. 0.0167: a 60th); "
                                                       "0: from the tables' published costs, else their parameter counts")
    n_workers: int = setting(1, min=1, max=256, doc="units take seconds; LightGBM runs single-threaded")

    def __post_init__(self):
        if self.test_tables is None:  # not given: RegMix's held-out runs are the default for published tables only
            mine = isinstance(self.tables, list) and any(
                isinstance(t, dict) and t.get("name") == self.train_table for t in self.tables)
            self.test_tables = [] if mine else list(PUBLISHED_TESTS)
        super().__post_init__()
        self.tables = [asdict(t) for t in own_tables(self.tables, reserved=("auto", TEST_SPLIT))]
        for name in ("targets", "methods"):
            if not getattr(self, name):
                raise ConfigError(f"{name}: must list at least one entry; got [].")
        if self.top_k > self.n_candidates:
            raise ConfigError(f"top_k: must be at most n_candidates ({self.n_candidates}); got {self.top_k}.")


CONFIG = RunTableConfig


def dataset(config: RunTableConfig) -> str:
    return f"run table {config.train_table}" + (f" (tests: {', '.join(config.test_tables)})" if config.test_tables else "")


def _own(cfg: RunTableConfig) -> tuple:
    return own_tables(cfg.tables)


def _runs(cfg: RunTableConfig, trial: int):
    return trial_runs(cfg.train_table, cfg.test_tables, test_fraction=cfg.test_fraction, yardstick=cfg.yardstick,
                      fidelity_tables=cfg.bo_fidelity_tables, seed=cfg.seed, trial=trial, own=_own(cfg))


def validate(config: RunTableConfig) -> None:
    """Load every table and check targets, the yardstick and run counts before a run folder exists."""
    if config.train_table in config.test_tables:  # its runs are fitted on: a score there is in-sample
        raise ConfigError(f"test_tables: {config.train_table!r} is the train_table, whose runs the methods fit on, so "
                          "scores there would be in-sample; drop it (test_fraction holds out part of train_table).")
    where = resolve_yardstick(config.train_table, config.test_tables, config.test_fraction, config.yardstick,
                              _own(config))
    if where in config.bo_fidelity_tables:
        raise ConfigError(f"yardstick: {where!r} is also in bo_fidelity_tables, so BO would see the yardstick's runs; "
                          "name another yardstick or use test_split.")
    layout.check_target_names(config.targets, "targets")  # each target's files are its own
    runs = _runs(config, 0)
    for table in [runs.pool, runs.yardstick, *runs.tests.values(), *runs.fidelity]:
        for target in config.targets:
            table.target(target)
    for target in config.targets:
        values = runs.pool.target(target)
        if not np.isfinite(values).any():  # searched on nothing; it said "hold 0 runs" further on
            raise InputError(f"targets: {target!r} has no measured value in train_table {config.train_table!r} (its "
                             "column is empty); pick a metric the runs measured.")
        if np.ptp(values[np.isfinite(values)]) == 0:  # every method ties; RegMix "cannot split" said why only there
            raise InputError(f"targets: {target!r} is {values[np.isfinite(values)][0]:g} in every run of train_table "
                             f"{config.train_table!r}: no mixture does better than another; pick a metric that varies.")
    what = (f"the runs test_fraction holds out of {config.train_table!r}" if where == TEST_SPLIT else repr(where))
    n_finite = []
    for trial in range(config.trials):  # the yardstick is fitted when a trial scores its first mixture
        split = runs if trial == 0 else _runs(config, trial)
        yardstick = split.yardstick
        n_finite += [int(np.isfinite(split.pool.target(t)).sum()) for t in config.targets]
        for target in config.targets:
            measured = len(np.unique(yardstick.weights[np.isfinite(yardstick.target(target))], axis=0))
            if measured < MIN_YARDSTICK_RUNS:  # a mixture run more than once counts once
                raise ConfigError(f"yardstick: {what} hold {measured} distinct mixtures with a measured {target!r} in "
                                  f"trial {trial}; the yardstick needs at least {MIN_YARDSTICK_RUNS}. Hold out more runs "
                                  "(test_fraction) or name a bigger yardstick table.")
    check_fidelity_tables(runs.pool, runs.fidelity, config.targets)
    n_finite = min(n_finite)  # over every trial: a held-out split of repeated mixtures leaves pools of other sizes
    n_random = config.random_search_trials or len(runs.pool.source_names)
    spends = {"random_search_trials": n_random if config.random_search_trials or "random_search" in config.methods or (
        "bo" in config.methods and not config.bo_budget) else 0,  # (a default no method spends is no error)
              "regmix_runs": config.regmix_runs, "bo_budget": config.bo_budget}
    for name, value in spends.items():
        if value > n_finite:
            bo = ", and BO's budget defaults to it: set bo_budget" if "bo" in config.methods and not config.bo_budget else ""
            default = (f" (its default: one per source, {n_random}{bo})"
                       if name == "random_search_trials" and not config.random_search_trials else "")
            raise ConfigError(f"{name}: must be at most the {n_finite} training runs with a measured target; got "
                              f"{value}{default}.")
    if config.regmix_runs == 1 and "regmix" in config.methods:
        raise ConfigError("regmix_runs: RegMix fits a regression model on its runs, so it needs at least 2 "
                          "(0: every pool run); got 1.")
    n_regmix = config.regmix_runs or n_finite
    if "regmix" in config.methods and config.preset == "faithful" and n_regmix < FAITHFUL_MIN_RUNS:
        raise ConfigError(f"preset: 'faithful' cannot fit RegMix's regressor on {n_regmix} runs (its LightGBM needs at "
                          f"least {FAITHFUL_MIN_RUNS} to split, and would choose arbitrarily); use preset: auto.")
    bo_budget = config.bo_budget or n_random
    if "bo" in config.methods and config.bo_init > bo_budget:
        raise ConfigError(f"bo_init: BO's {config.bo_init} random first runs exceed its budget of {bo_budget} "
                          f"(bo_budget{'' if config.bo_budget else ', as random search'}), so it would be random search; "
                          f"lower bo_init or raise bo_budget.")


def solve(*, config: dict, target: str, method: str, trial: int, output: str) -> dict:
    """One method on one target and trial: choose a mixture, score it, save its MixtureResult."""
    cfg = RunTableConfig(**config)
    runs = _runs(cfg, trial)
    rng = np.random.default_rng([cfg.seed, trial, _METHOD_IDS[method]])
    result = choose_mixture(method, runs, target, rng=rng, prior=cfg.prior, preset=cfg.preset,
                            n_candidates=cfg.n_candidates, top_k=cfg.top_k, n_random=cfg.random_search_trials,
                            regmix_runs=cfg.regmix_runs, bo_budget=cfg.bo_budget, bo_init=cfg.bo_init,
                            fidelity_cost=cfg.bo_fidelity_cost)
    metrics = score_mixture(result, fit_trial_yardstick(runs, target, seed=cfg.seed + trial), f"{target} trial {trial}: ")
    metrics = orient(metrics, runs.pool.higher_is_better)
    result.meta.update(metrics=metrics, target=target, trial=trial, table=runs.pool.name, scale=runs.pool.scale,
                       yardstick_runs=runs.yardstick.name)
    write_json(output, result.to_dict())
    return {k: v for k, v in metrics.items() if np.isfinite(v)}


def _write_sources(run_dir, table) -> None:
    import pandas as pd

    prior = table.natural_weights
    family = table.name.split("_")[0] if table.name in TABLES else table.name  # regmix, olmix, admire; or yours
    layout.write_sources(run_dir, pd.DataFrame({
        "source": list(table.source_names), "title": [s.replace("_", " ").title() for s in table.source_names],
        "category": family, "natural_weight": [None] * len(table.source_names) if prior is None else
        [float(f"{p:.6g}") for p in prior]}))


def run(config: RunTableConfig, ctx: RunContext) -> dict:
    table = load_run_table(config.train_table, own=_own(config))
    _write_sources(ctx.run_dir, table)
    # RegMix's own prediction had one name for a loss and a score before stop 25; a resumed run's mixtures keep it
    renamed = {"surrogate:own_prediction": f"surrogate:own_prediction_{'score' if table.higher_is_better else 'loss'}"}
    cfg = asdict(config)
    units = []
    for target in config.targets:
        for trial in range(config.trials):
            for method in config.methods:
                out = mixture_path(ctx.run_dir, Problem(target, trial), method)
                out.parent.mkdir(parents=True, exist_ok=True)
                units.append(Unit(f"{method}/{target}/trial{trial}", solve,
                                  {"config": cfg, "target": target, "method": method, "trial": trial,
                                   "output": str(out)}, output=out, kind="mixture"))
    ctx.run_units(units, "mixtures")
    rows, summary = [], {}
    for unit in units:
        saved, kw = read_json(unit.output), unit.kwargs
        compute = float(saved["meta"].get("compute") or 0.0)
        for metric, value in saved["meta"]["metrics"].items():
            rows.append({"trial": kw["trial"], "target": kw["target"], "variant": "", "method": kw["method"],
                         "metric": renamed.get(metric, metric), "value": value, "proxy_compute": compute, "final_compute": 0.0,
                         "table": config.train_table})
        if kw["trial"] == 0:
            top = sorted(saved["weights"].items(), key=lambda kv: -kv[1])[:5]
            summary.setdefault("targets", {}).setdefault(kw["target"], {})[kw["method"]] = {
                "top": {k: round(v, 4) for k, v in top},
                **{k: round(v, 4) for k, v in saved["meta"]["metrics"].items() if v is not None},
            }
    write_report(ctx.run_dir, rows, reference="natural")
    # what the Compare page opens on: the one score every method has (only the searches measure a run)
    return {"metric": f"surrogate:yardstick_{'score' if table.higher_is_better else 'loss'}", **summary}
