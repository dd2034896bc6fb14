"""Turn a mixture into a training plan and write it in the formats trainers read.

A plan says, for a training budget (tokens for language models, rows for chemistry), how much of
each source to draw (``weight * budget``) and how many epochs that is (``amount / size``), and
flags every source that would be repeated more than ``max_epochs`` times. Such a mixture can be
solved again with availability caps ``w_p <= max_epochs * size_p / budget``
(:func:`solve_within_limit`).

Formats: plain JSON and CSV, a Hugging Face ``datasets.interleave_datasets`` snippet, an
Olmix-style mixture YAML (``mix: {source: {weight, repetition_factor}}``), a Megatron-LM
``--data-path`` weight string and, for chemistry, the weighted training table
``molecule, assay, label, weight`` (each assay's rows sharing its mixture weight, as the chemistry
pipeline's final models are trained).
"""
from __future__ import annotations

import dataclasses
import io
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.results import MixtureResult
from mixmin_core.solver.validation import by_source, check_names, check_number

UNITS = ("tokens", "rows")
#: The largest training budget a plan takes (a thousand trillion tokens; amounts stay exact in int64).
MAX_BUDGET = 1e15
FORMATS = ("json", "csv", "hf", "olmix", "megatron", "chem-table")
#: Relative slack before a source counts as over the repeat limit (a capped re-solve lands on it).
LIMIT_SLACK = 1e-6
#: Decimal places of exported weights (see :func:`round_weights`).
DECIMALS = 9
#: The largest sizes CSV read from an upload (a million sources fit in a few dozen MB).
MAX_SIZES_BYTES = 32 * 2**20
#: The most columns a sizes CSV may have (it needs source, size and documents): a 0.7 MB header of 100,000
#: columns took the server 14 s and 0.7 GB to parse.
MAX_SIZES_COLUMNS = 100
#: Smallest cap handed to the solver (a source with no data still needs a positive cap).
MIN_CAP = 1e-9


