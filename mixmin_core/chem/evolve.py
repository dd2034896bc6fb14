"""Evolving source sets on chemistry (Olmix's setting): sources are added, removed, split and revised.

Version 0 is the ``initial`` source list; each update makes the next version:

  {add: [assays] | N}     new sources (N: the next N informative assays of the table)
  {remove: [sources]}     sources dropped
  {split: source(s)}      a source's molecules split in two by a seeded hash of the SMILES -> "<s>#1", "<s>#2"
                          (a half split again: the hash salted by its name, "<s>#1#1", "<s>#1#2")
  {revise: source(s)}     a new data release: a seeded ``revise_fraction`` of its labelled molecules dropped
                          (the source keeps its name; its content, so its proxy, changes)

:func:`evolve` runs the versions on a :class:`~mixmin_core.chem.workspace.ChemWorkspace`: one proxy
per source content (cached by content, so a version trains only new or changed sources), MixMin
warm-started from the previous version's weights (and solved cold too, to report what the warm
start saved), and one final model per version. Each version's record (sources trained and reused,
proxy compute spent vs recomputing everything, mixture change, test AP) is what ``evolve.json``
holds and the app's Beyond page reads.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import time
import zlib
from dataclasses import dataclass

import numpy as np

from mixmin_core.chem import data as chemdata
from mixmin_core.chem.workspace import ChemWorkspace, check_source
from mixmin_core.engine.evolving import (
    compute_saved,
    iterations_to_loss,
    l1_by_group,
    mixture_change,
    warm_start,
)
from mixmin_core.errors import InputError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import read_json, write_json
from mixmin_core.runs.layout import Problem
from mixmin_core.solver import constraints
from mixmin_core.solver.solvers import mixmin

log = logging.getLogger("mixmin.chem.evolve")
UPDATE_KINDS = ("add", "remove", "split", "revise")
#: The solves' tolerance on the Frank-Wolfe gap (evolve.json records it: the Beyond page calls a solve that stopped
#: at max_iter short only where its gap is well above it).
SOLVE_TOL = 1e-6


@dataclass
class Source:
    name: str
    assay: str  # the table column its labels come from
    members: np.ndarray  # sorted molecule indices (labelled and valid)


@dataclass
class Version:
    index: int
    update: dict | None
    sources: dict  # name -> Source, in order

    @property
    def names(self) -> list:
        return list(self.sources)


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _smiles_half(smiles: str, seed: int | str) -> int:
    return zlib.crc32(f"{seed}:{smiles}".encode()) % 2


def build_versions(table: chemdata.AssayTable, informative: list, *, target: str, initial, updates: list,
                   revise_fraction: float, seed: int, valid: np.ndarray | None = None) -> list[Version]:
    """Apply ``updates`` to ``initial`` (a list of assays, or N: the first N informative ones): the source
    set (and molecules) of every version.

    Raises
    ------
    InputError
        For an assay that does not exist or has only one label class, an update naming a source the
        version does not have, an added source that is already there, the target used as a source, or
        a version left with fewer than two sources.
    """
    usable = (table.labels >= 0) if valid is None else (table.labels >= 0) & np.asarray(valid)[:, None]
    pool = [a for a in informative if a != target]
    used: set = set()

    def whole(assay: str, where: str) -> Source:
        table.index(assay)
        if assay == target:
            raise InputError(f"{where}: {assay!r} is the target; the target's data cannot be a source.")
        check_source(table, assay, informative, valid, where=where)
        used.add(assay)
        return Source(assay, assay, np.flatnonzero(usable[:, table.index(assay)]))

    def take(count: int, where: str) -> list:
        free = [a for a in pool if a not in used]
        if count > len(free) and where == "initial":  # the first version: nothing is used yet
            raise InputError(f"initial: asks for the first {count} informative assays besides the target, but "
                             f"{table.path} has {len(free)}; ask for at most {len(free)}, or list them.")
        if count > len(free):
            raise InputError(f"{where}: asks for {count} more assays but only {len(free)} informative assays "
                             "are unused.")
        return free[:count]

    first = take(initial, "initial") if isinstance(initial, int) else _once(initial, "initial")
    current = {a: whole(a, "initial") for a in first}
    if len(current) < 2:  # it failed after the proxies had trained ("values must hold at least two sources")
        raise InputError(f"initial: version 0 has {len(current)} source(s); a mixture needs at least 2.")
    versions = [Version(0, None, dict(current))]
    for k, upd in enumerate(updates, 1):
        kind, value = next(iter(upd.items()))
        where = f"updates[{k - 1}] ({kind})"
        current = dict(current)
        if kind == "add":
            for a in (take(value, where) if isinstance(value, int) else _once(_as_list(value), where)):
                if a in current:
                    raise InputError(f"{where}: {a!r} is already a source of version {k - 1}.")
                current[a] = whole(a, where)
        else:
            for name in _once(_as_list(value), where):  # a name twice was revised twice
                if name == target:
                    raise InputError(f"{where}: {name!r} is the target, not a source.")
                current = _apply(kind, name, current, table, where=where, version=k, seed=seed,
                                 revise_fraction=revise_fraction)
                _check_classes(current, name, table, where, kind)
        if len(current) < 2:
            raise InputError(f"{where}: leaves {len(current)} source(s); a mixture needs at least 2.")
        versions.append(Version(k, dict(upd), current))
    return versions


def _once(names: list, where: str) -> list:
    """``names`` if none repeats."""
    twice = sorted({str(n) for n in names if list(names).count(n) > 1})
    if twice:
        raise InputError(f"{where}: names {twice[0]!r} more than once; list each source once.")
    return list(names)


def _check_classes(current: dict, name: str, table, where: str, kind: str) -> None:
    """A split half or a revised release keeps a positive and a negative molecule, as an added assay must: one that
    kept 1 of 60 molecules trained no proxy ("trained" at zero compute) and weighed nothing."""
    for n, src in current.items():
        if n == name or n.startswith(f"{name}#"):
            labels = table.labels[src.members, table.index(src.assay)]
            if not ((labels == 1).any() and (labels == 0).any()):
                fix = "lower revise_fraction, or leave this assay whole" if kind == "revise" else "leave it whole"
                raise InputError(f"{where}: leaves {n!r} with {src.members.size} molecule(s) and no "
                                 f"{'positive' if not (labels == 1).any() else 'negative'} label; a source needs "
                                 f"both ({fix}).")


def _apply(kind: str, name: str, current: dict, table, *, where: str, version: int, seed: int,
           revise_fraction: float) -> dict:
    """``current`` after removing, splitting or revising source ``name``."""
    if name not in current:
        close = difflib.get_close_matches(name, list(current), n=3)
        raise InputError(f"{where}: {name!r} is not a source of version {version - 1} ({len(current)} sources"
                         f"{'; similar: ' + str(close) if close else ''}).")
    src = current[name]
    if kind == "remove":
        return {n: s for n, s in current.items() if n != name}
    if kind == "split":
        # a split half again: the same hash put every molecule of the half on one side, so its name salts it
        salt = seed if name == src.assay else f"{seed}:{name}"
        halves = np.array([_smiles_half(table.smiles[i], salt) for i in src.members], dtype=np.int64)
        parts = {f"{name}#{h + 1}": Source(f"{name}#{h + 1}", src.assay, src.members[halves == h]) for h in (0, 1)}
        out = {}
        for n, s in current.items():
            out.update(parts if n == name else {n: s})
        return out
    rng = np.random.default_rng([seed, version, zlib.crc32(name.encode())])  # revise: a new release
    keep = rng.random(src.members.size) >= revise_fraction
    return {**current, name: Source(name, src.assay, src.members[keep])}


def save_members(path, versions: list[Version]) -> None:
    """Every version's sources as molecule indices (``sources/members.npz``; see
    :func:`mixmin_core.engine.export.run_members`): a split half or a revised release is no whole assay, so an
    export of a version's mixture sizes and lists its sources from here."""
    from mixmin_core.runs.fileio import atomic_path

    sources = [(f"v{v.index}", n, s) for v in versions for n, s in v.sources.items()]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, variants=np.array([v for v, _, _ in sources], dtype=str),
                            names=np.array([n for _, n, _ in sources], dtype=str),
                            assays=np.array([s.assay for _, _, s in sources], dtype=str),
                            counts=np.array([s.members.size for _, _, s in sources], dtype=np.int64),
                            members=np.concatenate([s.members for _, _, s in sources]).astype(np.int64))


