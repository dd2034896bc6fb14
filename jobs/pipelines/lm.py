"""The language-model pipeline: the mixture of text sources that best serves a downstream target.

Units (each resumable, run through ``ctx.run_units``):
  tokenizer                 a BPE trained on the sources (CPU presets) or the Pythia tokenizer
  tokens/<source>           the source's documents packed into one token stream
  model/<key>               one GPT-NeoX model trained on a mixture (proxies: one source each)
  score/<model>/<target>    log-probs (and choice accuracy for final models) on target examples
Then per target and trial (a seeded 80/20 split): ProxyOutputs (``loglik``) on the fit 80%,
MixMin / natural / balanced (+ random search, RegMix) weights, a final model per distinct mixture
(natural and balanced are shared by all targets), and held-out generative loss, predictive loss
and accuracy, a cross-task matrix and optionally a scale-transfer comparison.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixmin_core import ProxyOutputs, balanced, mixmin, natural, summarize
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.lm import data as lmdata
from mixmin_core.lm.models import PRESETS, TOKENIZERS, get_preset
from mixmin_core.runs.fileio import atomic_path, write_json, write_text
from mixmin_core.runs.layout import (
    Problem,
    budget_variant,
    mixture_path,
    outputs_path,
    sources_path,
)
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.solver.results import mean_over_targets

log = logging.getLogger("mixmin.lm")

METHODS = ("mixmin", "natural", "balanced", "random_search", "regmix")
SEARCH_METHODS = ("random_search", "regmix")
DEFAULT_TARGETS = [
    {"name": "piqa", "kind": "piqa", "dataset": "text/piqa_validation"},
    {"name": "arc_easy", "kind": "arc_easy", "dataset": "text/arc_easy_test"},
    {"name": "sciq", "kind": "sciq", "dataset": "text/sciq_test"},
]


@dataclass
class LMConfig:
    sources_dir: str = ""  # folder of <source>.jsonl(.gz) with a 'text' field; "" = $MIXMIN_DATA_DIR/text/source
    sources: list = field(default_factory=list)  # subset of source names; empty = every file in the folder
    slimpajama_files: list = field(default_factory=list)  # SlimPajama shards (text + meta.redpajama_set_name), used instead of sources_dir
    max_source_chars: int = 0  # characters read per source (0 = all); natural weights = tokens actually used
    targets: list = field(default_factory=lambda: [dict(t) for t in DEFAULT_TARGETS])  # {name, kind, path | dataset, max_samples}
    max_target_samples: int = 1000  # examples per target (the pool that is split 80/20 per trial)
    preset: str = "tiny"  # model size of proxies and final models: tiny | small | pythia-160m | pythia-410m
    tokenizer: str = "auto"  # auto (the preset's) | bpe (trained on the sources) | pythia
    tokenizer_path: str = ""  # Pythia tokenizer.json; "" = registry (MIXMIN_DATA_DIR copy, cache or download)
    bpe_vocab_size: int = 0  # 0 = the preset's (4096)
    bpe_train_chars: int = 1_000_000  # characters per source the BPE is trained on
    final_tokens: int = 600_000  # training tokens of each final model
    proxy_budget: float = 1.0  # all proxies together, as a fraction of one final run (paper: 0.01, 0.05, 0.1, 1.0)
    # compute sweep (paper, Figure 3): one variant "budget-<b>" per budget, replacing proxy_budget;
    # natural / balanced final models are shared by all budgets, the cross-task matrix uses the largest
    proxy_budgets: list = field(default_factory=list)
    methods: list = field(default_factory=lambda: ["mixmin", "natural", "balanced"])
    regmix_runs_per_source: int = 0  # RegMix splits MixMin's proxy compute into this many runs per source; 0 = the paper's (runs of 1%-budget proxy size: 700 x proxy_budget runs)
    # auto: "faithful" with >= 40 swarm runs, else "mixmin-paper" (faithful LightGBM cannot split fewer
    # than 2 x min_data_in_leaf = 40 runs and predicts a constant)
    regmix_preset: str = "auto"
    trials: int = 3
    fit_fraction: float = 0.8
    seed: int = 0
    step_size: float = 1.0  # MixMin entropic mirror descent (paper: 1.0, 100 steps)
    max_iter: int = 100
    cross_task: bool = True  # evaluate every target's MixMin model on every other target
    transfer_preset: str = ""  # e.g. "small": train MixMin/natural/balanced at this size with the same weights
    transfer_tokens: int = 0  # training tokens at the transfer size (0 = final_tokens)
    device: str = "auto"  # auto: CUDA when available
    eval_batch_size: int = 32
    torch_threads: int = 0  # threads per worker process; 0 = CPU cores / n_workers
    resume: str = "if_available"
    backend: str = "local"
    n_workers: int = 2

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {sorted(PRESETS)}; got {self.preset!r}.")
        if self.transfer_preset and self.transfer_preset not in PRESETS:
            raise ConfigError(f"transfer_preset must be '' or one of {sorted(PRESETS)}; got {self.transfer_preset!r}.")
        if self.tokenizer not in ("auto",) + TOKENIZERS:
            raise ConfigError(f"tokenizer must be one of {('auto',) + TOKENIZERS}; got {self.tokenizer!r}.")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ConfigError(f"methods must be a non-empty list from {METHODS}; got {self.methods!r}.")
        for name in ("trials", "final_tokens", "max_target_samples", "max_iter", "eval_batch_size", "bpe_train_chars"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer; got {getattr(self, name)!r}.")
        if int(self.torch_threads) < 0:
            raise ConfigError(f"torch_threads must be 0 (automatic) or positive; got {self.torch_threads!r}.")
        if not isinstance(self.proxy_budgets, list):
            raise ConfigError(f"proxy_budgets must be a list of fractions, e.g. [0.01, 0.05, 0.1, 1.0]; got {self.proxy_budgets!r}.")
        for name, b in [("proxy_budget", self.proxy_budget)] + [("proxy_budgets", b) for b in self.proxy_budgets]:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b <= 100:
                raise ConfigError(f"{name} must be in (0, 100] (a fraction of one final run); got {b!r}.")
        if len(set(self.proxy_budgets)) != len(self.proxy_budgets):
            raise ConfigError(f"proxy_budgets must not repeat a budget; got {self.proxy_budgets!r}.")
        if self.proxy_budgets and self.transfer_preset:
            raise ConfigError("proxy_budgets (a compute sweep) and transfer_preset cannot be combined; run them as two configs.")
        if not 0 < self.fit_fraction < 1:
            raise ConfigError(f"fit_fraction must be in (0, 1); got {self.fit_fraction!r}.")
        if self.regmix_preset not in ("auto", "faithful", "mixmin-paper"):
            raise ConfigError(f"regmix_preset must be auto, faithful or mixmin-paper; got {self.regmix_preset!r}.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda; got {self.device!r}.")
        if not isinstance(self.targets, list) or not self.targets:
            raise ConfigError("targets must be a non-empty list of {name, kind, path | dataset}.")
        names = []
        for i, t in enumerate(self.targets):
            if not isinstance(t, dict) or t.get("kind") not in lmdata.TARGET_KINDS or not (t.get("path") or t.get("dataset")):
                raise ConfigError(f"targets[{i}] must be a mapping with kind in {lmdata.TARGET_KINDS} and a "
                                  f"'path' or registry 'dataset'; got {t!r}.")
            names.append(str(t.get("name") or t["kind"]))
        if len(set(names)) != len(names):
            raise ConfigError(f"targets need unique names; got {names}.")

        if self.transfer_preset and self.tokenizer == "auto" and get_preset(self.transfer_preset).tokenizer != self.tokenizer_kind:
            raise ConfigError(f"transfer_preset {self.transfer_preset!r} uses the {get_preset(self.transfer_preset).tokenizer} "
                              f"tokenizer but preset {self.preset!r} the {self.tokenizer_kind} one; set tokenizer explicitly.")

    @property
    def tokenizer_kind(self) -> str:
        return get_preset(self.preset).tokenizer if self.tokenizer == "auto" else self.tokenizer


CONFIG = LMConfig


def dataset(config: LMConfig) -> str:
    return f"text sources -> {', '.join(_target_name(t) for t in config.targets)} ({config.preset})"


# ---- inputs ---------------------------------------------------------------------------------
def _target_name(spec: dict) -> str:
    return str(spec.get("name") or spec["kind"])


def _target_path(spec: dict) -> Path:
    from mixmin_core.runs.datasets import resolve

    if spec.get("path"):
        p = Path(spec["path"]).expanduser()
        if not p.is_file():
            raise InputError(f"target {_target_name(spec)!r}: file {p} not found; expected a .jsonl or .jsonl.gz file.")
        return p
    return resolve(spec["dataset"])


def _sources_dir(config: LMConfig) -> Path:
    if config.sources_dir:
        return Path(config.sources_dir).expanduser()
    from mixmin_core.runs.datasets import data_dir

    if data_dir() is None:
        raise InputError("sources_dir is empty and MIXMIN_DATA_DIR is unset; set sources_dir to a folder of "
                         "<source>.jsonl(.gz) files or MIXMIN_DATA_DIR to a folder holding text/source/.")
    return data_dir() / "text" / "source"


def _load_targets(config: LMConfig) -> dict[str, list]:
    out = {}
    for spec in config.targets:
        limit = int(spec.get("max_samples") or config.max_target_samples)
        examples = lmdata.load_target(spec["kind"], _target_path(spec), limit=limit)
        if len(examples) < 5:
            raise InputError(f"target {_target_name(spec)!r} ({_target_path(spec)}): {len(examples)} usable "
                             "examples; an 80/20 split needs at least 5.")
        out[_target_name(spec)] = examples
    return out


def _source_files(config: LMConfig) -> dict[str, Path]:
    if config.slimpajama_files:
        return {}
    return lmdata.find_source_files(_sources_dir(config), names=config.sources or None)


def validate(config: LMConfig) -> None:
    """Read every input once (sources, targets, tokenizer) so bad input fails before the run exists."""
    if config.slimpajama_files:
        groups = lmdata.read_slimpajama(config.slimpajama_files, max_docs_per_source=1)
        if len(groups) < 2:
            raise InputError(f"slimpajama_files {config.slimpajama_files}: {len(groups)} source set(s) found; need at least two.")
    for name, path in _source_files(config).items():
        lmdata.read_texts(path, limit=None)
    _load_targets(config)
    if config.tokenizer_kind == "pythia" or config.tokenizer_path:
        from mixmin_core.lm.tokenizer import load_tokenizer, pythia_tokenizer_path

        load_tokenizer(pythia_tokenizer_path(config.tokenizer_path or None))


# ---- unit functions (top-level: they run in worker processes) --------------------------------
def _capped_texts(path: str, max_chars: int) -> list[str]:
    texts, total = [], 0
    for text in lmdata.read_texts(path):
        if max_chars and total + len(text) > max_chars:
            texts.append(text[: max_chars - total])
            break
        texts.append(text)
        total += len(text)
    return [t for t in texts if t]


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
                yield from (t[:20_000] for t in _capped_texts(path, train_chars))

        train_bpe(texts(), vocab_size=vocab_size, output=output)
    return {"vocab_size": load_tokenizer(output).get_vocab_size()}


def tokenize_source(*, path: str, tokenizer: str, max_chars: int, output: str) -> dict:
    """Pack one source's documents into a token stream (``.npy``)."""
    from mixmin_core.lm.tokenizer import load_tokenizer, token_stream

    stream = token_stream(load_tokenizer(tokenizer), _capped_texts(path, max_chars))
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, stream)
    return {"tokens": int(stream.size)}


