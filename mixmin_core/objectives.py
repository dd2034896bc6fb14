"""The MixMin objectives: mean target loss of the mixed proxy prediction, with its gradient.

Each objective precomputes what it needs from ``ProxyOutputs`` once, then evaluates the loss
and gradient for one weight vector ``(P,)`` or a batch ``(B, P)`` with two float32 passes over
the ``(P, N)`` matrix (``w @ F`` and ``u @ F.T``), so 100 iterations cost about 200 passes.
Optional ``sample_weights`` ``(N,)`` or ``(B, N)`` (rows summing to one) replace the plain mean;
the bootstrap uses them to solve many resamples at once.
"""
from __future__ import annotations

import numpy as np

from .proxy_outputs import ProxyOutputs

#: Mixed probabilities are clipped to [EPS, 1 - EPS] before the log in the ``binary`` loss.
#: 1e-6 keeps the loss finite (at most -log(1e-6) ~ 13.8) and is far below any probability
#: a calibrated proxy reports.
EPS = 1e-6
#: Smallest mixed density (relative to the per-sample best proxy) in the ``loglik`` loss.
TINY = np.float32(1e-30)


class Objective:
    """Base: ``loss_grad(weights, sample_weights=None) -> (loss, grad)``."""

    def __init__(self, outputs: ProxyOutputs):
        self.n_sources, self.n_samples = outputs.values.shape
        self.uniform_weight = np.float32(1.0 / self.n_samples)

    def _sample_weights(self, sample_weights):
        return self.uniform_weight if sample_weights is None else sample_weights

    def loss(self, weights, sample_weights=None):
        return self.loss_grad(weights, sample_weights, need_grad=False)[0]


class BinaryObjective(Objective):
    """Binary cross-entropy of the mixed probability ``sum_p w_p f_p(x)``."""

    def __init__(self, outputs: ProxyOutputs):
        super().__init__(outputs)
        self.values = outputs.values
        self.labels = outputs.labels.astype(bool)

    def loss_grad(self, weights, sample_weights=None, need_grad=True):
        s = self._sample_weights(sample_weights)
        p = np.clip(weights @ self.values, EPS, 1.0 - EPS)
        # y log p + (1 - y) log(1 - p) with one log per sample
        q = np.where(self.labels, p, 1.0 - p)
        loss = -np.sum(s * np.log(q), axis=-1, dtype=np.float64)
        if not need_grad:
            return loss, None
        # d/dp of -[y log p + (1-y) log(1-p)] = -1/p if y else 1/(1-p)
        dl_dp = np.where(self.labels, -1.0 / p, 1.0 / (1.0 - p)) * s
        return loss, dl_dp @ self.values.T


class MSEObjective(Objective):
    """Squared error of the mixed prediction ``sum_p w_p f_p(x)``."""

    def __init__(self, outputs: ProxyOutputs):
        super().__init__(outputs)
        self.values = outputs.values
        self.labels = outputs.labels

    def loss_grad(self, weights, sample_weights=None, need_grad=True):
        s = self._sample_weights(sample_weights)
        resid = weights @ self.values - self.labels
        loss = np.sum(s * resid * resid, axis=-1, dtype=np.float64)
        if not need_grad:
            return loss, None
        return loss, (2.0 * s * resid) @ self.values.T


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
        self.scaled = np.exp(vals - self.shift)  # (P, N) in [0, 1], float32
        counts = outputs.token_counts
        self.inv_tokens = None if counts is None else (1.0 / counts).astype(np.float32)

    def loss_grad(self, weights, sample_weights=None, need_grad=True):
        s = self._sample_weights(sample_weights)
        if self.inv_tokens is not None:
            s = s * self.inv_tokens
        mixed = np.maximum(weights @ self.scaled, TINY)
        loss = -np.sum(s * (np.log(mixed) + self.shift), axis=-1, dtype=np.float64)
        if not need_grad:
            return loss, None
        return loss, (-s / mixed) @ self.scaled.T


_OBJECTIVES = {"binary": BinaryObjective, "mse": MSEObjective, "loglik": LoglikObjective}


def make_objective(outputs: ProxyOutputs) -> Objective:
    """The objective for ``outputs.kind``."""
    return _OBJECTIVES[outputs.kind](outputs)
