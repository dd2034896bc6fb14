"""The chemistry units: one proxy trainer and one final-model trainer (they run in worker processes).

Both train XGBoost on a weighted union of *sources*, where a source is one assay's labels on a set
of molecules (rows). The sources of a run live in one ``.npz`` (names, assays, rows) written by the
driver (:func:`save_sources`), so a unit's arguments stay small. Weights follow
:func:`mixmin_core.chem.proxies.mixture_rows`: each source's total sample weight is proportional to
its mixture weight, whatever its size. A per-source proxy is the one-source mixture.

Proxies live in the store's content-addressed folder (``proxy_cache/<key>.npz``): the key hashes the
molecules, the rows and labels, and every training setting, so an unchanged source is never trained
twice, in any trial, setting or run. Every unit records the compute it really spent (trees x rows).
"""
from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path

import numpy as np

from mixmin_core.chem.fingerprints import load_feature_matrix, load_label_matrix
from mixmin_core.chem.proxies import (
    average_precision,
    grid_search,
    mixture_rows,
    train_classifier,
)
from mixmin_core.engine.evolving import content_hash
from mixmin_core.runs.fileio import atomic_path, readable_npz, write_json

CROSSFIT_FOLDS = 5


def save_sources(path, names, assays, rows: list) -> None:
    """Write sources (name, assay, row ids) for the units; a no-op when the file exists and reads back whole (a
    damaged one is written again: no unit checks it, and every final model reads it)."""
    path = Path(path)
    if path.exists() and readable_npz(path):
        return
    offsets = np.cumsum([0] + [len(r) for r in rows])
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, names=np.asarray(names, dtype=str), assays=np.asarray(assays, dtype=str),
                            rows=np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64),
                            offsets=offsets.astype(np.int64))


@functools.lru_cache(maxsize=8)
def load_sources(path: str) -> dict[str, tuple[str, np.ndarray]]:
    """``{name: (assay, rows)}`` of a sources file (cached per process)."""
    with np.load(path, allow_pickle=False) as z:
        names, assays, flat, off = z["names"].tolist(), z["assays"].tolist(), z["rows"], z["offsets"]
    return {n: (a, flat[off[i]:off[i + 1]]) for i, (n, a) in enumerate(zip(names, assays))}


def model_settings(*, trees: int, depth: int, device: str, **extra) -> dict:
    """Everything besides its rows that decides a model: trees, depth, device, the trainer's learning
    rate and the XGBoost version (an upgrade retrains rather than mixing old and new models)."""
    import inspect

    import xgboost

    lr = inspect.signature(train_classifier).parameters["learning_rate"].default
    return {"xgboost": xgboost.__version__, "learning_rate": lr, "trees": int(trees), "depth": int(depth),
            "device": device, **extra}


def proxy_key(table_key: str, assay: str, rows: np.ndarray, labels: np.ndarray, settings: dict) -> str:
    """The content key of a one-source proxy (its file in the proxy cache): the molecules, the source's
    rows and their labels, and :func:`model_settings`."""
    rows = np.asarray(rows, dtype=np.int64)
    return content_hash(table_key, assay, rows, np.asarray(labels), settings)[:32]


def _fit(*, features_path, labels_path, sources_path, names, weights, max_rows, trees, depth, tune, seed,
         device, n_jobs):
    """XGBoost on the weighted union of ``names``; returns (classifier, X, labels, assays, rows, compute)."""
    X, _ = load_feature_matrix(features_path)
    labels, assays = load_label_matrix(labels_path)
    sources = load_sources(sources_path)
    parts = [sources[n] for n in names]
    rng = np.random.default_rng([int(seed), 11])
    r, s, sw = mixture_rows([rows for _, rows in parts], np.asarray(weights, dtype=np.float64), max_rows=max_rows,
                            rng=rng)
    cols = np.array([assays.index(a) for a, _ in parts])
    y = labels[r, cols[s]]
    compute = 0.0
    if tune:
        best, compute = grid_search(X[r], y, seed=seed, device=device, n_jobs=n_jobs)
        trees, depth = best["n_estimators"], best["max_depth"]
    clf = train_classifier(X[r], y, sample_weight=None if len(parts) == 1 else sw, n_estimators=trees,
                           max_depth=depth, device=device, n_jobs=n_jobs, seed=seed)
    return clf, X, labels, assays, r, y, compute + clf.compute


