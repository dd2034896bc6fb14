"""The chemistry pipeline: for a target assay, which other assays to borrow training data from.

Each assay of a multi-assay table (MoleculeNet layout) is one source: its labelled molecules.
Units (each resumable, run through ``ctx.run_units``):

  features                      ECFP fingerprints of every molecule (also cached per dataset)
  splits/trial<k>               per-assay stratified 64/16/20 fit/val/test splits, seeded per trial
  proxy/trial<k>/<assay>        one XGBoost proxy per assay on its fit split, predicting every molecule
  mix/<problem>                 per (target, variant, trial): ProxyOutputs on the target's fit split,
                                MixMin / natural / balanced / random search / RegMix weights, the
                                MixMin-weighted proxy ensemble, bootstrap intervals and the top-k table
  final/<problem>/<method>      a final XGBoost on the weighted union of the other assays' fit splits,
                                scored by average precision on the target's test split
  target_only/<target>/trial<k> the paper's baseline: XGBoost on the target's own train split

Variants are the paper's source-count sweep: sources = the first 10 / 100 / all assays (minus the target),
or, with ``proxy_budgets``, a compute sweep at one source count: variant ``budget-<b>`` trains its own
proxies at b x one final model's compute (trees x rows), and random search / RegMix get the same.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixmin_core import (
    ProxyOutputs,
    balanced,
    bootstrap_weights,
    mixmin,
    natural,
    summarize,
)
from mixmin_core.chem import data as chemdata
from mixmin_core.chem import splits as chemsplits
from mixmin_core.chem.fingerprints import (
    cached_fingerprints,
    load_feature_matrix,
    load_label_matrix,
    save_fingerprints,
)
from mixmin_core.chem.proxies import (
    average_precision,
    grid_search,
    log_loss,
    mixture_rows,
    proxy_scale,
    resolve_device,
    train_classifier,
)
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.fileio import atomic_path, read_json, write_json, write_text
from mixmin_core.runs.layout import (
    Problem,
    budget_variant,
    mixture_path,
    outputs_path,
    safe_name,
    sources_path,
    topk_path,
)
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.solver.results import mean_over_targets

log = logging.getLogger("mixmin.chem")

MIXTURE_METHODS = ("mixmin", "natural", "balanced", "random_search", "regmix")
METHODS = MIXTURE_METHODS + ("target_only", "ensemble")
SEARCH_METHODS = ("random_search", "regmix")
FORMATS = ("auto", "moleculenet", "pcba128", "pcba1328")


@dataclass
class ChemConfig:
    dataset: str = "toxcast"  # registry name (toxcast, muv, tox21, sider, clintox, pcba128, pcba1328)
    path: str = ""  # a CSV / CSV.gz / Parquet in the MoleculeNet layout; overrides the registry file
    format: str = "auto"  # auto (from dataset) | moleculenet | pcba128 | pcba1328
    smiles_column: str = "smiles"
    ignore_columns: list = field(default_factory=lambda: ["mol_id"])  # non-assay columns of a user table
    metadata: str = "auto"  # assay titles/categories: auto (<dataset>_assays if registered) | registry name | path | ""
    max_molecules: int = 0  # first N molecules (0 = all; PCBA-1328 defaults to 100,000 as in the paper)
    assays: list = field(default_factory=list)  # restrict the table to these assays (order kept); [] = all
    targets: list = field(default_factory=list)  # target assays; [] = the first n_targets assays
    n_targets: int = 10
    source_counts: list = field(default_factory=lambda: [10, 100, "all"])  # sources = first k assays minus the target
    # compute sweep (one source count): proxies of all sources together cost b x one final model, per b
    proxy_budgets: list = field(default_factory=list)
    trials: int = 3
    seed: int = 0
    test_fraction: float = 0.2  # per assay: 80/20 train/test ...
    val_fraction: float = 0.2  # ... and train 80/20 fit/validation (the paper's 64/16/20)
    radius: int = 2  # ECFP4: Morgan radius 2
    n_bits: int = 2048
    proxy_trees: int = 50  # cheap proxy: 50 trees of depth 6 (tune=True: the paper's CV grid)
    proxy_depth: int = 6
    tune: bool = False  # 5-fold CV over n_estimators {10,50,100} x max_depth {4,6,8} for proxies and target-only
    final_trees: int = 100  # the paper's final models: 100 trees, depth 6
    final_depth: int = 6
    max_final_rows: int = 60_000  # rows drawn from the weighted union per final model (0 = all)
    methods: list = field(default_factory=lambda: list(METHODS))
    search_max_sources: int = 100  # random search / RegMix only for variants with at most this many sources
    search_trees: int = 0  # trees per search proxy (0 = proxy_trees)
    search_rows: int = 0  # rows per search proxy (0 = the mean source fit size: one search proxy costs one source proxy)
    regmix_preset: str = "auto"  # auto = mixmin-paper (10 trees; "faithful" predicted a constant on ToxCast's ~100 runs) | faithful
    regmix_candidates: int = 100_000
    step_size: float = 1.0  # MixMin entropic mirror descent (paper: 1.0, 100 steps)
    max_iter: int = 100
    n_boot: int = 100  # bootstrap resamples for weight intervals (0 = none)
    top_k: int = 10
    device: str = "auto"  # XGBoost device: auto (CUDA when present) | cpu | cuda
    xgb_threads: int = 1  # threads per XGBoost model (units already run in n_workers processes)
    resume: str = "if_available"
    backend: str = "local"
    n_workers: int = 2

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {FORMATS}; got {self.format!r}.")
        if not self.dataset and not self.path:
            raise ConfigError("dataset or path must be given (e.g. dataset: toxcast, or path: my_assays.csv).")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods or "mixmin" not in self.methods:
            raise ConfigError(f"methods must be a list from {METHODS} including 'mixmin'; got {self.methods!r}.")
        for name in ("trials", "n_targets", "radius", "n_bits", "proxy_trees", "proxy_depth", "final_trees",
                     "final_depth", "max_iter", "top_k", "xgb_threads", "regmix_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "radius" else 1):
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
        for name in ("max_molecules", "max_final_rows", "search_trees", "search_rows", "n_boot", "search_max_sources"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer; got {value!r}.")
        if self.n_boot == 1:
            raise ConfigError("n_boot must be 0 (no intervals) or at least 2; got 1.")
        for name in ("test_fraction", "val_fraction"):
            if not 0 < float(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be in (0, 1); got {getattr(self, name)!r}.")
        if not isinstance(self.source_counts, list) or not self.source_counts or not all(
                c == "all" or (isinstance(c, int) and not isinstance(c, bool) and c >= 2) for c in self.source_counts):
            raise ConfigError(f"source_counts must be a non-empty list of integers >= 2 or 'all'; got {self.source_counts!r}.")
        if self.regmix_preset not in ("auto", "faithful", "mixmin-paper"):
            raise ConfigError(f"regmix_preset must be auto, faithful or mixmin-paper; got {self.regmix_preset!r}.")
        self._check_budgets()
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda; got {self.device!r}.")
        if not isinstance(self.targets, list) or not isinstance(self.assays, list):
            raise ConfigError("targets and assays must be lists of assay names.")

    def _check_budgets(self):
        b = self.proxy_budgets
        if not isinstance(b, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 100 for x in b) or len(set(b)) != len(b):
            raise ConfigError(f"proxy_budgets must be a list of distinct fractions of a final model's compute in (0, 100], "
                              f"e.g. [0.01, 0.05, 0.1, 1.0]; got {b!r}.")
        if b and len(self.source_counts) != 1:
            raise ConfigError(f"proxy_budgets sweeps compute at one source count; set source_counts to one value "
                              f"(e.g. [100]); got {self.source_counts!r}.")
        if b and self.tune:
            raise ConfigError("proxy_budgets sets the proxies' trees and rows; it cannot be combined with tune: true.")

    @property
    def table_format(self) -> str:
        if self.format != "auto":
            return self.format
        return self.dataset if self.dataset in ("pcba128", "pcba1328") else "moleculenet"


CONFIG = ChemConfig


def dataset(config: ChemConfig) -> str:
    return f"{config.path or config.dataset} (chemistry, {config.n_targets if not config.targets else len(config.targets)} targets)"


# ---- inputs ---------------------------------------------------------------------------------
def load_table(config: ChemConfig) -> chemdata.AssayTable:
    """The configured table (restricted to ``config.assays`` when given)."""
    from mixmin_core.runs.datasets import resolve

    fmt = config.table_format
    path = config.path or None
    if fmt == "pcba128":
        table = chemdata.load_pcba128(path, max_molecules=config.max_molecules)
    elif fmt == "pcba1328":
        table = chemdata.load_pcba1328(path, max_molecules=config.max_molecules or 100_000)
    else:
        table = chemdata.load_assay_table(resolve(config.dataset or "user table", path),
                                          smiles_column=config.smiles_column, ignore_columns=config.ignore_columns,
                                          max_molecules=config.max_molecules)
    return table.select(config.assays) if config.assays else table


def load_metadata(config: ChemConfig):
    """Assay metadata DataFrame, or None when there is none."""
    from mixmin_core.runs.datasets import REGISTRY, resolve

    spec = config.metadata
    if spec == "auto":
        name = "pcba128_assays" if config.table_format in ("pcba128", "pcba1328") else f"{config.dataset}_assays"
        if config.path or name not in REGISTRY:
            return None
        try:
            return chemdata.load_assay_metadata(resolve(name, download=False))
        except InputError as exc:
            log.warning("no assay metadata: %s", exc)
            return None
    if not spec:
        return None
    path = Path(spec).expanduser()
    return chemdata.load_assay_metadata(path if path.suffix else resolve(spec))


def _variant(count) -> str:
    return f"sources-{count}"


@dataclass
class Plan:
    """What the run will compute, derived from the table (no files written)."""

    assays: list  # informative assays, table order
    dropped: list  # [{"assay", "n_pos", "n_neg"}]
    targets: list
    variants: dict  # variant -> list of candidate sources (target excluded later)
    budgets: dict = field(default_factory=dict)  # compute sweep: variant -> proxy budget

    def sources(self, target: str, variant: str) -> list:
        return [a for a in self.variants[variant] if a != target]


def make_plan(config: ChemConfig, table: chemdata.AssayTable, valid: np.ndarray | None = None) -> Plan:
    """Drop assays without positives or negatives, pick targets and the sources of each variant.

    Raises
    ------
    InputError
        If a target does not exist or was dropped, or fewer than two assays are left.
    """
    for t in config.targets:
        table.index(t)  # raises "assay ... does not exist"
    assays, dropped = chemdata.informative_assays(table, valid)
    if len(assays) < 2:
        raise InputError(f"{table.path}: {len(assays)} assay(s) have both positive and negative labels; need at least 2.")
    gone = {d["assay"]: d for d in dropped}
    for t in config.targets:
        if t in gone:
            raise InputError(f"target {t!r} has {gone[t]['n_pos']} positives and {gone[t]['n_neg']} negatives in "
                             f"{table.path}; a target needs both.")
    targets = list(config.targets) or assays[: config.n_targets]
    variants = {}
    for c in config.source_counts:
        variants[_variant(c)] = assays if c == "all" else assays[: int(c)]
    budgets = {}
    if config.proxy_budgets:
        (sources,) = variants.values()
        budgets = {budget_variant(b): float(b) for b in sorted(config.proxy_budgets)}
        variants = {v: sources for v in budgets}
    return Plan(assays, dropped, targets, variants, budgets)


def validate(config: ChemConfig) -> None:
    """Read the table and metadata and check targets and assays, before any run folder exists."""
    table = load_table(config)
    make_plan(config, table)
    load_metadata(config)


# ---- per-process cached readers (units run in worker processes) -------------------------------
@functools.lru_cache(maxsize=4)
def _splits(path: str):
    return chemsplits.load_splits(path)


@functools.lru_cache(maxsize=2)
def _proxy_matrix(path: str):
    with np.load(path, allow_pickle=False) as z:
        return z["preds"], z["compute"], tuple(z["assays"].tolist())


# ---- unit functions (top-level: they run in worker processes) --------------------------------
def compute_features(*, smiles_path: str, radius: int, n_bits: int, output: str) -> dict:
    """Fingerprints of every molecule (from the per-dataset cache when present) -> ``output``."""
    with np.load(smiles_path, allow_pickle=False) as z:
        smiles = z["smiles"].tolist()
    start = time.perf_counter()
    fps, hit = cached_fingerprints(smiles, radius=radius, n_bits=n_bits)
    save_fingerprints(output, fps)
    return {"n_molecules": len(smiles), "n_invalid": fps.n_invalid, "invalid_examples": list(fps.invalid_examples),
            "from_cache": hit, "featurize_seconds": time.perf_counter() - start}


def make_splits(*, labels_path: str, features_path: str, seed: int, trial: int, test_fraction: float,
                val_fraction: float, output: str) -> dict:
    labels, assays = load_label_matrix(labels_path)
    _, valid = load_feature_matrix(features_path)
    codes = chemsplits.split_table(labels, assays, seed=seed, trial=trial, test_fraction=test_fraction,
                                   val_fraction=val_fraction, valid=valid)
    chemsplits.save_splits(output, codes, assays)
    return {"trial": trial, "n_fit": int((codes == chemsplits.FIT).sum())}


def _fit_classifier(X, y, *, trees, depth, tune, device, n_jobs, seed, sample_weight=None):
    compute = 0.0
    if tune:
        best, compute = grid_search(X, y, seed=seed, device=device, n_jobs=n_jobs)
        trees, depth = best["n_estimators"], best["max_depth"]
    clf = train_classifier(X, y, sample_weight=sample_weight, n_estimators=trees, max_depth=depth,
                           device=device, n_jobs=n_jobs, seed=seed)
    return clf, compute + clf.compute


def train_proxy(*, assay: str, labels_path: str, features_path: str, splits_path: str, trees: int, depth: int,
                tune: bool, device: str, n_jobs: int, seed: int, output: str, row_fraction: float = 1.0) -> dict:
    """One source's proxy on its fit split (or a seeded ``row_fraction`` of it); writes its P(y=1) for
    every molecule and its model."""
    X, valid = load_feature_matrix(features_path)
    labels, assays = load_label_matrix(labels_path)
    codes, _ = _splits(splits_path)
    j = assays.index(assay)
    fit = chemsplits.row_subset(chemsplits.part(codes[:, j], "fit"), row_fraction, seed=seed, assay=assay)
    start = time.perf_counter()
    clf, compute = _fit_classifier(X[fit], labels[fit, j], trees=trees, depth=depth, tune=tune, device=device,
                                   n_jobs=n_jobs, seed=seed)
    seconds = time.perf_counter() - start
    preds = np.where(valid, clf.predict(X), np.float32(clf.predict(X[fit]).mean())).astype(np.float32)
    clf.save(Path(output).with_suffix(".model.json"))
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, preds=preds, compute=np.float64(compute))
    return {"assay": assay, "rows": int(fit.size), "trees": clf.n_estimators, "depth": clf.max_depth,
            "compute": compute, "train_seconds": seconds}


def _problem_data(labels_path, splits_path, proxies_path, target, sources):
    labels, assays = load_label_matrix(labels_path)
    codes, _ = _splits(splits_path)
    preds, compute, proxy_assays = _proxy_matrix(proxies_path)
    t = assays.index(target)
    src = [assays.index(s) for s in sources]
    prow = [proxy_assays.index(s) for s in sources]
    return labels, codes, preds, compute, t, src, prow


def _search_evaluate(X, labels, codes, src, t, fit_t, *, trees, depth, rows, device, n_jobs, rng):
    """``evaluate(W)`` for the search methods: one proxy per mixture on the weighted union of the sources'
    fit splits (``rows`` rows), scored by binary cross-entropy on the target's fit split."""
    source_rows = [chemsplits.part(codes[:, j], "fit") for j in src]
    y_t = labels[fit_t, t]

    def evaluate(W):
        losses = []
        for w in np.asarray(W, dtype=np.float64):
            r, s, sw = mixture_rows(source_rows, w, max_rows=rows, rng=rng)
            y = labels[r, np.asarray(src)[s]]
            clf = train_classifier(X[r], y, sample_weight=sw, n_estimators=trees, max_depth=depth, device=device,
                                   n_jobs=n_jobs, seed=int(rng.integers(1 << 31)))
            losses.append(log_loss(y_t, clf.predict(X[fit_t])))
        return np.asarray(losses)

    return evaluate


