"""The chemistry pipeline: for a target assay, which other assays to borrow training data from.

The config says what to compare; :mod:`mixmin_core.chem.experiment` supplies the adapters and
:mod:`mixmin_core.engine.experiment` runs the plan (targets x source-count or budget variants x
trials), writing ``results.csv`` and ``summary.csv`` (test-split average precision).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jobs.config import MAX_TREES, setting
from mixmin_core.chem.experiment import (
    VALIDATE_PARSE_MOLECULES,
    ChemData,
    ChemDomain,
    ChemModels,
    check_budget_sweep,
    load_metadata,
    load_table,
    make_plan,
    parsed_molecules,
    plan_fit_rows,
)
from mixmin_core.chem.fingerprints import check_smiles
from mixmin_core.engine.experiment import Settings, run_experiment
from mixmin_core.engine.methods import METHODS, REGMIX_PRESETS
from mixmin_core.errors import ConfigError
from mixmin_core.runs.runner import RunContext

from ._chem_base import ChemDataConfig


@dataclass
class ChemConfig(ChemDataConfig):
    assays: list[str] = setting([], unique=True, doc="restrict the table to these assays (order kept); [] = all")
    targets: list[str] = setting([], unique=True, doc="target assays; [] = the first n_targets assays")
    n_targets: int = setting(10, min=1, max=10_000)
    source_counts: list[int | str] = setting([10, 100, "all"], unique=True,
                                             doc="sources = the first k assays (minus the target)")
    proxy_budgets: list[float] = setting([], items={"gt": 0, "max": 100}, unique=True,
                                         doc="compute sweep: proxies together cost b x one final model, per b")
    include_target: bool = setting(False, doc="the target's own fit split is one more source")
    drop_target_test_molecules: bool = setting(False, doc="remove the targets' test molecules from every source")
    test_fraction: float = setting(0.2, gt=0, lt=1, doc="per assay 80/20 train/test ...")
    val_fraction: float = setting(0.2, gt=0, lt=1, doc="... and train 80/20 fit/validation (the paper's 64/16/20)")
    radius: int = setting(2, min=0, max=6, doc="ECFP4: Morgan radius 2")
    n_bits: int = setting(2048, min=8, max=1 << 16, doc="bits of each Morgan fingerprint")
    proxy_trees: int = setting(50, min=1, max=MAX_TREES, doc="cheap proxy: 50 trees of depth 6 (tune: the paper's CV grid)")
    proxy_depth: int = setting(6, min=1, max=20)
    tune: bool = setting(False, doc="5-fold CV over trees {10,50,100} x depth {4,6,8} for proxies and target-only")
    final_trees: int = setting(100, min=1, max=MAX_TREES, doc="the paper's final models: 100 trees, depth 6")
    final_depth: int = setting(6, min=1, max=20)
    max_final_rows: int = setting(0, min=0, max=100_000_000, doc="0 = every row of every source (the paper); N = draw N rows")
    methods: list[str] = setting([m for m in METHODS if m != "bo"], items={"choices": METHODS}, unique=True)
    search_max_sources: int = setting(100, min=0, max=1_000_000, doc="search methods only where a problem has <= this many sources")
    search_trees: int = setting(0, min=0, max=MAX_TREES, doc="trees per search proxy (0 = the proxies')")
    search_rows: int = setting(0, min=0, max=100_000_000, doc="rows per search proxy (0 = a mean source's: one costs one proxy)")
    regmix_preset: str = setting("auto", choices=REGMIX_PRESETS, doc="auto: faithful at 47+ runs")
    regmix_candidates: int = setting(100_000, min=128, max=10_000_000,
                                     doc="mixtures RegMix draws and ranks by its regressor; it takes the mean of the best 128")
    bo_init: int = setting(0, min=0, max=10_000, doc="BO's initial random mixtures (0 = half its runs)")
    step_size: float = setting(1.0, gt=0, max=1e6, doc="MixMin entropic mirror descent (paper: 1.0, 100 steps)")
    max_iter: int = setting(100, min=1, max=100_000)
    n_boot: int = setting(100, min=0, max=10_000, doc="bootstrap resamples for weight intervals (0 = none)")
    top_k: int = setting(10, min=1, max=100_000)
    xgb_threads: int = setting(1, min=1, max=256, doc="threads per XGBoost model (units already run in n_workers processes)")

    def __post_init__(self):
        super().__post_init__()
        if "mixmin" not in self.methods:
            raise ConfigError(f"methods: must include 'mixmin'; got {self.methods!r}.")
        bad = [c for c in self.source_counts if c != "all" and (not isinstance(c, int) or c < 2)]
        if not self.source_counts or bad:
            raise ConfigError(f"source_counts: must be a non-empty list of integers >= 2 or 'all'; got {self.source_counts!r}.")
        if self.n_boot == 1:
            raise ConfigError("n_boot: must be 0 (no intervals) or at least 2; got 1.")
        if self.proxy_budgets and len(self.source_counts) != 1:
            raise ConfigError(f"proxy_budgets: sweeps compute at one source count; set source_counts to one value "
                              f"(e.g. [100]); got {self.source_counts!r}.")
        if self.proxy_budgets and self.tune:
            raise ConfigError("proxy_budgets: sets the proxies' trees and rows; it cannot be combined with tune: true.")

    @property
    def data(self) -> ChemData:
        return dataclasses.replace(super().data, assays=tuple(self.assays))


CONFIG = ChemConfig

def dataset(config: ChemConfig) -> str:
    n = len(config.targets) or config.n_targets
    return f"{config.path or config.dataset} (chemistry, {n} target{'s' * (n != 1)})"


def validate(config: ChemConfig) -> None:
    """Read the table and metadata and check targets, source counts and assays before any run folder exists."""
    table = load_table(config.data)
    where = f"{table.path}: column {config.smiles_column!r}"
    check_smiles(table.smiles, where=where)
    # a table of modest size has every molecule parsed now (seconds; the run reads them from the cache), so a target
    # whose positives do not parse fails here; a larger one (minutes) is parsed when the run starts
    valid = parsed_molecules(table, radius=config.radius, n_bits=config.n_bits, limit=VALIDATE_PARSE_MOLECULES)
    plan, _ = make_plan(table, targets=config.targets, n_targets=config.n_targets, source_counts=config.source_counts,
                        proxy_budgets=config.proxy_budgets, trials=config.trials, include_target=config.include_target,
                        test_fraction=config.test_fraction, val_fraction=config.val_fraction, valid=valid)
    if config.proxy_budgets:  # budgets the row floor makes one set of proxies (the run checks its own splits again)
        check_budget_sweep(config.proxy_budgets, plan_fit_rows(table, plan, valid, test_fraction=config.test_fraction,
                                                               val_fraction=config.val_fraction),
                           final_trees=config.final_trees, max_final_rows=config.max_final_rows)
    load_metadata(config.data)


def run(config: ChemConfig, ctx: RunContext) -> dict:
    models = ChemModels(**{k: getattr(config, k) for k in ChemModels.__dataclass_fields__ if hasattr(config, k)})
    domain = ChemDomain(ctx, load_table(config.data), config.data, models, targets=config.targets,
                        n_targets=config.n_targets, source_counts=config.source_counts,
                        proxy_budgets=config.proxy_budgets, trials=config.trials, include_target=config.include_target)
    settings = Settings(methods=tuple(config.methods), seed=config.seed, step_size=config.step_size,
                        max_iter=config.max_iter, n_boot=config.n_boot, top_k=config.top_k,
                        regmix_preset=config.regmix_preset, regmix_candidates=config.regmix_candidates,
                        search_max_sources=config.search_max_sources, bo_init=config.bo_init, reference="natural")
    return run_experiment(domain, ctx, domain.plan, settings)
