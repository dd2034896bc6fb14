"""MixMin (the paper's Algorithm 1): entropic mirror descent over cached proxy outputs."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver import kernels
from mixmin_core.solver.constraints import (
    check_caps,
    kl_to_prior,
    linear_min_capped,
    project_capped,
)
from mixmin_core.solver.objectives import make_objective
from mixmin_core.solver.proxy_outputs import ProxyOutputs
from mixmin_core.solver.results import MixtureResult, Status
from mixmin_core.solver.simplex import entropic_step, uniform
from mixmin_core.solver.validation import (
    by_source,
    check_callback,
    check_number,
    check_outputs,
    check_simplex,
)


@dataclass(frozen=True)
class Iterate:
    """What a callback sees at each iteration (``iteration`` 0 is the start)."""

    iteration: int
    weights: np.ndarray
    loss: float
    gap: float


def mixmin(outputs: ProxyOutputs, *, step_size: float = 1.0, max_iter: int = 100, tol: float = 1e-6,
           init=None, callback: Callable[[Iterate], bool | None] | None = None, caps=None,
           prior=None, prior_strength: float = 0.0, storage: str = "float32") -> MixtureResult:
    """Find mixture weights minimising the target loss of the mixed proxies.

    Entropic mirror descent ``w_p <- w_p exp(-step_size g_p) / Z`` from ``init``; stops when the
    Frank-Wolfe gap ``max_p (w.g - g_p)`` (an upper bound on the suboptimality) is <= ``tol``.

    Parameters
    ----------
    outputs : ProxyOutputs, shape (n_sources, n_samples). Memory-mapped values
        (``ProxyOutputs.load(path, mmap=True)``) are streamed block by block, never copied whole.
    step_size : float > 0, default 1.0 (the paper's eta).
    max_iter : int >= 0, default 100 (the paper's number of steps).
    tol : float >= 0, default 1e-6; tolerance on the Frank-Wolfe gap.
    init : None or "uniform" (default), "natural", or an array (n_sources,) on the simplex.
        Weights must be strictly positive for every source to stay reachable.
    callback : called with an :class:`Iterate` after every evaluation; return True to stop.
    caps : None or array (n_sources,) in (0, 1] summing to >= 1: per-source upper bounds
        ``w_p <= caps_p`` (e.g. :func:`~mixmin_core.solver.constraints.availability_caps`). Every step is
        KL-projected onto the capped simplex and the gap is taken over that set; a start that
        breaks a cap is projected too.
    prior, prior_strength : add ``prior_strength * KL(w || prior)`` to the objective (a pull
        towards ``prior``: "natural", "uniform" or an array; default natural if available). A ``prior``
        needs ``prior_strength > 0``. ``loss`` then includes that term (``mixture_loss`` gives the target
        loss alone, comparable with other methods'). The term's gradient grows with ``prior_strength``, so
        a strong pull needs a smaller step (about ``step_size=1 / (1 + prior_strength)``; a ``max_iter``
        result with a large gap says the step is too big).
    storage : "float32" (default) or "float16": keep the solver's copy of a large many-source matrix in
        float16 (half the memory and the bytes read per iteration, float32 arithmetic; weights within
        ~1e-3 L1 of float32's on the benchmark problems). Used only where that copy is made (see
        :func:`~mixmin_core.solver.objectives.make_objective`); ``result.meta["storage"]`` says what was.

    Returns
    -------
    MixtureResult
        ``weights`` is the last iterate, or, if the run did not converge and an earlier iterate
        had a clearly lower loss (a too-large step oscillates), that best iterate; so the loss
        never exceeds the start's. ``trajectory``/``losses``/``gaps`` hold every iterate. Hitting ``max_iter`` gives
        ``success=False``; a non-finite loss or gradient ends with status ``non_finite``. A gap that fell to ``tol``
        where some samples' mixed probability (binary) or density (loglik) is clipped is no certificate (the clip
        makes the loss flat there) unless the gap with their pull restored (the tangent of the loss at the clip)
        is within ``tol`` too; otherwise status ``clipped``, ``success=False``.

    Raises
    ------
    InputError
        If ``outputs`` is not a ``ProxyOutputs``, or for a bad ``step_size``, ``max_iter``, ``tol``,
        ``init``, ``callback``, ``caps``, ``prior``, ``prior_strength`` or ``storage``; the message names it.
    """
    check_outputs(outputs)
    step_size, max_iter, tol = _check_params(step_size, max_iter, tol)
    check_callback("callback", callback)
    caps = None if caps is None else check_caps(caps, outputs.n_sources, outputs.source_names)
    prior = _prior(outputs, prior, prior_strength)
    w = start_weights(outputs, init)
    if caps is not None:
        w = project_capped(w, caps).astype(np.float32)
    objective = make_objective(outputs, storage=storage)

    def loss_grad(w):
        loss, grad = objective.loss_grad(w)
        loss = float(loss)
        if prior_strength:
            loss += prior_strength * kl_to_prior(w, prior)
            grad = grad + np.float32(prior_strength) * (np.log(np.maximum(w, 1e-30) / prior) + 1).astype(np.float32)
        return loss, grad

    plain = caps is None and callback is None and not prior_strength
    compiled = objective.descend(w, step_size, max_iter, tol) if plain else None
    if compiled is None:
        traj, losses, gaps, status, message = descend(loss_grad, w, step_size=step_size, max_iter=max_iter, tol=tol,
                                                      caps=caps, callback=callback)
    else:
        traj, losses, gaps, status, message = _compiled_ending(*compiled, max_iter=max_iter, tol=tol)
    if status == Status.CONVERGED:
        n, hidden = objective.clipped_gradient(traj[-1])
        status, message = clip_verdict(n, lambda: _gap(traj[-1], loss_grad(traj[-1])[1] + hidden, caps), tol, gaps,
                                       (status, message))
    result = _result(outputs, traj, losses, gaps, status, message, step_size)
    result.meta.update(max_iter=max_iter, tol=tol)  # with step_size, what solving it again the same way needs
    if storage != "float32":  # what was asked for may not apply (see make_objective): say what was used
        result.meta["storage"] = objective.storage
    if caps is not None or prior_strength:
        result.meta.update(caps=None if caps is None else caps.tolist(), prior_strength=float(prior_strength))
    return result


def descend(loss_grad, w: np.ndarray, *, step_size: float, max_iter: int, tol: float, caps=None,
            callback=None) -> tuple[list, list, list, Status, str]:
    """Entropic mirror descent from ``w`` on ``loss_grad(w) -> (loss, grad)`` (the simplex, or the capped
    simplex), stopping on the Frank-Wolfe gap; returns every iterate, loss and gap, the status and a message.
    Shared by :func:`mixmin` and the multi-target solver."""
    traj, losses, gaps = [], [], []
    status = Status.MAX_ITER
    for it in range(max_iter + 1):
        loss, grad = loss_grad(w)
        if not (math.isfinite(loss) and np.isfinite(grad).all()):
            status = Status.NON_FINITE
            if it == 0:  # nothing finite to return: report the start as it is
                traj.append(w), losses.append(loss), gaps.append(float("nan"))
            break
        gap = _gap(w, grad, caps)
        traj.append(w)
        losses.append(loss)
        gaps.append(gap)
        if callback is not None and callback(Iterate(it, _read_only(w), loss, gap)):
            status = Status.STOPPED_BY_CALLBACK
            break
        if gap <= tol:
            status = Status.CONVERGED
            break
        if it < max_iter:
            w = entropic_step(w, grad, step_size)
            w = (w if caps is None else project_capped(w, caps)).astype(np.float32, copy=False)
    return traj, losses, gaps, status, _ending(status, it, gaps[-1] if gaps else None, max_iter, tol)


def clip_verdict(n: int, restored_gap: Callable[[], float], tol: float, gaps: list, ending: tuple,
                 gap_name: str = "Frank-Wolfe") -> tuple[Status, str]:
    """``ending`` (a converged descent's status and message), or ``clipped`` with why: where ``n`` samples sit at
    the clip (an objective's ``clipped_gradient``) and ``restored_gap()`` (the gap with the pull the flat clip hides
    restored) exceeds ``tol``, the gap of 0 certifies nothing. Shared by :func:`mixmin` and the multi-target solver."""
    if not n or restored_gap() <= tol:
        return ending
    return Status.CLIPPED, (f"the {gap_name} gap fell to {gaps[-1]:.3g} at iteration {len(gaps) - 1}, but there {n} "
                            "sample(s) sit at the clip (a mixed probability below 1e-6, or density below 1e-30), where "
                            "the loss is flat, and with their pull restored the gap exceeds tol: it certifies nothing. "
                            "Try a smaller step_size, or a start with more weight on every source")


def _ending(status: Status, it: int, gap, max_iter: int, tol: float) -> str:
    """What :func:`descend` says about how it stopped at iteration ``it``."""
    if status == Status.NON_FINITE:
        return ("non-finite loss or gradient at the starting weights; check the proxy outputs for overflow" if it == 0
                else f"non-finite loss or gradient at iteration {it}; returning the best finite iterate")
    if status == Status.STOPPED_BY_CALLBACK:
        return f"stopped by callback at iteration {it}"
    if status == Status.CONVERGED:
        return f"Frank-Wolfe gap {gap:.3g} <= tol {tol:g} at iteration {it}"
    return f"reached max_iter={max_iter} before the gap fell to tol={tol:g}"


_HOW = {kernels.MAX_ITER: Status.MAX_ITER, kernels.CONVERGED: Status.CONVERGED, kernels.NON_FINITE: Status.NON_FINITE}


def _compiled_ending(traj, losses, gaps, how: int, *, max_iter: int, tol: float):
    """:func:`descend`'s return value from what :meth:`Objective.descend` recorded."""
    status = _HOW[how]
    it = len(losses) - 1 if status == Status.CONVERGED else len(losses) if status == Status.NON_FINITE else max_iter
    if status == Status.NON_FINITE and np.isnan(gaps[-1]):  # at the start
        it = 0
    return list(traj), losses.tolist(), gaps.tolist(), status, _ending(status, it, gaps[-1], max_iter, tol)


def _gap(w: np.ndarray, grad: np.ndarray, caps) -> float:
    """Frank-Wolfe gap over the simplex, or over the capped simplex when caps are given."""
    w64, g64 = w.astype(np.float64), grad.astype(np.float64)
    if caps is None:
        return max(0.0, float(w64 @ g64) - float(g64.min()))  # frank_wolfe_gap, without its batch axis
    return max(0.0, float(w64 @ g64) - linear_min_capped(g64, caps))


def _prior(outputs: ProxyOutputs, prior, prior_strength: float):
    prior_strength = check_number("prior_strength", prior_strength, minimum=0)
    if not prior_strength:
        if prior is not None:  # it would be ignored
            raise InputError("prior is used only with prior_strength > 0 (the weight of KL(w || prior)); "
                             "set prior_strength (e.g. 0.1), or drop prior.")
        return None
    if prior is None:
        prior = "natural" if outputs.natural_weights is not None else "uniform"
    return start_weights(outputs, prior, name="prior").astype(np.float64)


def start_weights(outputs: ProxyOutputs, init, name: str = "init") -> np.ndarray:
    """Resolve ``init`` ("uniform", "natural", None or an array) to float32 simplex weights.

    ``name`` is the argument named in errors (``prior`` resolves the same way).
    """
    if init is None or (isinstance(init, str) and init == "uniform"):
        return uniform(outputs.n_sources)
    if isinstance(init, str):
        if init != "natural":
            raise InputError(f"{name} must be 'uniform', 'natural' or an array of weights; got {init!r}.")
        if outputs.natural_weights is None:
            raise InputError(f"{name}='natural' needs outputs.natural_weights; the proxy outputs have none.")
        init = outputs.natural_weights
    init = by_source(name, init, outputs.source_names, mixture=True)
    if not isinstance(init, (np.ndarray, list, tuple)):
        raise InputError(f"{name} must be 'uniform', 'natural' or an array of weights; got {init!r}.")
    w = check_simplex(name, init, outputs.n_sources)
    if (w <= 0).any():
        raise InputError(
            f"{name} must be strictly positive (mirror descent cannot revive a zero weight); "
            f"got {int((w <= 0).sum())} zero weight(s). Mix in a little uniform weight."
        )
    return w


def _read_only(w: np.ndarray) -> np.ndarray:
    """A read-only view of the solver's iterate for a callback: an edit would corrupt the solve (NaN weights,
    broken caps)."""
    view = w.view()
    view.flags.writeable = False
    return view


#: Most iterations one solve may take (its trajectory keeps each iterate: P floats each).
MAX_ITER_LIMIT = 1_000_000


def _check_params(step_size, max_iter, tol) -> tuple[float, int, float]:
    """Validated ``(step_size, max_iter, tol)`` as Python numbers (NumPy scalars accepted, bools not)."""
    max_iter = check_number("max_iter", max_iter, minimum=0, integer=True)
    if max_iter > MAX_ITER_LIMIT:  # the trajectory keeps every iterate
        raise InputError(f"max_iter must be at most {MAX_ITER_LIMIT:,} (every iterate is kept in the trajectory); "
                         f"got {max_iter:,}. If {MAX_ITER_LIMIT:,} steps do not converge, try a larger step_size.")
    return check_number("step_size", step_size, minimum=0, strict=True), max_iter, check_number("tol", tol, minimum=0)


def rose(last_loss, best_loss):
    """Whether a descent's loss rose from its best iterate to its last (arrays: per row), so that a run that did not
    converge returns its best iterate. float32 losses carry ~1e-7 relative noise: only a real rise counts."""
    return np.isfinite(best_loss) & (last_loss - best_loss > 1e-6 * np.maximum(1.0, np.abs(best_loss)))


def _result(outputs, traj, losses, gaps, status, message, step_size) -> MixtureResult:
    losses = np.asarray(losses, dtype=np.float64)
    gaps = np.asarray(gaps, dtype=np.float64)
    pick = len(losses) - 1
    best = int(np.argmin(losses))
    if status != Status.CONVERGED and rose(losses[pick], losses[best]):
        pick = best
        message += f"; returning iteration {best}, whose loss was lowest (the loss rose afterwards: try a smaller step_size)"
    weights = np.where(traj[pick] < np.finfo(np.float32).tiny, np.float32(0), traj[pick])  # as bootstrap_weights'
    return MixtureResult(
        weights=weights, source_names=outputs.source_names, loss=float(losses[pick]),
        n_iter=len(losses) - 1, success=status == Status.CONVERGED, status=status.value,
        message=message, trajectory=np.stack(traj), losses=losses, gaps=gaps,
        gap=float(gaps[pick]), method="mixmin", meta={"step_size": float(step_size), "iterate": pick},
    )
