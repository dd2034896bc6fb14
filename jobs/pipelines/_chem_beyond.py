"""Shared pieces of the chemistry "beyond the paper" pipelines (``chem_evolve``, ``chem_ladder``).

A *source* here is one assay column restricted to a set of molecules (a whole assay, a half of a
split assay, a revised release of an assay). Its proxy is an XGBoost classifier on the source's
fit rows, predicting every molecule of the table. Proxies live in a content-addressed folder of
the run store, ``$MIXMIN_HOME/proxy_cache/<hash>.npz`` (+ ``.json``), where the hash covers the
table's molecules, the source's fit rows and their labels, and the proxy settings: a source whose
content did not change is never trained twice, in any version or any run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixmin_core.chem import data as chemdata
from mixmin_core.chem import splits as chemsplits
from mixmin_core.chem.fingerprints import (
    fingerprint_key,
    load_feature_matrix,
    load_fingerprints,
    load_label_matrix,
)
from mixmin_core.chem.proxies import average_precision, mixture_rows, train_classifier
from mixmin_core.engine.evolving import content_hash
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.fileio import atomic_path, write_json, write_text
from mixmin_core.runs.layout import sources_path
from mixmin_core.solver.results import MixtureResult


# ---- config fields and checks shared by both pipelines ------------------------------------------
@dataclass
class ChemBeyondConfig:
    """Data, proxy, solver, final-model and execution fields of both pipelines (subclassed by each)."""

    dataset: str = "toxcast"  # registry name of a MoleculeNet-layout table
    path: str = ""  # a CSV / CSV.gz / Parquet in the MoleculeNet layout; overrides the registry file
    max_molecules: int = 0  # first N molecules (0 = all)
    proxy_depth: int = 6
    final_trees: int = 100  # the paper's final models: 100 trees of depth 6
    final_depth: int = 6
    max_final_rows: int = 50_000  # rows drawn from the weighted union per final model (0 = all)
    step_size: float = 1.0  # MixMin's entropic mirror descent (paper: 1.0, 100 steps)
    max_iter: int = 100
    seed: int = 0
    device: str = "auto"  # XGBoost device: auto (CUDA when present) | cpu | cuda
    xgb_threads: int = 1
    resume: str = "if_available"
    backend: str = "local"
    n_workers: int = 2

    def __post_init__(self):
        check_common(self)


def check_int(config, *names, minimum: int = 1) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}.")


def check_common(config) -> None:
    """Fields both pipelines have: data, proxy and final-model settings."""
    if not config.dataset and not config.path:
        raise ConfigError("dataset or path must be given (e.g. dataset: toxcast, or path: my_assays.csv).")
    check_int(config, "proxy_depth", "final_trees", "final_depth", "max_iter", "xgb_threads", "n_workers")
    check_int(config, "max_molecules", "max_final_rows", "seed", minimum=0)
    if config.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda; got {config.device!r}.")
    if not (isinstance(config.step_size, (int, float)) and config.step_size > 0):
        raise ConfigError(f"step_size must be a positive number; got {config.step_size!r}.")


def check_source_list(name: str, value, *, allow_count: bool = True) -> None:
    """A list of assay names, or (when allowed) a positive count meaning "the next N assays"."""
    if allow_count and isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"{name} must be a positive count or a list of assay names; got {value!r}.")
        return
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a for a in value):
        what = "a positive count or " if allow_count else ""
        raise ConfigError(f"{name} must be {what}a non-empty list of assay names; got {value!r}.")


# ---- the table, its fingerprints and splits ---------------------------------------------------
def load_table(config) -> chemdata.AssayTable:
    """The configured MoleculeNet-layout table (registered dataset or a path)."""
    from mixmin_core.runs.datasets import resolve

    return chemdata.load_assay_table(resolve(config.dataset or "user table", config.path or None),
                                     max_molecules=config.max_molecules)


def load_metadata(config):
    """Assay metadata (titles, categories) when the dataset has a registered metadata file, else None."""
    from mixmin_core.runs.datasets import REGISTRY, resolve

    name = f"{config.dataset}_assays"
    if config.path or name not in REGISTRY:
        return None
    try:
        return chemdata.load_assay_metadata(resolve(name, download=False))
    except InputError:
        return None


def check_target(table: chemdata.AssayTable, target: str, informative: list) -> None:
    table.index(target)  # "assay ... does not exist" with close matches
    if target not in informative:
        raise InputError(f"target {target!r} has no positive or no negative label in {table.path}; a target needs both.")


@dataclass
class Features:
    """Where the run keeps its fingerprints and labels (for worker processes) and the table key."""

    features_path: str
    labels_path: str
    table_key: str  # content hash of the molecules and fingerprint settings
    valid: np.ndarray


def prepare_features(ctx, table: chemdata.AssayTable, *, radius: int = 2, n_bits: int = 2048) -> Features:
    """ECFP4 fingerprints (from the per-dataset cache) and labels, written once into the run folder."""
    from mixmin_core.chem.fingerprints import cached_fingerprints, save_fingerprints

    feat_p, lab_p = ctx.path("features", "fingerprints.npz"), ctx.path("features", "labels.npz")
    if not feat_p.exists():
        fps, _ = cached_fingerprints(list(table.smiles), radius=radius, n_bits=n_bits)
        save_fingerprints(feat_p, fps)
    if not lab_p.exists():
        with atomic_path(lab_p) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, labels=table.labels, assays=np.asarray(table.assays, dtype=str))
    valid = load_fingerprints(feat_p).valid
    return Features(str(feat_p), str(lab_p), fingerprint_key(list(table.smiles), radius, n_bits), valid)


def fit_split(table: chemdata.AssayTable, assays, *, seed: int, valid=None) -> dict:
    """``{assay: split codes (n_molecules,)}``: the chem pipeline's per-assay 64/16/20 split (trial 0)."""
    return {a: chemsplits.assay_split(table.labels[:, table.index(a)], seed=seed, trial=0, assay=a, valid=valid)
            for a in assays}


