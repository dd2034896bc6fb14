"""Evolving source sets on chemistry (Olmix's setting): sources are added, removed, split and revised.

Version 0 is the ``initial`` source list; each entry of ``updates`` makes the next version:

  {add: [assays] | N}     new sources (N: the next N informative assays of the table)
  {remove: [sources]}     sources dropped
  {split: source(s)}      a source's molecules split in two by a seeded hash of the SMILES -> "<s>#1", "<s>#2"
  {revise: source(s)}     a new data release: a seeded ``revise_fraction`` of its labelled molecules dropped
                          (the source keeps its name; its content, so its proxy, changes)

Units: one proxy per distinct source content, written to the store's content-addressed proxy folder
(``$MIXMIN_HOME/proxy_cache/<hash>.npz``), so a version trains only the proxies of new or changed
sources; one final model per version. Per version the MixMin solve starts warm from the previous
weights, and the run reports the sources trained vs reused, the proxy compute spent vs recomputing
everything (trees x rows), the mixture change (L1, largest moves) and the final model's test AP.
``evolve.json`` in the run folder is the summary the app's Beyond page reads.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from mixmin_core import ProxyOutputs, mixmin
from mixmin_core.chem import data as chemdata
from mixmin_core.chem.proxies import resolve_device
from mixmin_core.engine.evolving import compute_saved, mixture_change, warm_start
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.fileio import read_json, write_json
from mixmin_core.runs.layout import Problem, mixture_path, outputs_path
from mixmin_core.runs.runner import RunContext, Unit

from . import _chem_beyond as cb

log = logging.getLogger("mixmin.chem_evolve")
UPDATE_KINDS = ("add", "remove", "split", "revise")


@dataclass
class ChemEvolveConfig(cb.ChemBeyondConfig):
    target: str = "APR_HepG2_CellLoss_72h_dn"
    initial: object = 40  # list of assays, or N = the first N informative assays (target excluded)
    updates: list = field(default_factory=list)  # ordered, each {add|remove|split|revise: ...}
    revise_fraction: float = 0.2  # share of a revised source's labelled molecules the new release drops
    caps: object = None  # per-source max weight: one float for every source, or {source or assay: cap}
    prior_strength: float = 0.0  # KL pull towards the natural mixture (0 = plain MixMin)
    proxy_trees: int = 20

    def __post_init__(self):
        super().__post_init__()
        cb.check_int(self, "proxy_trees")
        if not isinstance(self.target, str) or not self.target:
            raise ConfigError(f"target must be an assay name; got {self.target!r}.")
        cb.check_source_list("initial", self.initial)
        if not isinstance(self.updates, list):
            raise ConfigError(f"updates must be a list of {{add|remove|split|revise: ...}} entries; got {self.updates!r}.")
        for i, upd in enumerate(self.updates):
            if not isinstance(upd, dict) or len(upd) != 1 or next(iter(upd)) not in UPDATE_KINDS:
                raise ConfigError(f"updates[{i}] must be a mapping with exactly one key out of {UPDATE_KINDS}, "
                                  f"e.g. {{add: [ASSAY]}} or {{split: ASSAY}}; got {upd!r}.")
            kind, value = next(iter(upd.items()))
            if isinstance(value, str):
                value = [value]
            cb.check_source_list(f"updates[{i}].{kind}", value, allow_count=kind == "add")
        if not (isinstance(self.revise_fraction, (int, float)) and 0 < self.revise_fraction < 1):
            raise ConfigError(f"revise_fraction must be in (0, 1); got {self.revise_fraction!r}.")
        _check_caps_field(self.caps)
        if isinstance(self.prior_strength, bool) or not isinstance(self.prior_strength, (int, float)) \
                or not self.prior_strength >= 0:
            raise ConfigError(f"prior_strength must be a non-negative number; got {self.prior_strength!r}.")


def _check_caps_field(caps) -> None:
    def ok(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1

    if caps is None or (ok(caps)):
        return
    if isinstance(caps, dict) and caps and all(isinstance(k, str) and ok(v) for k, v in caps.items()):
        return
    raise ConfigError(f"caps must be a number in (0, 1] (every source's max weight) or a mapping "
                      f"{{source or assay: cap in (0, 1]}}; got {caps!r}.")


CONFIG = ChemEvolveConfig


def dataset(config: ChemEvolveConfig) -> str:
    return f"{config.path or config.dataset} (chemistry, evolving sources, target {config.target})"


# ---- the source sets of every version -----------------------------------------------------------
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


def _smiles_half(smiles: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{smiles}".encode()) % 2


def build_versions(config: ChemEvolveConfig, table: chemdata.AssayTable, informative: list,
                   valid: np.ndarray | None = None) -> list[Version]:
    """Apply ``config.updates`` to ``config.initial``: the source set (and molecules) of every version.

    Raises
    ------
    InputError
        For an assay that does not exist or has only one label class, an update naming a source the
        version does not have, an added source that is already there, or the target used as a source.
    """
    usable = (table.labels >= 0) if valid is None else (table.labels >= 0) & np.asarray(valid)[:, None]
    pool = [a for a in informative if a != config.target]
    used: set = set()

    def whole(assay: str, where: str) -> Source:
        table.index(assay)
        if assay == config.target:
            raise InputError(f"{where}: {assay!r} is the target; the target's data cannot be a source.")
        if assay not in informative:
            raise InputError(f"{where}: assay {assay!r} has no positive or no negative label in {table.path}.")
        used.add(assay)
        return Source(assay, assay, np.flatnonzero(usable[:, table.index(assay)]))

    def take(count: int, where: str) -> list:
        free = [a for a in pool if a not in used]
        if count > len(free):
            raise InputError(f"{where}: asks for {count} more assays but only {len(free)} informative assays are unused.")
        return free[:count]

    initial = take(config.initial, "initial") if isinstance(config.initial, int) else config.initial
    current = {}
    for a in initial:
        current[a] = whole(a, "initial")
    versions = [Version(0, None, dict(current))]
    for k, upd in enumerate(config.updates, 1):
        kind, value = next(iter(upd.items()))
        where = f"updates[{k - 1}] ({kind})"
        current = dict(current)
        if kind == "add":
            for a in (take(value, where) if isinstance(value, int) else _as_list(value)):
                if a in current:
                    raise InputError(f"{where}: {a!r} is already a source of version {k - 1}.")
                current[a] = whole(a, where)
        else:
            for name in _as_list(value):
                if name not in current:
                    close = difflib.get_close_matches(name, list(current), n=3)
                    raise InputError(f"{where}: {name!r} is not a source of version {k - 1} ({len(current)} sources"
                                     f"{'; similar: ' + str(close) if close else ''}).")
                src = current[name]
                if kind == "remove":
                    del current[name]
                elif kind == "split":
                    halves = np.array([_smiles_half(table.smiles[i], config.seed) for i in src.members])
                    pos = list(current).index(name)
                    items = list(current.items())
                    parts = [(f"{name}#{h + 1}", Source(f"{name}#{h + 1}", src.assay, src.members[halves == h]))
                             for h in (0, 1)]
                    current = dict(items[:pos] + parts + items[pos + 1:])
                else:  # revise: a new release drops a seeded share of the labelled molecules
                    rng = np.random.default_rng([config.seed, k, zlib.crc32(name.encode())])
                    keep = rng.random(src.members.size) >= config.revise_fraction
                    current[name] = Source(name, src.assay, src.members[keep])
        if len(current) < 2:
            raise InputError(f"{where}: leaves {len(current)} source(s); a mixture needs at least 2.")
        versions.append(Version(k, dict(upd), current))
    return versions


def caps_for(config: ChemEvolveConfig, version: Version) -> np.ndarray | None:
    """Per-source caps of a version: a source's own entry, else its base assay's, else 1."""
    if config.caps is None:
        return None
    if not isinstance(config.caps, dict):
        return np.full(len(version.sources), float(config.caps))
    return np.array([float(config.caps.get(n, config.caps.get(s.assay, 1.0))) for n, s in version.sources.items()])


def check_caps_feasible(config: ChemEvolveConfig, versions: list) -> None:
    """Every version's caps must allow a mixture (sum >= 1), and every capped name must exist somewhere."""
    if config.caps is None:
        return
    if isinstance(config.caps, dict):
        known = {n for v in versions for n in v.sources} | {s.assay for v in versions for s in v.sources.values()}
        unknown = sorted(set(config.caps) - known)
        if unknown:
            raise InputError(f"caps name {unknown} which are not sources of any version; "
                             f"cap a source (e.g. {versions[0].names[:3]}) or its assay.")
    for v in versions:
        caps = caps_for(config, v)
        if caps.sum() < 1 - 1e-9:
            raise InputError(f"caps sum to {caps.sum():.3g} < 1 over the {len(caps)} sources of version v{v.index}, so "
                             "no mixture satisfies them (weights sum to 1); raise the caps or add sources.")