def caps_for(caps, version: Version) -> np.ndarray | None:
    """Per-source caps of a version (``caps``: None, one number, or ``{source or assay: cap}``): a source's
    own entry, else its base assay's, else 1."""
    if caps is None:
        return None
    if not isinstance(caps, dict):
        return np.full(len(version.sources), float(caps))
    return np.array([float(caps.get(n, caps.get(s.assay, 1.0))) for n, s in version.sources.items()])


def check_caps(caps, versions: list) -> None:
    """Every version's caps must allow a mixture (sum >= 1), and every capped name must exist somewhere.

    Raises
    ------
    InputError
        Naming the unknown sources or the first version whose caps sum below 1.
    """
    if caps is None:
        return
    if isinstance(caps, dict):
        known = {n for v in versions for n in v.sources} | {s.assay for v in versions for s in v.sources.values()}
        unknown = sorted(set(caps) - known)
        if unknown:
            raise InputError(f"caps name {unknown} which are not sources of any version; "
                             f"cap a source (e.g. {versions[0].names[:3]}) or its assay.")
    for v in versions:
        c = caps_for(caps, v)
        constraints.check_caps(c, len(c), what=f"caps over the {len(c)} sources of version v{v.index}",
                               fix="raise the caps or add sources")


def evolve(ws: ChemWorkspace, versions: list[Version], *, target: str, proxy_trees: int, final_trees: int,
           final_depth: int, max_final_rows: int, caps=None, step_size: float = 1.0, max_iter: int = 100,
           prior_strength: float = 0.0) -> list[dict]:
    """Run every version (proxies, warm and cold MixMin, final model); return one record per version."""
    solve = {"step_size": step_size, "max_iter": max_iter, "prior_strength": prior_strength, "tol": SOLVE_TOL}
    seen: set = set()
    previous, records, finals = None, [], []
    for k, v in enumerate(versions):
        prev_assays = {} if k == 0 else {n: s.assay for n, s in versions[k - 1].sources.items()}
        record, result, final = _run_version(ws, v, previous, prev_assays, seen, target=target, trees=proxy_trees,
                                             solve={**solve, "caps": caps_for(caps, v)},
                                             final={"trees": final_trees, "depth": final_depth,
                                                    "max_rows": max_final_rows})
        records.append(record)
        finals.append(final)
        previous = result
    ws.ctx.run_units(finals, "final models")
    for rec, unit in zip(records, finals):
        fin = read_json(unit.output)
        rec["ap"], rec["final_compute"], rec["final_rows"] = fin["ap"], fin["final_compute"], fin["rows"]
        rec["test_positives"] = fin.get("test_positives")  # the Compare page names targets with few
    return records