def train_model(*, preset: str, vocab_size: int, token_files: list, weights: list, n_tokens: int, seed: int,
                device: str, n_threads: int, output: str) -> dict:
    """Train one model on a mixture of token streams; save it; return its cost."""
    from mixmin_core.lm.training import save_model, train_lm

    streams = [np.load(f, mmap_mode="r") for f in token_files]
    result = train_lm(preset=get_preset(preset), vocab_size=vocab_size, streams=streams, weights=weights,
                      n_tokens=n_tokens, seed=seed, device=device, n_threads=n_threads)
    save_model(result.model, output, meta={"preset": preset, "vocab_size": vocab_size, "weights": weights, **result.info})
    return result.info


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
    pool = lmdata.load_target(target["kind"], _target_path(target), limit=limit)
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
    return {"rows": int(idx.size)}


# ---- orchestration ---------------------------------------------------------------------------
def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


class _Models:
    """Deduplicating registry of model-training and scoring units for one run."""

    def __init__(self, config: LMConfig, ctx: RunContext, token_files: list[str], vocab_size: int, tokenizer: str):
        self.config, self.ctx, self.token_files = config, ctx, token_files
        self.vocab_size, self.tokenizer = vocab_size, tokenizer
        workers = max(1, int(ctx.n_workers or 1))
        self.n_threads = int(config.torch_threads) or max(1, (os.cpu_count() or 1) // workers)

    def unit(self, *, preset: str, weights, n_tokens: int, seed: int, kind: str) -> Unit:
        w = [round(float(x), 6) for x in np.asarray(weights, dtype=np.float64)]
        key = f"{preset}-{_digest([preset, w, int(n_tokens), int(seed), self.vocab_size])}"
        out = self.ctx.path("models", f"{key}.pt")
        kwargs = dict(preset=preset, vocab_size=self.vocab_size, token_files=self.token_files, weights=w,
                      n_tokens=int(n_tokens), seed=int(seed), device=self.config.device,
                      n_threads=self.n_threads, output=str(out))
        return Unit(f"model/{key}", train_model, kwargs, output=out, kind=kind)

    def train(self, units: list[Unit], desc: str) -> dict[str, dict]:
        unique = list({u.unit_id: u for u in units}.values())
        return self.ctx.run_units(unique, desc)

    def score_units(self, model_unit: Unit, target: dict, indices: list | None, choices: bool) -> Unit:
        name = _target_name(target)
        tag = "all" if indices is None else _digest(sorted(int(i) for i in indices))
        model_key = model_unit.unit_id.split("/", 1)[1]
        out = self.ctx.path("scores", model_key, f"{name}-{tag}{'-mc' if choices else ''}.npz")
        kwargs = dict(model=str(model_unit.output), tokenizer=self.tokenizer, target=target,
                      limit=int(target.get("max_samples") or self.config.max_target_samples),
                      indices=None if indices is None else sorted(int(i) for i in indices), choices=choices,
                      batch_size=self.config.eval_batch_size, device=self.config.device,
                      n_threads=self.n_threads, output=str(out))
        return Unit(f"score/{model_key}/{name}-{tag}{'-mc' if choices else ''}", score_model, kwargs, output=out, kind="score")

    def score(self, units: list[Unit], desc: str) -> None:
        self.ctx.run_units(list({u.unit_id: u for u in units}.values()), desc)


def _load_scores(unit: Unit) -> dict[str, np.ndarray]:
    with np.load(unit.output) as z:
        return {k: z[k] for k in z.files}


def _prepare(config: LMConfig, ctx: RunContext):
    """Tokenizer and token streams (units); returns names, token files, token counts, vocab, tokenizer path."""
    files = _source_files(config)
    if config.slimpajama_files:
        folder = ctx.path("sources", "x").parent
        if not (folder / ".complete").exists():  # each file is written atomically; the marker closes the set
            lmdata.write_slimpajama_folder(lmdata.read_slimpajama(config.slimpajama_files), folder)
            write_text(folder / ".complete", "")
        files = lmdata.find_source_files(folder)
    files = {n: str(p) for n, p in files.items()}
    preset = get_preset(config.preset)
    kind = config.tokenizer_kind
    pythia = ""
    if kind == "pythia":
        from mixmin_core.lm.tokenizer import pythia_tokenizer_path

        pythia = str(pythia_tokenizer_path(config.tokenizer_path or None))
    tok_path = ctx.path("tokenizer", "tokenizer.json")
    tok_unit = Unit("tokenizer", build_tokenizer, dict(
        kind=kind, source_files=files, vocab_size=int(config.bpe_vocab_size or preset.bpe_vocab_size),
        train_chars=int(config.bpe_train_chars), pythia_path=pythia, output=str(tok_path)), output=tok_path, kind="tokenizer")
    ctx.run_units([tok_unit], "tokenizer")
    units = [Unit(f"tokens/{n}", tokenize_source, dict(path=p, tokenizer=str(tok_path), max_chars=int(config.max_source_chars),
                                                       output=str(ctx.path("tokens", f"{n}.npy"))),
                  output=ctx.path("tokens", f"{n}.npy"), kind="tokens") for n, p in files.items()]
    ctx.run_units(units, "tokenize sources")
    counts = np.array([np.load(u.output, mmap_mode="r").size for u in units], dtype=np.float64)
    from mixmin_core.lm.models import model_vocab_size
    from mixmin_core.lm.tokenizer import load_tokenizer

    vocab = model_vocab_size(preset, load_tokenizer(tok_path).get_vocab_size())
    return list(files), [str(u.output) for u in units], counts, vocab, str(tok_path)


def _seq_metrics(scores: dict, positions: np.ndarray, is_doc: bool) -> dict[str, float]:
    """Held-out metrics at ``positions`` of a score file's rows."""
    total = scores["prefix_logprob"][positions] + scores["cont_logprob"][positions]
    n_tok = scores["n_prefix"][positions] + scores["n_cont"][positions]
    out = {"generative_loss": float(np.mean(-total / n_tok))}
    if not is_doc:
        out["predictive_loss"] = float(np.mean(-scores["cont_logprob"][positions] / scores["n_cont"][positions]))
        if "acc_norm" in scores:
            out["accuracy"] = float(np.nanmean(scores["acc_norm"][positions]))
            out["accuracy_raw"] = float(np.nanmean(scores["acc"][positions]))
    return out


def _rows_for(scores: dict, wanted: np.ndarray, is_doc: bool, **row) -> list[dict]:
    lookup = {int(v): k for k, v in enumerate(scores["indices"])}
    positions = np.array([lookup[int(i)] for i in wanted])
    return [{**row, "metric": m, "value": v} for m, v in _seq_metrics(scores, positions, is_doc).items()]


def _budgets(config: LMConfig) -> dict[str, float]:
    """variant -> proxy budget: one unnamed variant, or one ``budget-<b>`` per budget of a sweep."""
    if not config.proxy_budgets:
        return {"": float(config.proxy_budget)}
    return {budget_variant(b): float(b) for b in sorted(config.proxy_budgets)}


def run(config: LMConfig, ctx: RunContext) -> dict:
    targets = _load_targets(config)
    specs = {_target_name(t): t for t in config.targets}
    names, token_files, counts, vocab, tok_path = _prepare(config, ctx)
    _write_sources_csv(ctx, names, counts)
    models = _Models(config, ctx, token_files, vocab, tok_path)
    splits = {(name, k): lmdata.split_indices(len(targets[name]), seed=config.seed, trial=k, fit_fraction=config.fit_fraction)
              for name in targets for k in range(config.trials)}
    budgets = _budgets(config)
    main = list(budgets)[-1]  # the largest budget: cross-task matrix and scale transfer
    mixtures = {}  # (target, trial, variant, method) -> MixtureResult
    for variant, budget in budgets.items():
        for key, result in _mixtures(config, ctx, models, targets, specs, splits, names, counts, variant, budget):
            mixtures[key] = result

    rows = _final_models(config, ctx, models, targets, specs, splits, mixtures, config.preset,
                         config.final_tokens, cross_variant=main if config.cross_task else None)
    if config.transfer_preset:
        methods = [m for m in ("mixmin", "natural", "balanced") if m in config.methods]
        rows += _final_models(config, ctx, models, targets, specs, splits,
                              {k: v for k, v in mixtures.items() if k[3] in methods}, config.transfer_preset,
                              config.transfer_tokens or config.final_tokens, label=f"transfer:{config.transfer_preset}")
    ctx.store.add_results(ctx.run_id, rows)
    return _summarize(ctx, rows, names, mixtures, main)


def _mixtures(config, ctx, models, targets, specs, splits, names, counts, variant, budget):
    """Proxies at ``budget`` (one per source, together ``budget`` x one final run), their ProxyOutputs
    per target and trial, and every method's mixture; yields ((target, trial, variant, method), result)."""
    n_src = len(names)
    proxy_tokens = _whole_steps(config, config.final_tokens * budget / n_src)
    proxies = [models.unit(preset=config.preset, weights=np.eye(n_src)[i], n_tokens=proxy_tokens, seed=config.seed,
                           kind="proxy") for i in range(n_src)]
    tag = f" ({variant})" if variant else ""
    proxy_info = models.train(proxies, "proxies" + tag)
    proxy_flops = float(sum(proxy_info[u.unit_id].get("flops", 0.0) for u in proxies))
    score_units = {name: [models.score_units(u, specs[name], None, False) for u in proxies] for name in targets}
    models.score([u for units in score_units.values() for u in units], "score proxies" + tag)
    pool_scores = {name: [_load_scores(u) for u in units] for name, units in score_units.items()}
    for name in targets:
        for k in range(config.trials):
            fit, _ = splits[name, k]
            outputs = _proxy_outputs(pool_scores[name], fit, names, counts, targets[name],
                                     meta={"target": name, "trial": k, "split": "fit", "preset": config.preset,
                                           "proxy_tokens": proxy_tokens, "proxy_flops": proxy_flops,
                                           "proxy_budget": budget})
            problem = Problem(name, k, variant)
            outputs.save(outputs_path(ctx.run_dir, problem))
            if targets[name][0].is_choice:  # answer-only log-probs given the question (predictive objective)
                _proxy_outputs(pool_scores[name], fit, names, counts, targets[name], meta={**outputs.meta, "objective": "answer|question"},
                               answer_only=True).save(ctx.path("proxy_outputs_answer", problem.key))
            for result in _methods(config, models, outputs, specs[name], fit, proxy_tokens, proxy_flops, budget):
                write_json(mixture_path(ctx.run_dir, problem, result.method), result.to_dict())
                yield (name, k, variant, result.method), result


def _proxy_outputs(scores: list[dict], fit: np.ndarray, names, counts, examples, meta, answer_only=False) -> ProxyOutputs:
    """``loglik`` outputs on the fit split: total log-prob of question + answer (or of the answer
    given the question when ``answer_only``) under each proxy, with token counts."""
    if answer_only:
        values = np.stack([s["cont_logprob"][fit] for s in scores])
        n_tok = scores[0]["n_cont"][fit]
    else:
        values = np.stack([(s["prefix_logprob"] + s["cont_logprob"])[fit] for s in scores])
        n_tok = (scores[0]["n_prefix"] + scores[0]["n_cont"])[fit]
    return ProxyOutputs(np.minimum(values, 0.0), "loglik", source_names=names, token_counts=n_tok,
                        natural_weights=counts, sample_ids=[examples[i].sample_id for i in fit], meta=meta)


def _methods(config, models, outputs, spec, fit, proxy_tokens, proxy_flops, budget):
    meta = {"proxy_flops": proxy_flops, "proxy_budget": budget}
    for method in config.methods:
        if method == "mixmin":
            yield _with_meta(mixmin(outputs, step_size=config.step_size, max_iter=config.max_iter), meta)
        elif method == "natural":  # no proxies needed
            yield _with_meta(natural(outputs), {**meta, "proxy_flops": 0.0})
        elif method == "balanced":
            yield _with_meta(balanced(outputs), {**meta, "proxy_flops": 0.0})
        else:
            found = _search(method, config, models, outputs, spec, fit, proxy_tokens, proxy_flops)
            yield _with_meta(found, {"proxy_budget": budget, "proxy_flops": float(found.meta["compute"])})


def _with_meta(result, meta):
    from dataclasses import replace

    return replace(result, meta={**result.meta, **meta})


def _whole_steps(config, tokens: float) -> int:
    """``tokens`` rounded to whole training steps (at least one): what a model of that size trains on,
    so that compute matching counts the steps really taken (small budgets round up to one step)."""
    per_step = get_preset(config.preset).batch_size * get_preset(config.preset).context
    return max(1, round(tokens / per_step)) * per_step


def _search(method, config, models, outputs, spec, fit, proxy_tokens, proxy_flops):
    """Random search / RegMix through mixmin_core.search.swarm: evaluate(W) trains one proxy-preset model
    per mixture and returns its per-token NLL on the target's fit split."""
    try:
        from mixmin_core.search import swarm as search
    except ImportError:
        raise ConfigError(f"method {method!r} needs mixmin_core.search.swarm, which is not available in this checkout.") from None
    n_src = outputs.n_sources
    if method == "random_search":
        tokens = proxy_tokens
    elif config.regmix_runs_per_source:
        tokens = _whole_steps(config, proxy_tokens / config.regmix_runs_per_source)
    else:  # the paper's RegMix runs: each as large as one proxy of the 1%-budget setting
        tokens = _whole_steps(config, config.final_tokens * 0.01 / n_src)

    def evaluate(W):
        units = [models.unit(preset=config.preset, weights=w / w.sum(), n_tokens=tokens, seed=config.seed, kind=method)
                 for w in np.asarray(W, dtype=np.float64)]
        models.train(units, f"{method} proxies")
        scored = [models.score_units(u, spec, None, False) for u in units]
        models.score(scored, f"{method} scores")
        losses = []
        for u in scored:
            s = _load_scores(u)
            losses.append(float(np.mean(-(s["prefix_logprob"] + s["cont_logprob"])[fit] / (s["n_prefix"] + s["n_cont"])[fit])))
        return np.asarray(losses)

    rng = np.random.default_rng([config.seed, 31])  # same candidates for every problem: their models are shared
    if method == "random_search":
        return search.random_search(evaluate, source_names=outputs.source_names, n_trials=n_src, rng=rng,
                                    compute_per_trial=proxy_flops / n_src)
    runs = max(1, round(n_src * proxy_tokens / tokens))  # equal total compute to MixMin's proxies
    preset = config.regmix_preset
    if preset == "auto":
        preset = "faithful" if runs >= 40 else "mixmin-paper"
    return search.regmix(evaluate, source_names=outputs.source_names, prior=outputs.natural_weights, n_runs=runs,
                         rng=rng, preset=preset, compute_per_run=proxy_flops / runs)


def _final_models(config, ctx, models, targets, specs, splits, mixtures, preset, n_tokens, *, cross_variant=None,
                  label=None):
    """Train one model per distinct (weights, trial seed) (so natural and balanced are trained once for
    every target and budget); score held-out examples; result rows. ``cross_variant``: also score that
    variant's MixMin models on every other target; ``label``: report every row under this variant."""
    plan = {}  # (target, trial, variant, method) -> model unit
    for key, result in mixtures.items():
        plan[key] = models.unit(preset=preset, weights=result.weights, n_tokens=n_tokens,
                                seed=config.seed * 1000 + 100 + key[1], kind="final")
    info = models.train(list(plan.values()), f"final models{' ' + label if label else ''}")

    def evaluated_on(name, variant, method):
        cross = method == "mixmin" and variant == cross_variant and label is None
        return [name] + ([b for b in targets if b != name] if cross else [])

    needed = {}  # (model unit id, target) -> held-out indices to score
    for (name, k, variant, method), unit in plan.items():
        for b in evaluated_on(name, variant, method):
            needed.setdefault((unit.unit_id, b), set()).update(int(i) for i in splits[b, k][1])
    by_id = {u.unit_id: u for u in plan.values()}
    score_units = {key: models.score_units(by_id[key[0]], specs[key[1]], sorted(idx), True) for key, idx in needed.items()}
    models.score(list(score_units.values()), f"evaluate{' ' + label if label else ''}")
    rows = []
    for (name, k, variant, method), unit in plan.items():
        final_flops = float(info[unit.unit_id].get("flops", np.nan))
        proxy_flops = float(mixtures[name, k, variant, method].meta.get("proxy_flops") or 0.0)
        extra = {"model": unit.unit_id, "proxy_flops": proxy_flops, "final_flops": final_flops,
                 "proxy_budget": mixtures[name, k, variant, method].meta.get("proxy_budget")}
        for b in evaluated_on(name, variant, method):
            s = _load_scores(score_units[unit.unit_id, b])
            is_doc = not targets[b][0].is_choice
            v = label or (variant if b == name else f"cross:{name}")
            rows += _rows_for(s, splits[b, k][1], is_doc, target=b, method=method, trial=k,
                              compute=proxy_flops, variant=v, extra=extra)
    return rows


def _write_sources_csv(ctx, names, counts):
    lines = ["source,title,category,tokens,natural_weight"]
    for n, c in zip(names, counts):
        lines.append(f"{n},{n},text,{int(c)},{c / counts.sum():.6f}")
    write_text(sources_path(ctx.run_dir), "\n".join(lines) + "\n")


def _cross_matrix(frame, targets, main: str) -> dict:
    """Mean held-out generative loss of the MixMin model found for task A (rows) on task B (columns)."""
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


def _ci(mean, lo, hi) -> list:
    return [round(float(x), 4) if np.isfinite(x) else None for x in (mean, lo, hi)]


def _summarize(ctx, rows, names, mixtures, main) -> dict:
    import pandas as pd

    frame = pd.DataFrame(rows)
    with warnings.catch_warnings():  # identical trial values (e.g. equal accuracies) make scipy warn
        warnings.simplefilter("ignore", RuntimeWarning)
        table = summarize(frame, by=("target", "variant", "method", "metric"), reference="natural")
        budgets = frame[frame.variant.str.startswith("budget-")]
        sweep = summarize(mean_over_targets(budgets, keep=("variant",)), by=("variant", "method", "metric"),
                          reference="natural") if len(budgets) else None
    with atomic_path(ctx.path("results_summary.csv")) as tmp:
        table.to_csv(tmp, index=False)
    targets = list(dict.fromkeys(key[0] for key in mixtures))
    cross = _cross_matrix(frame, targets, main)
    write_json(ctx.path("cross_task.json"), cross)
    summary = {"sources": names, "variant": main, "cross_task": cross, "results": {}}
    for _, r in table[table.variant == main].iterrows():
        summary["results"].setdefault(r.target, {}).setdefault(r.method, {})[r.metric] = _ci(r["mean"], r.ci_low, r.ci_high)
        summary.setdefault("proxy_flops", {})[r.method] = r.compute
    if sweep is not None:  # mean over targets per trial; improvement over natural, trial by trial
        with atomic_path(ctx.path("budget_sweep.csv")) as tmp:
            sweep.to_csv(tmp, index=False)
        for _, r in sweep[sweep.metric == "generative_loss"].iterrows():
            summary.setdefault("budget_sweep", {}).setdefault(r.variant, {})[r.method] = {
                "generative_loss": _ci(r["mean"], r.ci_low, r.ci_high),
                "vs_natural": _ci(r.improvement, r.improvement_low, r.improvement_high), "proxy_flops": r.compute}
    for (name, k, variant, method), res in mixtures.items():
        if k == 0 and variant == main:
            summary.setdefault("weights_trial0", {}).setdefault(name, {})[method] = dict(res.top(len(names)))
    return summary