def solve_problem(*, target: str, variant: str, trial: int, sources: list, run_dir: str, labels_path: str,
                  features_path: str, splits_path: str, proxies_path: str, methods: list, seed: int,
                  step_size: float, max_iter: int, n_boot: int, top_k: int, search: dict, meta_rows: dict,
                  output: str) -> dict:
    """Mixtures for one (target, variant, trial): ProxyOutputs, MixMin, baselines, search methods,
    the MixMin-weighted ensemble's test AP, bootstrap intervals and the top-k table."""
    from mixmin_core.search import swarm as S

    problem = Problem(target, trial, variant)
    labels, codes, preds, proxy_compute, t, src, prow = _problem_data(labels_path, splits_path, proxies_path,
                                                                      target, sources)
    fit_t = chemsplits.part(codes[:, t], "fit")
    test_t = chemsplits.part(codes[:, t], "test")
    sizes = np.array([(codes[:, j] == chemsplits.FIT).sum() for j in src], dtype=np.float64)
    outputs = ProxyOutputs(preds[np.ix_(prow, fit_t)], "binary", source_names=sources, labels=labels[fit_t, t],
                           natural_weights=np.maximum(sizes, 1), sample_ids=[str(i) for i in fit_t],
                           meta={"target": target, "variant": variant, "trial": trial, "split": "fit",
                                 "proxy_compute": float(proxy_compute[prow].sum())})
    outputs.save(outputs_path(run_dir, problem))
    mm_compute = float(proxy_compute[prow].sum())
    start = time.perf_counter()
    results = {"mixmin": mixmin(outputs, step_size=step_size, max_iter=max_iter)}
    results["mixmin"] = _with_meta(results["mixmin"], compute=mm_compute, seconds=time.perf_counter() - start)
    if "natural" in methods:
        results["natural"] = _with_meta(natural(outputs), compute=0.0)
    if "balanced" in methods:
        results["balanced"] = _with_meta(balanced(outputs), compute=0.0)
    searched = [m for m in SEARCH_METHODS if m in methods]
    info = {"n_sources": len(sources), "n_fit": int(fit_t.size), "n_test": int(test_t.size)}
    if searched and len(sources) <= search["max_sources"]:
        X, _ = load_feature_matrix(features_path)
        trees = search["trees"]
        rows = search["rows"] or int(round(sizes.mean()))
        per = float(trees * (search["rows"] or sizes.mean()))  # one search proxy costs one mean source proxy
        n = S.matched_trials(mm_compute, per)
        rng = np.random.default_rng([seed, trial, 7, _crc(target), _crc(variant)])
        evaluate = _search_evaluate(X, labels, codes, src, t, fit_t, trees=trees, depth=search["depth"], rows=rows,
                                    device=search["device"],
                                    n_jobs=search["n_jobs"], rng=rng)
        for m in searched:
            start = time.perf_counter()
            if m == "random_search":
                r = S.random_search(evaluate, source_names=sources, n_trials=n, rng=rng, compute_per_trial=per)
            else:
                preset = search["regmix_preset"]
                if preset == "auto":  # the faithful regressor degenerates to a constant on ~100 runs here
                    preset = "mixmin-paper"
                # max_usage=None: RegMix's "at most 15 epochs of a source" bound is about repeating LM tokens;
                # a weighted XGBoost mixture has no such limit (and the bound rejects most swarm draws here).
                r = S.regmix(evaluate, source_names=sources, prior=outputs.natural_weights, n_runs=n, rng=rng,
                             preset=preset, n_candidates=search["regmix_candidates"], compute_per_run=per,
                             max_usage=None)
            results[m] = _with_meta(r, compute=float(r.meta["compute"]), seconds=time.perf_counter() - start,
                                    search_trees=trees, search_rows=rows)
        info["search_trials"] = n
    elif searched:
        info["search_skipped"] = f"{len(sources)} sources > search_max_sources={search['max_sources']}"
    for name, r in results.items():
        write_json(mixture_path(run_dir, problem, name), r.to_dict())
    w = results["mixmin"].weights.astype(np.float64)
    info["ensemble_ap"] = average_precision(labels[test_t, t], w @ preds[np.ix_(prow, test_t)])
    info["ensemble_compute"] = mm_compute
    info["mixmin_compute"] = mm_compute
    info["mixtures"] = sorted(results)
    _write_topk(run_dir, problem, outputs, results["mixmin"], n_boot=n_boot, top_k=top_k, seed=seed,
                step_size=step_size, max_iter=max_iter, meta_rows=meta_rows)
    write_json(output, info)
    return info