def write_sources_csv(run_dir, sources: dict, meta) -> dict:
    """``sources.csv`` for the app: every source of the run with its base assay's title and category.

    ``sources`` maps a source name to its base assay; returns ``{source: {"title", "category"}}``.
    """
    import pandas as pd

    joined = chemdata.join_metadata(list(dict.fromkeys(sources.values())), meta).set_index("source")
    rows = []
    for name, assay in sources.items():
        title = str(joined.loc[assay, "title"]) if assay in joined.index else assay
        part = name[len(assay):]
        rows.append({"source": name, "title": title + (f" (half {part.lstrip('#')})" if part else ""),
                     "category": str(joined.loc[assay, "category"]) if assay in joined.index else "", "assay": assay})
    write_text(sources_path(run_dir), pd.DataFrame(rows).to_csv(index=False))
    return {r["source"]: {"title": r["title"], "category": r["category"]} for r in rows}


# ---- content-addressed proxies ------------------------------------------------------------------
def proxy_cache_dir(store) -> Path:
    """The store-wide proxy folder (shared by every run of the store)."""
    path = Path(store.root) / "proxy_cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def proxy_settings(*, trees: int, depth: int, seed: int) -> dict:
    """Everything that decides a proxy besides its rows: the model settings, the trainer's defaults and
    the XGBoost version (an upgrade retrains rather than mixing old and new models)."""
    import inspect

    import xgboost

    lr = inspect.signature(train_classifier).parameters["learning_rate"].default
    return {"model": "xgboost", "xgboost": xgboost.__version__, "learning_rate": lr, "trees": int(trees),
            "depth": int(depth), "seed": int(seed)}


def proxy_key(table_key: str, rows: np.ndarray, labels: np.ndarray, settings: dict) -> str:
    """Content hash of a proxy: the table, the source's fit rows and their labels, the proxy settings."""
    return content_hash(table_key, np.asarray(rows, dtype=np.int64), np.asarray(labels, dtype=np.int8), settings)


