"""The chemistry domain: for a target assay, which other assays to borrow training data from.

Each assay of a multi-assay table (MoleculeNet layout) is one source: its labelled molecules, split
64/16/20 fit/val/test per assay and trial. The engine (:mod:`mixmin_core.engine.experiment`) runs
the plan; this module supplies the adapters: proxies (XGBoost on ECFP4 fingerprints, one per
assay), their P(y=1) on the target's fit split (``binary`` ProxyOutputs), search proxies on
mixtures, final models on the weighted union of the sources' fit splits (all rows by default, the
paper's natural baseline) scored by average precision on the target's test split, the MixMin-
weighted proxy ensemble and target-only models.

Options beyond the paper: ``include_target`` adds the target's own fit split as one more source
(its proxy predicts its own rows out of fold); ``drop_target_test_molecules`` removes the targets'
test molecules from every source (with per-assay splits most of them sit, labelled, in some other
assay's train split).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixmin_core.chem import data as chemdata
from mixmin_core.chem import splits as chemsplits
from mixmin_core.chem.fingerprints import (
    cached_fingerprints,
    fingerprint_key,
    fingerprint_twins,
    load_feature_matrix,
    same_molecule_rows,
    save_fingerprints,
)
from mixmin_core.chem.proxies import (
    average_precision,
    log_loss,
    proxy_scale,
    resolve_device,
    training_weights,
)
from mixmin_core.chem.trainers import (
    load_proxy,
    model_settings,
    proxy_key,
    save_sources,
    train_final,
    train_proxy,
)
from mixmin_core.engine.evolving import content_hash
from mixmin_core.engine.experiment import Plan, Variant
from mixmin_core.engine.sweeps import budget_share_note, check_distinct_points
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import atomic_path, not_a_file, read_json, write_json
from mixmin_core.runs.layout import Problem, budget_variant
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.solver.proxy_outputs import ProxyOutputs

log = logging.getLogger("mixmin.chem")
TRAIN = chemdata.TRAIN_SUFFIX  # suffix of a target's fit + validation rows (its target-only model's training set)


# ---- inputs ------------------------------------------------------------------------------------
@dataclass
class ChemData:
    """Which table to read: a registered dataset or a file in the MoleculeNet / PCBA layouts."""

    dataset: str = "toxcast"
    path: str = ""
    format: str = "auto"
    smiles_column: str = "smiles"
    ignore_columns: tuple = ("mol_id",)
    metadata: str = "auto"
    max_molecules: int = 0
    assays: tuple = ()

    @property
    def table_format(self) -> str:
        """``format``, else the registered dataset's, else what a ``path`` file's columns say (a PCBA file given
        by path alone lost its titles, and a Graphium file's ``CID`` column was read as an assay)."""
        if self.format != "auto":
            return self.format
        if self.dataset in ("pcba128", "pcba1328"):
            return self.dataset
        if not self.path:
            return "moleculenet"
        from mixmin_core.runs.datasets import resolve

        # (resolved as read: a confined job's path stays in the data directory)
        return chemdata.sniff_format(resolve("your assay table", self.path), self.ignore_columns)


def load_table(data: ChemData) -> chemdata.AssayTable:
    """The configured table (restricted to ``data.assays`` when given)."""
    from mixmin_core.runs.datasets import resolve

    fmt, path = data.table_format, data.path or None
    if fmt == "pcba128":
        table = chemdata.load_pcba128(path, max_molecules=data.max_molecules)
    elif fmt == "pcba1328":
        if not data.max_molecules:
            log.info("PCBA-1328: reading the first 100,000 molecules, as the paper does (max_molecules: N reads N)")
        table = chemdata.load_pcba1328(path, max_molecules=data.max_molecules or 100_000)
    else:
        table = chemdata.load_assay_table(resolve("your assay table" if path else data.dataset, path), smiles_column=data.smiles_column,
                                          ignore_columns=list(data.ignore_columns), max_molecules=data.max_molecules)
    return table.select(list(data.assays)) if data.assays else table


#: Largest table whose molecules validation parses (ToxCast's 8,597 take about 2 s the first time).
VALIDATE_PARSE_MOLECULES = 20_000


def parsed_molecules(table: chemdata.AssayTable, *, radius: int = 2, n_bits: int = 2048,
                     limit: int | None = None) -> np.ndarray | None:
    """Which of ``table``'s molecules RDKit parses (``valid``), from the fingerprint cache a run's features unit
    reuses; ``None`` for a table of more than ``limit`` molecules (validation leaves those to the run)."""
    if limit is not None and table.n_molecules > limit:
        return None
    return cached_fingerprints(list(table.smiles), radius=radius, n_bits=n_bits)[0].valid


def check_metadata_name(name: str) -> None:
    """A registered ``metadata`` name must be assay metadata: ``toxcast`` read ToxCast's label table and failed
    listing its columns."""
    from mixmin_core.runs.datasets import REGISTRY

    known = [n for n, d in REGISTRY.items() if d.parser.endswith(".load_assay_metadata")]
    if name in REGISTRY and name not in known:
        hint = f"did you mean {name}_assays? " if f"{name}_assays" in known else ""
        raise InputError(f"{name!r} is a registered assay table, not assay metadata; {hint}The registered metadata: "
                         f"{known} (or a CSV path, 'auto' or '' for none).")


def load_metadata(data: ChemData):
    """Assay metadata (titles, categories), or None when there is none."""
    from mixmin_core.runs.datasets import REGISTRY, resolve

    spec = data.metadata
    if spec == "auto":  # a PCBA file of your own (PCBA-1328 has no download) still has PubChem's titles
        pcba = data.table_format in ("pcba128", "pcba1328")
        name = "pcba128_assays" if pcba else f"{data.dataset}_assays"
        if (data.path and not pcba) or name not in REGISTRY:
            return None
        try:
            return chemdata.load_assay_metadata(resolve(name, download=False))
        except InputError as exc:
            log.warning("no assay metadata: %s", exc)
            return None
    if not spec:
        return None
    path = Path(spec).expanduser()
    try:
        if not (path.suffix or path.exists() or "/" in spec):  # a registered name
            check_metadata_name(spec)
            path = resolve(spec)
        elif not path.is_file():
            raise InputError(f"{path} {not_a_file(path)}: give an assay "
                             "metadata CSV (a 'task' or 'source' column), a registered name, or '' for none.")
        return chemdata.load_assay_metadata(path)
    except InputError as exc:
        raise InputError(f"metadata: {exc}") from None


def make_plan(table: chemdata.AssayTable, *, targets: list, n_targets: int, source_counts: list,
              proxy_budgets: list, trials: int, valid: np.ndarray | None = None,
              include_target: bool = False, test_fraction: float = 0.2, val_fraction: float = 0.2) -> tuple[Plan, list]:
    """Targets x variants x trials; returns the plan and the dropped assays (no positives or negatives).

    Variants are the paper's source-count sweep (``sources-<k>``: the first k informative assays,
    ``all``: every one), or with ``proxy_budgets`` a compute sweep at one source count
    (``budget-<b>``).

    Raises
    ------
    InputError
        If a target does not exist, has one class only (in its test or fit split too), a source count
        exceeds the informative assays, or fewer than two assays (or no valid SMILES) are left.
    ConfigError
        If ``n_targets`` exceeds the informative assays, a source count leaves a target fewer
        than two sources, or two counts give every target the same sources.
    """
    if valid is not None and not np.asarray(valid).any():
        raise InputError(f"{table.path}: none of the {table.n_molecules} SMILES could be parsed by RDKit; "
                         "check the SMILES column (smiles_column) of the table.")
    for t in targets:
        table.index(t)  # raises "assay ... does not exist" with close matches
    assays, dropped = chemdata.informative_assays(table, valid)
    if len(assays) < 2:
        raise InputError(f"{table.path}: {len(assays)} assay(s) have both positive and negative labels among its "
                         f"{table.n_molecules:,} molecules read; need at least 2 (if max_molecules cut the table, "
                         "raise it or set it to 0 for all).")
    gone = {d["assay"]: d for d in dropped}
    for t in targets:
        if t in gone:
            raise InputError(f"target {t!r} has {gone[t]['n_pos']} positives and {gone[t]['n_neg']} negatives in "
                             f"{table.path}; a target needs both.")
    too_many = [c for c in source_counts if c != "all" and int(c) > len(assays)]
    if too_many:
        raise InputError(f"source_counts {too_many} exceed the {len(assays)} informative assays of {table.path}; "
                         f"use counts up to {len(assays)} or 'all'.")
    if not targets and n_targets > len(assays):
        raise ConfigError(f"n_targets: {n_targets} targets asked for, but {table.path} has {len(assays)} informative "
                          f"assays (both labels present); use n_targets up to {len(assays)}, or list the targets.")
    targets = list(targets) or assays[:n_targets]
    chemsplits.check_test_labels(table, targets, valid, test_fraction, val_fraction=val_fraction)
    variants = [Variant(f"sources-{c}", tuple(assays if c == "all" else assays[: int(c)])) for c in source_counts]
    for c, variant in zip(source_counts, variants):
        _check_sources_left(c, variant.sources, targets, include_target, n_assays=len(assays))
    # [6, all] of 6 informative assays: two settings, one set of sources each target mixes
    check_distinct_points(
        "source_counts", {c: tuple(tuple(a for a in v.sources if a != t) for t in targets)
                          for c, v in zip(source_counts, variants)},
        lambda key: (f"sources to every target ({max(map(len, key))} each, of the {len(assays)} informative assays of "
                     f"{table.path})"),
        "Keep one of them" + (f" ('all' is {len(assays)} here)." if "all" in source_counts else "."))
    if proxy_budgets:
        (only,) = variants
        variants = [Variant(budget_variant(b), only.sources, float(b)) for b in sorted(proxy_budgets)]
    return Plan(targets, variants, trials, include_target=include_target), dropped


def budget_proxies(budgets, fit_rows: dict, *, final_trees: int, max_final_rows: int) -> dict:
    """Per budget of a compute sweep: ``((trees, rows per source), share)``: what its proxies train on (as
    :meth:`ChemDomain.scale` and :func:`chemsplits.row_subset` pick it from each source's ``fit_rows``) and the share
    of one final model's compute (``final_trees`` x rows) they cost."""
    total = int(sum(fit_rows.values()))
    final = float(final_trees * (min(total, max_final_rows) if max_final_rows else total))
    out = {}
    for b in budgets:
        trees, fraction = proxy_scale(b, final, total)
        rows = tuple(n if fraction >= 1 else min(n, max(chemsplits.MIN_ROWS, math.ceil(fraction * n)))
                     for n in fit_rows.values())
        out[b] = ((trees, rows), trees * sum(rows) / final)
    return out


def check_budget_sweep(budgets, fit_rows: dict, *, final_trees: int, max_final_rows: int) -> list[str]:
    """Refuse budgets whose proxies coincide (the row floor and one tree at least: [0.0001, 0.0005] trained one
    set twice); return the log lines of budgets whose proxies cost far from their label.

    Raises
    ------
    ConfigError
        Naming ``proxy_budgets``, the budgets that coincide and the proxies they share.
    """
    planned = budget_proxies(budgets, fit_rows, final_trees=final_trees, max_final_rows=max_final_rows)
    check_distinct_points(
        "proxy_budgets", {b: key for b, (key, _) in planned.items()},
        lambda key: (f"proxies ({key[0]} tree(s) on {sum(key[1]):,} rows over {len(fit_rows)} sources: at least "
                     f"{chemsplits.MIN_ROWS} rows of each source and one tree)"),
        "Space the budgets further apart, or keep one of them.")
    notes = (budget_share_note(b, share, f"at least {chemsplits.MIN_ROWS} rows of each source and one tree")
             for b, (_, share) in planned.items())
    return [n for n in notes if n]


def plan_fit_rows(table: chemdata.AssayTable, plan: Plan, valid=None, *, test_fraction: float,
                  val_fraction: float) -> dict:
    """Each source of ``plan``'s (one) budget variant: its fit rows as the splits will size them (per class,
    :func:`chemsplits.split_sizes`), to check a sweep before any split exists."""
    labels, _ = chemsplits.usable_labels(table, valid)
    out = {}
    for a in plan.variants[0].sources:
        column = labels[:, table.index(a)]
        out[a] = sum(chemsplits.split_sizes(int((column == c).sum()), test_fraction, val_fraction)[0] for c in (0, 1))
    return out


def _check_sources_left(count, pool: tuple, targets: list, include_target: bool, *, n_assays: int) -> None:
    """Every target keeps at least two sources at source count ``count`` (``pool``: the first
    ``count`` informative assays), as :meth:`Plan.sources` builds them: the pool minus the target,
    plus the target itself with ``include_target``. MixMin needs two sources to mix.

    Raises
    ------
    ConfigError
        Naming ``source_counts``, the count, the target and a count that works.
    """
    for t in targets:
        n = len(pool) - (t in pool) + include_target
        if n >= 2:
            continue
        pool_text = f"all {len(pool)}" if count == "all" else f"the first {len(pool)}"
        fix = (f"use a count of at least {len(pool) + 1} or 'all'" if n_assays > len(pool)
               else "use a table (or an assays list) with more informative assays, or set include_target: true")
        raise ConfigError(f"source_counts: {count!r} leaves {n} source(s) for target {t!r} ({pool_text} informative "
                          f"assays minus the target); a target needs at least 2 sources: {fix}.")


# ---- prepare units (top level: they run in worker processes) ---------------------------------------
def compute_features(*, smiles_path: str, radius: int, n_bits: int, output: str) -> dict:
    """Fingerprints of every molecule (from the per-dataset cache when present) -> ``output``."""
    with np.load(smiles_path, allow_pickle=False) as z:
        smiles = z["smiles"].tolist()
    fps, hit = cached_fingerprints(smiles, radius=radius, n_bits=n_bits)
    save_fingerprints(output, fps)
    return {"n_molecules": len(smiles), "n_invalid": fps.n_invalid, "invalid_examples": list(fps.invalid_examples),
            "from_cache": hit, "compute": 0.0}


def make_splits(*, labels_path: str, valid: list, seed: int, trial: int, test_fraction: float,
                val_fraction: float, output: str) -> dict:
    from mixmin_core.chem.fingerprints import load_label_matrix

    labels, assays = load_label_matrix(labels_path)
    codes = chemsplits.split_table(labels, assays, seed=seed, trial=trial, test_fraction=test_fraction,
                                   val_fraction=val_fraction, valid=np.asarray(valid, dtype=bool))
    chemsplits.save_splits(output, codes, assays)
    return {"trial": trial, "n_fit": int((codes == chemsplits.FIT).sum()), "compute": 0.0}


def _save_arrays(path: Path, **arrays) -> None:
    if not path.exists():
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


@dataclass(frozen=True)
class Features:
    """A run's molecules as its units read them (:func:`prepare_features`)."""

    features_path: str  # fingerprints (``features/fingerprints.npz``)
    labels_path: str  # the table's labels and assay names (``features/labels.npz``)
    matrix: np.ndarray  # the fingerprints, one row per molecule
    valid: np.ndarray  # which molecules RDKit parses (the others are in no split)
    table_key: str  # names the table's fingerprints in shared caches (:func:`fingerprint_key`)
    invalid_examples: list  # a few SMILES RDKit cannot parse
    fingerprint_twins: int = 0  # molecules whose fingerprint another, different molecule has


def prepare_features(ctx: RunContext, table: chemdata.AssayTable, *, radius: int, n_bits: int) -> Features:
    """Save ``table``'s SMILES and labels in the run, run its fingerprints unit (from the shared cache when
    there) and say which molecules RDKit cannot parse and which rows hold one molecule twice."""
    feat_p, lab_p, smiles_p = (str(ctx.path("features", f"{n}.npz")) for n in ("fingerprints", "labels", "smiles"))
    _save_arrays(Path(smiles_p), smiles=np.asarray(table.smiles, dtype=str))
    _save_arrays(Path(lab_p), labels=table.labels, assays=np.asarray(table.assays, dtype=str))
    feat = ctx.run_units([Unit("features", compute_features, {
        "smiles_path": smiles_p, "radius": radius, "n_bits": n_bits, "output": feat_p},
        output=Path(feat_p), kind="features")], "fingerprints")["features"]
    matrix, valid = load_feature_matrix(feat_p)
    if not valid.all():  # said on every run (a cached featurization logs nothing)
        log.warning("%d of %d molecules have SMILES RDKit cannot parse and are left out, e.g. %s",
                    (~valid).sum(), valid.size, feat.get("invalid_examples", [])[:3])
    same = same_molecule_rows(table.smiles, matrix, valid)
    if same:  # a shipped table has some (ClinTox): said, not refused; the splits are per row
        first, second = same[0]
        log.warning("%d pair(s) of rows hold one molecule written two ways, e.g. data rows %d and %d (%r, %r); "
                    "the per-assay splits may put such a molecule in a source's training rows and a target's test "
                    "rows. Merge them into one row in your own tables.", len(same), first + 1, second + 1,
                    table.smiles[first], table.smiles[second])
    twins = fingerprint_twins(table.smiles, matrix, valid)
    n_twins = len({i for pair in twins for i in pair})  # every molecule of such a pair
    if twins:  # ToxCast has hundreds (stereoisomers, small inorganics): said, as the models see them as one
        first, second = twins[0]
        log.warning("%d molecule(s) share their fingerprint with a different molecule (stereoisomers, molecules "
                    "too small to tell apart, or bits the hashed fingerprint folds together), e.g. data rows %d and %d (%r, %r): the models see each such set as one "
                    "molecule, and the per-assay splits may put one in a source's training rows and its twin in a "
                    "target's test rows", n_twins, first + 1, second + 1, table.smiles[first], table.smiles[second])
    return Features(feat_p, lab_p, matrix, valid, fingerprint_key(list(table.smiles), radius, n_bits),
                    list(feat.get("invalid_examples", [])), n_twins)


# ---- the domain --------------------------------------------------------------------------------
@dataclass
class ChemModels:
    """Model and split settings of the chemistry domain (see ``jobs/pipelines/chem.py`` for each)."""

    seed: int = 0
    radius: int = 2
    n_bits: int = 2048
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    proxy_trees: int = 50
    proxy_depth: int = 6
    tune: bool = False
    final_trees: int = 100
    final_depth: int = 6
    max_final_rows: int = 0
    search_trees: int = 0
    search_rows: int = 0
    device: str = "auto"
    xgb_threads: int = 1
    drop_target_test_molecules: bool = False


class ChemDomain:
    headline_metric = "ap"
    lower_is_better = False
    # RegMix's "at most 15 epochs of a source" bound is about repeating LM tokens; a weighted XGBoost
    # mixture has no such limit (and the bound rejects most swarm draws over ~100 assays).
    regmix_max_usage = None

    def __init__(self, ctx: RunContext, table: chemdata.AssayTable, data: ChemData, models: ChemModels, *,
                 targets: list, n_targets: int, source_counts: list, proxy_budgets: list, trials: int,
                 include_target: bool):
        self.ctx, self.table, self.m = ctx, table, models
        self.device = resolve_device(models.device)
        self.gpus = 1.0 if self.device == "cuda" else 0.0  # what a training unit asks Ray for
        features = prepare_features(ctx, table, radius=models.radius, n_bits=models.n_bits)
        self.feat_p, self.lab_p, self.valid, self.table_key = (features.features_path, features.labels_path,
                                                               features.valid, features.table_key)
        self.plan, dropped = make_plan(table, targets=targets, n_targets=n_targets, source_counts=source_counts,
                                       proxy_budgets=proxy_budgets, trials=trials, valid=self.valid,
                                       include_target=include_target, test_fraction=models.test_fraction,
                                       val_fraction=models.val_fraction)
        if dropped:
            log.warning("%d assay(s) without both classes among the parsed molecules are left out: %s",
                        len(dropped), ", ".join(d["assay"] for d in dropped[:5]) + (", ..." if len(dropped) > 5 else ""))
        self._write_sources(load_metadata(data))
        self.splits_p = {k: str(ctx.path("splits", f"trial{k}.npz")) for k in range(trials)}
        ctx.run_units([Unit(f"splits/trial{k}", make_splits, {
            "labels_path": self.lab_p, "valid": self.valid.tolist(), "seed": models.seed, "trial": k,
            "test_fraction": models.test_fraction, "val_fraction": models.val_fraction, "output": p},
            output=Path(p), kind="splits") for k, p in self.splits_p.items()], "splits")
        if proxy_budgets:  # the splits' own rows: exact where drop_target_test_molecules thins them
            fit = {a: self.source_rows(0)[a].size for a in self.plan.variants[0].sources}
            for note in check_budget_sweep(proxy_budgets, fit, final_trees=models.final_trees,
                                           max_final_rows=models.max_final_rows):
                log.warning("%s", note)
        write_json(ctx.path("dataset.json"), {
            "path": table.path, "n_molecules": table.n_molecules, "n_assays": table.n_assays,
            "n_invalid_smiles": int((~self.valid).sum()), "invalid_examples": features.invalid_examples,
            "molecules_sharing_a_fingerprint": features.fingerprint_twins,
            "n_dropped_assays": len(dropped), "dropped_assays": dropped, "targets": self.plan.targets,
            "variants": {v.name: len(v.sources) for v in self.plan.variants}, "device": self.device,
            "max_final_rows": models.max_final_rows, "include_target": include_target,
            "drop_target_test_molecules": models.drop_target_test_molecules,
            "test_molecules_in_sources": self.source_overlap(),
            "fit_molecules_in_each_source": self.source_overlap("fit")})
        self.cache = Path(ctx.store.root) / "proxy_cache"
        self._preds: dict[str, np.ndarray] = {}

    # ---- rows and sources files -------------------------------------------------------------------
    @functools.cache
    def codes(self, trial: int) -> np.ndarray:
        return chemsplits.load_splits(self.splits_p[trial])[0]

    def rows(self, assay: str, trial: int, part="fit") -> np.ndarray:
        return chemsplits.part(self.codes(trial)[:, self.table.index(assay)], part)

    @functools.cache
    def source_rows(self, trial: int) -> dict[str, np.ndarray]:
        """Each informative assay's fit rows in ``trial`` (without the targets' test molecules when
        ``drop_target_test_molecules``), and each target's fit + validation rows as ``<target>@train``."""
        dropped = np.zeros(0, np.int64)
        if self.m.drop_target_test_molecules:
            dropped = np.unique(np.concatenate([self.rows(t, trial, "test") for t in self.plan.targets]))
        assays = list(dict.fromkeys([a for v in self.plan.variants for a in v.sources]  # with include_target, a
                                    + (self.plan.targets if self.plan.include_target else [])))  # target's own too
        out = {a: np.setdiff1d(self.rows(a, trial), dropped) for a in assays}
        out.update({t + TRAIN: self.rows(t, trial, ("fit", "val")) for t in self.plan.targets})
        return out

    def source_overlap(self, split: str = "test") -> dict[str, float]:
        """Per target, the share of its test molecules that the fit rows of its sources (in the largest
        setting) hold, labelled for their own assays, averaged over trials. Per-assay splits (the paper's)
        leave most there; ``drop_target_test_molecules`` removes them, and then this is 0.

        ``split="fit"``: the share of the target's fit molecules (those MixMin's weights are fitted on) in one
        source's fit rows, the mean over its sources: the proxies are scored that often on molecules they
        trained on (labelled for their own assay), which no option removes."""
        largest = max(self.plan.variants, key=lambda v: len(v.sources)).name
        out = {}
        for t in self.plan.targets:
            shares = []
            for k in self.splits_p:
                rows = self.source_rows(k)
                sources = [rows[a] for a in self.plan.sources(Problem(t, k, largest)) if a != t]
                scored = self.rows(t, k, split)
                if split == "test":
                    held = np.concatenate(sources or [[]])
                    shares.append(float(np.isin(scored, held).mean()) if scored.size else 0.0)
                else:
                    shares.append(float(np.mean([np.isin(scored, r).mean() for r in sources])) if scored.size and sources else 0.0)
            out[t] = round(float(np.mean(shares)), 4)
        return out

    @functools.cache
    def sources_file(self, trial: int, variant: str = "", fraction: float = 1.0) -> str:
        """The sources file of ``trial`` (at ``fraction`` of every source's rows for a budget variant)."""
        path = self.ctx.path("sources", f"trial{trial}{'__' + variant if variant else ''}.npz")
        rows = self.source_rows(trial)
        if fraction < 1:
            rows = {a: chemsplits.row_subset(r, fraction, seed=self.m.seed, assay=a) for a, r in rows.items()}
        save_sources(path, list(rows), [a.removesuffix(TRAIN) for a in rows], list(rows.values()))
        return str(path)

    @functools.cache
    def rows_key(self, trial: int) -> str:
        """Content hash of ``trial``'s sources (molecules, rows, labels): keys models trained on them,
        wherever the store lives."""
        rows = self.source_rows(trial)
        return content_hash(self.table_key, list(rows), list(rows.values()), self.table.labels)

    @functools.cache
    def scale(self, trial: int, variant: str) -> tuple[int, float]:
        """(trees, row fraction) of the proxies of ``variant``: the configured proxies, or in a compute
        sweep the budget's share of one final model's compute (trees x rows)."""
        budget = self.plan.variant(variant).budget
        if budget is None:
            return self.m.proxy_trees, 1.0
        fit = np.array([self.source_rows(trial)[a].size for a in self.plan.variant(variant).sources])
        final_rows = min(fit.sum(), self.m.max_final_rows) if self.m.max_final_rows else fit.sum()
        return proxy_scale(budget, float(self.m.final_trees * final_rows), int(fit.sum()))

    def _settings(self, trees: int, **extra) -> dict:
        return model_settings(trees=trees, depth=self.m.proxy_depth, device=self.device, **extra)

    # ---- adapters ---------------------------------------------------------------------------------
    def proxy_units(self, problem: Problem) -> dict[str, Unit]:
        trees, fraction = self.scale(problem.trial, problem.variant)
        variant = problem.variant if fraction < 1 else ""
        path = self.sources_file(problem.trial, variant, fraction)
        units = {}
        for a in self.plan.sources(problem):
            # only the target's own data is scored on its own rows; as another target's source it is a plain proxy
            crossfit = self.plan.include_target and a == problem.target
            rows = self.source_rows(problem.trial)[a]
            if fraction < 1:
                rows = chemsplits.row_subset(rows, fraction, seed=self.m.seed, assay=a)
            seed = self.m.seed + problem.trial
            key = proxy_key(self.table_key, a, rows, self.table.labels[rows, self.table.index(a)],
                            self._settings(trees, tune=self.m.tune, crossfit=crossfit, seed=seed))
            out = self.cache / f"{key}.npz"
            budgeted = self.plan.variant(problem.variant).budget is not None
            where = f"trial{problem.trial}/" + (f"{problem.variant}/" if budgeted else "")
            units[a] = Unit(f"proxy{'-crossfit' if crossfit else ''}/{where}{a}", train_proxy, {
                "features_path": self.feat_p, "labels_path": self.lab_p, "sources_path": path, "names": [a],
                "weights": [1.0], "trees": trees, "depth": self.m.proxy_depth, "tune": self.m.tune,
                "crossfit": crossfit, "seed": seed, "device": self.device, "n_jobs": self.m.xgb_threads,
                "output": str(out)}, output=out, kind="proxy", num_gpus=self.gpus)
        return units

    def _proxy_preds(self, unit: Unit) -> np.ndarray:
        if unit.unit_id not in self._preds:
            self._preds[unit.unit_id] = load_proxy(unit.output)[0]
        return self._preds[unit.unit_id]

    def stored_compute(self, unit: Unit) -> float:
        """The compute a proxy or search run recorded in its file (e.g. a proxy another run trained)."""
        return load_proxy(unit.output)[1]

    def proxy_outputs(self, problem: Problem, units: dict) -> ProxyOutputs:
        t = self.table.index(problem.target)
        fit = self.rows(problem.target, problem.trial)
        names = list(units)
        sizes = np.array([self.source_rows(problem.trial)[a].size for a in names], dtype=np.float64)
        values = np.stack([self._proxy_preds(units[a])[fit] for a in names])
        return ProxyOutputs(values, "binary", source_names=names, labels=self.table.labels[fit, t],
                            natural_weights=np.maximum(sizes, 1), sample_ids=[str(i) for i in fit],
                            meta={"target": problem.target, "variant": problem.variant, "trial": problem.trial,
                                  "split": "fit"})

    def _search_scale(self, problem: Problem) -> tuple[int, int]:
        trees, fraction = self.scale(problem.trial, problem.variant)
        fit = np.array([self.source_rows(problem.trial)[a].size for a in self.plan.sources(problem)])
        # rounded down: a mean rounded up made P proxies' compute fit only P - 1 search runs (floor of the ratio)
        rows = self.m.search_rows or max(chemsplits.MIN_ROWS, int(np.floor(fraction * fit.mean())))
        return self.m.search_trees or trees, rows

    def search_cost(self, problem: Problem, method: str) -> float:
        trees, rows = self._search_scale(problem)
        return float(trees * rows)

    def search_run(self, problem: Problem, method: str, weights: np.ndarray) -> Unit:
        trees, rows = self._search_scale(problem)
        names = self.plan.sources(problem)
        w = training_weights(weights)
        seed = self.m.seed + problem.trial
        key = content_hash(self.rows_key(problem.trial), names, w,
                           self._settings(trees, rows=rows, seed=seed, drop=self.m.drop_target_test_molecules))
        out = self.ctx.path("search", f"{key[:32]}.npz")
        return Unit(f"search/{key[:12]}", train_proxy, {
            "features_path": self.feat_p, "labels_path": self.lab_p, "sources_path": self.sources_file(problem.trial),
            "names": names, "weights": w, "max_rows": rows, "trees": trees, "depth": self.m.proxy_depth,
            "seed": seed, "device": self.device, "n_jobs": self.m.xgb_threads, "output": str(out)},
            output=out, kind="search", num_gpus=self.gpus)

    def search_loss(self, problem: Problem, unit: Unit) -> float:
        fit = self.rows(problem.target, problem.trial)
        y = self.table.labels[fit, self.table.index(problem.target)]
        return log_loss(y, load_proxy(unit.output)[0][fit])

    def _final_unit(self, problem: Problem, names: list, weights, *, tune: bool = False) -> Unit:
        w = training_weights(weights)
        m = self.m
        args = {"names": names, "weights": w, "max_rows": m.max_final_rows, "trees": m.final_trees,
                "depth": m.final_depth, "tune": tune, "seed": m.seed + problem.trial, "target": problem.target}
        key = content_hash(self.rows_key(problem.trial), args, self._settings(m.final_trees))[:16]
        out = self.ctx.path("finals", f"{layout.safe_name(problem.target)}__trial{problem.trial}-{key}.json")
        test = self.rows(problem.target, problem.trial, "test").tolist()
        return Unit(f"final/{problem.target}/trial{problem.trial}/{key}", train_final, {
            **args, "features_path": self.feat_p, "labels_path": self.lab_p,
            "sources_path": self.sources_file(problem.trial), "test_rows": test, "device": self.device,
            "n_jobs": m.xgb_threads, "output": str(out)}, output=out, kind="final", num_gpus=self.gpus)

    def _row(self, problem: Problem, method: str, value: float, **extra) -> dict:
        return {"trial": problem.trial, "target": problem.target, "variant": problem.variant, "method": method,
                "metric": "ap", "value": float(value), "max_final_rows": self.m.max_final_rows, **extra}

    def final_rows(self, mixtures: dict) -> list[dict]:
        units = {key: self._final_unit(key[0], list(r.source_names), r.weights) for key, r in mixtures.items()}
        self.ctx.run_units(list({u.unit_id: u for u in units.values()}.values()), "final models")
        rows = []
        for (p, method), unit in units.items():
            fin = read_json(unit.output)
            rows.append(self._row(p, method, fin["ap"], proxy_compute=float(mixtures[p, method].meta.get("compute", 0)),
                                  final_compute=fin["final_compute"], rows=fin["rows"],
                                  test_positives=fin.get("test_positives"),
                                  n_sources=len(mixtures[p, method].source_names)))
        return rows

    def ensemble_rows(self, problem: Problem, result) -> list[dict]:
        """The MixMin-weighted average of the proxies' predictions, scored on the test split (no retraining)."""
        test = self.rows(problem.target, problem.trial, "test")
        units = self.proxy_units(problem)
        preds = np.stack([self._proxy_preds(units[a])[test] for a in result.source_names])
        y = self.table.labels[test, self.table.index(problem.target)]
        ap = average_precision(y, result.weights.astype(np.float64) @ preds)
        return [self._row(problem, "ensemble", ap, proxy_compute=float(result.meta.get("compute", 0)),
                          final_compute=0.0, n_sources=len(result.source_names))]

    def target_only_rows(self, problems: list) -> list[dict]:
        """The paper's baseline: XGBoost on the target's own train split (fit + validation)."""
        units = {p: self._final_unit(Problem(p.target, p.trial), [p.target + TRAIN], [1.0], tune=self.m.tune)
                 for p in problems}
        self.ctx.run_units(list({u.unit_id: u for u in units.values()}.values()), "target-only models")
        rows = []
        for p, unit in units.items():
            fin = read_json(unit.output)
            rows.append(self._row(p, "target_only", fin["ap"], proxy_compute=0.0, final_compute=fin["final_compute"],
                                  rows=fin["rows"], n_sources=0, test_positives=fin.get("test_positives")))
        return rows

    def _write_sources(self, meta) -> None:
        assays = list(dict.fromkeys([a for v in self.plan.variants for a in v.sources]  # with include_target, a
                                    + (self.plan.targets if self.plan.include_target else [])))  # target's own too
        sel = self.table.select(assays).labels[self.valid]  # the molecules RDKit parses: those the splits hold
        joined = chemdata.join_metadata(assays, meta).drop(columns=["n_labeled", "n_pos", "pos_rate"], errors="ignore")
        n = (sel >= 0).sum(axis=0)
        for i, (col, values) in enumerate({"n_labelled": n, "n_pos": (sel == 1).sum(axis=0),
                                           "natural_weight": n / max(n.sum(), 1)}.items()):
            joined.insert(3 + i, col, values)
        layout.write_sources(self.ctx.run_dir, joined)