def train_proxy(*, features_path: str, labels_path: str, sources_path: str, names: list, weights: list,
                max_rows: int = 0, trees: int, depth: int, tune: bool = False, crossfit: bool = False, seed: int,
                device: str = "cpu", n_jobs: int = 1, output: str) -> dict:
    """A proxy on the weighted union of ``names``: writes P(y=1) of every molecule and its compute.

    ``crossfit``: a one-source proxy whose rows are also a target's fit split (``include_target``)
    predicts each of its own rows with a model trained on the other folds, so MixMin never scores
    it on rows it was trained on.
    """
    start = time.perf_counter()
    kw = dict(features_path=features_path, labels_path=labels_path, sources_path=sources_path, names=names,
              weights=weights, max_rows=max_rows, trees=trees, depth=depth, tune=tune, device=device, n_jobs=n_jobs)
    clf, X, labels, assays, rows, y, compute = _fit(**kw, seed=seed)
    _, valid = load_feature_matrix(features_path)
    preds = clf.predict(X)
    if crossfit:
        compute += _crossfit(preds, X, rows, y, trees=trees, depth=depth, device=device, n_jobs=n_jobs, seed=seed)
    preds = np.where(valid, preds, np.float32(preds[rows].mean())).astype(np.float32)
    info = {"compute": float(compute), "rows": int(rows.size), "trees": clf.n_estimators, "depth": clf.max_depth,
            "train_seconds": time.perf_counter() - start}
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, preds=preds, compute=np.float64(compute))
    return info


def _crossfit(preds, X, rows, y, *, trees, depth, device, n_jobs, seed) -> float:
    """Overwrite ``preds[rows]`` by out-of-fold predictions; return the extra compute."""
    folds = np.random.default_rng([int(seed), 13]).permutation(rows.size) % CROSSFIT_FOLDS
    compute = 0.0
    for f in range(CROSSFIT_FOLDS):
        held = folds == f
        clf = train_classifier(X[rows[~held]], y[~held], n_estimators=trees, max_depth=depth, device=device,
                               n_jobs=n_jobs, seed=seed + 1 + f)
        preds[rows[held]] = clf.predict(X[rows[held]])
        compute += clf.compute
    return compute


def load_proxy(path) -> tuple[np.ndarray, float]:
    with np.load(path, allow_pickle=False) as z:
        return z["preds"], float(z["compute"])


def train_final(*, features_path: str, labels_path: str, sources_path: str, names: list, weights: list,
                max_rows: int = 0, trees: int, depth: int, tune: bool = False, seed: int, target: str,
                test_rows: list, device: str = "cpu", n_jobs: int = 1, output: str) -> dict:
    """A final model on the weighted union of ``names`` (all rows unless ``max_rows``), scored by
    average precision on ``target``'s test rows."""
    start = time.perf_counter()
    clf, X, labels, assays, rows, _, compute = _fit(
        features_path=features_path, labels_path=labels_path, sources_path=sources_path, names=names,
        weights=weights, max_rows=max_rows, trees=trees, depth=depth, tune=tune, device=device, n_jobs=n_jobs,
        seed=seed)
    test = np.asarray(test_rows, dtype=np.int64)
    t = assays.index(target)
    info = {"ap": average_precision(labels[test, t], clf.predict(X[test])), "final_compute": float(compute),
            "compute": float(compute), "rows": int(rows.size), "final_seconds": time.perf_counter() - start,
            "sources": list(names), "weights": list(weights),  # what it trained on (training_weights: rounded)
            # what it was scored on: every method's final model of a problem names the same test rows
            "test_rows": int(test.size), "test_rows_sha256": hashlib.sha256(test.tobytes()).hexdigest(),
            "test_positives": int((labels[test, t] == 1).sum())}  # an AP over a handful rests on single molecules
    write_json(output, info)
    return info