def train_cached_proxy(*, source: str, assay: str, rows, features_path: str, labels_path: str, trees: int,
                       depth: int, seed: int, device: str, n_jobs: int, key: str, output: str) -> dict:
    """One source's proxy on ``rows`` of ``assay``; writes ``<key>.json`` then ``<key>.npz`` (P(y=1) of
    every molecule, compute = trees x rows) in the content-addressed proxy folder."""
    X, valid = load_feature_matrix(features_path)
    labels, assays = load_label_matrix(labels_path)
    rows = np.asarray(rows, dtype=np.int64)
    y = labels[rows, assays.index(assay)]
    start = time.perf_counter()
    clf = train_classifier(X[rows], y, n_estimators=trees, max_depth=depth, device=device, n_jobs=n_jobs, seed=seed)
    seconds = time.perf_counter() - start
    preds = clf.predict(X)
    preds = np.where(valid, preds, np.float32(preds[rows].mean())).astype(np.float32)
    info = {"key": key, "first_source": source, "assay": assay, "rows": int(rows.size), "trees": int(trees),
            "depth": int(depth), "compute": float(trees * rows.size), "train_seconds": seconds,
            "n_pos": int(y.sum())}
    write_json(Path(output).with_suffix(".json"), info)
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, preds=preds, compute=np.float64(trees * rows.size))
    return info


def load_proxy(path) -> tuple[np.ndarray, float]:
    with np.load(path, allow_pickle=False) as z:
        return z["preds"], float(z["compute"])


# ---- mixtures and final models ------------------------------------------------------------------
def save_source_rows(path, names, assays, rows: list) -> None:
    """The sources of one mixture problem (name, assay, fit rows) for the final-model units."""
    offsets = np.cumsum([0] + [len(r) for r in rows])
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, names=np.asarray(names, dtype=str), assays=np.asarray(assays, dtype=str),
                            rows=np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64),
                            offsets=offsets.astype(np.int64))


def final_name(stem: str, result: MixtureResult) -> str:
    """``<stem>-<hash of the weights>.json``: a final model is tied to the exact mixture it was trained on,
    so a mixture that changed on a re-run (new proxies, new solver settings) never reuses a stale one."""
    return f"{stem}-{content_hash(list(result.source_names), result.weights.astype(np.float32))[:12]}.json"


def train_mixture_final(*, mixture_path: str, sources_path: str, target: str, test_rows, features_path: str,
                        labels_path: str, trees: int, depth: int, max_rows: int, seed: int, device: str,
                        n_jobs: int, output: str) -> dict:
    """A final XGBoost on the weighted union of the sources' fit rows (each source's total sample weight
    proportional to its mixture weight, at most ``max_rows`` rows), scored by AP on the target's test rows."""
    from mixmin_core.runs.fileio import read_json

    result = MixtureResult.from_dict(read_json(mixture_path))
    X, _ = load_feature_matrix(features_path)
    labels, table_assays = load_label_matrix(labels_path)
    with np.load(sources_path, allow_pickle=False) as z:
        names, assays, flat, offsets = z["names"].tolist(), z["assays"].tolist(), z["rows"], z["offsets"]
    source_rows = [flat[offsets[i]:offsets[i + 1]] for i in range(len(names))]
    weights = np.array([result.weights[result.source_names.index(n)] for n in names], dtype=np.float64)
    rng = np.random.default_rng([seed, 11])
    r, s, sw = mixture_rows(source_rows, weights, max_rows=max_rows, rng=rng)
    cols = np.array([table_assays.index(a) for a in assays])
    start = time.perf_counter()
    clf = train_classifier(X[r], labels[r, cols[s]], sample_weight=sw, n_estimators=trees, max_depth=depth,
                           device=device, n_jobs=n_jobs, seed=seed)
    test = np.asarray(test_rows, dtype=np.int64)
    t = table_assays.index(target)
    info = {"ap": average_precision(labels[test, t], clf.predict(X[test])), "final_compute": clf.compute,
            "rows": int(r.size), "final_seconds": time.perf_counter() - start}
    write_json(output, info)
    return info
