"""Closed-form baselines and evaluating an arbitrary mixture on the MixMin objective."""
from __future__ import annotations

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.objectives import make_objective
from mixmin_core.solver.proxy_outputs import ProxyOutputs
from mixmin_core.solver.results import MixtureResult
from mixmin_core.solver.simplex import frank_wolfe_gap, uniform
from mixmin_core.solver.validation import by_source, check_outputs, check_simplex


def mixture_loss(outputs: ProxyOutputs, weights) -> float:
    """The MixMin objective of ``outputs`` at ``weights`` (shape ``(n_sources,)`` in source order, or a dict /
    Series keyed by source name; on the simplex)."""
    check_outputs(outputs)
    w = check_simplex("weights", by_source("weights", weights, outputs.source_names, mixture=True), outputs.n_sources)
    return float(make_objective(outputs).loss(w))


def fixed_mixture(outputs: ProxyOutputs, weights, method: str, meta: dict | None = None) -> MixtureResult:
    """Wrap given weights (in source order, or keyed by source name) as a ``MixtureResult`` scored on ``outputs``
    (loss and gap filled in)."""
    check_outputs(outputs)
    if not isinstance(method, str) or not method:
        raise InputError(f"method must be a non-empty string naming the mixture; got {method!r}.")
    if meta is not None and not isinstance(meta, dict):
        raise InputError(f"meta must be a dict or None; got {type(meta).__name__}.")
    w = check_simplex("weights", by_source("weights", weights, outputs.source_names, mixture=True), outputs.n_sources)
    loss, grad = make_objective(outputs).loss_grad(w)
    return MixtureResult(
        weights=w, source_names=outputs.source_names, loss=float(loss),
        gap=float(frank_wolfe_gap(w, grad)), method=method, meta=dict(meta or {}),
        trajectory=w[None, :], losses=np.array([float(loss)]),
        message=f"{method} mixture (not optimised)",
    )


def balanced(outputs: ProxyOutputs) -> MixtureResult:
    """Every source the same weight."""
    check_outputs(outputs)
    return fixed_mixture(outputs, uniform(outputs.n_sources), "balanced")


def natural(outputs: ProxyOutputs) -> MixtureResult:
    """Sources in proportion to their size (``outputs.natural_weights``).

    Raises
    ------
    InputError
        If the outputs carry no natural weights.
    """
    check_outputs(outputs)
    if outputs.natural_weights is None:
        raise InputError("natural needs outputs.natural_weights (source sizes); the proxy outputs have none.")
    return fixed_mixture(outputs, outputs.natural_weights, "natural")
