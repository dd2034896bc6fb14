"""Multi-target MixMin: one mixture for several targets scored over the same sources.

Write ``L_t(w)`` for target t's MixMin objective and ``s_t`` for its scale (1, or its loss at the
natural mixture when ``normalise=True``, so targets on different scales are comparable).

``mode="mean"`` minimises ``sum_t a_t L_t(w) / s_t``: a weighted sum of convex objectives, solved
like :func:`~mixmin_core.mixmin` (entropic mirror descent) and certified by the Frank-Wolfe gap
of the summed gradient.

``mode="worst"`` minimises ``max_t L_t(w) / s_t = min_w max_{lam in simplex} sum_t lam_t L_t(w) / s_t``,
a convex-concave saddle problem, solved by entropic mirror-prox over ``(w, lam)``. Its certificate:
for every ``lam``, ``min_w G_lam(w) <= OPT`` (weak duality), and for every ``v`` convexity gives
``min_w G_lam(w) >= G_lam(v) - FW(v, grad G_lam(v))``. The reported ``gap`` is the best primal value
seen minus the best such lower bound, so it bounds the returned weights' suboptimality.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.constraints import check_caps, linear_min_capped, project_capped
from mixmin_core.solver.objectives import make_objective
from mixmin_core.solver.proxy_outputs import ProxyOutputs
from mixmin_core.solver.results import MixtureResult, Status
from mixmin_core.solver.simplex import entropic_step
from mixmin_core.solver.solvers import (
    Iterate,
    _check_params,
    clip_verdict,
    descend,
    start_weights,
)
from mixmin_core.solver.validation import as_float_array, by_source, check_callback

MODES = ("mean", "worst")


@dataclass(frozen=True, eq=False)
class Targets:
    """Validated targets over one ordered list of sources, with their objectives and scales."""

    names: tuple
    outputs: tuple
    scales: np.ndarray  # (T,) float64: what each target's loss is divided by

    @property
    def source_names(self) -> tuple:
        return self.outputs[0].source_names

    @property
    def n_targets(self) -> int:
        return len(self.names)

    def evaluate(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scaled losses ``(T,)`` and gradients ``(T, P)`` (float64) at float32 ``weights``."""
        losses = np.empty(self.n_targets)
        grads = np.empty((self.n_targets, len(weights)))
        for t, outputs in enumerate(self.outputs):
            loss, grad = make_objective(outputs).loss_grad(weights)
            losses[t], grads[t] = loss, grad
        return losses / self.scales, grads / self.scales[:, None]

    def clipped_gradient(self, weights: np.ndarray) -> tuple[int, np.ndarray]:
        """Per target :meth:`~mixmin_core.solver.objectives.Objective.clipped_gradient`, summed on the losses'
        scale: ``(samples at the clip, (T, P) pull they would add)``."""
        found = [make_objective(outputs).clipped_gradient(weights) for outputs in self.outputs]
        return sum(n for n, _ in found), np.stack([g for _, g in found]) / self.scales[:, None]

    def raw_losses(self, scaled: np.ndarray) -> dict:
        return dict(zip(self.names, map(float, scaled * self.scales)))


def check_targets(outputs_list, *, normalise: bool = False) -> Targets:
    """Validate ``outputs_list`` (a sequence of ProxyOutputs or ``{target name: ProxyOutputs}``).

    Targets must share their set of sources; one scored in another order is reordered to match
    the first. Names come from the mapping's keys, else from ``meta["target"]`` when those are
    present and unique, else ``target_0, target_1, ...``.

    Raises
    ------
    InputError
        For an empty list, an item that is not ProxyOutputs, mismatched sources, or (with
        ``normalise``) a target without natural weights or with a non-positive natural loss.
    """
    if isinstance(outputs_list, Mapping):
        names, items = [str(k) for k in outputs_list], list(outputs_list.values())
        if len(set(names)) != len(names):  # e.g. keys 1 and "1": one target's result would hide the other's
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"outputs_list: target names must stay unique as text; {repeated[:5]} name more "
                             "than one target. Rename the keys.")
    elif isinstance(outputs_list, Sequence) and not isinstance(outputs_list, (str, bytes)):
        items = list(outputs_list)
        meta_names = [o.meta.get("target") if isinstance(o, ProxyOutputs) else None for o in items]
        unique = all(isinstance(n, str) and n for n in meta_names) and len(set(meta_names)) == len(items)
        names = meta_names if unique else [f"target_{i}" for i in range(len(items))]
    else:
        raise InputError(f"outputs_list must be a list of ProxyOutputs or a dict {{target: ProxyOutputs}}; "
                         f"got {type(outputs_list).__name__}.")
    if not items:
        raise InputError("outputs_list must hold at least one target's ProxyOutputs; got none.")
    for i, o in enumerate(items):
        if not isinstance(o, ProxyOutputs):
            raise InputError(f"outputs_list[{i}] ({names[i]}) must be ProxyOutputs; got {type(o).__name__}.")
    items = [items[0]] + [_align(o, items[0], i, names[i]) for i, o in enumerate(items[1:], start=1)]
    if not isinstance(normalise, (bool, np.bool_)):
        raise InputError(f"normalise must be True or False; got {normalise!r}.")
    scales = np.array([_natural_loss(o, i, names[i]) for i, o in enumerate(items)]) if normalise \
        else np.ones(len(items))
    return Targets(tuple(names), tuple(items), scales)


