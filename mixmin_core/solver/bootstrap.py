"""Bootstrap intervals for MixMin weights, solving all resamples as one batched problem.

A bootstrap resample of the target samples is the same problem with multinomial sample
weights, so ``n_boot`` resamples become ``W (B, P) @ F (P, N)`` matrix products: compute-bound
GEMMs instead of ``n_boot`` separate bandwidth-bound solves (seconds at 600 x 5,000). Each
iteration reads the matrix once, block by block.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver import kernels
from mixmin_core.solver.constraints import check_caps, linear_min_capped, project_capped
from mixmin_core.solver.objectives import make_objective
from mixmin_core.solver.proxy_outputs import ProxyOutputs
from mixmin_core.solver.simplex import entropic_step, frank_wolfe_gap
from mixmin_core.solver.solvers import _check_params, _prior, rose, start_weights
from mixmin_core.solver.validation import check_number, check_outputs

#: Upper bound on the bytes of one (chunk, n_samples) float32 working array.
_CHUNK_BYTES = 64 << 20
#: Most resamples one call may draw.
MAX_BOOT = 100_000


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Per-source bootstrap distribution of the weights.

    ``samples`` is (n_boot, n_sources); ``lower``/``upper`` the central ``level`` interval. ``converged`` is the
    share of resamples whose solve reached ``tol`` within ``max_iter``: well below 1, the intervals describe where the
    iterations stopped more than where the optimum lies (raise ``max_iter``).
    """

    source_names: tuple
    samples: np.ndarray = field(repr=False)  # n_boot rows
    lower: np.ndarray
    upper: np.ndarray
    median: np.ndarray
    level: float
    converged: float = 1.0


