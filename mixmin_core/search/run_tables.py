"""Loaders for published tables of mixture runs (mixture weights -> measured losses).

Each table is a :class:`RunTable`: one row per proxy run, its mixture over sources and its measured
metrics (lower is better). Tables, by name (files resolved through :mod:`mixmin_core.runs.datasets`,
so ``MIXMIN_DATA_DIR=../shared/data`` finds them under ``mixture_runs/``):

* ``regmix_1m_train`` (512 runs), ``regmix_1m_test`` (256), ``regmix_60m_test`` (256, the same
  mixtures as ``regmix_1m_test``), ``regmix_1b_test`` (64 mixtures, 63 with losses): RegMix
  (Liu et al., 2024), 17 Pile sources, validation loss on 13 Pile domains. Source names drop the
  ``train_the_pile_`` prefix and metric names are the Pile domain (``pile_cc``, ``github``, ...).
  Natural weights: the Pile token distribution RegMix's swarm was drawn around
  (``mixture_config/synthesize_mixture.py``).
* ``olmix_dclm``: Olmix (AllenAI) 30M-parameter swarm, 127 runs over 24 DCLM WebOrganizer topics,
  110 task metrics (bits-per-byte style, lower is better). No natural weights are published with
  the table: ``natural_weights`` is None (use the swarm mean, see :func:`prior_for`).
* ``admire_0.5b`` (256 runs), ``admire_3b`` (128), ``admire_7b`` (76): ADMIRE-BayesOpt's
  instruction-tuning runs (Chen et al., 2025) of Qwen2.5 0.5B / 3B / 7B on 19 Tulu-3 SFT sources;
  every 7B mixture was also run at 3B and 0.5B, every 3B one at 0.5B, and a mixture has the same
  ``run_ids`` entry (``mix000``...) at every scale. 17 downstream scores and 3 averages
  (``avg_id+ood``, ``avg_id``, ``avg_ood``): higher is better (``higher_is_better``; use
  :meth:`RunTable.loss`). ``costs`` is each run's ``train_time``. No natural weights (swarm mean).
  The data is CC BY-NC-SA 4.0: it is read from the data directory, never copied.

The mixture rows are published rounded (they sum to 1 +- 0.003); they are renormalised here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.datasets import resolve
from mixmin_core.runs.fileio import not_a_file
from mixmin_core.search.swarm import ROW_SUM_TOL
from mixmin_core.solver.validation import check_csv_header, check_new_names

#: RegMix's Pile token distribution (17 sources, in the column order of its tables).
REGMIX_PILE_NATURAL = {
    "arxiv": 0.113285273, "freelaw": 0.079608651, "nih_exporter": 0.003913491,
    "pubmed_central": 0.185375901, "wikipedia_en": 0.051081359, "dm_mathematics": 0.015962925,
    "github": 0.101750772, "philpapers": 0.003707518, "stackexchange": 0.066529351,
    "enron_emails": 0.001750772, "gutenberg_pg_19": 0.027085479, "pile_cc": 0.236869207,
    "ubuntu_irc": 0.01184346, "europarl": 0.007929969, "hackernews": 0.008032956,
    "pubmed_abstracts": 0.038825953, "uspto_backgrounds": 0.046446962,
}

#: ``name -> (mixture dataset, metrics dataset, scale)``; dataset names as in ``datasets.REGISTRY``.
TABLES = {
    "regmix_1m_train": ("regmix_train_mixture_1m", "regmix_train_loss_1m", "1M"),
    "regmix_1m_test": ("regmix_test_mixture_1m", "regmix_test_loss_1m", "1M"),
    "regmix_60m_test": ("regmix_test_mixture_60m", "regmix_test_loss_60m", "60M"),
    "regmix_1b_test": ("regmix_test_mixture_1b", "regmix_test_loss_1b", "1B"),
    "olmix_dclm": ("olmix_dclm_ratios", "olmix_dclm_metrics", "30M"),
    "admire_0.5b": ("admire_ift_runs", "admire_ift_runs", "0.5B"),
    "admire_3b": ("admire_ift_runs", "admire_ift_runs", "3B"),
    "admire_7b": ("admire_ift_runs", "admire_ift_runs", "7B"),
}
log = logging.getLogger("mixmin.search")
#: (table, metric) pairs whose name read as a score in a lower-is-better table, already said.
_SAID_SCORE: set = set()


def _reads_as_score(metric: str) -> bool:
    """Whether a metric's name reads as higher-is-better (``acc``, ``accuracy``, ``score``, ``f1``, ``auc``, and no
    word of a loss)."""
    import re

    from mixmin_core.solver.results import lower_is_better

    words = set(re.split(r"[^a-z0-9]+", str(metric).lower()))
    return bool(words & {"acc", "accuracy", "score", "f1", "auc"}) and not lower_is_better(metric)
_ADMIRE_MODELS = {"0.5B": "Qwen2.5-0.5B", "3B": "Qwen2.5-3B", "7B": "Qwen2.5-7B"}
#: Columns of a mixtures or metrics file that are no source and no metric (``seed``: runs repeated with other seeds).
_META_COLUMNS = ("Unnamed: 0", "index", "run", "name", "seed")


@dataclass(frozen=True, eq=False)
class RunTable:
    """Published proxy runs: ``weights`` ``(n_runs, n_sources)`` float32 (rows on the simplex),
    ``metrics`` ``(n_runs, n_metrics)`` float64 (NaN where not measured), names and run ids.
    ``higher_is_better`` marks score tables (:meth:`loss` negates them); ``costs`` ``(n_runs,)``
    is each run's published cost (e.g. training time) where the table has one."""

    name: str
    weights: np.ndarray
    metrics: np.ndarray
    source_names: tuple
    metric_names: tuple
    run_ids: tuple
    scale: str = ""
    natural_weights: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    higher_is_better: bool = False
    costs: np.ndarray | None = None

    @property
    def n_runs(self) -> int:
        return int(self.weights.shape[0])

    def target(self, metric: str) -> np.ndarray:
        """The ``(n_runs,)`` values of one metric.

        Raises
        ------
        InputError
            If the table has no such metric (the message lists a few that exist).
        """
        if metric not in self.metric_names:
            import difflib

            close = difflib.get_close_matches(str(metric), self.metric_names, n=3, cutoff=0.5)
            close += [m for m in self.metric_names if str(metric) and str(metric) in m and m not in close][:3]
            raise InputError(
                f"target {metric!r} is not a metric of run table {self.name!r}"
                + (f"; did you mean {close[:3]}?" if close else ".")
                + f" It has {len(self.metric_names)} metrics: {list(self.metric_names[:40])}"
                + (" ..." if len(self.metric_names) > 40 else ".")
            )
        return self.metrics[:, self.metric_names.index(metric)]

    def loss(self, metric: str) -> np.ndarray:
        """The ``(n_runs,)`` values of one metric oriented so that lower is better (scores negated)."""
        values = self.target(metric)
        if not self.higher_is_better and (self.name, metric) not in _SAID_SCORE and _reads_as_score(metric):
            _SAID_SCORE.add((self.name, metric))  # an accuracy minimised, said nowhere
            log.warning("run table %r: %r is minimised (lower is better), as every metric of a table without "
                        "higher_is_better: true; if it is a score such as an accuracy, set higher_is_better: true",
                        self.name, metric)
        return -values if self.higher_is_better else values

    def subset(self, rows) -> RunTable:
        """The runs at ``rows`` (indices or a boolean mask)."""
        rows = np.asarray(rows)
        ids = np.asarray(self.run_ids, dtype=object)[rows]
        return RunTable(self.name, self.weights[rows], self.metrics[rows], self.source_names, self.metric_names,
                        tuple(ids.tolist()), self.scale, self.natural_weights, dict(self.meta),
                        self.higher_is_better, None if self.costs is None else self.costs[rows])