def validate(config: ChemEvolveConfig) -> None:
    """Read the table and replay the updates (assay names, caps) before any run folder exists."""
    table = cb.load_table(config)
    informative, _ = chemdata.informative_assays(table)
    cb.check_target(table, config.target, informative)
    check_caps_feasible(config, build_versions(config, table, informative))


# ---- orchestration ----------------------------------------------------------------------------
def run(config: ChemEvolveConfig, ctx: RunContext) -> dict:
    table = cb.load_table(config)
    informative, _ = chemdata.informative_assays(table)
    cb.check_target(table, config.target, informative)
    device = resolve_device(config.device)
    feats = cb.prepare_features(ctx, table)
    versions = build_versions(config, table, informative, feats.valid)
    check_caps_feasible(config, versions)
    assays = sorted({s.assay for v in versions for s in v.sources.values()} | {config.target})
    codes = cb.fit_split(table, assays, seed=config.seed, valid=feats.valid)
    all_sources = {n: s.assay for v in versions for n, s in v.sources.items()}
    cb.write_sources_csv(ctx.run_dir, all_sources, cb.load_metadata(config))

    settings = cb.proxy_settings(trees=config.proxy_trees, depth=config.proxy_depth, seed=config.seed)
    cache = cb.proxy_cache_dir(ctx.store)
    common = {"features_path": feats.features_path, "labels_path": feats.labels_path, "trees": config.proxy_trees,
              "depth": config.proxy_depth, "seed": config.seed, "device": device, "n_jobs": config.xgb_threads}
    t = table.index(config.target)
    fit_t = np.flatnonzero(codes[config.target] == 0)
    test_t = np.flatnonzero(codes[config.target] == 2)
    seen: set = set()
    previous, prev_assays = None, {}
    records, final_units = [], []
    for v in versions:
        problem = Problem(config.target, 0, f"v{v.index}")
        rows, keys, units = {}, {}, {}
        for name, src in v.sources.items():
            rows[name] = np.intersect1d(src.members, np.flatnonzero(codes[src.assay] == 0))
            if rows[name].size == 0:
                raise InputError(f"source {name!r} of version v{v.index} has no molecules in its fit split.")
            keys[name] = cb.proxy_key(feats.table_key, rows[name], table.labels[rows[name], table.index(src.assay)],
                                      settings)
            out = cache / f"{keys[name]}.npz"
            units.setdefault(keys[name], Unit(f"proxy/{keys[name][:16]}", cb.train_cached_proxy, {
                **common, "source": name, "assay": src.assay, "rows": rows[name], "key": keys[name],
                "output": str(out)}, output=out, kind="proxy"))
        ran_now = sorted(n for n in v.sources if not units[keys[n]].is_done())
        ctx.run_units(list(units.values()), f"v{v.index} proxies")
        trained = [n for n in v.names if keys[n] not in seen]
        seen |= set(keys.values())
        proxies = {n: cb.load_proxy(units[keys[n]].output) for n in v.names}
        costs = {n: proxies[n][1] for n in v.names}
        outputs = ProxyOutputs(np.stack([proxies[n][0][fit_t] for n in v.names]), "binary", source_names=v.names,
                               labels=table.labels[fit_t, t].astype(np.float32),
                               natural_weights=np.array([rows[n].size for n in v.names], dtype=np.float64),
                               sample_ids=[str(i) for i in fit_t],
                               meta={"target": config.target, "variant": problem.variant, "split": "fit",
                                     "proxy_compute": float(sum(costs.values()))})
        outputs.save(outputs_path(ctx.run_dir, problem))
        caps = caps_for(config, v)
        solve = dict(step_size=config.step_size, max_iter=config.max_iter, caps=caps, prior_strength=config.prior_strength)
        start = time.perf_counter()
        init = None if previous is None else warm_start(previous, v.names)
        result = mixmin(outputs, init=init, **solve)
        seconds = time.perf_counter() - start
        cold = result if previous is None else mixmin(outputs, **solve)
        saved = compute_saved(costs, trained)
        result = dataclasses.replace(result, meta={**result.meta, "compute": saved["spent"], "seconds": seconds,
                                                   "warm_start": previous is not None, "n_iter_cold": cold.n_iter})
        write_json(mixture_path(ctx.run_dir, problem, "mixmin"), result.to_dict())
        src_p = ctx.path("versions", f"v{v.index}_sources.npz")
        cb.save_source_rows(src_p, v.names, [v.sources[n].assay for n in v.names], [rows[n] for n in v.names])
        fin_p = ctx.path("finals", cb.final_name(f"v{v.index}", result))
        final_units.append(Unit(f"final/v{v.index}", cb.train_mixture_final, {
            "mixture_path": str(mixture_path(ctx.run_dir, problem, "mixmin")), "sources_path": str(src_p),
            "target": config.target, "test_rows": test_t, "features_path": feats.features_path,
            "labels_path": feats.labels_path, "trees": config.final_trees, "depth": config.final_depth,
            "max_rows": config.max_final_rows, "seed": config.seed, "device": device, "n_jobs": config.xgb_threads,
            "output": str(fin_p)}, output=fin_p, kind="final"))
        change = None if previous is None else mixture_change(previous, result)
        if change is not None:  # halves of a split assay count towards their assay: the L1 without renames
            change["l1_by_assay"] = _l1_by_assay(previous, result, {**prev_assays, **{n: s.assay for n, s in
                                                                                      v.sources.items()}})
        records.append({
            "version": v.index, "variant": problem.variant, "update": v.update, "n_sources": len(v.names),
            "added": [n for n in v.names if previous is None or n not in previous.source_names],
            "removed": [] if previous is None else [n for n in previous.source_names if n not in v.sources],
            "trained": trained, "reused": [n for n in v.names if n not in trained], "trained_in_this_job": ran_now,
            "proxy_keys": keys, "compute": saved, "mixture_change": change,
            "n_iter_warm": result.n_iter, "n_iter_cold": cold.n_iter, "loss": result.loss,
            "iters_to_loss_warm": _iters_to(result, cold), "iters_to_loss_cold": _iters_to(cold, result),
            "caps": None if caps is None else dict(zip(v.names, caps.tolist())),
            "weights": dict(zip(v.names, result.weights.astype(float).tolist()))})
        log.info("v%d: %d sources, trained %d, reused %d, saved %.1f%% of proxy compute", v.index, len(v.names),
                 len(trained), len(v.names) - len(trained), 100 * saved["saved_fraction"])
        previous, prev_assays = result, {n: s.assay for n, s in v.sources.items()}
    ctx.run_units(final_units, "final models")
    for rec, unit in zip(records, final_units):
        fin = read_json(unit.output)
        rec["ap"], rec["final_compute"], rec["final_rows"] = fin["ap"], fin["final_compute"], fin["rows"]
    summary = {"target": config.target, "dataset": config.path or config.dataset, "proxy_trees": config.proxy_trees,
               "caps": config.caps, "prior_strength": config.prior_strength, "versions": records}
    write_json(ctx.path("evolve.json"), summary)
    ctx.store.add_results(ctx.run_id, _result_rows(config, records))
    return {"versions": [{k: r[k] for k in ("variant", "n_sources", "ap")} | {
        "trained": len(r["trained"]), "reused": len(r["reused"]),
        "saved_fraction": round(r["compute"]["saved_fraction"], 4),
        "l1_change": None if r["mixture_change"] is None else round(r["mixture_change"]["l1"], 4)} for r in records]}