def _crc(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def _with_meta(result, **extra):
    import dataclasses

    return dataclasses.replace(result, meta={**result.meta, **extra})


def _write_topk(run_dir, problem, outputs, result, *, n_boot, top_k, seed, step_size, max_iter, meta_rows):
    lower = upper = None
    if n_boot >= 2:
        boot = bootstrap_weights(outputs, n_boot=n_boot, seed=seed + problem.trial, step_size=step_size,
                                 max_iter=max_iter)
        lower, upper = boot.lower, boot.upper
    order = np.argsort(-result.weights, kind="stable")[:top_k]
    rows = []
    for rank, i in enumerate(order, 1):
        name = outputs.source_names[i]
        m = meta_rows.get(name, {})
        rows.append({"rank": rank, "source": name, "title": m.get("title", name), "category": m.get("category", ""),
                     "weight": float(result.weights[i]),
                     "lower": None if lower is None else float(lower[i]),
                     "upper": None if upper is None else float(upper[i])})
    tm = meta_rows.get(problem.target, {})
    write_json(topk_path(run_dir, problem), {
        "target": problem.target, "variant": problem.variant, "trial": problem.trial, "method": "mixmin",
        "target_title": tm.get("title", problem.target), "target_category": tm.get("category", ""),
        "n_sources": outputs.n_sources, "n_boot": n_boot, "k": len(rows), "sources": rows})


def train_final(*, target: str, variant: str, trial: int, method: str, sources: list, run_dir: str,
                labels_path: str, features_path: str, splits_path: str, trees: int, depth: int, max_rows: int,
                device: str, n_jobs: int, seed: int, output: str) -> dict:
    """A final model on the union of the sources' fit splits, each source's total weight proportional to its
    mixture weight (at most ``max_rows`` rows, drawn per source in proportion to the weights); test AP."""
    from mixmin_core.solver.results import MixtureResult

    problem = Problem(target, trial, variant)
    result = MixtureResult.from_dict(read_json(mixture_path(run_dir, problem, method)))
    X, _ = load_feature_matrix(features_path)
    labels, assays = load_label_matrix(labels_path)
    codes, _ = _splits(splits_path)
    t = assays.index(target)
    weights = np.array([result.weights[result.source_names.index(s)] for s in sources], dtype=np.float64)
    src = np.array([assays.index(s) for s in sources])
    rng = np.random.default_rng([seed, trial, 11, _crc(target), _crc(variant), _crc(method)])
    source_rows = [chemsplits.part(codes[:, j], "fit") for j in src]
    r, s, sw = mixture_rows(source_rows, weights, max_rows=max_rows, rng=rng)
    start = time.perf_counter()
    clf = train_classifier(X[r], labels[r, src[s]], sample_weight=sw, n_estimators=trees, max_depth=depth,
                           device=device, n_jobs=n_jobs, seed=seed + trial)
    seconds = time.perf_counter() - start
    test = chemsplits.part(codes[:, t], "test")
    kept = np.zeros(len(sources), dtype=bool)
    kept[np.unique(s)] = True
    info = {"ap": average_precision(labels[test, t], clf.predict(X[test])), "final_compute": clf.compute,
            "rows": int(r.size), "final_seconds": seconds, "sources_used": int(kept.sum()),
            "weight_dropped": float(weights[~kept].sum())}
    write_json(output, info)
    return info


def train_target_only(*, target: str, trial: int, labels_path: str, features_path: str, splits_path: str,
                      trees: int, depth: int, tune: bool, device: str, n_jobs: int, seed: int, output: str) -> dict:
    """The paper's baseline: XGBoost on the target's own train split (fit + validation); test AP."""
    X, _ = load_feature_matrix(features_path)
    labels, assays = load_label_matrix(labels_path)
    codes, _ = _splits(splits_path)
    t = assays.index(target)
    train = chemsplits.part(codes[:, t], ("fit", "val"))
    test = chemsplits.part(codes[:, t], "test")
    clf, compute = _fit_classifier(X[train], labels[train, t], trees=trees, depth=depth, tune=tune, device=device,
                                   n_jobs=n_jobs, seed=seed + trial)
    info = {"ap": average_precision(labels[test, t], clf.predict(X[test])), "final_compute": compute,
            "rows": int(train.size), "trees": clf.n_estimators, "depth": clf.max_depth}
    write_json(output, info)
    return info


# ---- orchestration ---------------------------------------------------------------------------
def _save_arrays(path: Path, **arrays) -> None:
    if path.exists():
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _write_dataset_files(ctx, config, table, plan, meta):
    _save_arrays(ctx.path("features", "smiles.npz"), smiles=np.asarray(table.smiles, dtype=str))
    _save_arrays(ctx.path("features", "labels.npz"), labels=table.labels, assays=np.asarray(table.assays, dtype=str))
    joined = chemdata.join_metadata(plan.assays, meta)
    sel = table.select(plan.assays).labels
    joined = joined.drop(columns=["n_labeled", "n_pos", "pos_rate"], errors="ignore")
    first = {"n_labelled": (sel >= 0).sum(axis=0), "n_pos": (sel == 1).sum(axis=0),
             "natural_weight": (sel >= 0).sum(axis=0) / max((sel >= 0).sum(), 1)}
    for i, (col, values) in enumerate(first.items()):
        joined.insert(3 + i, col, values)
    write_text(sources_path(ctx.run_dir), joined.to_csv(index=False))
    return {r["source"]: {"title": r["title"], "category": r["category"]} for r in joined.to_dict("records")}


def run(config: ChemConfig, ctx: RunContext) -> dict:
    table = load_table(config)
    device = resolve_device(config.device)
    lab_p = str(ctx.path("features", "labels.npz"))
    feat_p = str(ctx.path("features", "fingerprints.npz"))
    _save_arrays(ctx.path("features", "smiles.npz"), smiles=np.asarray(table.smiles, dtype=str))
    feat = ctx.run_units([Unit("features", compute_features, {
        "smiles_path": str(ctx.path("features", "smiles.npz")), "radius": config.radius, "n_bits": config.n_bits,
        "output": feat_p}, output=Path(feat_p), kind="features")], "fingerprints")["features"]
    _, valid = load_feature_matrix(feat_p)
    plan = make_plan(config, table, valid)
    meta_rows = _write_dataset_files(ctx, config, table, plan, load_metadata(config))
    write_json(ctx.path("dataset.json"), {
        "path": table.path, "n_molecules": table.n_molecules, "n_assays": table.n_assays,
        "n_invalid_smiles": int((~valid).sum()), "invalid_examples": feat.get("invalid_examples", []),
        "n_dropped_assays": len(plan.dropped), "dropped_assays": plan.dropped, "targets": plan.targets,
        "variants": {v: len(s) for v, s in plan.variants.items()}, "device": device})
    log.info("%d assays kept, %d dropped (no positives or no negatives); %d invalid SMILES",
             len(plan.assays), len(plan.dropped), int((~valid).sum()))

    split_p = {k: str(ctx.path("splits", f"trial{k}.npz")) for k in range(config.trials)}
    ctx.run_units([Unit(f"splits/trial{k}", make_splits, {
        "labels_path": lab_p, "features_path": feat_p, "seed": config.seed, "trial": k,
        "test_fraction": config.test_fraction, "val_fraction": config.val_fraction, "output": split_p[k]},
        output=Path(split_p[k]), kind="splits") for k in range(config.trials)], "splits")

    common = {"labels_path": lab_p, "features_path": feat_p, "device": device, "n_jobs": config.xgb_threads}
    proxies_p, scales = _train_proxies(config, ctx, plan, split_p, common)
    search = {"max_sources": config.search_max_sources, "trees": config.search_trees or config.proxy_trees,
              "depth": config.proxy_depth,
              "rows": config.search_rows, "device": device, "n_jobs": config.xgb_threads,
              "regmix_preset": config.regmix_preset, "regmix_candidates": config.regmix_candidates}
    problems = [Problem(t, k, v) for t in plan.targets for v in plan.variants for k in range(config.trials)]
    mix_units = {}
    for p in problems:
        out = ctx.path("units", "mix", f"{p.key}.json")
        mix_units[p] = Unit(f"mix/{p.key}", solve_problem, {
            "target": p.target, "variant": p.variant, "trial": p.trial, "sources": plan.sources(p.target, p.variant),
            "run_dir": str(ctx.run_dir), "labels_path": lab_p, "features_path": feat_p, "splits_path": split_p[p.trial],
            "proxies_path": proxies_p[p.trial, p.variant], "methods": config.methods, "seed": config.seed,
            "step_size": config.step_size, "max_iter": config.max_iter, "n_boot": config.n_boot,
            "top_k": config.top_k, "search": {**search, **scales.get((p.trial, p.variant), {})},
            "meta_rows": meta_rows, "output": str(out)},
            output=out, kind="mixture")
    mix_info = ctx.run_units(list(mix_units.values()), "mixtures")

    final_units = {}
    first = list(plan.variants)[0]
    for p in problems:
        info = mix_info[f"mix/{p.key}"] or read_json(mix_units[p].output)
        for m in info["mixtures"]:
            if plan.budgets and m in ("natural", "balanced"):  # the same mixture at every budget: train once
                if p.variant != first:
                    final_units[p, m] = final_units[Problem(p.target, p.trial, first), m]
                    continue
            out = ctx.path("finals", f"{p.key}__{m}.json")
            final_units[p, m] = Unit(f"final/{p.key}/{m}", train_final, {
                **common, "target": p.target, "variant": p.variant, "trial": p.trial, "method": m,
                "sources": plan.sources(p.target, p.variant), "run_dir": str(ctx.run_dir),
                "splits_path": split_p[p.trial], "trees": config.final_trees, "depth": config.final_depth,
                "max_rows": config.max_final_rows, "seed": config.seed, "output": str(out)}, output=out, kind="final")
    if "target_only" in config.methods:
        for t in plan.targets:
            for k in range(config.trials):
                out = ctx.path("finals", f"{Problem(t, k).key}__target_only.json")
                final_units[Problem(t, k), "target_only"] = Unit(f"target_only/{t}/trial{k}", train_target_only, {
                    **common, "target": t, "trial": k, "splits_path": split_p[k], "trees": config.final_trees,
                    "depth": config.final_depth, "tune": config.tune, "seed": config.seed, "output": str(out)},
                    output=out, kind="final")
    ctx.run_units(list({u.unit_id: u for u in final_units.values()}.values()), "final models")
    rows = _result_rows(config, plan, problems, mix_units, final_units)
    ctx.store.add_results(ctx.run_id, rows)
    return _summarize(ctx, rows)


def _train_proxies(config, ctx, plan, split_p, common) -> tuple[dict, dict]:
    """One proxy per source and trial (shared by every source-count variant), or, in a compute sweep,
    per source, trial and budget. Returns ``{(trial, variant): proxy matrix path}`` and, per
    ``(trial, variant)`` of a sweep, the search proxies' ``trees`` and ``rows`` at the same scale."""
    needed = [a for a in plan.assays if any(a in s for s in plan.variants.values())]
    settings, scales = {}, {}  # (trial, variant or "") -> (trees, row_fraction); search settings
    for k in range(config.trials):
        if not plan.budgets:
            settings[k, ""] = (config.proxy_trees, 1.0)
            continue
        codes, assays = _splits(split_p[k])
        for v, budget in plan.budgets.items():
            fit_rows = np.array([(codes[:, assays.index(a)] == chemsplits.FIT).sum() for a in plan.variants[v]])
            final_rows = min(fit_rows.sum(), config.max_final_rows) if config.max_final_rows else fit_rows.sum()
            trees, fraction = settings[k, v] = proxy_scale(budget, float(config.final_trees * final_rows), int(fit_rows.sum()))
            scales[k, v] = {"trees": trees, "rows": max(chemsplits.MIN_ROWS, int(round(fraction * fit_rows.mean())))}
    units = {}
    for (k, v), (trees, fraction) in settings.items():
        for a in needed:
            where = (f"trial{k}",) + ((v,) if v else ())
            out = ctx.path("proxies", *where, f"{safe_name(a)}.npz")
            units[k, v, a] = Unit("proxy/" + "/".join(where + (a,)), train_proxy, {
                **common, "assay": a, "splits_path": split_p[k], "trees": trees, "depth": config.proxy_depth,
                "tune": config.tune, "seed": config.seed + k, "output": str(out),
                **({"row_fraction": fraction} if fraction < 1 else {})}, output=out, kind="proxy")
    ctx.run_units(list(units.values()), "proxies")
    paths = {}
    for (k, v) in settings:
        path = ctx.path("proxies", f"trial{k}{'__' + v if v else ''}.npz")
        if not path.exists():
            loaded = [np.load(units[k, v, a].output) for a in needed]
            _save_arrays(path, preds=np.stack([z["preds"] for z in loaded]),
                         compute=np.array([float(z["compute"]) for z in loaded]), assays=np.asarray(needed, dtype=str))
        for variant in ([v] if v else plan.variants):
            paths[k, variant] = str(path)
    return paths, scales


def _result_rows(config, plan, problems, mix_units, final_units) -> list[dict]:
    rows = []
    for p in problems:
        info = read_json(mix_units[p].output)
        base = {"target": p.target, "trial": p.trial, "variant": p.variant, "metric": "ap"}
        budget = plan.budgets.get(p.variant)
        for m in info["mixtures"]:
            fin = read_json(final_units[p, m].output)
            mix = read_json(mixture_path(final_units[p, m].kwargs["run_dir"], p, m))
            proxy_c = float(mix["meta"].get("compute", 0.0))
            rows.append({**base, "method": m, "value": fin["ap"], "compute": proxy_c,
                         "extra": {"final_compute": fin["final_compute"], "rows": fin["rows"], "budget": budget,
                                   "n_sources": info["n_sources"], "weight_dropped": fin["weight_dropped"]}})
        if "ensemble" in config.methods:
            rows.append({**base, "method": "ensemble", "value": info["ensemble_ap"], "compute": info["ensemble_compute"],
                         "extra": {"n_sources": info["n_sources"], "budget": budget}})
        if "target_only" in config.methods:
            fin = read_json(final_units[Problem(p.target, p.trial), "target_only"].output)
            rows.append({**base, "method": "target_only", "value": fin["ap"], "compute": 0.0,
                         "extra": {"rows": fin["rows"], "final_compute": fin["final_compute"]}})
    return rows


def _summarize(ctx, rows) -> dict:
    import pandas as pd

    frame = pd.DataFrame(rows)
    ref = "target_only" if (frame["method"] == "target_only").any() else None
    table = summarize(frame, by=("target", "variant", "method", "metric"), reference=ref, focus="mixmin")
    write_text(ctx.path("summary.csv"), table.to_csv(index=False))
    overall = table.groupby(["variant", "method"])["mean"].mean().unstack("method").round(4)
    wins = {}
    for v, grp in table.groupby("variant"):
        piv = grp.pivot_table(index="target", columns="method", values="mean")
        wins[v] = {m: int((piv["mixmin"] > piv[m]).sum()) for m in piv.columns if m != "mixmin"}
    out = {"mean_ap": json.loads(overall.to_json(orient="index")), "mixmin_wins": wins,
           "n_rows": len(rows), "summary_csv": str(ctx.path("summary.csv"))}
    budgets = frame[frame["variant"].str.startswith("budget-")]
    if len(budgets):  # compute sweep: mean AP over targets per trial; improvement over natural trial by trial
        sweep = summarize(mean_over_targets(budgets, keep=("variant",)), by=("variant", "method", "metric"),
                          reference="natural" if (budgets["method"] == "natural").any() else None, focus="mixmin")
        write_text(ctx.path("budget_sweep.csv"), sweep.to_csv(index=False))
        out["budget_sweep_csv"] = str(ctx.path("budget_sweep.csv"))
    return out
