"""The MixMin objectives: mean target loss of the mixed proxy prediction, with its gradient.

Each objective precomputes what it needs from ``ProxyOutputs`` once, then evaluates the loss
and gradient for one weight vector ``(P,)`` or a batch ``(B, P)`` with two float32 passes over
the ``(P, N)`` matrix (``w @ F`` and ``u @ F.T``), so 100 iterations cost about 200 passes.
Optional ``sample_weights`` ``(N,)`` or ``(B, N)`` (rows summing to one) replace the plain mean;
the bootstrap uses them to solve many resamples at once.
"""
from __future__ import annotations

import numpy as np

from mixmin_core.solver.proxy_outputs import ProxyOutputs

#: Mixed probabilities are clipped to [EPS, 1 - EPS] before the log in the ``binary`` loss.
#: 1e-6 keeps the loss finite (at most -log(1e-6) ~ 13.8) and is far below any probability
#: a calibrated proxy reports.
EPS = 1e-6
#: Smallest mixed density (relative to the per-sample best proxy) in the ``loglik`` loss.
TINY = np.float32(1e-30)


class Objective:
    """Base: ``loss_grad(weights, sample_weights=None) -> (loss, grad)``.

    Per-iteration work is one ``weights @ matrix`` pass, a few in-place O(N) operations and one
    ``u @ matrix.T`` pass; all in float32.
    """

    matrix: np.ndarray  # (P, N) float32, what the weights multiply

    def __init__(self, outputs: ProxyOutputs):
        self.n_sources, self.n_samples = outputs.values.shape
        self.uniform_weight = np.float32(1.0 / self.n_samples)

    def _sample_weights(self, sample_weights):
        return self.uniform_weight if sample_weights is None else sample_weights

    def loss(self, weights, sample_weights=None):
        return self.loss_grad(weights, sample_weights, need_grad=False)[0]


def _weighted_sum(values: np.ndarray, s) -> np.ndarray:
    """``sum_x s_x values_x`` over the last axis (``s`` a scalar, ``(N,)`` or ``(B, N)``)."""
    if np.ndim(s) == 0:
        return values.sum(axis=-1) * s
    return np.einsum("...n,...n->...", values, np.broadcast_to(s, values.shape))


class BinaryObjective(Objective):
    """Binary cross-entropy of the mixed probability ``sum_p w_p f_p(x)``.

    Write ``q_p(x)`` for proxy p's probability of the *observed* label (``f_p`` if y = 1, else
    ``1 - f_p``). On the simplex the mixed probability of the observed label is ``sum_p w_p q_p(x)``,
    so the loss is ``-mean log(w @ Q)``: a mixture of Bernoulli likelihoods, computed with one
    matrix pass and no per-sample label arithmetic. Its gradient ``-mean(Q / (w @ Q))`` differs
    from the textbook formula's by the same constant for every source, which neither the
    mirror-descent update nor the Frank-Wolfe gap can see.
    """

    def __init__(self, outputs: ProxyOutputs):
        super().__init__(outputs)
        # Q = |f - (1 - y)|: f where y = 1, 1 - f where y = 0; (P, N) float32, two in-place passes
        self.matrix = np.subtract(outputs.values, (1.0 - outputs.labels).astype(np.float32))
        np.abs(self.matrix, out=self.matrix)

    def loss_grad(self, weights, sample_weights=None, need_grad=True):
        s = self._sample_weights(sample_weights)
        q = weights @ self.matrix
        # probabilities clipped to [EPS, 1 - EPS]: for the observed label that is q >= EPS (q <= 1
        # holds on the simplex; the upper clip would change log q by at most 1e-6)
        np.maximum(q, EPS, out=q)
        loss = -_weighted_sum(np.log(q), s)
        if not need_grad:
            return loss, None
        u = np.divide(-s, q, out=q)
        return loss, u @ self.matrix.T


class MSEObjective(Objective):
    """Squared error of the mixed prediction ``sum_p w_p f_p(x)``."""

    def __init__(self, outputs: ProxyOutputs):
        super().__init__(outputs)
        self.matrix = outputs.values
        self.labels = outputs.labels

    def loss_grad(self, weights, sample_weights=None, need_grad=True):
        s = self._sample_weights(sample_weights)
        resid = weights @ self.matrix
        resid -= self.labels
        loss = _weighted_sum(resid * resid, s)
        if not need_grad:
            return loss, None
        resid *= 2.0 * s
        return loss, resid @ self.matrix.T


class LoglikObjective(Objective):
    """Negative log-likelihood of the mixture density, per token when token counts are given.

    ``log p_w(x) = logsumexp_p(log w_p + log p_p(x))``. Log-probs of whole sequences (e.g.
    -5000) would underflow ``exp``; we factor out the per-sample maximum ``m(x)`` once:
    ``p_w(x) = exp(m(x)) * sum_p w_p exp(l_p(x) - m(x))``, so every exponent is <= 0.
    """

    def __init__(self, outputs: ProxyOutputs):
        super().__init__(outputs)
        vals = outputs.values
        self.shift = vals.max(axis=0)
        self.matrix = np.exp(vals - self.shift)  # (P, N) in [0, 1], float32
        counts = outputs.token_counts
        self.inv_tokens = None if counts is None else (1.0 / counts).astype(np.float32)

    def loss_grad(self, weights, sample_weights=None, need_grad=True):
        s = self._sample_weights(sample_weights)
        if self.inv_tokens is not None:
            s = s * self.inv_tokens
        mixed = weights @ self.matrix
        np.maximum(mixed, TINY, out=mixed)
        loss = -_weighted_sum(np.log(mixed) + self.shift, s)
        if not need_grad:
            return loss, None
        u = np.divide(-s, mixed, out=mixed)
        return loss, u @ self.matrix.T


_OBJECTIVES = {"binary": BinaryObjective, "mse": MSEObjective, "loglik": LoglikObjective}


def make_objective(outputs: ProxyOutputs) -> Objective:
    """The objective for ``outputs.kind``, built once per (immutable) ``outputs`` and kept with it,
    so re-solving the same outputs (the app's sliders, bootstrap, leave-one-out) skips the setup."""
    cached = outputs.__dict__.get("_objective")
    if cached is None:
        cached = _OBJECTIVES[outputs.kind](outputs)
        object.__setattr__(outputs, "_objective", cached)
    return cached