def _run_version(ws: ChemWorkspace, v: Version, previous, prev_assays: dict, seen: set, *, target: str, trees: int,
                 solve: dict, final: dict):
    """One version: its proxies, warm (and cold) solve, mixture file and final-model unit."""
    problem = Problem(target, 0, f"v{v.index}")
    rows = {n: np.intersect1d(s.members, ws.rows(s.assay)) for n, s in v.sources.items()}
    empty = [n for n, r in rows.items() if r.size == 0]
    if empty:
        raise InputError(f"source {empty[0]!r} of version v{v.index} has no molecules in its fit split.")
    src_p = ws.sources_file(v.names, [s.assay for s in v.sources.values()], [rows[n] for n in v.names])
    units = {n: ws.proxy_unit(n, s.assay, rows[n], sources_path=src_p, trees=trees) for n, s in v.sources.items()}
    keys = {n: u.output.stem for n, u in units.items()}
    ran = ws.run_proxies(list(units.values()), f"v{v.index} proxies")
    trained = [n for n in v.names if keys[n] not in seen]
    seen |= set(keys.values())
    costs = {n: ws.proxy(units[n])[1] for n in v.names}
    outputs = ws.outputs(target, v.names, [units[n] for n in v.names], natural=[rows[n].size for n in v.names],
                         meta={"variant": problem.variant, "proxy_compute": float(sum(costs.values()))})
    outputs.save(layout.outputs_path(ws.ctx.run_dir, problem))
    result, cold = _solve(outputs, previous, solve)
    saved = compute_saved(costs, trained)
    result = dataclasses.replace(result, meta={**result.meta, "compute": saved["spent"]})
    write_json(layout.mixture_path(ws.ctx.run_dir, problem, "mixmin"), result.to_dict())
    unit = ws.final_unit(f"final/v{v.index}", f"v{v.index}", sources_path=src_p, names=result.source_names,
                         weights=result.weights, target=target, **final)
    change = None if previous is None else mixture_change(previous, result)
    if change is not None:  # halves of a split assay count towards their assay: the L1 without renames
        change["l1_by_assay"] = l1_by_group(previous, result, {**prev_assays, **{n: s.assay for n, s in
                                                                                 v.sources.items()}})
    record = {
        "version": v.index, "variant": problem.variant, "update": v.update, "n_sources": len(v.names),
        "added": [n for n in v.names if previous is None or n not in previous.source_names],
        "removed": [] if previous is None else [n for n in previous.source_names if n not in v.sources],
        "trained": trained, "reused": [n for n in v.names if n not in trained],
        "trained_in_this_job": sorted(n for n in v.names if units[n].unit_id in ran),
        "proxy_keys": keys, "compute": saved, "mixture_change": change, **_solve_record(result, cold),
        "caps": None if solve["caps"] is None else dict(zip(v.names, solve["caps"].tolist())),
        "weights": dict(zip(v.names, result.weights.astype(float).tolist()))}
    log.info("v%d: %d sources, trained %d, reused %d, saved %.1f%% of proxy compute", v.index, len(v.names),
             len(trained), len(v.names) - len(trained), 100 * saved["saved_fraction"])
    return record, result, unit