def _l1_by_assay(before, after, assay_of: dict) -> float:
    """L1 change of the weights summed per base assay (a split assay's halves add up to the assay)."""
    totals: dict = {}
    for sign, result in ((-1.0, before), (1.0, after)):
        for n, w in zip(result.source_names, result.weights.astype(float)):
            totals[assay_of[n]] = totals.get(assay_of[n], 0.0) + sign * w
    return float(sum(abs(d) for d in totals.values()))


def _iters_to(result, other, rel: float = 1e-4) -> int:
    """Iterations until the loss is within ``rel`` (relative) of the better of the two solves' final losses."""
    goal = min(result.loss, other.loss)
    hit = np.flatnonzero(np.asarray(result.losses) <= goal + rel * max(abs(goal), 1e-12))
    return int(hit[0]) if hit.size else int(result.n_iter)


def _result_rows(config, records) -> list:
    rows = []
    for r in records:
        base = {"target": config.target, "method": "mixmin", "trial": 0, "variant": r["variant"]}
        spent, total = r["compute"]["spent"], r["compute"]["total"]
        rows += [
            {**base, "metric": "ap", "value": r["ap"], "compute": total + r["final_compute"],
             "extra": {"final_compute": r["final_compute"], "proxy_compute_total": total, "n_sources": r["n_sources"]}},
            {**base, "metric": "proxy_compute_spent", "value": spent, "compute": spent,
             "extra": {"trained": len(r["trained"]), "reused": len(r["reused"]), "total": total}},
            {**base, "metric": "proxy_compute_saved_fraction", "value": r["compute"]["saved_fraction"], "compute": spent}]
        if r["mixture_change"] is not None:
            rows.append({**base, "metric": "mixture_l1_change", "value": r["mixture_change"]["l1"], "compute": spent})
    return rows
