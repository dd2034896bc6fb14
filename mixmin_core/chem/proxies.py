"""XGBoost classifiers on fingerprints: per-source proxies, weighted-mixture final models, scoring.

Compute is counted as ``trees x rows`` (one boosting round over one training row), the unit every
method's ``compute`` column uses.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mixmin_core.errors import InputError

log = logging.getLogger("mixmin.chem")

#: The MixMin paper's 5-fold CV grid for proxies and the target-only baseline.
PAPER_GRID = {"n_estimators": (10, 50, 100), "max_depth": (4, 6, 8)}
EPS = 1e-6


def resolve_device(device: str = "auto") -> str:
    """``"cuda"`` when asked, or when ``"auto"`` and XGBoost was built with CUDA and a GPU is visible."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}.")
    if device != "auto":
        return device
    import xgboost as xgb

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = visible is not None and visible.strip() in ("", "-1", "NoDevFiles")  # the usual ways to hide every GPU
    has_gpu = not hidden and (Path("/proc/driver/nvidia").exists() or visible is not None)
    return "cuda" if has_gpu and xgb.build_info().get("USE_CUDA") else "cpu"


@dataclass
class Classifier:
    """A fitted classifier: an XGBoost booster, or a constant when the training labels have one class."""

    booster: object = None
    constant: float | None = None
    n_estimators: int = 0
    max_depth: int = 0
    n_rows: int = 0

    @property
    def compute(self) -> float:
        """Trees x rows spent fitting it."""
        return float(self.n_estimators * self.n_rows)

    def predict(self, X) -> np.ndarray:
        """P(y=1) per row, float32."""
        if self.constant is not None:
            return np.full(X.shape[0], self.constant, dtype=np.float32)
        import xgboost as xgb

        return self.booster.predict(xgb.DMatrix(_as_float(X))).astype(np.float32)

    def save(self, path) -> None:
        """Write the booster as XGBoost JSON (or a tiny JSON for a constant model), atomically."""
        from mixmin_core.runs.fileio import atomic_path, write_json

        if self.constant is not None:
            write_json(path, {"constant": self.constant, "n_rows": self.n_rows})
            return
        with atomic_path(path) as tmp:
            self.booster.save_model(str(tmp.with_suffix(".json")))
            tmp.with_suffix(".json").replace(tmp)


def proxy_scale(budget: float, final_compute: float, source_rows: int) -> tuple[int, float]:
    """``(trees, row_fraction)`` of per-source proxies whose summed cost (trees x rows over all
    sources' ``source_rows``) is ``budget`` x ``final_compute``: every row with fewer trees while a
    tree per row can be afforded, then a single tree on a fraction of the rows."""
    if not (budget > 0 and final_compute > 0 and source_rows > 0):
        raise InputError(f"budget, final_compute and source_rows must be positive; got {budget!r}, "
                         f"{final_compute!r}, {source_rows!r}.")
    passes = budget * final_compute / source_rows  # trees if every row is used
    trees = max(1, math.ceil(passes - 1e-9))
    return trees, min(1.0, passes / trees)


def _as_float(X):
    return X.astype(np.float32) if sp.issparse(X) else np.asarray(X, dtype=np.float32)


def train_classifier(X, y, *, sample_weight=None, n_estimators: int = 50, max_depth: int = 6,
                     learning_rate: float = 0.3, device: str = "cpu", n_jobs: int = 1, seed: int = 0) -> Classifier:
    """Fit a binary XGBoost classifier (``hist``; ``device="cuda"`` on a GPU).

    Parameters
    ----------
    X : (n, n_bits) sparse or dense features.  y : (n,) 0/1 labels.
    sample_weight : (n,) non-negative, optional; rescaled to mean 1 (XGBoost's ``min_child_weight``
        is in hessian units, so tiny weights would block every split).

    Raises
    ------
    InputError
        On shape mismatch or an empty training set.
    """
    y = np.asarray(y, dtype=np.float32)
    if X.shape[0] != y.shape[0] or y.size == 0:
        raise InputError(f"X and y must have the same, positive number of rows; got {X.shape[0]} and {y.size}.")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != y.shape or (w < 0).any() or w.sum() <= 0:
            raise InputError(f"sample_weight must be {y.size} non-negative values with a positive sum.")
        w = (w * (w.size / w.sum())).astype(np.float32)
    pos = float(np.average(y, weights=w)) if w is not None else float(y.mean())
    if pos <= 0 or pos >= 1:  # one class only: XGBoost would learn a constant anyway
        return Classifier(constant=float(np.clip(pos, EPS, 1 - EPS)), n_rows=int(y.size))
    import xgboost as xgb

    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": int(max_depth),
              "eta": float(learning_rate), "nthread": int(n_jobs), "device": device, "seed": int(seed),
              "verbosity": 0, "max_bin": 16}
    dtrain = xgb.DMatrix(_as_float(X), label=y, weight=w)
    booster = xgb.train(params, dtrain, num_boost_round=int(n_estimators))
    return Classifier(booster=booster, n_estimators=int(n_estimators), max_depth=int(max_depth), n_rows=int(y.size))