def _short_source(col: str) -> str:
    return col.removeprefix("train_the_pile_")


def _short_metric(col: str) -> str:
    return col.removeprefix("metric/").removeprefix("the_pile_").removesuffix("_val_loss")


@dataclass(frozen=True)
class OwnTable:
    """A run table of your own, in RegMix's published layout: ``mixtures`` is a CSV with an ``index`` column and one
    column per source (each row a run's weights, summing to 1), ``metrics`` a CSV with the same ``index`` and one
    column per metric (empty: not measured). ``scale`` is the runs' model size (``"30M"``, ``"1B"``); a score where
    higher is better (accuracy) needs ``higher_is_better``."""

    name: str
    mixtures: str
    metrics: str
    scale: str
    higher_is_better: bool = False


def own_tables(specs: list, reserved: tuple = ()) -> tuple[OwnTable, ...]:
    """A config's ``tables:`` entries (mappings) as :class:`OwnTable` entries, their files as absolute paths (a
    Ray worker starts in another folder).

    Raises
    ------
    ConfigError
        Naming the entry: a key missing, a name taken (a published table, one of ``reserved``, or an earlier
        entry's) or not a new name (:func:`check_new_names`), or a scale that is no model size.
    """
    out = []
    for i, spec in enumerate(specs):
        where = f"tables[{i}]"
        missing = [k for k in ("name", "mixtures", "metrics", "scale") if k not in spec]
        if missing:
            raise ConfigError(f"{where}: needs {missing}; e.g. {{name: my_swarm, mixtures: runs.csv, metrics: "
                              "metrics.csv, scale: 30M}.")
        if spec["name"] in (*TABLES, *reserved) or spec["name"] in [t.name for t in out]:
            raise ConfigError(f"{where}.name: {spec['name']!r} is taken (a published table, "
                              f"{', '.join(map(repr, reserved))} or another of yours); name it otherwise.")
        try:
            check_new_names(f"{where}.name", [spec["name"]])
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        try:
            scale_params(spec["scale"])
        except InputError as exc:  # "scale must look like '60M' ...": said of this entry
            raise ConfigError(f"{where}.{exc}") from None
        out.append(OwnTable(name=spec["name"], scale=spec["scale"], higher_is_better=spec.get("higher_is_better", False),
                            **{k: str(Path(spec[k]).expanduser().absolute()) for k in ("mixtures", "metrics")}))
    return tuple(out)