def _solve(outputs, previous, solve: dict):
    """MixMin warm from the previous version's weights, and cold (to report what the warm start saved)."""
    start = time.perf_counter()
    result = mixmin(outputs, init=None if previous is None else warm_start(previous, outputs.source_names), **solve)
    seconds = time.perf_counter() - start
    cold = result if previous is None else mixmin(outputs, **solve)
    meta = {**result.meta, "seconds": seconds, "warm_start": previous is not None, "n_iter_cold": cold.n_iter}
    return dataclasses.replace(result, meta=meta), cold


def _solve_record(result, cold) -> dict:
    return {"n_iter_warm": result.n_iter, "n_iter_cold": cold.n_iter, "loss": result.loss, "status": result.status,
            # a move after a solve stopped short is partly the warm start converging (null: no finite gap, as JSON has)
            "gap": float(result.gap) if np.isfinite(result.gap) else None,
            "iters_to_loss_warm": iterations_to_loss(result, cold), "iters_to_loss_cold": iterations_to_loss(cold, result)}


def result_rows(target: str, records: list[dict]) -> list[dict]:
    """``results.csv`` rows: per version, the test AP, the proxy compute spent and saved and the L1
    change of the mixture (``proxy_compute``: the proxies this version adds or changes, i.e. what the update
    costs, whether or not this job found them already trained in the store's shared proxy cache)."""
    rows = []
    for r in records:
        spent, total = r["compute"]["spent"], r["compute"]["total"]
        base = {"trial": 0, "target": target, "variant": r["variant"], "method": "mixmin", "proxy_compute": spent,
                "final_compute": r["final_compute"], "proxy_compute_total": total, "n_sources": r["n_sources"]}
        rows += [{**base, "metric": "ap", "value": r["ap"], "test_positives": r.get("test_positives")},
                 {**base, "metric": "proxy_compute_spent", "value": spent, "trained": len(r["trained"]),
                  "reused": len(r["reused"])},
                 {**base, "metric": "proxy_compute_saved_fraction", "value": r["compute"]["saved_fraction"]}]
        if r["mixture_change"] is not None:
            rows.append({**base, "metric": "mixture_l1_change", "value": r["mixture_change"]["l1"]})
            by_assay = r["mixture_change"].get("l1_by_assay")
            if by_assay is not None and abs(by_assay - r["mixture_change"]["l1"]) > 1e-9:  # a split: without renames
                rows.append({**base, "metric": "mixture_l1_change_by_assay", "value": r["mixture_change"]["l1_by_assay"]})
    return rows
