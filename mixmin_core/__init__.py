"""mixmin_core: data mixtures by convex minimisation over cached proxy-model outputs.

>>> from mixmin_core import ProxyOutputs, mixmin
"""
from .baselines import balanced, fixed_mixture, mixture_loss, natural
from .bootstrap import BootstrapResult, bootstrap_weights
from .errors import ConfigError, InputError, MixminError
from .proxy_outputs import ProxyOutputs
from .results import MixtureResult, Status, mean_ci, summarize, welch_pvalue
from .solvers import Iterate, mixmin

__all__ = [
    "BootstrapResult", "ConfigError", "InputError", "Iterate", "MixminError", "MixtureResult",
    "ProxyOutputs", "Status", "balanced", "bootstrap_weights", "fixed_mixture", "mean_ci",
    "mixmin", "mixture_loss", "natural", "summarize", "welch_pvalue",
]