@dataclass(frozen=True, eq=False)
class TrainingPlan:
    """A mixture at a training budget: amount and epochs per source.

    Attributes
    ----------
    source_names : tuple of str.
    weights : (n_sources,) float64 summing to one, rounded to ``10**-DECIMALS`` (:func:`round_weights`).
    sizes : (n_sources,) float64, data available per source (in ``unit``).
    budget : total amount to train on (in ``unit``).
    max_epochs : the repeat limit the plan is checked against.
    unit : "tokens" or "rows".
    method : the method that produced the weights.
    meta : JSON-serialisable facts (run, problem, ...) carried into the exports.
    documents : (n_sources,) float64 documents (examples) per source, or None when unknown; with it a
        plan in tokens knows each source's mean example length, which per-example samplers need.
    """

    source_names: tuple
    weights: np.ndarray
    sizes: np.ndarray
    budget: float
    max_epochs: float
    unit: str = "tokens"
    method: str = "mixmin"
    meta: dict = field(default_factory=dict)
    documents: np.ndarray | None = None

    @property
    def amounts(self) -> np.ndarray:
        """``weight * budget`` per source (tokens or rows to draw)."""
        return self.weights * self.budget

    @property
    def whole_amounts(self) -> np.ndarray:
        """:attr:`amounts` in whole tokens or rows (int64) summing to the budget, rounded to a whole number: each
        source gets its amount rounded down, and the sources with the largest remainders one more each."""
        exact = self.amounts
        whole = np.floor(exact).astype(np.int64)
        left = int(round(self.budget)) - int(whole.sum())
        if left > 0:
            whole[np.argsort(-(exact - whole), kind="stable")[:left]] += 1
        return whole

    @property
    def epochs(self) -> np.ndarray:
        """Times each source is repeated (``inf`` for a source with weight but no data)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.amounts > 0, self.amounts / self.sizes, 0.0)

    def example_lengths(self) -> np.ndarray | None:
        """Mean example length per source (in ``unit``): 1 for rows, tokens per document for tokens
        (None when the documents are unknown; ``nan`` for a source with no data)."""
        if self.unit == "rows":
            return np.ones(len(self.source_names))
        if self.documents is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((self.sizes > 0) & (self.documents > 0), self.sizes / self.documents, np.nan)

    @property
    def over_limit(self) -> tuple:
        """Names of the sources repeated more than ``max_epochs`` times."""
        over = self.epochs > self.max_epochs * (1 + LIMIT_SLACK)
        return tuple(n for n, o in zip(self.source_names, over) if o)

    def weights_dict(self) -> dict:
        return dict(zip(self.source_names, map(float, self.weights)))

    def documents_dict(self) -> dict | None:
        """``{source: documents}``, or None when unknown (for a plan of the same sources re-solved)."""
        return None if self.documents is None else dict(zip(self.source_names, map(float, self.documents)))

    def warnings(self) -> list[str]:
        """What the sizes are where the run read only part of each source (``meta["sizes_note"]``), then one line
        per source over the repeat limit, and how to fix it."""
        out = [f"sizes: {self.meta['sizes_note']}"] if self.meta.get("sizes_note") else []
        repeats = len(out)
        for name in self.over_limit:
            i = self.source_names.index(name)
            out.append(f"source {name!r} would be repeated {self.epochs[i]:.3g} times "
                       f"({self.amounts[i]:.4g} of {self.sizes[i]:.4g} {self.unit}), more than max_epochs={self.max_epochs:g}")
        if len(out) > repeats:
            try:
                repeat_caps(self.sizes, self.budget, self.max_epochs)
                out.append("solve again with availability caps that respect the limit (solve_within_limit, "
                           "or --respect-limit on the command line)"
                           if self.method == "mixmin" or self.method.startswith("mixmin_joint_") else
                           f"this {self.method} mixture is exported as it was chosen (only MixMin's, and a joint "
                           "MixMin's, are solved again within a limit): lower the budget, or give those sources more "
                           "data")
            except InputError as exc:
                out.append(str(exc))
        return out

    def caps(self) -> np.ndarray:
        """Availability caps ``min(1, max_epochs * size / budget)`` that keep every source within the limit."""
        return repeat_caps(self.sizes, self.budget, self.max_epochs)

    def to_frame(self):
        """``source, weight, size, <unit>, epochs, over_limit`` per source."""
        import pandas as pd

        over = set(self.over_limit)
        return pd.DataFrame({
            "source": list(self.source_names), "weight": self.weights, "size": self.sizes,
            self.unit: self.whole_amounts, "epochs": self.epochs,
            "over_limit": [n in over for n in self.source_names],
        })

    def to_dict(self) -> dict:
        epochs = [float(e) if np.isfinite(e) else None for e in self.epochs]
        over = set(self.over_limit)
        return {
            "method": self.method, "unit": self.unit, "budget": float(self.budget),
            "max_epochs": float(self.max_epochs), "meta": self.meta, "weights": self.weights_dict(),
            "sources": [{"source": n, "weight": float(w), "size": float(s), self.unit: int(a),
                         "epochs": e, "over_limit": n in over}
                        for n, w, s, a, e in zip(self.source_names, self.weights, self.sizes, self.whole_amounts, epochs)],
            "warnings": self.warnings(),
        }


def _positive(name: str, value) -> float:
    try:
        x = float("nan") if isinstance(value, bool) else float(value)  # True is not a budget
    except (TypeError, ValueError):
        x = float("nan")
    if not (np.isfinite(x) and x > 0):
        raise InputError(f"{name} must be a positive number; got {value!r}.")
    return x


def repeat_caps(sizes, budget: float, max_epochs: float) -> np.ndarray:
    """Caps ``min(1, max_epochs * size_p / budget)`` per source (at least ``MIN_CAP``).

    Raises
    ------
    InputError
        If even these caps sum below one: the data cannot fill ``budget`` within ``max_epochs``.
    """
    from mixmin_core.solver.constraints import availability_caps

    budget, max_epochs = _positive("budget", budget), _positive("max_epochs", max_epochs)
    sizes = np.asarray(sizes, dtype=np.float64)
    caps = np.maximum(availability_caps(sizes, budget, max_epochs), MIN_CAP)
    if caps.sum() < 1 - 1e-9:  # no mixture fills the budget
        raise InputError(
            f"budget {budget:.4g} cannot be filled within max_epochs={max_epochs:g}: the sources hold "
            f"{sizes.sum():.4g} in all, so at most {max_epochs * sizes.sum():.4g} fit; lower the budget or raise "
            "max_epochs.")
    return caps


def plan_training(result: MixtureResult, sizes, *, budget: float, max_epochs: float = 4.0,
                  unit: str = "tokens", meta: dict | None = None, documents=None) -> TrainingPlan:
    """The training plan of ``result``'s weights at ``budget``.

    Parameters
    ----------
    result : MixtureResult (its weights and source names).
    sizes : ``{source: size}`` (extra sources ignored) or an array in ``result.source_names`` order;
        tokens or rows available per source, non-negative.
    budget : positive total amount to train on, in ``unit``.
    max_epochs : positive repeat limit.
    unit : "tokens" or "rows".
    meta : facts to carry into the exports (run id, problem, ...).
    documents : like ``sizes``, the documents (examples) per source, or None; the Hugging Face
        snippet needs them to turn token weights into per-example probabilities.

    Raises
    ------
    InputError
        For a bad budget, limit or unit, missing or negative sizes or documents, or weights off the simplex.
    """
    if not isinstance(result, MixtureResult):
        raise InputError(f"result must be a MixtureResult; got {type(result).__name__}.")
    if unit not in UNITS:
        raise InputError(f"unit must be one of {UNITS}; got {unit!r}.")
    budget, max_epochs = _positive("budget", budget), _positive("max_epochs", max_epochs)
    if budget > MAX_BUDGET:  # amounts are whole numbers of tokens or rows (int64): 1e30 printed as negative
        raise InputError(f"budget must be at most {MAX_BUDGET:.0e} {unit}; got {budget:g}.")
    if budget != int(budget):  # the amounts are whole: 10.5 planned 10 rows and said 10.5
        raise InputError(f"budget must be a whole number of {unit}; got {budget!r}.")  # :g read 1.23457e+07
    names = check_names("the mixture's source names", result.source_names)  # a line break would end a comment
    w = np.asarray(result.weights, dtype=np.float64)
    if w.shape != (len(names),):
        raise InputError(f"result.weights must hold {len(names)} numbers, one per source; got shape {w.shape}.")
    bad = [n for n, x in zip(names, w) if not (np.isfinite(x) and x >= 0)]
    if bad or abs(w.sum() - 1) > 1e-4:
        raise InputError("result.weights must be non-negative numbers summing to 1; "
                         + (f"negative or not a number for {bad[:5]}." if bad else f"got sum {w.sum():.4g}."))
    docs = None if documents is None else _check_sizes(documents, names, what="documents")
    sizes = _check_sizes(sizes, names)
    if docs is not None and unit == "tokens" and (docs > sizes).any():
        bad = [n for n, d, t in zip(names, docs, sizes) if d > t][:5]
        raise InputError(f"documents: {bad} have more documents than tokens, but a document holds at least one token; "
                         "are the columns swapped?")
    return TrainingPlan(names, round_weights(result.weights), sizes, budget, max_epochs, unit,
                        str(result.method), dict(meta or {}), docs)


def round_weights(weights) -> np.ndarray:
    """Weights on a grid of ``10**-DECIMALS`` summing to exactly one (the rounding residual goes to the largest).

    Solver weights are float32 (about 7 significant digits), so nothing real is lost, and every
    format prints short numbers (0.6, not 0.6000000014901161) that read back to the same float64.
    A float32 weight is taken as the decimal it prints as (0.4, not 0.4000000059604645), so weights
    0.4/0.3/0.2/0.1 export as those, not 0.399999997.
    """
    w = np.asarray(weights)
    w = np.array([float(str(x)) for x in w]) if w.dtype == np.float32 and w.ndim == 1 else w.astype(np.float64)
    scale = 10 ** DECIMALS
    units = np.round(w / w.sum() * scale).astype(np.int64)
    units[int(np.argmax(units))] += scale - units.sum()
    return units / scale


def _check_sizes(sizes, names: tuple, *, what: str = "sizes") -> np.ndarray:
    kind = "documents (examples)" if what == "documents" else "tokens or rows"
    sizes = by_source(what, sizes, names, fix=f"give the {kind} of every source of the mixture")
    try:
        arr = np.asarray(sizes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numbers ({kind} per source); got {sizes!r:.80}.") from None
    if arr.shape != (len(names),):
        raise InputError(f"{what} must hold {len(names)} numbers, one per source; got shape {arr.shape}.")
    if not np.isfinite(arr).all() or (arr < 0).any():
        bad = [n for n, s in zip(names, arr) if not (np.isfinite(s) and s >= 0)]
        raise InputError(f"{what} must be finite and non-negative; bad for {bad[:5]}.")
    return arr


def limit_caps(plan: TrainingPlan, names=None, *, max_weight: float = 1.0) -> dict:
    """``{source: cap}`` that keep each of ``names`` (default: the plan's sources) within the plan's repeat limit
    (``w_p <= max_epochs * size_p / budget``) and at most ``max_weight``.

    Raises
    ------
    InputError
        If the caps cannot hold a mixture (they sum below one), or ``names`` holds a source the plan lacks.
    """
    from mixmin_core.solver.constraints import check_caps

    caps = dict(zip(plan.source_names, plan.caps()))
    names = plan.source_names if names is None else tuple(names)
    missing = [n for n in names if n not in caps]
    if missing:
        raise InputError(f"outputs have sources the plan lacks, e.g. {missing[:5]}; export and solve on the same sources.")
    capped = np.minimum([caps[n] for n in names], float(max_weight))
    page = f" and the max weight per source ({max_weight:g})" if max_weight < 1 else ""
    check_caps(capped, len(names), what=f"the repeat-limit caps{page} of the {len(names)} sources",
               fix="lower the budget or raise the repeat limit (max_epochs)" + (", or raise the max weight" if page else ""))
    return dict(zip(names, capped.tolist()))


def solve_within_limit(outputs, plan: TrainingPlan, *, max_weight: float = 1.0, **solver) -> MixtureResult:
    """Solve again within :func:`limit_caps` (the plan's repeat limit, and at most ``max_weight`` per source).

    ``outputs`` is one target's ProxyOutputs (solved with :func:`~mixmin_core.mixmin`) or several
    targets' (solved with :func:`~mixmin_core.solver.multi_target.mixmin_multi`); ``solver`` keyword
    arguments go to that solver.

    Raises
    ------
    InputError
        If the limit cannot be met at this budget, or the outputs' sources differ from the plan's.
    """
    from mixmin_core.solver.multi_target import check_targets, mixmin_multi
    from mixmin_core.solver.proxy_outputs import ProxyOutputs
    from mixmin_core.solver.solvers import mixmin

    single = isinstance(outputs, ProxyOutputs)
    caps = limit_caps(plan, outputs.source_names if single else check_targets(outputs).source_names,
                      max_weight=max_weight)
    return (mixmin if single else mixmin_multi)(outputs, caps=caps, **solver)


# ---- formats ---------------------------------------------------------------------------------
def _num(x: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(x))


def to_json(plan: TrainingPlan) -> str:
    return json.dumps(plan.to_dict(), indent=2) + "\n"


def to_csv(plan: TrainingPlan) -> str:
    buf = io.StringIO()
    plan.to_frame().to_csv(buf, index=False)  # shortest text that reads back the same (0.6, not 0.59999999999999998)
    return buf.getvalue()


def _header(plan: TrainingPlan) -> list[str]:
    facts = ", ".join(f"{k} {v}" for k, v in plan.meta.items()
                      if isinstance(v, (str, int, float)) and k not in ("tokenizer", "sizes_note"))  # lines of their own
    # one comment line: a line break in a run name or method would end the comment and break the Python or YAML
    first = " ".join(f"Training mixture from mixmin: method {plan.method}{', ' + facts if facts else ''}.".split())
    lines = [f"# {first}",
             f"# Budget {plan.budget:.6g} {plan.unit}; repeat limit {plan.max_epochs:g} epochs."]
    if plan.unit == "tokens" and plan.meta.get("tokenizer"):
        lines.append(" ".join(f"# Tokens are counted with {plan.meta['tokenizer']}; a trainer with another tokenizer "
                              "should export with sizes counted in its own (--sizes): totals change, shares a little.".split()))
    lines += [f"# WARNING: {w}" for w in plan.warnings()]
    return lines


def _positive_sources(plan: TrainingPlan) -> tuple[list, list]:
    keep = plan.weights > 0
    w = round_weights(plan.weights[keep])  # on the grid again: 0.0754420530, not 0.07544205300000001
    return [n for n, k in zip(plan.source_names, keep) if k], [float(x) for x in w]


#: Below this many expected documents from a source, its share of the tokens varies a lot between seeds.
FEW_DOCUMENTS = 20


def hf_fallback(plan: TrainingPlan) -> str | None:
    """Why the datasets snippet of ``plan`` uses the token weights as per-example probabilities (no
    documents per source), or None when it draws per document."""
    if plan.example_lengths() is not None:
        return None
    return ("the datasets snippet draws examples, and without documents per source it uses the token weights as "
            "per-example probabilities (right only when every source's documents have the same mean length) and can "
            "neither repeat sources nor cut the stream at the budget: it stops when the first source runs out, short "
            "of the budget where a source is planned for more than one epoch; give a 'documents' column with the "
            "sizes.")


def hf_snippet(plan: TrainingPlan, *, seed: int = 0, stopping_strategy: str = "first_exhausted",
               datasets_var: str = "source_datasets") -> str:
    """Python that interleaves the sources with ``datasets.interleave_datasets(..., probabilities=...)``.

    The snippet expects ``datasets_var`` to map every source name to a ``datasets.Dataset`` (or
    ``IterableDataset``) and binds the result to ``mixed``. Sources with zero weight are left out.
    Each source is shuffled first (with ``seed``): a source used for less than one epoch would
    otherwise give only its first documents, which need not be typical of it.

    ``interleave_datasets`` draws examples, not tokens. When the plan knows each source's mean example
    length (rows, or tokens with ``documents``), the probabilities are per example (weight / mean
    length, renormalised), each source is repeated enough passes that none runs out first, and the
    stream is cut at the budget in examples, so each source's share of the *tokens* is its weight (on
    average: a source drawn for a few long documents varies a lot, and the snippet says so).
    Otherwise the weights are used as they are, which is right only for examples of equal length
    (:func:`hf_fallback`).
    """
    seed = check_number("seed", seed, minimum=0, integer=True)  # interleave_datasets takes a numpy seed
    if stopping_strategy not in ("first_exhausted", "all_exhausted", "all_exhausted_without_replacement"):
        raise InputError(f"stopping_strategy must be 'first_exhausted', 'all_exhausted' or "
                         f"'all_exhausted_without_replacement'; got {stopping_strategy!r}.")
    if not str(datasets_var).isidentifier():
        raise InputError(f"datasets_var must be a Python identifier; got {datasets_var!r}.")
    names, probs = _positive_sources(plan)
    lengths = plan.example_lengths()
    keep = np.isin(plan.source_names, names)
    empty = [n for n, k, size, m in zip(plan.source_names, keep, plan.sizes, lengths if lengths is not None else plan.sizes)
             if k and not (size > 0 and np.isfinite(m))]
    if empty:  # drawn with its probability, an empty dataset ends a 'first_exhausted' stream at once
        raise InputError(f"source(s) {empty[:5]} have weight but no data (0 {plan.unit} or 0 documents), so no "
                         "example can be drawn from them; fix the sizes, or solve again without them.")
    head = _header(plan) + [
        f"# `{datasets_var}` maps each source name below to a datasets.Dataset (or IterableDataset); each is",
        "# shuffled first (an IterableDataset within a buffer), so a source used for less than an epoch is not",
        "# just its first documents."]
    shuffled = f"{datasets_var}[name].shuffle(seed=SEED)"
    call = ["    probabilities=PROBABILITIES,", "    seed=SEED,", f"    stopping_strategy={stopping_strategy!r},"]
    if lengths is None:
        lines = head + [f"# WARNING: {hf_fallback(plan)}",
                        "# 'first_exhausted' stops when the first source runs out (sources repeated more than once run out",
                        "# early); 'all_exhausted' oversamples until every source has been seen.",
                        "from datasets import interleave_datasets", "",
                        f"SEED = {int(seed)}", f"SOURCES = {json.dumps(names, ensure_ascii=False)}",
                        f"PROBABILITIES = [{', '.join(map(_num, probs))}]",
                        "mixed = interleave_datasets(", f"    [{shuffled} for name in SOURCES],", *call, ")"]
        return "\n".join(lines) + "\n"
    per_example = plan.amounts[keep] / lengths[keep]  # expected examples drawn from each source
    examples = round(float(per_example.sum()))
    if examples < 1:  # .take(0): an empty stream
        raise InputError(f"the budget ({plan.budget:.6g} {plan.unit}) is under one example (a mean "
                         f"{'document' if plan.unit == 'tokens' else 'row'} holds "
                         f"{float(np.nanmean(lengths[keep])):.4g} {plan.unit}); raise the budget.")
    repeats = [int(np.ceil(2 * e)) + 1 for e in plan.epochs[keep]]  # passes: no source runs out before the cut
    unit = "document" if plan.unit == "tokens" else "row"
    few = [f"{json.dumps(n, ensure_ascii=False)} (~{e:.2g})" for n, e in zip(names, per_example) if e < FEW_DOCUMENTS]
    lines = head + [
        f"# Probabilities are per example: each source's weight divided by its mean {unit} length (in {plan.unit}),",
        "# so each source's share of the stream's " + plan.unit + " is its weight. Each source is repeated",
        "# REPEATS passes (about twice its epochs, plus one) so none runs out before the stream is cut at EXAMPLES,",
        f"# the budget ({plan.budget:.6g} {plan.unit}) in examples."]
    if few:
        lines += [f"# NOTE: few {unit}s are drawn from {', '.join(few[:6])}{' ...' if len(few) > 6 else ''}: their shares",
                  "# vary a lot from seed to seed (pack documents into fixed-length blocks first for exact shares)."]
    lines += ["from datasets import interleave_datasets", "",
              f"SEED = {int(seed)}", f"SOURCES = {json.dumps(names, ensure_ascii=False)}",
              f"PROBABILITIES = [{', '.join(map(_num, round_weights(per_example)))}]",
              f"REPEATS = {json.dumps(repeats)}", f"EXAMPLES = {examples}",
              "mixed = interleave_datasets(",
              f"    [{shuffled}.repeat(times) for name, times in zip(SOURCES, REPEATS)],", *call,
              ").take(EXAMPLES)"]
    return "\n".join(lines) + "\n"


def olmix_yaml(plan: TrainingPlan) -> str:
    """An Olmix-style mixture: ``max_tokens`` and a flat ``mix`` of ``{weight, repetition_factor}``.

    ``repetition_factor`` is the repeat limit (Olmix passes it to OLMo-core as the per-source
    ``max_repetition_ratio``), so a source over the limit fails there instead of silently repeating.
    """
    import yaml

    class Name(str):
        """A source name, always double-quoted: YAML 1.2 readers take a bare 1e3 or no for a number or a boolean."""

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Name, lambda dumper, name: dumper.represent_scalar("tag:yaml.org,2002:str", name, style='"'))
    body = {"max_tokens" if plan.unit == "tokens" else "max_rows": int(round(plan.budget)),
            "mix": {Name(n): {"weight": float(w), "repetition_factor": float(plan.max_epochs)}
                    for n, w in zip(plan.source_names, plan.weights)}}
    return "\n".join(_header(plan)) + "\n" + yaml.dump(body, Dumper=Dumper, sort_keys=False, allow_unicode=True)


def megatron_data_path(plan: TrainingPlan, *, path_template: str = "{source}") -> str:
    """``--data-path W1 PREFIX1 W2 PREFIX2 ...`` for Megatron-LM (zero-weight sources left out).

    ``path_template`` turns a source name into its data prefix, e.g. ``/data/{source}_text_document``.
    """
    if "{source}" not in path_template:
        raise InputError(f"the data prefix (path_template; --data-prefix on the command line) must contain "
                         f"'{{source}}'; got {path_template!r}.")
    names, probs = _positive_sources(plan)
    parts = []
    for name, w in zip(names, probs):
        prefix = path_template.replace("{source}", name)
        if not prefix or any(c.isspace() for c in prefix):
            if any(c.isspace() for c in name):  # the app's uploads had such names, and offered --data-prefix
                raise InputError(f"source {name!r} has a space in its name, and Megatron's --data-path is split on "
                                 "spaces: rename the source (its data files have no spaces either), or export json "
                                 "or csv and write the paths yourself.")
            raise InputError(f"the data prefix {path_template!r} holds a space, and Megatron's --data-path is split "
                             "on spaces: give one without spaces.")
        parts += [_num(w), shlex.quote(prefix)]  # pasted into a shell: a name like $(...) stays a name
    return "--data-path " + " ".join(parts) + "\n"


def training_mixture(result: MixtureResult) -> MixtureResult:
    """``result`` with the weights a chemistry final model trains on: rounded to 5 decimals (a weight under 5e-6
    is solver noise and trains on no rows), then scaled to sum to one. Weights off the simplex are returned as they
    are, for :func:`plan_training` to refuse (rescaled, weights summing to 2 passed)."""
    from mixmin_core.chem.proxies import training_weights

    w = np.asarray(result.weights, dtype=np.float64)
    if not (np.isfinite(w).all() and (w >= 0).all() and abs(w.sum() - 1) <= 1e-4):
        return result
    w = np.asarray(training_weights(w), dtype=np.float64)
    return dataclasses.replace(result, weights=(w / w.sum()).astype(np.float32))


def chem_table(plan: TrainingPlan, examples):
    """The weighted training table ``molecule, assay, label, weight``.

    ``examples`` (DataFrame with columns ``molecule``, ``assay``, ``label``) lists every labelled
    example; each source assay with positive weight keeps all its rows, each weighted
    ``weight_p / n_rows_p * n`` (``n`` the table's rows) so an assay's rows sum to its mixture weight times ``n``:
    sample weights of mean 1, as the pipeline's final models rescale them (weights summing to 1 over thousands of
    rows stay below XGBoost's ``min_child_weight``, and a model trained on them predicts a constant).

    Raises
    ------
    InputError
        If ``examples`` lacks a column or has no rows for a source with positive weight.
    """
    import pandas as pd

    missing_cols = [c for c in ("molecule", "assay", "label") if c not in getattr(examples, "columns", ())]
    if missing_cols:
        raise InputError(f"examples must be a DataFrame with columns molecule, assay, label; missing {missing_cols}.")
    from mixmin_core.chem.proxies import TRAINING_DECIMALS

    # as the final models: a weight under 5e-6 is solver noise and trains on no rows
    weights = {n: w for n, w in plan.weights_dict().items() if round(w, TRAINING_DECIMALS) > 0}
    rows = examples.loc[examples["assay"].isin(list(weights)), ["molecule", "assay", "label"]]
    counts = rows["assay"].value_counts()
    empty = [n for n in weights if counts.get(n, 0) == 0]
    if empty:
        raise InputError(f"examples have no rows for {len(empty)} source(s) with positive weight, e.g. {empty[:5]}.")
    table = rows.reset_index(drop=True)
    share = table["assay"].map(weights).to_numpy() / table["assay"].map(counts).to_numpy()
    table["weight"] = share * (len(table) / share.sum())
    return pd.DataFrame(table)


def render(plan: TrainingPlan, fmt: str, *, examples=None, path_template: str = "{source}", seed: int = 0) -> str:
    """``plan`` as text in format ``fmt`` (one of :data:`FORMATS`); ``examples`` for "chem-table"."""
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}; got {fmt!r}.")
    if fmt == "chem-table":
        if examples is None:
            raise InputError("format 'chem-table' needs the labelled examples (molecule, assay, label).")
        buf = io.StringIO()
        chem_table(plan, examples).to_csv(buf, index=False)
        return buf.getvalue()
    if fmt == "hf":
        return hf_snippet(plan, seed=seed)
    if fmt == "megatron":
        return megatron_data_path(plan, path_template=path_template)
    return {"json": to_json, "csv": to_csv, "olmix": olmix_yaml}[fmt](plan)


# ---- run folders -----------------------------------------------------------------------------
def sizes_note(config: dict, *, estimated: bool = False) -> str | None:
    """What the sizes of a run with ``config`` are, when it read only part of each source
    (``max_source_chars``): the whole sources' with tokens estimated from the sample (``estimated``:
    the run recorded them), else that sample's, so repeat warnings and the budget read from them too."""
    cap = config.get("max_source_chars") if isinstance(config, dict) else None
    if not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
        return None
    if estimated:
        return (f"the run read the first {cap:,} characters of each source (max_source_chars); its sizes are the whole "
                "sources' documents, with tokens estimated from that sample's tokens per character; give exact sizes "
                "in a CSV (source,size,documents) if you have them.")
    return (f"the run read the first {cap:,} characters of each source (max_source_chars), so its sizes count that "
            "sample's tokens, not the whole corpus's; give the full sizes in a CSV (source,size,documents) for a real "
            "budget.")


class SourceSizes(NamedTuple):
    """A run's source sizes: ``{source: size}`` in ``unit``; ``{source: documents}`` (None when not
    recorded); ``estimated``: sizes of whole sources estimated from a sample the run read; ``tokenizer``:
    what counted the tokens, for the exports' headers."""

    sizes: dict
    unit: str
    documents: dict | None = None
    estimated: bool = False
    tokenizer: str | None = None  # what counted the tokens (a language-model run's tokenizer.json)
    note: str | None = None  # what the sizes are, where the run read only part of each source (:func:`sizes_note`)


def run_members(run_dir, variant: str) -> dict[str, tuple[str, np.ndarray]] | None:
    """``{source: (assay, molecule indices)}`` of ``variant``'s sources where the run records them
    (``sources/members.npz``: an evolving-source run, whose split halves and revised releases are no whole
    assays), else None."""
    path = Path(run_dir) / "sources" / "members.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            variants, names, assays, counts, members = (z[k] for k in ("variants", "names", "assays", "counts",
                                                                       "members"))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot read the sources' molecules ({exc}).") from None
    parts = np.split(members, np.cumsum(counts)[:-1])
    found = {str(n): (str(a), m) for v, n, a, m in zip(variants, names, assays, parts, strict=True) if v == variant}
    return found or None