def find_own(name: str, own=()) -> OwnTable | None:
    """The table of ``own`` (``OwnTable``s) called ``name``, or None."""
    return next((t for t in own if t.name == name), None)


def table_scale(name: str, own=()) -> str:
    """A published or own table's scale label."""
    mine = find_own(name, own)
    if mine is not None:
        return mine.scale
    if name not in TABLES:
        raise InputError(f"unknown run table {name!r}; known: {sorted(TABLES)}" +
                         (f" and your own {[t.name for t in own]}." if own else "."))
    return TABLES[name][2]


def load_run_table(name: str, *, mixtures_path=None, metrics_path=None, own=()) -> RunTable:
    """Load a published run table by name (see the module docstring), or one of ``own`` (:class:`OwnTable`),
    joining runs on ``index``.

    ``mixtures_path``/``metrics_path`` override where a published table's two CSV files are read from.

    Raises
    ------
    InputError
        If ``name`` is unknown, a file is missing, or the files do not fit together (no common
        run index, mixtures that are not on the simplex).
    """
    mine = find_own(name, own)
    if mine is not None:
        for what in ("mixtures", "metrics"):
            if not Path(getattr(mine, what)).expanduser().is_file():
                raise InputError(f"tables: {name!r}: {what} file {getattr(mine, what)} {not_a_file(Path(getattr(mine, what)).expanduser())}.")
        return _load_joined(name, Path(mine.mixtures).expanduser(), Path(mine.metrics).expanduser(), mine.scale,
                            higher_is_better=mine.higher_is_better)
    scale = table_scale(name)
    mix_name, met_name, _ = TABLES[name]
    if name.startswith("admire"):
        return _load_admire(name, scale, resolve(mix_name, mixtures_path or metrics_path))
    return _load_joined(name, resolve(mix_name, mixtures_path), resolve(met_name, metrics_path), scale)


