"""Trade-offs between targets: the Pareto front of mixtures and the cross-target table.

Every target loss is convex in the weights, so the set of reachable loss vectors (plus the positive
orthant) is convex and every Pareto-optimal mixture minimises some weighted sum of the target
losses. Sweeping the target weights over a grid therefore traces the front with
:func:`~mixmin_core.solver.multi_target.mixmin_multi` (mode "mean"), each solve warm-started from
its neighbour.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.multi_target import check_targets, mixmin_multi
from mixmin_core.solver.objectives import make_objective
from mixmin_core.solver.results import MixtureResult
from mixmin_core.solver.solvers import mixmin
from mixmin_core.solver.validation import check_simplex


def target_weight_grid(n_targets: int, n_points: int) -> np.ndarray:
    """Target weights on a regular grid of the simplex: ``n_points`` per edge, shape (G, n_targets).

    Two targets give ``n_points`` rows from ``(1, 0)`` to ``(0, 1)``; three give
    ``n_points (n_points + 1) / 2`` rows.
    """
    k = n_points - 1
    rows = [c for c in itertools.product(range(k + 1), repeat=n_targets - 1) if sum(c) <= k]
    return np.array([[k - sum(c), *c] for c in rows], dtype=np.float64) / k


def pareto_front(outputs_list, *, n_points: int = 11, normalise: bool = False, step_size: float = 1.0,
                 max_iter: int = 1000, tol: float = 1e-5, caps=None) -> list[MixtureResult]:
    """Mixtures trading one target's loss for another's, for two or three targets.

    Parameters
    ----------
    outputs_list : two or three targets' ProxyOutputs (a list, or ``{target name: ProxyOutputs}``).
    n_points : int >= 2, grid points per edge of the target-weight simplex (2 targets: ``n_points``
        mixtures; 3 targets: ``n_points (n_points + 1) / 2``).
    normalise, step_size, max_iter, tol, caps : as in :func:`mixmin_multi`.

    Returns
    -------
    list of MixtureResult
        One per grid point, in grid order (two targets: from the first target's best mixture to the
        second's); each has ``target_losses`` and ``meta["target_weights"]``.

    Raises
    ------
    InputError
        For fewer than two or more than three targets, or a bad ``n_points``.
    """
    targets = check_targets(outputs_list, normalise=normalise)
    if targets.n_targets not in (2, 3):
        raise InputError(f"pareto_front traces two or three targets; got {targets.n_targets}. "
                         "For more targets compare them with cross_target_table.")
    if not (isinstance(n_points, (int, np.integer)) and 2 <= n_points <= 201):
        raise InputError(f"n_points must be an integer between 2 and 201; got {n_points!r}.")
    named = dict(zip(targets.names, targets.outputs))
    front, init = [], None
    for a in target_weight_grid(targets.n_targets, int(n_points)):
        result = mixmin_multi(named, mode="mean", target_weights=a, normalise=normalise, step_size=step_size,
                              max_iter=max_iter, tol=tol, caps=caps, init=init)
        front.append(result)
        # warm start from the neighbour, kept strictly positive so no source is lost for good
        init = 0.99 * result.weights.astype(np.float64) + 0.01 / len(result.weights)
    return front


def dominated(losses) -> np.ndarray:
    """Which rows of ``losses`` (mixtures x targets) another row beats: no worse on every target and better
    on one. A front whose solves stopped at ``max_iter`` can hold such points; they are not on the front."""
    L = np.asarray(losses, dtype=np.float64)
    if L.ndim != 2:
        raise InputError(f"losses must be a (mixtures, targets) table; got shape {L.shape}.")
    no_worse = (L[None, :, :] <= L[:, None, :]).all(axis=2)  # [i, j]: j is no worse than i everywhere
    better = (L[None, :, :] < L[:, None, :]).any(axis=2)
    return (no_worse & better).any(axis=1)


def pareto_frame(front: list[MixtureResult]):
    """A front as a table for plotting: one row per mixture with each target's loss, the target
    weights that produced it (``weight:<target>``) and the certificate ``gap``."""
    import pandas as pd

    rows = []
    for r in front:
        if not isinstance(r, MixtureResult) or r.target_losses is None:
            raise InputError("front must be the list pareto_front returns (MixtureResults with target_losses).")
        a = r.meta.get("target_weights") or [float("nan")] * len(r.target_losses)
        rows.append({**r.target_losses, **{f"weight:{t}": float(x) for t, x in zip(r.target_losses, a)},
                     "gap": float(r.gap)})
    return pd.DataFrame(rows)


def cross_target_table(outputs_list, results=None, *, normalise: bool = False, step_size: float = 1.0,
                       max_iter: int = 1000, tol: float = 1e-5):
    """How each target fares under each mixture: rows are mixtures, columns targets.

    Parameters
    ----------
    outputs_list : the targets' ProxyOutputs (a list, or ``{target name: ProxyOutputs}``).
    results : ``{label: MixtureResult}`` or a list of MixtureResult (labelled by ``method``), over the
        same sources. Default: each target's own MixMin mixture (``"<target> (own)"``), the joint
        mixtures ``"joint (mean)"`` and ``"joint (worst)"``, and ``"natural"`` when the outputs carry
        natural weights.
    normalise : divide each target's loss by its natural-mixture loss (1.0 = as good as natural).
    step_size, max_iter, tol : for the default mixtures.

    Returns
    -------
    pandas.DataFrame
        Index ``mixture``; one column per target with its loss, then ``mean`` and ``worst`` over targets.

    Raises
    ------
    InputError
        For mismatched sources or a result that is not a MixtureResult.
    """
    import pandas as pd

    targets = check_targets(outputs_list, normalise=normalise)
    if results is None:
        results = default_mixtures(outputs_list, normalise=normalise, step_size=step_size, max_iter=max_iter, tol=tol)
    rows = {}
    for label, result in _labelled(results).items():
        w = _reorder(result, targets.source_names, label)
        losses = [float(make_objective(o).loss(w)) / s for o, s in zip(targets.outputs, targets.scales)]
        rows[label] = {**dict(zip(targets.names, losses)), "mean": float(np.mean(losses)), "worst": max(losses)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "mixture"
    return frame


def default_mixtures(outputs_list, *, normalise: bool = False, **solver) -> dict:
    """:func:`cross_target_table`'s rows by default: ``{"<target> (own)": MixtureResult, "joint (mean)": ...,
    "joint (worst)": ..., "natural": ...}`` (natural where the outputs carry natural weights), each solved with
    ``solver`` (``step_size``, ``max_iter``, ``tol``); a result's ``status`` says whether it converged."""
    targets = check_targets(outputs_list, normalise=normalise)
    named = dict(zip(targets.names, targets.outputs))
    out = {f"{name} (own)": mixmin(o, **solver) for name, o in named.items()}
    out["joint (mean)"] = mixmin_multi(named, mode="mean", normalise=normalise, **solver)
    out["joint (worst)"] = mixmin_multi(named, mode="worst", normalise=normalise, **solver)
    natural = targets.outputs[0].natural_weights
    if natural is not None:
        out["natural"] = MixtureResult(weights=natural, source_names=targets.source_names, method="natural")
    return out