def run_source_sizes(run_dir, variant: str = "") -> SourceSizes:
    """Sizes of a run's sources: ``tokens`` (LM; the whole corpus's ``corpus_tokens`` and
    ``corpus_documents`` when the run read a sample) or ``n_labelled`` rows (chemistry) in sources.csv,
    else the molecules of ``variant``'s sources (:func:`run_members`), else the labelled rows per assay in the
    run's ``features/labels.npz``.

    Raises
    ------
    InputError
        If the run folder records no source sizes (pass them explicitly).
    """
    from mixmin_core.runs.layout import read_sources

    run_dir = Path(run_dir)
    members = run_members(run_dir, variant)
    if members:
        return SourceSizes({n: float(m.size) for n, (_, m) in members.items()}, "rows")
    frame = read_sources(run_dir)
    if len(frame):
        def column(*names):
            name = next((n for n in names if n in frame.columns), None)
            return None if name is None else dict(zip(frame["source"], frame[name].astype(float)))

        if "tokens" in frame.columns:
            return SourceSizes(column("corpus_tokens", "tokens"), "tokens", column("corpus_documents", "documents"),
                               "corpus_tokens" in frame.columns, _run_tokenizer(run_dir))
        if "n_labelled" in frame.columns:
            return SourceSizes(column("n_labelled"), "rows")
    labels = run_dir / "features" / "labels.npz"
    if labels.exists():
        lab, assays = _labels(labels)
        return SourceSizes(dict(zip(assays, (lab >= 0).sum(axis=0).astype(float))), "rows")
    what = "sources.csv has no 'tokens' or 'n_labelled' column" if (run_dir / "sources.csv").exists() else "has no sources.csv"
    raise InputError(f"{run_dir}: {what} and there is no features/labels.npz, so the sources' sizes are unknown; "
                     "give them in a CSV with columns source,size (--sizes FILE.csv on the command line).")