def _id_text(ids):
    """Run ids as text to compare across two files: a whole number as an integer (a column with an empty cell reads
    as floats, 2.0 for 2), text stripped; missing ones stay missing."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(ids):
        return ids.map(lambda v: None if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v))
    return ids.map(lambda v: None if pd.isna(v) else str(v).strip())


def _load_joined(name: str, mix_file, met_file, scale: str, *, higher_is_better: bool = False) -> RunTable:
    """A table from a mixtures CSV and a metrics CSV joined on ``index`` (RegMix's and Olmix's layout)."""
    import pandas as pd

    if Path(mix_file).resolve() == Path(met_file).resolve():
        raise InputError(f"{mix_file}: named for both mixtures and metrics; a run table is two files joined on "
                         "'index': one with a column per source (the weights), one with a column per metric.")
    mix, met = _read_csv(mix_file), _read_csv(met_file)
    for frame, path in ((mix, mix_file), (met, met_file)):
        if "index" not in frame.columns:
            hint = " (the file is not comma-separated: write it with commas)" if len(frame.columns) == 1 and any(
                sep in str(frame.columns[0]) for sep in ";\t|") else ""
            raise InputError(f"{path}: expected an 'index' column to join mixtures and metrics; got "
                             f"{list(frame.columns)[:6]}{hint}.")
        if not len(frame):
            raise InputError(f"{path}: has a header but no runs.")
        if frame["index"].isna().any():
            raise InputError(f"{path}: data row {int(np.flatnonzero(frame['index'].isna())[0]) + 1} has an empty "
                             "'index'; every run needs one.")
        if frame["index"].dtype.kind == "f" and (frame["index"] % 1 == 0).all():  # 1.0 (a spreadsheet's) names run 1
            frame["index"] = frame["index"].astype(np.int64)
    for frame, path in ((mix, mix_file), (met, met_file)):
        repeated = frame["index"][frame["index"].duplicated()]
        if len(repeated):  # the join would pair runs arbitrarily
            raise InputError(f"{path}: the 'index' column repeats values, e.g. {repeated.tolist()[:3]}; each run needs "
                             "its own index.")
    if mix["index"].dtype != met["index"].dtype:  # 1, 2 against a, b: pandas refuses the join
        raise InputError(f"{mix_file} and {met_file}: their 'index' columns hold different kinds of values "
                         f"({mix['index'].dtype} and {met['index'].dtype}); the metrics file's rows name the mixtures "
                         "file's runs by that column.")
    joined = mix.merge(met, on="index", how="left", suffixes=("", "__metric"), validate="one_to_one")
    src_cols = [c for c in mix.columns if c not in _META_COLUMNS]
    met_cols = [c for c in met.columns if c not in _META_COLUMNS]
    if len(src_cols) < 2:  # one source is no mixture: the run failed after its first methods
        raise InputError(f"{mix_file}: {len(src_cols)} source column(s) {src_cols}; a mixture needs at least 2.")
    W = _mixture_matrix(joined, src_cols, mix_file)
    unused = [c for c, peak in zip(src_cols, W.max(axis=0)) if peak == 0]
    if unused:  # they still count as sources (e.g. in the search methods' budget of one run per source)
        _warn_once("%s: column(s) %s are 0 in every run: no run says anything about those sources (drop the column "
                   "if it is no source)", mix_file, ", ".join(map(repr, unused[:5])))
    fixed = [c for c, low, high in zip(src_cols, W.min(axis=0), W.max(axis=0)) if 0 < low == high]
    if fixed and len(W) > 2:  # a setting such as a learning rate left in the file reads as a source of that weight
        _warn_once("%s: column(s) %s hold the same weight in every run (%s): if it is no source (a setting such as a "
                   "learning rate), drop the column; as a source, no run says what another weight of it would do",
                   mix_file, ", ".join(map(repr, fixed[:5])), f"{W[0, src_cols.index(fixed[0])]:.4g}")
    distinct = len(np.unique(W, axis=0))
    if distinct < len(W):  # seeds of one mixture are fine; checkpoints of one run as rows are not
        _warn_once("%s: its %d runs hold %d distinct mixtures (repeats are read as seeds of one mixture: if rows are "
                   "checkpoints of one run, keep only the final one)", mix_file, len(W), distinct)
    shared = int(mix["index"].isin(met["index"]).sum())
    if not shared:
        raise InputError(f"{mix_file} and {met_file} share no run 'index'; the metrics file's rows name the mixtures "
                         "file's runs by that column.")
    orphans = int((~met["index"].isin(mix["index"])).sum())
    shift = _index_shift(mix["index"], met["index"], shared) if orphans else 0
    if shift:  # counted from 1 in one file and from 0 in the other: every run would carry its neighbour's metrics
        raise InputError(f"{mix_file} and {met_file}: their 'index' columns are off by one: {orphans} metrics row(s) "
                         f"name no run (e.g. {met['index'][~met['index'].isin(mix['index'])].tolist()[:3]}), while every "
                         f"metrics row names a run with its index {shift:+d}. Give each run the same index in both files "
                         "(one is counted from 1, the other from 0).")
    for key in ("run", "name"):  # ids both files carry must agree where the index pairs them
        if key in mix.columns and key in met.columns:
            a, b = _id_text(joined[key]), _id_text(joined[key + "__metric"])
            differ = (a.notna() & b.notna() & (a != b)).to_numpy()
            if differ.any():  # a metrics file sorted and renumbered: every run would carry another's metrics
                i = int(np.flatnonzero(differ)[0])
                raise InputError(f"{mix_file} and {met_file}: the 'index' column pairs runs whose '{key}' differs in "
                                 f"{int(differ.sum())} of {int((a.notna() & b.notna()).sum())} rows (index "
                                 f"{joined['index'].tolist()[i]!r} is {a.iloc[i]!r} in one and {b.iloc[i]!r} in the other). "
                                 f"Give each run the same index in both files, or drop the '{key}' column of one.")
    if shared < len(mix):  # they stay in the table, unmeasured: the search methods never pick them
        _warn_once("%s: %d of %d runs have no row in %s: their metrics are missing", mix_file, len(mix) - shared,
                   len(mix), met_file)
    if orphans:
        _warn_once("%s: %d of its %d rows name no run of %s (by 'index') and are left out", met_file, orphans,
                   len(met), mix_file)
    raw = joined[[c + "__metric" if c in src_cols else c for c in met_cols]]
    M = raw.apply(pd.to_numeric, errors="coerce")
    # "5.2x" or "1,234" in a column of numbers would silently become a missing measurement (a column with no
    # number at all, such as notes, is not a metric and stays unused)
    unread = (M.isna() & raw.notna() & M.notna().any()).to_numpy(dtype=bool)
    if unread.any():
        row, col = np.argwhere(unread)[0]
        raise InputError(f"{met_file}: the run with index {joined['index'].iloc[row]}, column {met_cols[col]!r} holds "
                         f"{str(raw.iloc[row, col])!r}, not a number; write metrics as plain numbers (empty: not measured).")
    infinite = np.isinf(M.to_numpy(dtype=np.float64))
    if infinite.any():  # a diverged run: no method may pick it, and it is said
        _warn_once("%s: %d value(s) are infinite (diverged runs?), e.g. column %r; they are read as not measured",
                   met_file, int(infinite.sum()), met_cols[int(np.argwhere(infinite)[0][1])])
        M = M.mask(np.isinf(M))
    ids = joined["run"] if "run" in joined.columns else joined["index"]
    sources = check_new_names(f"{mix_file}: domains", [_short_source(c) for c in src_cols])  # they reach downloads
    natural = None
    if name in TABLES and name.startswith("regmix"):  # published: the Pile's token distribution
        unknown = [s for s in sources if s not in REGMIX_PILE_NATURAL]
        if unknown:
            raise InputError(f"{mix_file}: a RegMix table's domains are the Pile's {sorted(REGMIX_PILE_NATURAL)}; got "
                             f"{unknown[:3]}.")
        natural = np.array([REGMIX_PILE_NATURAL[s] for s in sources], dtype=np.float64)
        natural = natural / natural.sum()
    return RunTable(name=name, weights=(W / W.sum(axis=1, keepdims=True)).astype(np.float32),
                    metrics=M.to_numpy(dtype=np.float64), source_names=sources,
                    metric_names=check_new_names(f"{met_file}: metrics", [_short_metric(c) for c in met_cols]),
                    run_ids=tuple(ids.tolist()),
                    scale=scale, natural_weights=natural,
                    meta={"mixtures": str(mix_file), "metrics": str(met_file)}, higher_is_better=higher_is_better)


def _index_shift(runs, metrics, shared: int) -> int:
    """+1 or -1 where every metrics row names a run once its integer index is moved by that much, and more rows
    match so than as written (an index counted from 1 against one from 0); else 0. A run left unmeasured, or a
    metrics row of another batch, is no shift."""
    if runs.dtype.kind not in "iu" or metrics.dtype.kind not in "iu":
        return 0
    for step in (-1, 1):
        # as int64 (uint64 ids beyond 2**63 wrap alike on both sides, and their differences stay): uint64 + -1 overflowed
        moved = int((metrics.astype(np.int64) + step).isin(runs.astype(np.int64)).sum())
        if moved == len(metrics) and moved > shared:
            return step
    return 0


_WARNED: set = set()


def _warn_once(message: str, *args) -> None:
    """A warning about a table's files, once per process (every trial and method loads the table)."""
    if (message, args) not in _WARNED:
        _WARNED.add((message, args))
        log.warning(message, *args)