def _labelled(results) -> dict:
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        items, seen = [], {}
        for r in results:
            label = getattr(r, "method", "mixture")
            seen[label] = seen.get(label, 0) + 1
            items.append((label if seen[label] == 1 else f"{label} #{seen[label]}", r))
    else:
        raise InputError(f"results must be a dict {{label: MixtureResult}} or a list of MixtureResult; "
                         f"got {type(results).__name__}.")
    for label, r in items:
        if not isinstance(r, MixtureResult):
            raise InputError(f"results[{label!r}] must be a MixtureResult; got {type(r).__name__}.")
    return dict(items)


def _reorder(result: MixtureResult, source_names: tuple, label: str) -> np.ndarray:
    """``result``'s weights in ``source_names``' order; all NaN for a result without a mixture (a failed
    search), which scores NaN. Weights off the simplex are an error (they scored a cross-entropy below 0)."""
    weights = np.asarray(result.weights, dtype=np.float32)
    if not (weights.shape == (len(result.source_names),) and np.isnan(weights).all()):
        check_simplex(f"results[{label!r}].weights", weights, len(result.source_names))  # scored as they are
    if tuple(result.source_names) == tuple(source_names):
        return weights
    index = {n: i for i, n in enumerate(result.source_names)}
    missing = [s for s in source_names if s not in index]
    if missing or len(index) != len(source_names):
        raise InputError(f"results[{label!r}] has weights for other sources than the targets' "
                         f"(missing {missing[:5]}); solve it on the same sources.")
    return weights[[index[s] for s in source_names]]