def common_sources(outputs_list):
    """Each target's outputs restricted to the sources every target shares (in the first's order).

    Chemistry targets are scored on the *other* assays, so no two share all their sources; this
    keeps the shared ones (natural weights renormalised) so :func:`mixmin_multi` can compare them.
    Returns a list, or a dict when given a dict.

    Raises
    ------
    InputError
        If fewer than two sources are shared.
    """
    named = isinstance(outputs_list, Mapping)
    items = list(outputs_list.values()) if named else list(outputs_list)
    bad = [i for i, o in enumerate(items) if not isinstance(o, ProxyOutputs)]
    if not items or bad:
        raise InputError(f"outputs_list must be a non-empty list of ProxyOutputs; item(s) {bad[:5]} are not.")
    shared = set.intersection(*(set(o.source_names) for o in items))
    keep = [s for s in items[0].source_names if s in shared]
    if len(keep) < 2:
        raise InputError(f"the targets share {len(keep)} source(s) ({keep}); a mixture needs at least two: pick targets "
                         "whose sources overlap more (in a run, a setting with more sources; a target is no source of "
                         "its own).")
    kept = [o if o.source_names == tuple(keep) else o.select(keep) for o in items]
    return dict(zip(outputs_list, kept)) if named else kept


def _align(outputs: ProxyOutputs, first: ProxyOutputs, i: int, name: str) -> ProxyOutputs:
    if outputs.source_names == first.source_names:
        return outputs
    missing = [s for s in first.source_names if s not in set(outputs.source_names)]
    extra = [s for s in outputs.source_names if s not in set(first.source_names)]
    if missing or extra:
        raise InputError(
            f"outputs_list[{i}] ({name}) is scored on other sources than outputs_list[0]: "
            f"missing {missing[:5]}, extra {extra[:5]}; every target must be scored on the same sources."
        )
    return outputs.select(list(first.source_names))


def _natural_loss(outputs: ProxyOutputs, i: int, name: str) -> float:
    if outputs.natural_weights is None:
        raise InputError(
            f"normalise=True divides each target's loss by its loss at the natural mixture, but "
            f"outputs_list[{i}] ({name}) has no natural_weights; pass normalise=False or give the source sizes."
        )
    loss = float(make_objective(outputs).loss(outputs.natural_weights.astype(np.float32)))
    if not (np.isfinite(loss) and loss > 0):
        raise InputError(
            f"normalise=True needs a positive natural-mixture loss; outputs_list[{i}] ({name}) has {loss!r}. "
            "Use normalise=False for losses that can be zero or negative."
        )
    return loss


def check_target_weights(target_weights, n_targets: int, names=None) -> np.ndarray:
    """Non-negative weights, one per target, with a positive sum; returned normalised (float64). With the targets'
    ``names``, weights keyed by name (a dict or pandas Series) are matched by name."""
    if target_weights is None:
        return np.full(n_targets, 1.0 / n_targets)
    if names is not None:
        target_weights = by_source("target_weights", target_weights, names, of="target",
                                   fix=f"give one weight per target ({list(names)[:5]})", mixture=True)
    a = as_float_array("target_weights", target_weights) if np.ndim(target_weights) == 1 else None
    if a is None or a.shape != (n_targets,):
        raise InputError(f"target_weights must hold {n_targets} numbers (one per target); got {target_weights!r}.")
    if not np.isfinite(a).all() or (a < 0).any() or a.sum() <= 0:
        raise InputError(f"target_weights must be finite, non-negative and not all zero; got {a.tolist()}.")
    return a / a.sum()