def log_loss(y, p) -> float:
    """Mean binary cross-entropy of probabilities ``p`` for labels ``y`` (clipped at 1e-6)."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def average_precision(y, p) -> float:
    """Average precision (sklearn's AUPR estimate); NaN if ``y`` has no positive."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y)
    if y.size == 0 or y.max() < 1:
        return float("nan")
    return float(average_precision_score(y, p))


def _stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    fold = np.empty(y.size, dtype=np.int64)
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(idx.size) % folds
    return fold


def grid_search(X, y, *, grid: dict = PAPER_GRID, folds: int = 5, seed: int = 0, device: str = "cpu",
                n_jobs: int = 1) -> tuple[dict, float]:
    """The paper's tuning: ``folds``-fold stratified CV over ``grid``, scored by held-out log loss.

    Returns ``(best_params, compute)`` where ``compute`` is the trees x rows spent searching.
    With fewer positives than folds it returns the grid's middle values without searching.
    """
    y = np.asarray(y)
    combos = [(n, d) for n in grid["n_estimators"] for d in grid["max_depth"]]
    if min((y == 1).sum(), (y == 0).sum()) < folds:
        mid = {"n_estimators": sorted(grid["n_estimators"])[len(grid["n_estimators"]) // 2],
               "max_depth": sorted(grid["max_depth"])[len(grid["max_depth"]) // 2]}
        return mid, 0.0
    fold = _stratified_folds(y, folds, np.random.default_rng(seed))
    scores, compute = {}, 0.0
    for n, d in combos:
        losses = []
        for k in range(folds):
            tr, te = fold != k, fold == k
            clf = train_classifier(X[tr], y[tr], n_estimators=n, max_depth=d, device=device, n_jobs=n_jobs, seed=seed)
            compute += clf.compute
            losses.append(log_loss(y[te], clf.predict(X[te])))
        scores[(n, d)] = float(np.mean(losses))
    best = min(scores, key=scores.get)
    return {"n_estimators": best[0], "max_depth": best[1]}, compute


#: Decimals of the mixture weights a model trains on: weights below 5e-6 are solver noise (a warm start's 1e-6
#: floor, a source decaying towards zero) and train on no rows; the row cap's leftover budget went to them.
TRAINING_DECIMALS = 5


def training_weights(weights) -> list[float]:
    """``weights`` rounded to :data:`TRAINING_DECIMALS` (also what keys the trained model)."""
    return [round(float(x), TRAINING_DECIMALS) for x in weights]


def allocate_rows(sizes: np.ndarray, weights: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows to draw from each source so each source's share follows ``weights`` within ``max_rows``.

    Water-filling: a source gets ``weights[p] / sum(weights) * budget`` rows, capped at its size;
    budget freed by capped sources goes to the others. Fractions are rounded at random (unbiased),
    so a source with a tiny weight may get 0 rows. ``max_rows=0``: every row of every source with
    positive weight.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    w = np.where(np.asarray(weights, dtype=np.float64) > 0, np.asarray(weights, dtype=np.float64), 0.0)
    active = (w > 0) & (sizes > 0)
    if not max_rows or sizes[active].sum() <= max_rows:
        return np.where(active, sizes, 0)
    take = np.zeros(sizes.size)
    free = active.copy()
    budget = float(max_rows)
    while free.any() and budget > 0:
        share = budget * w * free / w[free].sum()
        capped = free & (share >= sizes)
        if not capped.any():
            take[free] = share[free]
            break
        take[capped] = sizes[capped]
        budget -= sizes[capped].sum()
        free &= ~capped
    base = np.floor(take)
    n = base + (rng.random(sizes.size) < (take - base))
    return np.minimum(n, sizes).astype(np.int64)


def mixture_rows(source_rows: list[np.ndarray], weights, *, max_rows: int = 0,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows of a weighted union of sources, with per-example weights.

    Parameters
    ----------
    source_rows : per source, the row ids of its training examples.
    weights : (n_sources,) mixture weights (need not sum to one).
    max_rows : cap on the rows drawn (see :func:`allocate_rows`; 0: all).

    Returns
    -------
    rows : (n,) row ids; source : (n,) source position of each row; sample_weight : (n,) with each
    source's total equal to its weight (so total weight ∝ mixture weight, whatever the sizes).
    """
    sizes = np.array([r.size for r in source_rows])
    w = np.asarray(weights, dtype=np.float64)
    counts = allocate_rows(sizes, w, max_rows, rng)
    rows, src, sw = [], [], []
    for p, (r, n) in enumerate(zip(source_rows, counts)):
        if n <= 0:
            continue
        pick = r if n >= r.size else rng.choice(r, size=int(n), replace=False)
        rows.append(pick)
        src.append(np.full(pick.size, p, dtype=np.int32))
        sw.append(np.full(pick.size, w[p] / pick.size))
    if not rows:
        raise InputError("mixture_rows: no source has both a positive weight and training rows.")
    return np.concatenate(rows), np.concatenate(src), np.concatenate(sw)
