"""The language-model domain: the mixture of text sources that best serves a downstream target.

Units (each resumable, run through ``ctx.run_units``):
  tokenizer                 a BPE trained on the sources (CPU presets) or the Pythia tokenizer
  tokens/<source>           the source's documents packed into one token stream
  model/<key>               one GPT-NeoX model trained on a mixture (proxies: one source each); it
                            records its ``compute``: 6 x parameters x tokens it consumed
  score/<model>/<target>    log-probs (and choice accuracy for final models) on target examples

The engine (:mod:`mixmin_core.engine.experiment`) runs the plan (targets x budget variants x
trials); this module supplies the adapters. Proxies are trained once per source at
``final_tokens x budget / n_sources`` tokens (whole steps) and shared by every target and trial;
each trial splits every target 80/20 (fit / held out). ProxyOutputs are ``loglik`` (question +
answer; the answer-only outputs of choice targets go to ``proxy_outputs_answer/``). Search runs are
proxy-sized (RegMix: the paper's 1%-budget proxy size, or ``regmix_runs_per_source`` runs per
proxy). Final models are deduplicated by (weights, trial seed), so natural and balanced are trained
once for every target and budget, and are scored on held-out examples: generative loss, predictive
loss and accuracy. Beyond the per-target rows: the cross-task matrix (each target's MixMin model on
the other targets, variant ``cross:<target>``), scale transfer (variant ``transfer:<preset>``) and
joint multi-target mixtures (method ``mixmin_joint_<mode>``, one model evaluated on every target).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixmin_core.engine.experiment import Plan, Variant
from mixmin_core.engine.report import convergence_warning
from mixmin_core.engine.sweeps import budget_share_note, check_distinct_points
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.lm import data as lmdata
from mixmin_core.lm import scoring
from mixmin_core.lm.models import get_preset, model_vocab_size, n_params
from mixmin_core.lm.overlap import (
    document_hashes,
    shared_documents,
    source_overlap,
    warned,
)
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import (
    atomic_path,
    not_a_file,
    read_json,
    write_json,
    write_text,
)
from mixmin_core.runs.layout import Problem, budget_variant
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.solver.proxy_outputs import ProxyOutputs

log = logging.getLogger("mixmin.lm")

DEFAULT_TARGETS = [
    {"name": "piqa", "kind": "piqa", "dataset": "text/piqa_validation"},
    {"name": "arc_easy", "kind": "arc_easy", "dataset": "text/arc_easy_test"},
    {"name": "sciq", "kind": "sciq", "dataset": "text/sciq_test"},
]
#: The keys a target spec may have and their types (what target_name, target_path and load_targets
#: read; null means the default, as there).
TARGET_KEYS = {"name": str | None, "kind": str, "path": str | None, "dataset": str | None, "max_samples": int | None}
#: Mixture methods of the LM domain (the engine's; target-only and ensemble need a domain model the
#: LM domain does not define).
METHODS = ("mixmin", "natural", "balanced", "random_search", "regmix", "bo")
JOINT = "mixmin_joint_"  # method of a joint multi-target mixture: mixmin_joint_mean, mixmin_joint_worst
TRANSFER_METHODS = ("mixmin", "natural", "balanced")


# ---- inputs ------------------------------------------------------------------------------------
@dataclass
class LMData:
    """Where the sources and targets come from (see ``jobs/pipelines/lm.py`` for each field)."""

    sources_dir: str = ""
    sources: tuple = ()
    slimpajama_files: tuple = ()
    max_source_chars: int = 0
    targets: tuple = tuple(DEFAULT_TARGETS)
    max_target_samples: int = 1000


def target_name(spec: dict) -> str:
    return str(spec.get("name") or spec["kind"])


def check_target_specs(targets: list) -> None:
    """Raise ConfigError unless every target is ``{kind, path | dataset}`` with a unique name."""
    if not targets:
        raise ConfigError("targets: must be a non-empty list of {name, kind, path | dataset}; got [].")
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or t.get("kind") not in lmdata.TARGET_KINDS or not (t.get("path") or t.get("dataset")):
            raise ConfigError(f"targets[{i}]: must be a mapping with kind in {lmdata.TARGET_KINDS} and a "
                              f"'path' or registry 'dataset'; got {t!r}.")
        if t.get("path") and t.get("dataset"):  # the path won, silently
            raise ConfigError(f"targets[{i}]: give a 'path' or a registry 'dataset', not both; got {t!r}.")
        limit = t.get("max_samples")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"targets[{i}].max_samples: must be a whole number >= 1 (or left out for "
                              f"max_target_samples); got {limit!r}.")  # 0 silently meant the default, -5 failed late
    names = [target_name(t) for t in targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"targets: need unique names; got {names}.")
    layout.check_target_names(names, "targets")


def target_path(spec: dict) -> Path:
    from mixmin_core.runs.datasets import resolve

    if spec.get("path"):
        p = Path(spec["path"]).expanduser()
        if not p.is_file():
            raise InputError(f"target {target_name(spec)!r}: file {p} {not_a_file(p)}; expected a .jsonl or .jsonl.gz file.")
        return p
    return resolve(spec["dataset"])


def load_targets(data: LMData) -> dict[str, list]:
    """``{target: examples}`` (at most ``max_samples`` / ``max_target_samples`` each)."""
    out = {}
    for spec in data.targets:
        limit = int(spec.get("max_samples") or data.max_target_samples)
        examples = lmdata.load_target(spec["kind"], target_path(spec), limit=limit)
        if len(examples) < 5:
            raise InputError(f"target {target_name(spec)!r} ({target_path(spec)}): {len(examples)} usable "
                             "examples; an 80/20 split needs at least 5.")
        out[target_name(spec)] = examples
    return out


def source_files(data: LMData) -> dict[str, Path]:
    """``{source: file}`` of the sources folder ({} with SlimPajama shards, grouped at run time)."""
    if data.slimpajama_files:
        return {}
    folder = Path(data.sources_dir).expanduser() if data.sources_dir else None
    if folder is None:
        from mixmin_core.runs.datasets import data_dir

        if data_dir() is None:
            raise InputError("sources_dir is empty and MIXMIN_DATA_DIR is unset; set sources_dir to a folder of "
                             "<source>.jsonl(.gz) files or MIXMIN_DATA_DIR to a folder holding text/source/.")
        folder = data_dir() / "text" / "source"
    return lmdata.find_source_files(folder, names=list(data.sources) or None)


def validate_inputs(data: LMData, *, tokenizer: str, tokenizer_path: str = "") -> int:
    """Read every input once (sources, targets, tokenizer) so bad input fails before the run exists; return
    the number of sources."""
    if data.slimpajama_files:
        groups = lmdata.read_slimpajama(list(data.slimpajama_files), max_docs_per_source=1)
        missing = [n for n in data.sources if n not in groups]
        if missing:  # `sources` picks among the shards' sets as among a folder's files (it was ignored)
            raise InputError(f"sources {missing} are no source set of slimpajama_files; they hold {sorted(groups)}.")
        groups = {n: groups[n] for n in data.sources} if data.sources else groups
        if len(groups) < 2:
            raise InputError(f"slimpajama_files {list(data.slimpajama_files)}: {len(groups)} source set(s) found"
                             f"{' in sources' if data.sources else ''}; need at least two.")
    files = {} if data.slimpajama_files else source_files(data)
    for path in files.values():
        for _ in lmdata.iter_texts(path):  # every record checked, none kept
            pass
    load_targets(data)
    if tokenizer == "pythia" or tokenizer_path:
        from mixmin_core.lm.tokenizer import load_tokenizer, pythia_tokenizer_path

        load_tokenizer(pythia_tokenizer_path(tokenizer_path or None))
    return len(groups) if data.slimpajama_files else len(files)


def whole_steps(tokens: float, preset: str) -> int:
    """``tokens`` rounded to whole training steps of ``preset`` (at least one): what a model of that size
    trains on, so planned and measured compute count the same steps (small budgets round up to one)."""
    p = get_preset(preset)
    return max(1, round(tokens / (p.batch_size * p.context))) * p.batch_size * p.context


def check_proxy_budgets(budgets, *, final_tokens: int, preset: str, n_sources: int) -> None:
    """A compute sweep whose budgets round to the same proxies (whole steps) would draw one point as many:
    refuse it, naming the budgets and what would make them differ."""
    check_distinct_points(
        "proxy_budgets", {b: whole_steps(final_tokens * b / n_sources, preset) for b in budgets},
        lambda tokens: (f"proxies ({tokens:,} training tokens each, whole steps of the {preset!r} preset, for "
                        f"{n_sources} sources at final_tokens={final_tokens:,})"),
        "Raise final_tokens, or keep one of them.")


#: Fewer examples than this in a target's fit or held-out split get a warning (a 1-example test split scores 0 or 1).
FEW_SPLIT_EXAMPLES = 10


def small_split_note(target: str, n: int, fit_fraction: float) -> str | None:
    """The log line where ``target``'s ``n`` examples split (:func:`lmdata.split_indices`) into a fit or held-out part
    of fewer than :data:`FEW_SPLIT_EXAMPLES`; else None."""
    n_fit = len(lmdata.split_indices(n, seed=0, trial=0, fit_fraction=fit_fraction)[0])  # the size: any seed
    if min(n_fit, n - n_fit) >= FEW_SPLIT_EXAMPLES:
        return None
    return (f"target {target!r}: its {n} examples split into {n_fit} to fit MixMin on and {n - n_fit} held out "
            f"(fit_fraction {fit_fraction:g}), so " + ((f"its held-out scores rest on {n - n_fit} example(s)"
            + (" (an accuracy of 0 or 1 per trial)" if n - n_fit == 1 else "") + " and gaps between methods are mostly "
            "noise") if n - n_fit < FEW_SPLIT_EXAMPLES else "its mixture is fitted on those few")
            + "; raise max_target_samples (or the target's max_samples)" + _fraction_advice(n_fit, n - n_fit, fit_fraction))


def _fraction_advice(n_fit: int, n_held: int, fit_fraction: float) -> str:
    """The fit_fraction that would help a small split, where one would (never the value already set)."""
    if n_held < FEW_SPLIT_EXAMPLES and n_held <= n_fit and fit_fraction > 0.5:
        return ", or lower fit_fraction to hold out more"
    if n_fit < FEW_SPLIT_EXAMPLES and n_fit < n_held and fit_fraction < 0.8:
        return ", or raise fit_fraction (up to 0.8) to fit on more"
    return ""


def proxy_budget_note(budget: float, *, final_tokens: int, preset: str, n_sources: int) -> str | None:
    """The log line where ``budget``'s proxies, rounded to whole steps, cost far from their label (proxy_budgets
    [0.01] spent 87% of a final model); else None. Proxies and final models share ``preset``: tokens are compute."""
    share = whole_steps(final_tokens * budget / n_sources, preset) * n_sources / final_tokens
    return budget_share_note(budget, share, f"whole training steps of the {preset!r} preset, at least one per source")


# ---- unit functions (top level: they run in worker processes) ------------------------------------
def capped_texts(path: str, max_chars: int) -> list[str]:
    """The source's first documents up to ``max_chars`` characters in all (0: every document), the last
    one cut at the cap; the rest of the file is not read."""
    texts, total = [], 0
    for text in lmdata.iter_texts(path):
        if max_chars and total + len(text) > max_chars:
            texts.append(text[: max_chars - total])
            break
        texts.append(text)
        total += len(text)
    return [t for t in texts if t]


def corpus_counts(path: str) -> tuple[int, int]:
    """``(documents, characters)`` of a whole source, read one document at a time."""
    documents = characters = 0
    for text in lmdata.iter_texts(path):
        documents += 1
        characters += len(text)
    return documents, characters


def build_tokenizer(*, kind: str, source_files: dict, vocab_size: int, train_chars: int,
                    pythia_path: str, output: str) -> dict:
    """Write the run's tokenizer.json: a BPE trained on the sources, or a copy of Pythia's."""
    from mixmin_core.lm.tokenizer import load_tokenizer, train_bpe

    if kind == "pythia":
        with atomic_path(output) as tmp:
            tmp.write_bytes(Path(pythia_path).read_bytes())
    else:
        def texts():
            for path in source_files.values():
                yield from (t[:20_000] for t in capped_texts(path, train_chars))

        train_bpe(texts(), vocab_size=vocab_size, output=output)
    return {"vocab_size": load_tokenizer(output).get_vocab_size(), "compute": 0.0}


def tokenize_source(*, path: str, tokenizer: str, max_chars: int, output: str) -> dict:
    """Pack one source's documents into a token stream (``.npy``); record its tokens and documents and,
    when only the first ``max_chars`` characters were read, the whole source's documents and characters
    (for its size: see :func:`source_sizes`)."""
    from mixmin_core.lm.tokenizer import load_tokenizer, token_stream

    texts = capped_texts(path, max_chars)
    stream = token_stream(load_tokenizer(tokenizer), texts)
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, stream)
    info = {"tokens": int(stream.size), "documents": len(texts), "compute": 0.0}
    if max_chars:
        corpus_documents, corpus_chars = corpus_counts(path)
        info.update(sample_chars=sum(map(len, texts)), corpus_documents=corpus_documents, corpus_chars=corpus_chars)
    return info


def source_sizes(names: list, infos: list[dict]):
    """sources.csv of a language-model run: ``tokens`` and ``documents`` of what the run read and, when it
    read a sample (``max_source_chars``), the whole corpus's ``corpus_documents`` and ``corpus_tokens``
    (estimated from the sample's tokens per character). ``natural_weight`` is the corpus's token share,
    so "natural" means the data's own proportions, not the sample's. Runs made before these were
    recorded (their tokenize units' infos lack them) get ``tokens`` only."""
    import pandas as pd

    tokens = np.array([i["tokens"] for i in infos], dtype=np.float64)
    frame = pd.DataFrame({"source": names, "title": names, "category": "text", "tokens": tokens.astype(np.int64)})
    if all("documents" in i for i in infos):
        frame["documents"] = [int(i["documents"]) for i in infos]
    natural = tokens
    if all("corpus_chars" in i for i in infos):
        ratio = np.array([i["tokens"] / max(i["sample_chars"], 1) for i in infos])  # tokens per character
        natural = np.round(ratio * [i["corpus_chars"] for i in infos])
        frame["corpus_documents"] = [int(i["corpus_documents"]) for i in infos]
        frame["corpus_tokens"] = natural.astype(np.int64)
    frame["natural_weight"] = natural / natural.sum()
    return frame


def train_model(*, preset: str, vocab_size: int, token_files: list, weights: list, n_tokens: int, seed: int,
                device: str, n_threads: int, output: str) -> dict:
    """Train one model on a mixture of token streams; save it; return what it spent (``compute`` =
    ``flops`` = 6 x parameters x tokens consumed)."""
    from mixmin_core.lm.training import save_model, train_lm

    streams = [np.load(f, mmap_mode="r") for f in token_files]
    result = train_lm(preset=get_preset(preset), vocab_size=vocab_size, streams=streams, weights=weights,
                      n_tokens=n_tokens, seed=seed, device=device, n_threads=n_threads)
    save_model(result.model, output, meta={"preset": preset, "vocab_size": vocab_size, "weights": weights, **result.info})
    return {**result.info, "compute": float(result.info["flops"])}


def score_model(*, model: str, tokenizer: str, target: dict, limit: int, indices: list | None, choices: bool,
                batch_size: int, device: str, n_threads: int, output: str) -> dict:
    """Score target examples (all, or ``indices``) under a saved model; write an ``.npz``."""
    import torch

    from mixmin_core.lm.scoring import choice_accuracy, score_examples
    from mixmin_core.lm.tokenizer import load_tokenizer
    from mixmin_core.lm.training import load_model, pick_device

    torch.set_num_threads(n_threads)
    device = pick_device(device)
    net, meta = load_model(model, device=device)
    tok = load_tokenizer(tokenizer)
    pool = lmdata.load_target(target["kind"], target_path(target), limit=limit)
    idx = np.arange(len(pool)) if indices is None else np.asarray(indices, dtype=np.int64)
    examples = [pool[i] for i in idx]
    context = get_preset(meta["preset"]).context
    s = score_examples(net, tok, examples, context=context, batch_size=batch_size, device=device)
    arrays = {"indices": idx, "prefix_logprob": s.prefix_logprob, "n_prefix": s.n_prefix,
              "cont_logprob": s.cont_logprob, "n_cont": s.n_cont}
    if choices:
        arrays.update(choice_accuracy(net, tok, examples, context=context, batch_size=batch_size, device=device))
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return {"rows": int(idx.size), "compute": 0.0}


# ---- scores to outputs and metrics -------------------------------------------------------------
def seq_metrics(scores: dict, positions: np.ndarray, is_doc: bool) -> dict[str, float]:
    """Held-out metrics at ``positions`` of a score file's rows: per-token NLL of the whole sequence
    (generative), of the answer given the question (predictive), and choice accuracy."""
    # means in float64: a float32 mean of the same accuracies differs in its last bits between trials, which a
    # t-test then reads as a tiny, "significant" spread
    total = scores["prefix_logprob"][positions].astype(np.float64) + scores["cont_logprob"][positions]
    n_tok = scores["n_prefix"][positions] + scores["n_cont"][positions]
    out = {"generative_loss": float(np.mean(-total / n_tok))}
    if not is_doc:
        cont = scores["cont_logprob"][positions].astype(np.float64)
        out["predictive_loss"] = float(np.mean(-cont / scores["n_cont"][positions]))
        if "acc_norm" in scores:
            out["accuracy"] = float(np.nanmean(scores["acc_norm"][positions], dtype=np.float64))
            out["accuracy_raw"] = float(np.nanmean(scores["acc"][positions], dtype=np.float64))
    return out


def loglik_outputs(scores: list[dict], fit: np.ndarray, names, natural, examples, meta,
                   answer_only: bool = False) -> ProxyOutputs:
    """``loglik`` outputs on the fit split: total log-prob of question + answer (or of the answer
    given the question when ``answer_only``) under each proxy, with token counts; ``natural``: the
    sources' natural weights (their corpus token shares)."""
    if answer_only:
        values = np.stack([s["cont_logprob"][fit] for s in scores])
        n_tok = scores[0]["n_cont"][fit]
    else:
        values = np.stack([(s["prefix_logprob"] + s["cont_logprob"])[fit] for s in scores])
        n_tok = (scores[0]["n_prefix"] + scores[0]["n_cont"])[fit]
    return ProxyOutputs(np.minimum(values, 0.0), "loglik", source_names=names, token_counts=n_tok,
                        natural_weights=natural, sample_ids=[examples[i].sample_id for i in fit], meta=meta)


def cross_matrix(rows: list[dict], targets: list, main: str) -> dict:
    """Mean held-out generative loss of the MixMin model found for task A (rows) on task B (columns)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    gen = frame[frame.metric == "generative_loss"]
    mat = []
    for a in targets:
        row = []
        for b in targets:
            sel = gen[(gen.method == "mixmin") & (gen.target == b) & (gen.variant == (main if a == b else f"cross:{a}"))]
            row.append(float(sel.value.mean()) if len(sel) else None)
        mat.append(row)
    ref = {b: {m: float(gen[(gen.method == m) & (gen.target == b) & (gen.variant == main)].value.mean())
               for m in ("natural", "balanced") if len(gen[(gen.method == m) & (gen.target == b)])} for b in targets}
    return {"metric": "generative_loss", "weights_from": list(targets), "evaluated_on": list(targets),
            "variant": main, "mixmin": mat, "baselines": ref}


def _gpus(device: str) -> float:
    from mixmin_core.lm.training import pick_device

    return 1.0 if pick_device(device) == "cuda" else 0.0


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


# ---- the domain --------------------------------------------------------------------------------
@dataclass
class LMModels:
    """Model, budget and evaluation settings of the LM domain (see ``jobs/pipelines/lm.py`` for each)."""

    preset: str = "tiny"
    tokenizer: str = "bpe"  # resolved: bpe | pythia
    tokenizer_path: str = ""
    bpe_vocab_size: int = 0
    bpe_train_chars: int = 1_000_000
    final_tokens: int = 600_000
    proxy_budget: float = 1.0
    proxy_budgets: tuple = ()
    regmix_runs_per_source: int = 0
    fit_fraction: float = 0.8
    seed: int = 0
    step_size: float = 1.0
    max_iter: int = 100
    cross_task: bool = True
    transfer_preset: str = ""
    transfer_tokens: int = 0
    joint_modes: tuple = ()
    joint_normalise: bool = False
    joint_max_iter: int = 0  # 0: max_iter
    device: str = "auto"
    eval_batch_size: int = 32
    torch_threads: int = 0


def make_variants(names: list, proxy_budget: float, proxy_budgets) -> list[Variant]:
    """One unnamed variant at ``proxy_budget``, or one ``budget-<b>`` per budget of a compute sweep."""
    if not proxy_budgets:
        return [Variant("", tuple(names), float(proxy_budget))]
    return [Variant(budget_variant(b), tuple(names), float(b)) for b in sorted(proxy_budgets)]


#: A proxy that repeats its source more often than this many times is said (export's default repeat limit).
PROXY_REPEATS_SAID = 4.0


class LMDomain:
    headline_metric = "generative_loss"
    lower_is_better = True
    regmix_max_usage = 15.0  # RegMix: a source's tokens are repeated at most 15 times

    def __init__(self, ctx: RunContext, data: LMData, models: LMModels, *, trials: int):
        self.ctx, self.m = ctx, models
        self.specs = {target_name(t): dict(t) for t in data.targets}
        self.examples = load_targets(data)
        self.max_samples = {n: int(s.get("max_samples") or data.max_target_samples) for n, s in self.specs.items()}
        self._prepare(data)
        self._find_overlap(data.max_source_chars)
        self.plan = Plan(list(self.specs), make_variants(self.names, models.proxy_budget, models.proxy_budgets), trials)
        self._warn_thin_sources()
        for v in self.plan.variants:  # a budget rounded up to whole steps costs more than its label
            note = proxy_budget_note(v.budget, final_tokens=models.final_tokens, preset=models.preset,
                                     n_sources=len(self.names))
            if note:
                log.warning("%s", note)
        self.splits = {(t, k): lmdata.split_indices(len(ex), seed=models.seed, trial=k, fit_fraction=models.fit_fraction)
                       for t, ex in self.examples.items() for k in range(trials)}
        for t, ex in self.examples.items():
            note = small_split_note(t, len(ex), models.fit_fraction)
            if note:
                log.warning("%s", note)
        self.n_threads = int(models.torch_threads) or max(1, (os.cpu_count() or 1) // max(1, int(ctx.n_workers or 1)))
        self._scores: dict[str, dict] = {}  # score unit id -> arrays
        self._outputs: dict[Problem, ProxyOutputs] = {}  # fit-split outputs, for the joint mixtures
        self._pending: list[Unit] = []  # search runs trained but not yet scored
        self._per_token: dict[str, float] = {}
        self.num_gpus = 0.0 if models.device == "cpu" else _gpus(models.device)  # what a model unit asks Ray for

    # ---- tokenizer and token streams --------------------------------------------------------------
    def _prepare(self, data: LMData) -> None:
        files = source_files(data)
        if data.slimpajama_files:
            folder = self.ctx.path("sources", "x").parent
            if not (folder / ".complete").exists():  # each file is written atomically; the marker closes the set
                lmdata.write_slimpajama_folder(lmdata.read_slimpajama(list(data.slimpajama_files)), folder)
                write_text(folder / ".complete", "")
            files = lmdata.find_source_files(folder, names=list(data.sources) or None)
        files = self.source_paths = {n: str(p) for n, p in files.items()}
        preset, m = get_preset(self.m.preset), self.m
        pythia = ""
        if m.tokenizer == "pythia":
            from mixmin_core.lm.tokenizer import pythia_tokenizer_path

            pythia = str(pythia_tokenizer_path(m.tokenizer_path or None))
        tok_path = self.ctx.path("tokenizer", "tokenizer.json")
        self.ctx.run_units([Unit("tokenizer", build_tokenizer, {
            "kind": m.tokenizer, "source_files": files, "vocab_size": int(m.bpe_vocab_size or preset.bpe_vocab_size),
            "train_chars": int(m.bpe_train_chars), "pythia_path": pythia, "output": str(tok_path)},
            output=tok_path, kind="tokenizer")], "tokenizer")
        units = [Unit(f"tokens/{n}", tokenize_source, {
            "path": p, "tokenizer": str(tok_path), "max_chars": int(data.max_source_chars),
            "output": str(self.ctx.path("tokens", f"{n}.npy"))}, output=self.ctx.path("tokens", f"{n}.npy"), kind="tokens")
            for n, p in files.items()]
        infos = self.ctx.run_units(units, "tokenize sources")
        from mixmin_core.lm.tokenizer import load_tokenizer

        self.names = list(files)
        self.token_files = [str(u.output) for u in units]
        self.vocab = model_vocab_size(preset, load_tokenizer(tok_path).get_vocab_size())
        self.tokenizer = str(tok_path)
        sizes = source_sizes(self.names, [{**infos[u.unit_id], "tokens": np.load(u.output, mmap_mode="r").size}
                                          for u in units])
        self.natural = sizes["natural_weight"].to_numpy()
        self.source_tokens = dict(zip(self.names, sizes["tokens"].astype(int)))
        layout.write_sources(self.ctx.run_dir, sizes)

    def _warn_thin_sources(self) -> None:
        """Say which sources a proxy repeats more than :data:`PROXY_REPEATS_SAID` times: a proxy that memorised a
        few sentences scores the target like no model trained on that kind of text would (a one-line file was
        repeated 230 times, unsaid, and its weight then hung on how far MixMin had converged)."""
        for variant in self.plan.variants:
            need = self.proxy_tokens(variant.name)
            thin = {n: need / t for n, t in self.source_tokens.items() if t and need / t > PROXY_REPEATS_SAID}
            if thin:
                where = f" ({variant.name})" if variant.name else ""
                log.warning("proxies%s train on %s tokens each, which repeats %s; their proxies learn those few "
                            "documents by heart, so read their weights with care: give them more text, or leave them "
                            "out", where, f"{need:,}", ", ".join(f"{n!r} {r:.1f} times ({self.source_tokens[n]:,} "
                                                                 "tokens)" for n, r in thin.items()))

    def _find_overlap(self, max_chars: int) -> None:
        """Which targets' examples the sources' text holds, and which sources hold the same documents
        (:mod:`mixmin_core.lm.overlap`): said in the log and recorded in ``dataset.json`` (the Compare page shows
        it)."""
        targets = {t: [e.text for e in ex] for t, ex in self.examples.items()}
        units = {n: Unit(f"overlap/{n}", source_overlap, {
            "path": p, "max_chars": int(max_chars), "targets": targets, "output": str(self.ctx.path("overlap", f"{n}.json"))},
            output=self.ctx.path("overlap", f"{n}.json"), kind="overlap") for n, p in self.source_paths.items()}
        documents = {n: Unit(f"documents/{n}", document_hashes, {
            "path": p, "max_chars": int(max_chars), "output": str(self.ctx.path("documents", f"{n}.npy"))},
            output=self.ctx.path("documents", f"{n}.npy"), kind="overlap") for n, p in self.source_paths.items()}
        self.ctx.run_units([*units.values(), *documents.values()], "target examples and shared documents in the sources")
        found = {n: read_json(u.output) for n, u in units.items()}
        shares, by_source = {}, {}
        for t, ex in self.examples.items():
            by_source[t] = {n: len(f[t]) for n, f in found.items() if f.get(t)}
            held = set().union(*(f.get(t, []) for f in found.values()))
            shares[t] = len(held) / len(ex)
            if held:
                log.warning("target %r: %d of its %d examples appear word for word in the sources' text (%s); a "
                            "method that weights those sources is scored partly on text its final model trained on",
                            t, len(held), len(ex), ", ".join(f"{n}: {c}" for n, c in by_source[t].items()))
        shared = shared_documents({n: np.load(u.output) for n, u in documents.items()})
        for p in shared:
            if warned(p):
                (a, b), (n_a, n_b) = p["sources"], p["documents"]
                log.warning("sources %r and %r hold %d of the same documents (%d of %r's, %d of %r's): their proxies "
                            "are near-identical, so MixMin can put their weight on either (read their weights "
                            "together), and a mixture of both repeats those documents", a, b, p["shared"], n_a, a, n_b, b)
        write_json(self.ctx.path("dataset.json"), {"target_examples_in_sources": shares,
                                                   "target_examples_by_source": by_source,
                                                   "documents_shared_by_sources": shared})

    # ---- units ------------------------------------------------------------------------------------
    def whole_steps(self, tokens: float) -> int:
        return whole_steps(tokens, self.m.preset)

    def compute_per_token(self, preset: str) -> float:
        """6 x parameters: a model's training FLOPs per token."""
        if preset not in self._per_token:
            self._per_token[preset] = 6.0 * n_params(get_preset(preset), self.vocab)
        return self._per_token[preset]

    def proxy_tokens(self, variant: str) -> int:
        return self.whole_steps(self.m.final_tokens * self.plan.variant(variant).budget / len(self.names))

    def model_unit(self, *, preset: str, weights, n_tokens: int, seed: int, kind: str) -> Unit:
        """The unit training ``preset`` on mixture ``weights``: its id depends only on (preset, weights,
        tokens, seed), so every problem that needs the same model shares one."""
        w = [round(float(x), 6) for x in np.asarray(weights, dtype=np.float64)]
        key = f"{preset}-{_digest([preset, w, int(n_tokens), int(seed), self.vocab])}"
        out = self.ctx.path("models", f"{key}.pt")
        return Unit(f"model/{key}", train_model, {
            "preset": preset, "vocab_size": self.vocab, "token_files": self.token_files, "weights": w,
            "n_tokens": int(n_tokens), "seed": int(seed), "device": self.m.device, "n_threads": self.n_threads,
            "output": str(out)}, output=out, kind=kind, num_gpus=self.num_gpus)

    def score_unit(self, model: Unit, target: str, indices=None, choices: bool = False) -> Unit:
        idx = None if indices is None else sorted(int(i) for i in indices)
        tag = (f"{layout.safe_name(target)}-{'all' if idx is None else _digest(idx)}{'-mc' if choices else ''}"
               f"-{scoring.SCHEME}")
        model_key = model.unit_id.split("/", 1)[1]
        out = self.ctx.path("scores", model_key, f"{tag}.npz")
        return Unit(f"score/{model_key}/{tag}", score_model, {
            "model": str(model.output), "tokenizer": self.tokenizer, "target": self.specs[target],
            "limit": self.max_samples[target], "indices": idx, "choices": choices, "batch_size": self.m.eval_batch_size,
            "device": self.m.device, "n_threads": self.n_threads, "output": str(out)},
            output=out, kind="score", num_gpus=self.num_gpus)

    def _run(self, units: list[Unit], desc: str) -> dict[str, dict]:
        return self.ctx.run_units(list({u.unit_id: u for u in units}.values()), desc)

    def _score(self, units: list[Unit], desc: str) -> list[dict]:
        """Arrays of each score unit (running the missing ones together)."""
        todo = [u for u in units if u.unit_id not in self._scores]
        if todo:
            self._run(todo, desc)
            for u in todo:
                with np.load(u.output) as z:
                    self._scores[u.unit_id] = {k: z[k] for k in z.files}
        return [self._scores[u.unit_id] for u in units]

    # ---- adapters ---------------------------------------------------------------------------------
    def proxy_units(self, problem: Problem) -> dict[str, Unit]:
        tokens, eye = self.proxy_tokens(problem.variant), np.eye(len(self.names))
        return {s: self.model_unit(preset=self.m.preset, weights=eye[i], n_tokens=tokens, seed=self.m.seed, kind="proxy")
                for i, s in enumerate(self.names)}

    def proxy_outputs(self, problem: Problem, units: dict) -> ProxyOutputs:
        names = list(units)
        tag = f" ({problem.variant})" if problem.variant else ""
        batch = {(t, s): self.score_unit(units[s], t) for t in self.specs for s in names}  # every target at once
        self._score(list(batch.values()), "score proxies" + tag)
        scores = self._score([batch[problem.target, s] for s in names], "score proxies" + tag)
        fit = self.splits[problem.target, problem.trial][0]
        infos = [self.ctx.store.unit_info(self.ctx.run_id, u.unit_id) or {} for u in units.values()]
        meta = {"target": problem.target, "trial": problem.trial, "variant": problem.variant, "split": "fit",
                "preset": self.m.preset, "proxy_tokens": self.proxy_tokens(problem.variant),
                "proxy_compute": float(sum(i.get("compute", np.nan) for i in infos)),
                "proxy_budget": self.plan.variant(problem.variant).budget}
        examples = self.examples[problem.target]
        outputs = loglik_outputs(scores, fit, names, self.natural, examples, meta)
        if examples[0].is_choice:  # answer-only log-probs given the question (the predictive objective)
            loglik_outputs(scores, fit, names, self.natural, examples, {**meta, "objective": "answer|question"},
                           answer_only=True).save(layout.answer_outputs_path(self.ctx.run_dir, problem))
        self._outputs[problem] = outputs
        return outputs

    def search_tokens(self, problem: Problem, method: str) -> int:
        """Tokens of one search run: a proxy's; RegMix's the paper's (a proxy of the 1% budget) or a
        proxy's split into ``regmix_runs_per_source`` runs."""
        if method != "regmix":
            return self.proxy_tokens(problem.variant)
        if self.m.regmix_runs_per_source:
            return self.whole_steps(self.proxy_tokens(problem.variant) / self.m.regmix_runs_per_source)
        return self.whole_steps(self.m.final_tokens * 0.01 / len(self.names))

    def search_cost(self, problem: Problem, method: str) -> float:
        return self.compute_per_token(self.m.preset) * self.search_tokens(problem, method)

    def search_run(self, problem: Problem, method: str, weights: np.ndarray) -> Unit:
        w = np.asarray(weights, dtype=np.float64)
        unit = self.model_unit(preset=self.m.preset, weights=w / w.sum(), n_tokens=self.search_tokens(problem, method),
                               seed=self.m.seed, kind=method)
        self._pending.append(unit)
        return unit

    def search_loss(self, problem: Problem, unit: Unit) -> float:
        """Per-token NLL of question + answer on the target's fit split (the runs of one batch are scored together)."""
        batch = [self.score_unit(u, problem.target) for u in {u.unit_id: u for u in self._pending + [unit]}.values()]
        self._pending.clear()
        self._score(batch, f"score search runs ({problem.target})")
        (s,) = self._score([self.score_unit(unit, problem.target)], "score search runs")
        return seq_metrics(s, self.splits[problem.target, problem.trial][0], True)["generative_loss"]

    def final_rows(self, mixtures: dict) -> list[dict]:
        """Final models (one per distinct weights and trial seed) scored on held-out examples: the
        mixtures' own targets, plus the cross-task, transfer and joint evaluations."""
        mixtures = {**mixtures, **self._joint_mixtures(mixtures)}
        main, m = self.plan.main_variant, self.m
        evals = []  # (problem, method, reported variant, model unit, evaluated targets)
        for (p, method), r in mixtures.items():
            unit = self._final_unit(m.preset, r.weights, p.trial, m.final_tokens)
            evals.append((p, method, p.variant, unit, [p.target]))  # a joint mixture is filed under every target
            if m.cross_task and method == "mixmin" and p.variant == main and len(self.specs) > 1:
                evals.append((p, method, f"cross:{p.target}", unit, [t for t in self.specs if t != p.target]))
            if m.transfer_preset and method in TRANSFER_METHODS:
                evals.append((p, method, f"transfer:{m.transfer_preset}",
                              self._final_unit(m.transfer_preset, r.weights, p.trial, m.transfer_tokens or m.final_tokens),
                              [p.target]))
        info = self._run([e[3] for e in evals], "final models")
        needed: dict[tuple, set] = {}  # (model unit id, target) -> held-out indices
        for p, _, _, unit, on in evals:
            for b in on:
                needed.setdefault((unit.unit_id, b), set()).update(int(i) for i in self.splits[b, p.trial][1])
        units = {e[3].unit_id: e[3] for e in evals}
        scores = {key: self.score_unit(units[key[0]], key[1], idx, choices=True) for key, idx in needed.items()}
        self._score(list(scores.values()), "evaluate")
        rows = []
        for p, method, variant, unit, on in evals:
            r = mixtures[p, method]
            for b in on:
                s = self._scores[scores[unit.unit_id, b].unit_id]
                lookup = {int(v): k for k, v in enumerate(s["indices"])}
                positions = np.array([lookup[int(i)] for i in self.splits[b, p.trial][1]])
                for metric, value in seq_metrics(s, positions, not self.examples[b][0].is_choice).items():
                    rows.append({"trial": p.trial, "target": b, "variant": variant, "method": method, "metric": metric,
                                 "value": value, "proxy_compute": float(r.meta.get("compute", 0.0)),
                                 "final_compute": float(info[unit.unit_id]["compute"]), "model": unit.unit_id,
                                 "preset": unit.kwargs["preset"], "proxy_budget": self.plan.variant(p.variant).budget,
                                 "test_examples": len(positions)})  # a score over a handful says little
        if m.cross_task and len(self.specs) > 1:
            write_json(layout.cross_task_path(self.ctx.run_dir), cross_matrix(rows, list(self.specs), main))
        return rows

    def _final_unit(self, preset: str, weights, trial: int, n_tokens: int) -> Unit:
        return self.model_unit(preset=preset, weights=weights, n_tokens=n_tokens, seed=self.m.seed * 1000 + 100 + trial,
                               kind="final")

    def _joint_mixtures(self, mixtures: dict) -> dict:
        """Per trial, variant and mode: one mixture for every target (``mixmin_multi`` over the targets'
        fit-split outputs), filed under each target's problem; it used MixMin's proxies."""
        from mixmin_core.solver.multi_target import mixmin_multi

        out = {}
        for k in range(self.plan.trials):
            for v in self.plan.variants:
                problems = [Problem(t, k, v.name) for t in self.plan.targets]
                for mode in self.m.joint_modes:
                    iters = self.m.joint_max_iter or self.m.max_iter
                    r = mixmin_multi({p.target: self._outputs[p] for p in problems}, mode=mode,
                                     normalise=self.m.joint_normalise, step_size=self.m.step_size, max_iter=iters)
                    unconverged = convergence_warning(r, max_iter_field="joint_max_iter")  # as MixMin's own
                    if unconverged:
                        log.warning("trial %d%s: the joint (%s) mixture %s", k, f" {v.name}" if v.name else "",
                                    mode, unconverged)
                    r = dataclasses.replace(r, method=JOINT + mode, meta={
                        **r.meta, "compute": float(mixtures[problems[0], "mixmin"].meta["compute"])})
                    for p in problems:
                        write_json(layout.mixture_path(self.ctx.run_dir, p, JOINT + mode), r.to_dict())
                        out[p, JOINT + mode] = r
        return out