def mixmin_multi(outputs_list, *, mode: str = "mean", target_weights=None, normalise: bool = False,
                 step_size: float = 1.0, max_iter: int = 1000, tol: float = 1e-5, init=None, caps=None,
                 callback: Callable[[Iterate], bool | None] | None = None) -> MixtureResult:
    """One mixture for several targets: the weighted mean or the worst of their MixMin losses.

    Parameters
    ----------
    outputs_list : sequence of ProxyOutputs, or ``{target name: ProxyOutputs}``; every target scored
        on the same sources (order may differ).
    mode : "mean" (weighted mean of the target losses) or "worst" (the largest target loss).
    target_weights : (n_targets,) non-negative, or keyed by target name; mode "mean" only; default equal weights.
    normalise : divide each target's loss by its loss at the natural mixture (needs natural weights). The step
        is then ``step_size`` times the harmonic mean of those losses (``meta["step_scale"]``), so normalising
        rescales the objective without slowing the descent.
    step_size, max_iter, tol : as in :func:`~mixmin_core.mixmin`; ``tol`` bounds the certificate.
    init : starting weights ("uniform", "natural" or an array on the simplex, strictly positive).
    caps : per-source upper bounds as in :func:`~mixmin_core.mixmin`.
    callback : called with an :class:`Iterate` per iteration; return True to stop.

    Returns
    -------
    MixtureResult
        ``loss`` is the (scaled) objective at ``weights``; ``target_losses`` each target's own
        (unscaled) loss there; ``gap`` an upper bound on ``loss - optimum``. ``meta`` holds the mode,
        target weights, scales and, for "worst", the averaged target multipliers (which targets bind).

    Raises
    ------
    InputError
        For a bad mode, target list, target weights or solver parameter.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}; got {mode!r}.")
    if mode == "worst" and target_weights is not None:
        raise InputError("target_weights apply to mode='mean' only; the worst case weighs no target above another. "
                         "Use normalise=True to put targets on a common scale.")
    step_size, max_iter, tol = _check_params(step_size, max_iter, tol)
    check_callback("callback", callback)
    targets = check_targets(outputs_list, normalise=normalise)
    a = check_target_weights(target_weights, targets.n_targets, targets.names)
    caps = None if caps is None else check_caps(caps, len(targets.source_names), targets.source_names)
    w = start_weights(targets.outputs[0], init)
    if caps is not None:
        w = project_capped(w, caps).astype(np.float32)
    solve = _solve_mean if mode == "mean" else _solve_worst
    # Dividing the losses by their natural values (~6 nats for text) shrinks the gradient as much, and a fixed
    # number of steps then stopped far from the optimum. The step is taken at the losses' own scale instead:
    # times the (target-weighted) harmonic mean of the natural losses, so equal scales give the raw-loss iterates.
    scale = 1.0 / float((a if mode == "mean" else np.full(targets.n_targets, 1 / targets.n_targets)) @ (1 / targets.scales))
    result = solve(targets, w, a, caps, step_size=step_size * scale, max_iter=max_iter, tol=tol, callback=callback)
    result.meta.update(mode=mode, normalise=bool(normalise), targets=list(targets.names),
                       target_scales=targets.scales.tolist(), step_size=float(step_size), max_iter=int(max_iter),
                       step_scale=scale,
                       caps=None if caps is None else caps.tolist())
    if mode == "mean":
        result.meta["target_weights"] = a.tolist()
    return result


def fw_gap(w: np.ndarray, grad: np.ndarray, caps) -> float:
    """Frank-Wolfe gap ``w.g - min_s s.g`` over the simplex (or the capped simplex), clamped at 0."""
    w64, g64 = np.asarray(w, dtype=np.float64), np.asarray(grad, dtype=np.float64)
    best = g64.min() if caps is None else linear_min_capped(g64, caps)
    return max(0.0, float(w64 @ g64) - float(best))


def _step(w, grad, step_size, caps) -> np.ndarray:
    w = entropic_step(w, grad, step_size)
    return (w if caps is None else project_capped(w, caps)).astype(np.float32, copy=False)


def _solve_mean(targets: Targets, w, a, caps, *, step_size, max_iter, tol, callback) -> MixtureResult:
    def loss_grad(w):
        scaled, grads = targets.evaluate(w)
        return float(a @ scaled), a @ grads

    traj, losses, gaps, status, message = descend(loss_grad, w, step_size=step_size, max_iter=max_iter, tol=tol,
                                                  caps=caps, callback=callback)
    if status == Status.CONVERGED:  # as mixmin: a gap of 0 where clipped samples make the loss flat certifies nothing
        clipped, hidden = targets.clipped_gradient(traj[-1])
        status, message = clip_verdict(clipped, lambda: fw_gap(traj[-1], loss_grad(traj[-1])[1] + a @ hidden, caps), tol,
                                       gaps, (status, message))
    losses = np.asarray(losses)
    pick, best = len(losses) - 1, int(np.nanargmin(losses)) if np.isfinite(losses).any() else len(losses) - 1
    if status != Status.CONVERGED and losses[pick] - losses[best] > 1e-6 * max(1.0, abs(losses[best])):
        pick = best  # a too-large step oscillates: keep the best iterate, as mixmin does
        message += f"; returning iteration {best}, whose loss was lowest (try a smaller step_size)"
    return MixtureResult(
        weights=traj[pick], source_names=targets.source_names, loss=float(losses[pick]), n_iter=len(losses) - 1,
        success=status == Status.CONVERGED, status=status.value, message=message, trajectory=np.stack(traj),
        losses=losses, gaps=np.asarray(gaps), gap=float(gaps[pick]), method="mixmin_joint_mean",
        meta={"iterate": pick}, target_losses=targets.raw_losses(targets.evaluate(traj[pick])[0]),
    )


class _Certificate:
    """Best primal point and best dual lower bound seen so far (worst mode)."""

    def __init__(self, caps):
        self.caps = caps
        self.upper, self.lower = np.inf, -np.inf
        self.weights = self.scaled = None
        self.lower_at = None  # (weights, multipliers) of the best lower bound

    def add(self, w, scaled, grads, multipliers) -> None:
        if not (np.isfinite(scaled).all() and np.isfinite(grads).all()):
            return
        primal = float(scaled.max())
        if primal < self.upper:
            self.upper, self.weights, self.scaled = primal, w, scaled
        for lam in multipliers:  # min_w G_lam >= G_lam(w) - FW gap of G_lam at w, and min_w G_lam <= OPT
            lower = float(lam @ scaled) - fw_gap(w, lam @ grads, self.caps)
            if lower > self.lower:
                self.lower, self.lower_at = lower, (w, lam)

    def restored_gap(self, targets: Targets, hidden: np.ndarray) -> float:
        """The gap with the best lower bound taken again with ``hidden`` (the pull of samples at the clip, (T, P),
        at ``lower_at``'s weights) restored: without it a flat clip can put that bound above the optimum."""
        w, lam = self.lower_at
        scaled, grads = targets.evaluate(w)
        return max(0.0, self.upper - float(lam @ scaled) + fw_gap(w, lam @ (grads + hidden), self.caps))

    @property
    def gap(self) -> float:
        return max(0.0, self.upper - self.lower)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Generalised KL ``sum p log(p/q) - p + q``: >= 0 termwise, so float32 weights that sum to one only
    up to rounding cannot make it negative."""
    p, q = np.asarray(p, dtype=np.float64), np.maximum(np.asarray(q, dtype=np.float64), 1e-300)
    terms = np.where(p > 0, p * np.log(np.maximum(p, 1e-300) / q), 0.0) - p + q
    return float(np.sum(np.maximum(terms, 0.0)))


def _solve_worst(targets: Targets, w, a, caps, *, step_size, max_iter, tol, callback) -> MixtureResult:
    """Entropic mirror-prox on ``min_w max_lam sum_t lam_t L_t(w)``, averaging the half-points.

    The step adapts upwards from ``step_size``: a step is kept when it satisfies mirror-prox's descent
    condition ``eta <F(z_half) - F(z), z_half - z_new> <= KL(z_new, z_half) + KL(z_half, z)`` and then
    grows by ``GROW``; otherwise it is halved (not below ``step_size``) and the iteration redone. The
    certificate does not depend on the steps.
    """
    lam = np.full(targets.n_targets, 1.0 / targets.n_targets)
    w_sum, lam_sum, eta_sum = np.zeros(len(w)), np.zeros(len(lam)), 0.0
    eta, n_evals = float(step_size), 0
    cert = _Certificate(caps)
    traj, losses, gaps = [], [], []
    status, message = Status.MAX_ITER, f"reached max_iter={max_iter} before the duality gap fell to tol={tol:g}"
    scaled, grads = targets.evaluate(w)
    avg32 = w
    for it in range(max_iter + 1):
        scaled_avg, grads_avg = (scaled, grads) if it == 0 else targets.evaluate(avg32)
        cert.add(w, scaled, grads, (lam, lam_sum / eta_sum if eta_sum else lam))
        cert.add(avg32, scaled_avg, grads_avg, (lam_sum / eta_sum if eta_sum else lam,))
        if cert.weights is None:
            status, message = Status.NON_FINITE, "non-finite loss or gradient at the starting weights"
            cert.weights, cert.scaled, cert.upper = w, scaled, float("nan")
            traj.append(w), losses.append(float("nan")), gaps.append(float("nan"))
            break
        traj.append(avg32), losses.append(float(scaled_avg.max())), gaps.append(cert.gap)
        if callback is not None and callback(Iterate(it, cert.weights, cert.upper, cert.gap)):
            status, message = Status.STOPPED_BY_CALLBACK, f"stopped by callback at iteration {it}"
            break
        if cert.gap <= tol:
            status, message = Status.CONVERGED, f"duality gap {cert.gap:.3g} <= tol {tol:g} at iteration {it}"
            clipped, hidden = targets.clipped_gradient(cert.lower_at[0])  # as mixmin's, for the bound's point
            status, message = clip_verdict(clipped, partial(cert.restored_gap, targets, hidden), tol, gaps,
                                           (status, message), gap_name="duality")
            break
        if it == max_iter:
            break
        step = _prox_step(targets, cert, w, lam, scaled, grads, eta, caps, step_size)
        if step is None:
            status, message = Status.NON_FINITE, f"non-finite loss or gradient at iteration {it}; returning the best finite point"
            break
        w, lam, scaled, grads, w_half, lam_half, used, evals = step
        n_evals += evals
        if it >= 8 and (it & (it - 1)) == 0:  # at iterations 8, 16, 32, ...: average the recent half only
            w_sum, lam_sum, eta_sum = np.zeros(len(w)), np.zeros(len(lam)), 0.0
        w_sum, lam_sum, eta_sum = w_sum + used * w_half, lam_sum + used * lam_half, eta_sum + used
        avg32 = (w_sum / w_sum.sum()).astype(np.float32)
        eta = min(used * GROW, MAX_STEP_FACTOR * step_size)
    lam_avg = lam_sum / eta_sum if eta_sum else lam
    return MixtureResult(
        weights=cert.weights, source_names=targets.source_names, loss=float(cert.upper), n_iter=len(losses) - 1,
        success=status == Status.CONVERGED, status=status.value, message=message, trajectory=np.stack(traj),
        losses=np.asarray(losses), gaps=np.asarray(gaps), gap=float(cert.gap), method="mixmin_joint_worst",
        meta={"lower_bound": float(cert.lower), "multipliers": dict(zip(targets.names, map(float, lam_avg))),
              "final_step_size": float(eta), "n_evaluations": n_evals + 2 * len(losses)},
        target_losses=targets.raw_losses(cert.scaled),
    )


#: Factor by which an accepted mirror-prox step grows (a rejected one halves), and its ceiling.
GROW = 1.25
MAX_STEP_FACTOR = 1e4


def _prox_step(targets, cert, w, lam, scaled, grads, eta, caps, floor):
    """One mirror-prox iteration from ``(w, lam)``, halving ``eta`` until the descent condition holds
    or ``eta`` reaches ``floor`` (the caller's step_size: near the optimum float32 noise swamps the
    condition's tiny terms, and the fixed step is what the caller asked for).

    Returns ``(w_new, lam_new, scaled_new, grads_new, w_half, lam_half, eta_used, n_evaluations)``,
    or None on a non-finite evaluation. Every evaluated point also feeds the certificate.
    """
    evals = 0
    while True:
        w_half = _step(w, lam @ grads, eta, caps)
        lam_half = entropic_step(lam, -scaled, eta)
        scaled_half, grads_half = targets.evaluate(w_half)
        w_new = _step(w, lam_half @ grads_half, eta, caps)
        lam_new = entropic_step(lam, -scaled_half, eta)
        scaled_new, grads_new = targets.evaluate(w_new)
        evals += 2
        if not all(np.isfinite(x).all() for x in (scaled_half, grads_half, scaled_new, grads_new)):
            return None
        cert.add(w_half, scaled_half, grads_half, (lam_half,))
        cert.add(w_new, scaled_new, grads_new, (lam_new,))
        dw = (lam_half @ grads_half - lam @ grads) @ (w_half.astype(np.float64) - w_new)
        dl = (scaled - scaled_half) @ (lam_half - lam_new)
        bregman = _kl(w_new, w_half) + _kl(w_half, w) + _kl(lam_new, lam_half) + _kl(lam_half, lam)
        if eta <= floor or eta * (dw + dl) <= bregman:
            return w_new, lam_new, scaled_new, grads_new, w_half, lam_half, eta, evals
        eta = max(floor, 0.5 * eta)