def _run_tokenizer(run_dir: Path) -> str | None:
    """"the run's tokenizer (tokenizer/tokenizer.json, a 512-token vocabulary)", or None without one."""
    path = run_dir / "tokenizer" / "tokenizer.json"
    try:
        from mixmin_core.lm.tokenizer import load_tokenizer

        return f"the run's tokenizer (tokenizer/tokenizer.json, a {load_tokenizer(path).get_vocab_size():,}-token vocabulary)"
    except Exception:  # noqa: BLE001 - no tokenizer, or one that does not load: the header just says less
        return None


def run_trial_rows(run_dir, trial: int) -> dict[str, tuple[str, np.ndarray]]:
    """``{source: (assay, rows)}``: the rows a chemistry run's final models of ``trial`` trained on (each source's
    fit split; ``sources/trial<k>.npz``), before ``max_final_rows`` draws from them."""
    from mixmin_core.chem.trainers import load_sources

    path = Path(run_dir) / "sources" / f"trial{int(trial)}.npz"
    if not path.exists():
        raise InputError(f"{path}: not found; --fit-rows needs a chemistry run (pipeline chem) that reached its final "
                         "models for this trial.")
    try:
        return load_sources(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot read the trial's training rows ({exc}).") from None


def run_chem_examples(run_dir, sources=None, variant: str = "", members=None):
    """Labelled examples ``molecule, assay, label`` of a chemistry run (``sources``: assays to keep); for a
    ``variant`` whose sources the run records (:func:`run_members`), each source's molecules, its name in
    ``assay``; ``members`` (``{source: (assay, rows)}``, e.g. :func:`run_trial_rows`) names the rows instead."""
    import pandas as pd

    run_dir = Path(run_dir)
    smiles_p, labels_p = run_dir / "features" / "smiles.npz", run_dir / "features" / "labels.npz"
    for p in (smiles_p, labels_p):
        if not p.exists():
            raise InputError(f"{p}: not found; the chemistry table needs a chemistry run's features folder.")
    with np.load(smiles_p, allow_pickle=False) as z:
        smiles = z["smiles"]
    lab, assays = _labels(labels_p)
    fingerprints = run_dir / "features" / "fingerprints.npz"
    valid = np.ones(len(smiles), bool)
    if fingerprints.exists():
        with np.load(fingerprints, allow_pickle=False) as z:
            valid = z["valid"].astype(bool) if "valid" in z.files else valid
    members = members or run_members(run_dir, variant) or {a: (a, None) for a in assays}  # None: its labelled rows
    column = {a: j for j, a in enumerate(assays)}
    keep = None if sources is None else set(sources)
    frames = []
    for name, (assay, rows) in members.items():
        if keep is not None and name not in keep:
            continue
        rows = np.flatnonzero(lab[:, column[assay]] >= 0) if rows is None else rows
        rows = rows[valid[rows]]  # molecules RDKit cannot parse are in no split: the run never trained on them
        frames.append(pd.DataFrame({"molecule": smiles[rows], "assay": name,
                                    "label": lab[rows, column[assay]].astype(int)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["molecule", "assay", "label"])


def _labels(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["labels"], [str(a) for a in z["assays"]]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot read labels and assays ({exc}).") from None


def read_sizes_csv(path, *, data: bytes | None = None) -> dict:
    """``{source: size}`` from a CSV with a ``source`` column and one of ``size``, ``tokens``, ``rows``, ``n_labelled``.

    ``data``: the file's bytes (an upload), read in memory; ``path`` then only names it in errors.

    Raises
    ------
    InputError
        If the file is missing, unreadable or lacks those columns, or a size is not a finite number >= 0.
    """
    frame, path = _sizes_frame(path, data)
    found = [c for c in ("size", "tokens", "rows", "n_labelled") if c in frame.columns]
    if "corpus_tokens" in frame.columns:  # a run's own sources.csv: the whole corpus's, not the sample's
        found = ["corpus_tokens"]
    if not found:
        raise InputError(f"{path}: needs columns 'source' and 'size' (or tokens, rows, n_labelled); "
                         f"got {list(frame.columns)}.")
    if len(found) > 1:
        raise InputError(f"{path}: has columns {found}; keep one of them, so it is clear which holds the sizes.")
    return _column_sizes(frame, found[0], path)


def read_documents_csv(path, *, data: bytes | None = None) -> dict | None:
    """``{source: documents}`` from the optional ``documents`` column of a sizes CSV (None without one)."""
    frame, path = _sizes_frame(path, data)
    column = next((c for c in ("corpus_documents", "documents") if c in frame.columns), None)
    return _column_sizes(frame, column, path) if column else None


def _check_sizes_columns(path: Path, data) -> None:
    """An InputError for a sizes CSV whose header has more than :data:`MAX_SIZES_COLUMNS` columns, counted on its
    first line before pandas reads it (a compressed file, read only from the command line, is left to pandas)."""
    try:
        if data is not None:
            head = data[: 1 << 16]
        else:
            with path.open("rb") as fh:
                head = fh.read(1 << 16)
    except OSError:
        return  # read_csv names the problem
    if head[:2] == b"\x1f\x8b" or head[:4] == b"PK\x03\x04":
        return
    header = next((line for line in head.splitlines() if line.strip()), b"")  # pandas skips blank lines before it
    columns = header.count(b",") + 1
    if columns > MAX_SIZES_COLUMNS:
        raise InputError(f"{path}: its header has {columns:,}{'+' if len(head) == 1 << 16 else ''} columns; a sizes "
                         f"CSV has source, size and optionally documents (at most {MAX_SIZES_COLUMNS}).")


def _sizes_frame(path, data):
    import warnings

    import pandas as pd

    from mixmin_core.solver.validation import check_csv_header

    path = Path(path)
    size = len(data) if data is not None else path.stat().st_size if path.is_file() else 0
    if size > MAX_SIZES_BYTES:
        raise InputError(f"{path}: {size / 2**20:,.1f} MB is more than a sizes file needs (one short line per "
                         f"source; at most {MAX_SIZES_BYTES / 2**20:,.0f} MB).")
    _check_sizes_columns(path, data)
    try:
        check_csv_header(str(path), path if data is None else io.BytesIO(data))
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # more fields than the header names
            # a source named NA or null is a name, not a missing value
            frame = pd.read_csv(path if data is None else io.BytesIO(data), dtype={"source": str}, index_col=False,
                                keep_default_na=False, na_values=[""])
    except pd.errors.ParserWarning:
        raise InputError(f"{path}: a row has more fields than the header has columns; check the separators.") from None
    except FileNotFoundError:
        raise InputError(f"{path}: sizes file not found.") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 CSV.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc}).") from None
    except OSError as exc:  # a folder, a file without read permission
        raise InputError(f"{path}: cannot read it as a sizes CSV ({exc.strerror}).") from None
    if "source" not in frame.columns:
        raise InputError(f"{path}: needs columns 'source' and 'size' (or tokens, rows, n_labelled); "
                         f"got {list(frame.columns)}.")
    if frame["source"].isna().any() or (frame["source"].str.strip() == "").any():
        raise InputError(f"{path}: every row needs a source name; row(s) "
                         f"{[int(i) + 2 for i in frame.index[frame['source'].fillna('').str.strip() == ''][:5]]} have none.")
    frame["source"] = frame["source"].str.strip()  # " web " in a hand-written file names web
    repeated = sorted(set(frame.loc[frame["source"].duplicated(), "source"]))
    if repeated:
        raise InputError(f"{path}: each source needs one row; repeated: {repeated[:5]}.")
    return frame, path


def _column_sizes(frame, column: str, path: Path) -> dict:
    import pandas as pd

    if pd.api.types.is_bool_dtype(frame[column]):
        raise InputError(f"{path}: column {column!r} holds true/false; sizes are numbers of {column}.")
    try:
        values = pd.to_numeric(frame[column], errors="coerce")
    except OverflowError:  # an integer of hundreds of digits
        values = pd.to_numeric(frame[column].astype(str), errors="coerce")  # read as text: it is infinite
    if values.isna().any():
        bad = frame.loc[values.isna(), "source"].tolist()[:5]
        raise InputError(f"{path}: column {column!r} must be numeric; bad for sources {bad}.")
    if not np.isfinite(values).all() or (values < 0).any() or not 0 < values.sum() < np.inf:
        raise InputError(f"{path}: column {column!r} must hold finite sizes >= 0, not all zero; "
                         f"got range [{values.min():g}, {values.max():g}] summing to {values.sum():g}.")
    return dict(zip(frame["source"], values.astype(float)))