def bootstrap_weights(outputs: ProxyOutputs, n_boot: int = 200, seed: int = 0, *, level: float = 0.95,
                      step_size: float = 1.0, max_iter: int = 100, init=None, tol: float = 1e-6, caps=None,
                      prior=None, prior_strength: float = 0.0) -> BootstrapResult:
    """Resample target samples with replacement ``n_boot`` times and re-solve MixMin on each.

    Each resample gets what :func:`mixmin` would return for it: the descent stops where its Frank-Wolfe gap
    falls to ``tol`` or its loss turns non-finite, and if the loss rose at the end, the lowest-loss iterate is
    kept (so intervals describe the weights the Solver shows, also at a step size too large to converge).

    The intervals say how the weights move when the target's samples are resampled, every resample solved from
    the same start. They do not show mixtures that fit the target equally well: where two sources are (near)
    copies of each other, any split of their joint weight has the same loss, and a narrow interval on each says
    only where the descent from that start put it (compare ``mixmin`` from another ``init``).

    Parameters
    ----------
    outputs : ProxyOutputs.
    n_boot : number of resamples (default 200).
    seed : seed of the resampling generator.
    level : coverage of the reported central interval (default 0.95).
    step_size, max_iter, init, tol : as in :func:`mixmin`.
    caps, prior, prior_strength : as in :func:`mixmin`: every resample is solved under the same availability caps
        and pull towards the prior as the mixture whose intervals these are.

    Raises
    ------
    InputError
        If ``outputs`` is not a ``ProxyOutputs``, for ``n_boot`` not an integer >= 2, a ``seed``
        that is not a non-negative integer, ``level`` outside (0, 1) or bad solver arguments.
    """
    check_outputs(outputs)
    if outputs.n_samples < 2:  # every resample is that one sample: an interval of width 0 that means nothing
        raise InputError(f"bootstrap intervals need at least 2 target samples to resample; got {outputs.n_samples}.")
    n_boot = check_number("n_boot", n_boot, minimum=2, integer=True)
    if n_boot > MAX_BOOT:  # samples are kept: n_boot x n_sources floats, and each resample is a solve
        raise InputError(f"n_boot must be at most {MAX_BOOT:,} (an interval's ends settle within a few thousand "
                         f"resamples); got {n_boot:,}.")
    seed = check_number("seed", seed, minimum=0, integer=True)
    level = check_number("level", level)
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), e.g. 0.95; got {level!r}.")
    step_size, max_iter, tol = _check_params(step_size, max_iter, tol)
    caps = None if caps is None else check_caps(caps, outputs.n_sources, outputs.source_names)
    prior = _prior(outputs, prior, prior_strength)
    w0 = start_weights(outputs, init)
    if caps is not None:
        w0 = project_capped(w0, caps).astype(np.float32)
    objective = make_objective(outputs)
    terms = _Terms(caps, prior, float(prior_strength) if prior is not None else 0.0)
    rng = np.random.default_rng(seed)
    n = outputs.n_samples
    chunk = max(1, min(n_boot, _CHUNK_BYTES // (4 * n)))
    samples, converged = [], []
    plain = terms.caps is None and not terms.strength
    solve = _descend_each if plain and objective.compiled else _descend_batch
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float32)
        weights, done = solve(objective, w0, counts / np.float32(n), step_size, max_iter, tol, terms)
        samples.append(weights)
        converged.append(done)
    samples = np.concatenate(samples)
    # mirror descent shrinks a weight geometrically, never to 0: below float32's smallest normal number it is 0
    # (a CSV showed an interval's end as 2.8e-45), as in mixmin's result
    samples[samples < np.finfo(np.float32).tiny] = 0.0
    alpha = (1 - level) / 2
    lower, median, upper = np.quantile(samples, [alpha, 0.5, 1 - alpha], axis=0)
    return BootstrapResult(outputs.source_names, samples, lower.astype(np.float32),
                           upper.astype(np.float32), median.astype(np.float32), level,
                           float(np.concatenate(converged).mean()))


@dataclass(frozen=True)
class _Terms:
    """What :func:`mixmin` adds to the plain descent: caps (projection and capped gap) and a pull to a prior."""

    caps: np.ndarray | None = None
    prior: np.ndarray | None = None
    strength: float = 0.0

    def add_prior(self, w: np.ndarray, loss: np.ndarray, grad: np.ndarray):
        if not self.strength:
            return loss, grad
        w64 = np.maximum(w.astype(np.float64), 1e-30)
        kl = np.sum(np.where(w > 0, w64 * np.log(w64 / self.prior), 0.0), axis=1)
        pull = (self.strength * (np.log(w64 / self.prior) + 1)).astype(np.float32)
        return loss + self.strength * kl, grad + pull

    def gap(self, w: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.caps is None:
            return frank_wolfe_gap(w, grad)
        w64, g64 = w.astype(np.float64), grad.astype(np.float64)  # as solvers._gap, a row at a time
        return np.maximum(0.0, np.einsum("ij,ij->i", w64, g64) - linear_min_capped(g64, self.caps))

    def step(self, w: np.ndarray, grad: np.ndarray, step_size: float) -> np.ndarray:
        out = entropic_step(w, grad, step_size)
        if self.caps is not None:
            out = project_capped(out, self.caps)
        return out.astype(np.float32, copy=False)


def _descend_batch(objective, w0: np.ndarray, sample_weights: np.ndarray, step_size: float, max_iter: int,
                   tol: float, terms: _Terms = _Terms()) -> tuple[np.ndarray, np.ndarray]:
    """``solvers.descend`` and ``solvers._result``'s choice of iterate for every row of ``sample_weights``
    at once: one batched evaluation per iteration over the rows still descending. Returns the weights and
    which rows converged (as :func:`mixmin`, not a row whose gap of 0 the clip made: see ``clip_verdict``)."""
    b = len(sample_weights)
    w = np.repeat(w0[None, :], b, axis=0)
    last, best = w.copy(), w.copy()  # the last finite iterate, and the lowest-loss one
    last_loss, best_loss = np.full(b, np.inf), np.full(b, np.inf)
    converged = np.zeros(b, dtype=bool)
    final_grad = np.zeros(w.shape, dtype=np.float32)  # a converged row's gradient where it stopped
    rows = np.arange(b)  # the rows still descending
    for it in range(max_iter + 1):
        loss, grad = objective.loss_grad(w[rows], sample_weights[rows] if len(rows) < b else sample_weights)
        loss, grad = terms.add_prior(w[rows], loss, grad)
        finite = np.isfinite(loss) & np.isfinite(grad).all(axis=1)
        loss, grad, rows = loss[finite], grad[finite], rows[finite]  # a non-finite row stops where it was
        last[rows], last_loss[rows] = w[rows], loss
        lower = loss < best_loss[rows]
        best[rows[lower]], best_loss[rows[lower]] = w[rows[lower]], loss[lower]
        done = terms.gap(w[rows], grad) <= tol
        converged[rows[done]], final_grad[rows[done]] = True, grad[done]
        rows, grad = rows[~done], grad[~done]
        if it == max_iter or not len(rows):
            break
        w[rows] = terms.step(w[rows], grad, step_size)
    stopped = np.flatnonzero(converged)
    if stopped.size and objective.floor is not None:  # mixmin's clip check, for every row at once
        n, hidden = objective.clipped_gradient(w[stopped], sample_weights[stopped])
        converged[stopped[(n > 0) & (terms.gap(w[stopped], final_grad[stopped] + hidden) > tol)]] = False
    # as mixmin: the last iterate, unless the loss rose at the end of a run that did not converge
    back = ~converged & rose(last_loss, best_loss)
    return np.where(back[:, None], best, last), converged


def _descend_each(objective, w0: np.ndarray, sample_weights: np.ndarray, step_size: float, max_iter: int,
                  tol: float, terms: _Terms = _Terms()) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_descend_batch` one resample at a time through the compiled descent (``objective.compiled``: few
    sources in memory), exactly as :func:`mixmin` solves each: there a batch's ``(B, N)`` temporaries cost more
    than the kernel's whole solves (1.2-1.6x at 10-31 sources)."""
    weights = np.empty((len(sample_weights), w0.size), np.float32)
    converged = np.zeros(len(sample_weights), dtype=bool)
    for k, sw in enumerate(sample_weights):
        traj, losses, _, how = objective.descend(w0, step_size, max_iter, tol, sample_weights=sw)
        done = how == kernels.CONVERGED
        if done and objective.floor is not None:  # mixmin's clip check
            n, hidden = objective.clipped_gradient(traj[-1], sw)
            if n:
                grad = objective.loss_grad(traj[-1], sw, need_loss=False)[1]
                done = bool(terms.gap(traj[-1:], (grad + hidden)[None])[0] <= tol)
        last, best = len(losses) - 1, int(np.argmin(losses))
        weights[k] = traj[best] if not done and rose(losses[last], losses[best]) else traj[last]
        converged[k] = done
    return weights, converged
