"""Independent float64 reference formulas for the objectives (no code shared with mixmin_core)."""
import numpy as np

from mixmin_core.solver.objectives import EPS


def reference_loss(outputs, w):
    """Direct float64 formulas from DESIGN.md (no shared code with the objectives)."""
    v = outputs.values.astype(np.float64)
    w = np.asarray(w, dtype=np.float64)
    if outputs.kind == "binary":
        p = np.clip(w @ v, EPS, 1 - EPS)
        y = outputs.labels
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if outputs.kind == "mse":
        return float(np.mean((w @ v - outputs.labels) ** 2))
    from scipy.special import logsumexp

    logp = logsumexp(v + np.log(w)[:, None], axis=0)
    t = outputs.token_counts if outputs.token_counts is not None else np.ones(v.shape[1])
    return float(-np.mean(logp / t))
