"""mixmin_core: data mixtures by convex minimisation over cached proxy-model outputs.

>>> from mixmin_core import ProxyOutputs, mixmin
"""
from mixmin_core.errors import ConfigError, InputError, MixminError
from mixmin_core.solver.baselines import balanced, fixed_mixture, mixture_loss, natural
from mixmin_core.solver.bootstrap import BootstrapResult, bootstrap_weights
from mixmin_core.solver.multi_target import mixmin_multi
from mixmin_core.solver.pareto import cross_target_table, pareto_front
from mixmin_core.solver.proxy_outputs import ProxyOutputs
from mixmin_core.solver.results import (
    MixtureResult,
    Status,
    mean_ci,
    mean_over_targets,
    paired_pvalue,
    summarize,
    welch_pvalue,
)
from mixmin_core.solver.solvers import Iterate, mixmin

__all__ = [
    "BootstrapResult", "ConfigError", "InputError", "Iterate", "MixminError", "MixtureResult",
    "ProxyOutputs", "Status", "balanced", "bootstrap_weights", "fixed_mixture", "mean_ci",
    "mean_over_targets", "mixmin", "mixture_loss", "natural", "paired_pvalue", "summarize", "welch_pvalue",
    "cross_target_table", "mixmin_multi", "pareto_front",
]