def _read_csv(path):
    """A CSV as a DataFrame, or one InputError naming the file (empty, not text, ragged rows)."""
    import pandas as pd

    try:
        check_csv_header(str(path), path)  # pandas would rename a second `a` to `a.1`: a made-up source or metric
        frame = pd.read_csv(path)
    except InputError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        fix = "save it as UTF-8" if isinstance(exc, UnicodeDecodeError) else \
            "write one row per run, comma-separated, with a header row"
        raise InputError(f"{path}: cannot be read as a CSV table ({str(exc).splitlines()[0][:200]}); {fix}.") from None
    names = [c.strip() if isinstance(c, str) else c for c in frame.columns]  # "books " (a spreadsheet's) is books
    if len(set(names)) < len(names):
        twice = sorted({str(n) for n in names if names.count(n) > 1})[:3]
        raise InputError(f"{path}: column names repeat once their surrounding spaces are dropped: {twice}; each "
                         "source and metric needs a name of its own.")
    return frame.set_axis(names, axis=1)


def _mixture_matrix(frame, columns: list, path) -> np.ndarray:
    """The mixture weights of ``frame``'s rows (float64), or an InputError naming the first data row (1 is the row
    under the header) that is not numbers >= 0 summing to 1 (+-0.01)."""
    import pandas as pd

    if not columns:
        raise InputError(f"{path}: no domain columns besides the run's index; a mixtures file has one weight column "
                         "per domain.")
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    W = values.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(W) | (W < 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        cell = frame[columns[col]].iloc[row]
        raise InputError(f"{path}: data row {row + 1}, column {columns[col]!r} "
                         f"{'is empty' if pd.isna(cell) else f'holds {str(cell)!r}'}; mixture weights are numbers >= 0.")
    sums = W.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_TOL)
    if off.size:
        raise InputError(f"{path}: data row {off[0] + 1} sums to {sums[off[0]]:.6g} ({off.size} of {len(W)} rows are off); "
                         f"mixture weights sum to 1 (+-{ROW_SUM_TOL:g}). If the rows hold percentages or token counts, divide each "
                         f"row by its sum; a column that is no source ({', '.join(_META_COLUMNS[1:])} are skipped) should "
                         "go.")
    return W


