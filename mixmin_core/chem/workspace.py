"""A chemistry run whose sources are any (assay, molecules) pairs: evolving sources, the compute ladder.

A *source* is one assay's labels on a set of molecules: a whole assay's fit split, a half of a split
assay, a revised release, a rung's row subset. :class:`ChemWorkspace` writes the run's fingerprints
and labels once, splits every assay 64/16/20 exactly as the chemistry pipeline's trial 0 does, and
makes the units, both on the shared trainers (:mod:`mixmin_core.chem.trainers`):

- a proxy per source (a one-source :func:`~mixmin_core.chem.trainers.train_proxy`) in the store's
  content-addressed ``proxy_cache/<key>.npz``, keyed like :class:`~mixmin_core.chem.experiment.ChemDomain`'s
  proxies (molecules, assay, rows, labels, settings): a source whose content did not change is never
  trained twice, in any version, rung or run (chemistry runs included). A ``<key>.json`` beside it
  says what it is (first source, assay, rows, trees, compute);
- a final model per mixture (:func:`~mixmin_core.chem.trainers.train_final`), tied by its file name to
  the exact weights, so a mixture that changed on a re-run never reuses a stale model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mixmin_core.chem import data as chemdata
from mixmin_core.chem import splits as chemsplits
from mixmin_core.chem.experiment import prepare_features
from mixmin_core.chem.proxies import resolve_device, training_weights
from mixmin_core.chem.trainers import (
    load_proxy,
    load_sources,
    model_settings,
    proxy_key,
    save_sources,
    train_final,
    train_proxy,
)
from mixmin_core.engine.evolving import content_hash
from mixmin_core.errors import InputError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import write_json
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.solver.proxy_outputs import ProxyOutputs


def check_target(table: chemdata.AssayTable, target: str, informative: list, valid=None) -> None:
    """``target`` exists (else "assay ... does not exist" with close matches) and has both label classes, in its
    test split too, among the molecules RDKit parses (``valid``, when known)."""
    _both_classes(table, target, informative, valid, what=f"target {target!r}", role="a target")
    # the workspace's splits: 80/20 per class, as the pipeline's
    chemsplits.check_test_labels(table, [target], valid, fraction_field=False, one_trial=True)


def check_source(table: chemdata.AssayTable, assay: str, informative: list, valid=None, *, where: str) -> None:
    """``assay`` exists (else "does not exist" with close matches) and has both label classes among the molecules
    RDKit parses (``valid``, when known); the error gives the counts."""
    _both_classes(table, assay, informative, valid, what=f"{where}: assay {assay!r}", role="a source")


def _both_classes(table: chemdata.AssayTable, assay: str, informative: list, valid, *, what: str, role: str) -> None:
    """An InputError, with the counts, where ``assay`` (which must exist) lacks a label class."""
    column = table.index(assay)
    if assay not in informative:
        labels, among = chemsplits.usable_labels(table, valid)
        raise InputError(f"{what} has {int((labels[:, column] == 1).sum())} positives and "
                         f"{int((labels[:, column] == 0).sum())} negatives among {among} of {table.path}; {role} "
                         "needs both.")


class ChemWorkspace:
    """Fingerprints, labels, trial-0 splits and the proxy / final-model units of one run.

    Parameters
    ----------
    assays : the assays whose splits the run uses (sources' assays and targets).
    seed : seeds the splits (with trial 0), the proxies and the final models.
    device : XGBoost device, ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    def __init__(self, ctx: RunContext, table: chemdata.AssayTable, *, assays, seed: int, device: str = "auto",
                 proxy_depth: int = 6, n_jobs: int = 1, radius: int = 2, n_bits: int = 2048):
        self.ctx, self.table, self.seed, self.depth, self.n_jobs = ctx, table, int(seed), int(proxy_depth), int(n_jobs)
        self.device = resolve_device(device)
        features = prepare_features(ctx, table, radius=radius, n_bits=n_bits)
        self.feat_p, self.lab_p, self.valid, self.table_key = (features.features_path, features.labels_path,
                                                               features.valid, features.table_key)
        self.codes = {a: chemsplits.assay_split(table.labels[:, table.index(a)], seed=self.seed, trial=0, assay=a,
                                                valid=self.valid) for a in dict.fromkeys(assays)}
        self.cache = Path(ctx.store.root) / "proxy_cache"
        self._preds: dict[str, tuple[np.ndarray, float]] = {}

    def rows(self, assay: str, part: str = "fit") -> np.ndarray:
        """Molecule indices of ``assay``'s ``fit``, ``val`` or ``test`` split."""
        return chemsplits.part(self.codes[assay], part)

    def labels(self, assay: str, rows: np.ndarray) -> np.ndarray:
        return self.table.labels[rows, self.table.index(assay)]

    def sources_file(self, names: list, assays: list, rows: list) -> str:
        """A sources file (names, assays, rows) for the units, named by its content (never stale)."""
        rows = [np.asarray(r, dtype=np.int64) for r in rows]
        key = content_hash(list(names), list(assays), *rows)[:16]  # arrays as parts: hashed byte for byte
        path = self.ctx.path("sources", f"{key}.npz")
        save_sources(path, list(names), list(assays), rows)
        return str(path)

    def proxy_key(self, assay: str, rows: np.ndarray, trees: int) -> str:
        """The content key :class:`~mixmin_core.chem.experiment.ChemDomain` gives the same proxy."""
        settings = model_settings(trees=trees, depth=self.depth, device=self.device, tune=False, crossfit=False,
                                  seed=self.seed)
        return proxy_key(self.table_key, assay, rows, self.labels(assay, np.asarray(rows, dtype=np.int64)), settings)

    def proxy_unit(self, name: str, assay: str, rows: np.ndarray, *, sources_path: str, trees: int,
                   unit_id: str = "") -> Unit:
        """The proxy of source ``name`` (listed in ``sources_path``) in the content-addressed cache; its
        unit id defaults to ``proxy/<key>``."""
        key = self.proxy_key(assay, rows, trees)
        out = self.cache / f"{key}.npz"
        return Unit(unit_id or f"proxy/{key[:16]}", train_proxy, {
            "features_path": self.feat_p, "labels_path": self.lab_p, "sources_path": sources_path, "names": [name],
            "weights": [1.0], "trees": int(trees), "depth": self.depth, "seed": self.seed, "device": self.device,
            "n_jobs": self.n_jobs, "output": str(out)}, output=out, kind="proxy")

    def run_proxies(self, units: list[Unit], desc: str) -> list[str]:
        """Run the unfinished proxy units (one per cache entry), describe each entry in a ``<key>.json``
        beside it, and return the ids of the units that ran now."""
        first: dict[str, Unit] = {}
        for u in units:
            first.setdefault(str(u.output), u)
        unique = list(first.values())
        ran = [u.unit_id for u in unique if not u.is_done()]
        self.ctx.run_units(unique, desc)
        for u in unique:
            about = Path(u.output).with_suffix(".json")
            if not about.exists():
                name = u.kwargs["names"][0]
                assay, rows = load_sources(u.kwargs["sources_path"])[name]
                write_json(about, {"key": Path(u.output).stem, "first_source": name, "assay": assay,
                                   "rows": int(rows.size), "trees": u.kwargs["trees"], "depth": u.kwargs["depth"],
                                   "seed": u.kwargs["seed"], "compute": self.proxy(u)[1]})
        return ran

    def proxy(self, unit: Unit) -> tuple[np.ndarray, float]:
        """(P(y=1) of every molecule, measured compute) of a finished proxy unit (cached)."""
        key = str(unit.output)
        if key not in self._preds:
            self._preds[key] = load_proxy(unit.output)
        return self._preds[key]

    def outputs(self, target: str, names: list, units: list[Unit], *, natural, meta: dict) -> ProxyOutputs:
        """The proxies' P(y=1) on ``target``'s fit split (``binary`` ProxyOutputs)."""
        fit = self.rows(target)
        return ProxyOutputs(np.stack([self.proxy(u)[0][fit] for u in units]), "binary", source_names=list(names),
                            labels=self.labels(target, fit).astype(np.float32),
                            natural_weights=np.maximum(np.asarray(natural, dtype=np.float64), 1),
                            sample_ids=[str(i) for i in fit], meta={"target": target, "split": "fit", **meta})

    def final_unit(self, unit_id: str, stem: str, *, sources_path: str, names: list, weights, target: str,
                   trees: int, depth: int, max_rows: int) -> Unit:
        """A final model on the ``weights`` mixture of ``names``, scored by AP on ``target``'s test split."""
        args = {"names": list(names), "weights": training_weights(weights), "max_rows": int(max_rows),
                "trees": int(trees), "depth": int(depth), "seed": self.seed, "target": target}
        test = self.rows(target, "test")
        key = content_hash(sources_path, args, self.device, test, self.labels(target, test))[:12]
        out = self.ctx.path("finals", f"{layout.safe_name(stem)}-{key}.json")
        return Unit(unit_id, train_final, {
            **args, "features_path": self.feat_p, "labels_path": self.lab_p, "sources_path": sources_path,
            "test_rows": test.tolist(), "device": self.device, "n_jobs": self.n_jobs,
            "output": str(out)}, output=out, kind="final")

    def write_sources(self, sources: dict, meta) -> None:
        """``sources.csv``: every source of the run (``{name: assay}``) with its assay's title and category."""
        import pandas as pd

        joined = chemdata.join_metadata(list(dict.fromkeys(sources.values())), meta).set_index("source")
        rows = []
        for name, assay in sources.items():
            title = str(joined.loc[assay, "title"]) if assay in joined.index else assay
            part = name[len(assay):].lstrip("#")
            rows.append({"source": name, "title": title + (f" (half {part})" if part else ""), "assay": assay,
                         "category": str(joined.loc[assay, "category"]) if assay in joined.index else ""})
        layout.write_sources(self.ctx.run_dir, pd.DataFrame(rows))

