"""The synthetic pipeline: a well-specified categorical mixture with known true weights.

Units: one proxy per source (a smoothed density estimated from that source's samples). Then,
per trial, a seeded 80/20 split of the target: MixMin, natural and balanced weights fitted on
80%, scored by held-out NLL on 20% and by L1 distance to the true weights.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from jobs.config import ExecutionConfig, no_device, setting
from mixmin_core import balanced, mixmin, mixture_loss, natural
from mixmin_core.engine.report import convergence_warning, write_report
from mixmin_core.errors import ConfigError
from mixmin_core.runs.fileio import atomic_path, write_json
from mixmin_core.runs.layout import Problem, mixture_path, outputs_path
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.solver.synthetic import (
    categorical_outputs,
    categorical_sources,
    estimate_density,
    sample_mixture,
)


@dataclass
class SyntheticConfig(ExecutionConfig):
    device: str = no_device()
    n_sources: int = setting(6, min=2, max=10_000)
    n_categories: int = setting(40, min=2, max=1_000_000)
    source_samples: int = setting(5000, min=1, max=10_000_000, doc="samples per source that its proxy is estimated from")
    target_samples: int = setting(3000, min=10, max=10_000_000, doc="split 80/20 into fit and held-out samples per trial")
    step_size: float = setting(1.0, gt=0, max=1e6, doc="MixMin's entropic mirror descent step")
    max_iter: int = setting(200, min=1, max=1_000_000)
    n_workers: int = setting(1, min=1, max=256, doc="proxies take milliseconds: processes would cost more than they save")


CONFIG = SyntheticConfig
log = logging.getLogger("mixmin.synthetic")
#: Largest proxy-output matrix (sources x categories, sources x target samples) a run may build.
MAX_CELLS = 100_000_000


def validate(config: SyntheticConfig) -> None:
    """Refuse sizes whose matrices would not fit in memory, before any run folder exists."""
    for other in ("n_categories", "target_samples"):
        cells = config.n_sources * getattr(config, other)
        if cells > MAX_CELLS:
            raise ConfigError(f"n_sources x {other} is {cells:,} cells; at most {MAX_CELLS:,} fit a synthetic run. "
                              f"Lower n_sources or {other}.")


def dataset(config: SyntheticConfig) -> str:
    return f"synthetic categorical ({config.n_sources} sources)"


def _world(config):
    rng = np.random.default_rng(config.seed)
    dists = categorical_sources(config.n_sources, config.n_categories, rng)
    true_w = rng.dirichlet(np.ones(config.n_sources))
    # at least one sample each: source_samples 1 drew from [0, 1], and a source of 0 samples has no density
    sizes = rng.integers(max(1, config.source_samples // 2), config.source_samples + 1, config.n_sources)
    return dists, true_w, sizes


def train_proxy(*, source: int, config: dict, output: str) -> dict:
    """Estimate one source's density from its own samples; write it to ``output`` (.npy)."""
    cfg = SyntheticConfig(**config)
    dists, _, sizes = _world(cfg)
    rng = np.random.default_rng([cfg.seed, 1, source])
    samples = rng.choice(cfg.n_categories, size=int(sizes[source]), p=dists[source])
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, estimate_density(samples, cfg.n_categories).astype(np.float64))
    return {"rows": int(sizes[source])}


def run(config: SyntheticConfig, ctx: RunContext) -> dict:
    dists, true_w, sizes = _world(config)
    names = [f"source_{i}" for i in range(config.n_sources)]
    units = [Unit(f"proxy/{n}", train_proxy, {"source": i, "config": asdict(config),
                                               "output": str(ctx.path("proxies", f"{n}.npy"))},
                  output=ctx.path("proxies", f"{n}.npy"), kind="proxy") for i, n in enumerate(names)]
    ctx.run_units(units, "proxies")
    densities = np.stack([np.load(u.output) for u in units])
    rows, summary = [], {"true_weights": dict(zip(names, true_w.round(4).tolist()))}
    for trial in range(config.trials):
        rng = np.random.default_rng([config.seed, 2, trial])
        target = sample_mixture(dists, true_w, config.target_samples, rng)
        order = rng.permutation(target.size)
        n_fit = int(0.8 * target.size)
        fit, test = target[order[:n_fit]], target[order[n_fit:]]
        outputs = categorical_outputs(densities, fit, source_names=names, natural_weights=sizes,
                                      meta={"dataset": "synthetic", "trial": trial, "split": "fit"})
        problem = Problem("target", trial)
        outputs.save(outputs_path(ctx.run_dir, problem))
        test_outputs = categorical_outputs(densities, test, source_names=names)
        solved = mixmin(outputs, step_size=config.step_size, max_iter=config.max_iter)
        unconverged = convergence_warning(solved)
        if unconverged:  # as the chem and LM engines log it
            log.warning("trial %d: MixMin %s", trial, unconverged)
        for result in (solved, natural(outputs), balanced(outputs)):
            write_json(mixture_path(ctx.run_dir, problem, result.method), result.to_dict())
            heldout = mixture_loss(test_outputs, result.weights)
            spent = float(sizes.sum()) if result.method == "mixmin" else 0.0  # natural and balanced train no proxy
            rows += [
                {"target": "target", "method": result.method, "trial": trial, "metric": "heldout_nll",
                 "value": heldout, "proxy_compute": spent},
                {"target": "target", "method": result.method, "trial": trial, "metric": "weight_l1_error",
                 "value": float(np.abs(result.weights - true_w).sum()), "proxy_compute": spent},
            ]
    write_report(ctx.run_dir, rows, reference="natural")
    return summary