def _load_admire(name: str, scale: str, path) -> RunTable:
    """One model size of ADMIRE's single table (``model, ratio_*, metric_*, train_time``)."""
    import pandas as pd

    frame = _read_csv(path)
    src_cols = [c for c in frame.columns if c.startswith("ratio_")]
    met_cols = [c for c in frame.columns if c.startswith("metric_")]
    if "model" not in frame.columns or not src_cols or not met_cols or "train_time" not in frame.columns:
        raise InputError(f"{path}: expected ADMIRE's columns model, ratio_*, metric_*, train_time; "
                         f"got {list(frame.columns)[:6]}...")
    W = _mixture_matrix(frame, src_cols, path)
    # one id per distinct mixture, shared by its runs at every model size
    keys = [row.tobytes() for row in np.round(W, 4)]
    ids = {k: f"mix{i:03d}" for i, k in enumerate(dict.fromkeys(keys))}
    rows = np.flatnonzero(frame["model"].to_numpy() == _ADMIRE_MODELS[scale])
    W = W[rows]
    return RunTable(name=name, weights=(W / W.sum(axis=1, keepdims=True)).astype(np.float32),
                    metrics=frame[met_cols].iloc[rows].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64),
                    source_names=check_new_names(f"{path}: domains", [c.removeprefix("ratio_") for c in src_cols]),
                    metric_names=tuple(c.removeprefix("metric_") for c in met_cols),
                    run_ids=tuple(ids[keys[r]] for r in rows), scale=scale, natural_weights=None,
                    meta={"mixtures": str(path), "metrics": str(path), "license": "CC BY-NC-SA 4.0"},
                    higher_is_better=True, costs=frame["train_time"].to_numpy(np.float64)[rows])


