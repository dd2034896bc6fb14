"""Evolving source sets (Olmix's setting): sources are added, removed, split or revised over time.

Proxies are keyed by a hash of the source's content and the proxy config, so an update retrains
only new or changed sources; the solve starts warm from the previous weights, and the update
reports the proxy compute it saved and how the mixture moved.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.results import MixtureResult


def content_hash(*parts) -> str:
    """SHA-256 over arrays (dtype, shape and bytes), strings/bytes and JSON-able objects."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (list, tuple)) and any(isinstance(p, (np.ndarray, list, tuple)) for p in part):
            digest.update(f"[{len(part)}".encode())  # nested arrays: hash every byte (str() would elide them)
            digest.update(content_hash(*part).encode())
        elif isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
            digest.update(arr.tobytes())
        elif isinstance(part, bytes):
            digest.update(part)
        elif isinstance(part, str):
            digest.update(part.encode())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def warm_start(previous: MixtureResult, source_names, new_share: float = 0.5) -> np.ndarray:
    """Start weights for the new source set from the previous mixture.

    Kept sources keep their previous weight; sources new to the set share, each, ``new_share``
    times the mean previous weight (mirror descent needs every weight positive); renormalised.
    """
    if not 0 < new_share:
        raise InputError(f"new_share must be positive; got {new_share!r}.")
    prev = dict(zip(previous.source_names, map(float, previous.weights)))
    fill = new_share / max(len(prev), 1)
    w = np.array([max(prev.get(n, fill), 1e-6) for n in source_names], dtype=np.float64)
    return (w / w.sum()).astype(np.float32)


def mixture_change(previous: MixtureResult, current: MixtureResult, top: int = 10) -> dict:
    """L1 distance over the union of sources (missing = 0) and the largest per-source moves."""
    names = list(dict.fromkeys([*previous.source_names, *current.source_names]))
    before = dict(zip(previous.source_names, map(float, previous.weights)))
    after = dict(zip(current.source_names, map(float, current.weights)))
    deltas = {n: after.get(n, 0.0) - before.get(n, 0.0) for n in names}
    moves = sorted(deltas.items(), key=lambda kv: -abs(kv[1]))[:top]
    return {"l1": float(sum(abs(d) for d in deltas.values())),
            "largest_moves": [{"source": n, "before": before.get(n, 0.0), "after": after.get(n, 0.0), "delta": d}
                              for n, d in moves]}


def compute_saved(costs: dict[str, float], trained: set[str] | tuple) -> dict:
    """Proxy compute of an update against recomputing every proxy of the current set."""
    total = float(sum(costs.values()))
    spent = float(sum(costs[n] for n in trained if n in costs))
    return {"total": total, "spent": spent, "saved": total - spent,
            "saved_fraction": (total - spent) / total if total else 0.0}


def l1_by_group(previous: MixtureResult, current: MixtureResult, group_of: dict) -> float:
    """L1 change of the weights summed per group (e.g. a split source's halves add up to their assay),
    so renaming or splitting a source is not counted as a change of the mixture."""
    totals: dict = {}
    for sign, result in ((-1.0, previous), (1.0, current)):
        for n, w in zip(result.source_names, result.weights.astype(np.float64)):
            totals[group_of[n]] = totals.get(group_of[n], 0.0) + sign * float(w)
    return float(sum(abs(d) for d in totals.values()))


def iterations_to_loss(result: MixtureResult, other: MixtureResult, rel: float = 1e-4) -> int:
    """Iterations ``result`` took to come within ``rel`` (relative) of the better final loss of the two
    solves (how a warm start is compared with a cold one)."""
    goal = min(result.loss, other.loss)
    hit = np.flatnonzero(np.asarray(result.losses) <= goal + rel * max(abs(goal), 1e-12))
    return int(hit[0]) if hit.size else int(result.n_iter)