def scale_params(scale: str) -> float:
    """Model parameters of a table's ``scale`` label (``"60M"`` -> 6e7, ``"0.5B"`` -> 5e8).

    Raises
    ------
    InputError
        If the label is not a positive number followed by K, M or B.
    """
    units = {"K": 1e3, "M": 1e6, "B": 1e9}
    text = str(scale).strip().upper()
    try:
        params = float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        params = float("nan")
    if not np.isfinite(params) or params <= 0:  # a size: compute per run and BO's costs divide by it
        raise InputError(f"scale must be a positive model size such as '60M' or '0.5B'; got {scale!r}.")
    return params


def match_mixtures(W_pool, W_other, tol: float = 1e-3) -> np.ndarray:
    """For each row of ``W_pool`` the row of ``W_other`` with the same mixture (L1 distance below
    ``tol``), or -1. Used to find a pool mixture's runs at other model scales."""
    A = np.asarray(W_pool, dtype=np.float32)
    B = np.asarray(W_other, dtype=np.float32)
    out = np.full(len(A), -1, dtype=np.int64)
    for start in range(0, len(A), 256):  # bounded memory: 256 x n_other x n_sources at a time
        d = np.abs(A[start:start + 256, None, :] - B[None, :, :]).sum(axis=2)
        best = d.argmin(axis=1)
        ok = d[np.arange(len(best)), best] < tol
        out[start:start + 256][ok] = best[ok]
    return out


PRIORS = ("natural", "table_mean", "uniform")


def prior_for(table: RunTable, kind: str = "natural") -> np.ndarray:
    """Natural weights for RegMix's candidates: the table's published natural weights
    (``"natural"``, falling back to the swarm mean when none are published), the swarm mean
    (``"table_mean"``, floored at 1e-6) or uniform. Shape ``(n_sources,)`` float64, positive.

    Raises
    ------
    InputError
        If ``kind`` is not one of ``PRIORS``.
    """
    if kind not in PRIORS:
        raise InputError(f"prior must be one of {PRIORS}; got {kind!r}.")
    n = len(table.source_names)
    if kind == "uniform":
        return np.full(n, 1.0 / n)
    if kind == "natural" and table.natural_weights is not None:
        return np.asarray(table.natural_weights, dtype=np.float64)
    p = np.maximum(table.weights.astype(np.float64).mean(axis=0), 1e-6)
    return p / p.sum()
