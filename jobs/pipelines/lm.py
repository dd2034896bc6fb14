"""The language-model pipeline: the mixture of text sources that best serves a downstream target.

The config says what to compare; :mod:`mixmin_core.lm.experiment` supplies the adapters (tokenizer,
token streams, GPT-NeoX proxies and final models, log-prob scoring) and
:mod:`mixmin_core.engine.experiment` runs the plan (targets x budget variants x trials), writing
``results.csv`` and ``summary.csv`` (held-out generative loss, predictive loss and accuracy), plus
``cross_task.json``. ``joint_modes`` adds one mixture for all targets together per trial.
"""
from __future__ import annotations

from dataclasses import dataclass

from jobs.config import ExecutionConfig, setting
from mixmin_core.engine.experiment import Settings, run_experiment
from mixmin_core.engine.methods import REGMIX_PRESETS
from mixmin_core.errors import ConfigError
from mixmin_core.lm.experiment import (
    DEFAULT_TARGETS,
    METHODS,
    TARGET_KEYS,
    LMData,
    LMDomain,
    LMModels,
    check_proxy_budgets,
    check_target_specs,
    source_files,
    target_name,
    validate_inputs,
)
from mixmin_core.lm.models import PRESETS, TOKENIZERS, get_preset
from mixmin_core.lm.tokenizer import MIN_BPE_VOCAB
from mixmin_core.runs.runner import RunContext
from mixmin_core.solver.multi_target import MODES

#: Fewest characters per source a cut (``max_source_chars``) may keep: a few hundred tokens.
MIN_SOURCE_CHARS = 1000


@dataclass
class LMConfig(ExecutionConfig):
    sources_dir: str = setting("", doc="folder of <source>.jsonl(.gz) with a 'text' field; '' = $MIXMIN_DATA_DIR/text/source")
    sources: list[str] = setting([], unique=True, doc="subset of source names; [] = every file in the folder")
    slimpajama_files: list[str] = setting([], doc="SlimPajama shards (text + meta.redpajama_set_name), used instead of sources_dir")
    max_source_chars: int = setting(0, min=0, max=10**12, doc="characters read per source (0 = all); the run still counts each whole source: natural "
                                                                  "weights and exported sizes are the corpus's")
    targets: list[dict] = setting(DEFAULT_TARGETS, keys=TARGET_KEYS, doc="{name, kind, path | dataset, max_samples}")
    max_target_samples: int = setting(1000, min=5, max=10_000_000, doc="examples per target (the pool split 80/20 per trial)")
    preset: str = setting("tiny", choices=tuple(PRESETS), doc="size of proxies and final models")
    tokenizer: str = setting("auto", choices=("auto",) + TOKENIZERS, doc="auto = the preset's (bpe on CPU presets)")
    tokenizer_path: str = setting("", doc="Pythia tokenizer.json; '' = registry (MIXMIN_DATA_DIR copy, cache or download)")
    bpe_vocab_size: int = setting(0, min=0, max=1_000_000, doc="0 = the preset's (4096)")
    bpe_train_chars: int = setting(1_000_000, min=1, max=10**10, doc="characters per source the BPE is trained on")
    final_tokens: int = setting(600_000, min=1, max=10**11, doc="training tokens of each final model")
    proxy_budget: float = setting(1.0, gt=0, max=100, doc="all proxies together, as a fraction of one final run "
                                                           "(paper: 0.01, 0.05, 0.1, 1.0)")
    proxy_budgets: list[float] = setting([], items={"gt": 0, "max": 100}, unique=True,
                                         doc="compute sweep (paper, Figure 3): one variant budget-<b> per budget")
    methods: list[str] = setting(["mixmin", "natural", "balanced"], items={"choices": METHODS}, unique=True)
    joint_modes: list[str] = setting([], items={"choices": MODES}, unique=True,
                                     doc="one mixture for all targets per trial: mean and/or worst target loss")
    joint_normalise: bool = setting(False, doc="joint: divide each target's loss by its loss at the natural mixture")
    regmix_runs_per_source: int = setting(0, min=0, max=10_000, doc="RegMix runs per proxy of compute; 0 = the paper's "
                                                        "(runs the size of a 1%-budget proxy)")
    regmix_preset: str = setting("auto", choices=REGMIX_PRESETS, doc="auto: faithful at 47+ runs (LightGBM "
                                                                     "cannot split fewer)")
    regmix_candidates: int = setting(100_000, min=128, max=10_000_000,
                                     doc="mixtures RegMix draws and ranks by its regressor; it takes the mean of the best 128")
    bo_init: int = setting(0, min=0, max=10_000, doc="BO's initial random mixtures (0 = half its runs)")
    fit_fraction: float = setting(0.8, gt=0, lt=1, doc="share of each target's examples MixMin fits on")
    step_size: float = setting(1.0, gt=0, max=1e6, doc="MixMin entropic mirror descent (paper: 1.0, 100 steps)")
    max_iter: int = setting(100, min=1, max=100_000)
    joint_max_iter: int = setting(0, min=0, max=100_000, doc="iterations of the joint_modes solves (0 = max_iter); a "
                                  "joint mixture needs more than one target's")
    n_boot: int = setting(0, min=0, max=10_000, doc="bootstrap resamples for weight intervals (0 = none)")
    top_k: int = setting(10, min=1, max=100_000)
    cross_task: bool = setting(True, doc="evaluate every target's MixMin model on every other target")
    transfer_preset: str = setting("", choices=("",) + tuple(PRESETS),
                                   doc="train MixMin/natural/balanced at this size with the same weights")
    transfer_tokens: int = setting(0, min=0, max=10**11, doc="training tokens at the transfer size (0 = final_tokens)")
    eval_batch_size: int = setting(32, min=1, max=65_536)
    torch_threads: int = setting(0, min=0, max=256, doc="threads per worker process; 0 = CPU cores / n_workers")

    def __post_init__(self):
        super().__post_init__()
        check_target_specs(self.targets)
        if 0 < self.max_source_chars < MIN_SOURCE_CHARS:  # a few tokens per source, repeated to fill every run
            raise ConfigError(f"max_source_chars: must be 0 (all) or at least {MIN_SOURCE_CHARS:,}; got "
                              f"{self.max_source_chars:,}.")
        if "mixmin" not in self.methods:
            raise ConfigError(f"methods: must include 'mixmin'; got {self.methods!r}.")
        if self.transfer_preset and self.transfer_preset == self.preset:  # it trained the final models twice
            raise ConfigError(f"transfer_preset: {self.transfer_preset!r} is the final models' own preset; name "
                              "another size (or leave it empty).")
        if self.proxy_budgets and self.proxy_budget != 1.0:  # the sweep's budgets replace it: it was silently unused
            raise ConfigError(f"proxy_budget: {self.proxy_budget:g} is not used when proxy_budgets sets a compute "
                              f"sweep ({list(self.proxy_budgets)}); give one of the two.")
        if self.proxy_budgets and self.transfer_preset:
            raise ConfigError("proxy_budgets (a compute sweep) and transfer_preset cannot be combined; run them as two configs.")
        if self.joint_modes and len(self.targets) < 2:
            raise ConfigError(f"joint_modes: a joint mixture needs at least two targets; got {len(self.targets)}.")
        if 0 < self.bpe_vocab_size < MIN_BPE_VOCAB:
            raise ConfigError(f"bpe_vocab_size: must be 0 (the preset's) or at least {MIN_BPE_VOCAB} (256 bytes and the "
                              f"special tokens, plus merges); got {self.bpe_vocab_size}.")
        if self.n_boot == 1:
            raise ConfigError("n_boot: must be 0 (no intervals) or at least 2; got 1.")
        if self.transfer_preset and self.tokenizer == "auto" and get_preset(self.transfer_preset).tokenizer != self.tokenizer_kind:
            raise ConfigError(f"transfer_preset: {self.transfer_preset!r} uses the {get_preset(self.transfer_preset).tokenizer} "
                              f"tokenizer but preset {self.preset!r} the {self.tokenizer_kind} one; set tokenizer explicitly.")

    @property
    def tokenizer_kind(self) -> str:
        return get_preset(self.preset).tokenizer if self.tokenizer == "auto" else self.tokenizer

    @property
    def data(self) -> LMData:
        return LMData(self.sources_dir, tuple(self.sources), tuple(self.slimpajama_files), self.max_source_chars,
                      tuple(self.targets), self.max_target_samples)

    @property
    def models(self) -> LMModels:
        fields = {k: getattr(self, k) for k in LMModels.__dataclass_fields__ if hasattr(self, k)}
        return LMModels(**{**fields, "tokenizer": self.tokenizer_kind, "proxy_budgets": tuple(self.proxy_budgets),
                           "joint_modes": tuple(self.joint_modes)})


CONFIG = LMConfig


def dataset(config: LMConfig) -> str:
    return f"text sources -> {', '.join(target_name(t) for t in config.targets)} ({config.preset})"


def validate(config: LMConfig) -> None:
    """Read every input once (sources, targets, tokenizer) so bad input fails before the run exists."""
    n_sources = validate_inputs(config.data, tokenizer=config.tokenizer_kind, tokenizer_path=config.tokenizer_path)
    check_proxy_budgets(config.proxy_budgets, final_tokens=config.final_tokens, preset=config.preset, n_sources=n_sources)


def implicit_inputs(config: LMConfig) -> list:
    """Files the run reads that its config does not name: the data directory's source domains (no
    ``sources_dir``) and the registry's Pythia tokenizer, so edited or moved copies start a run of their own."""
    from mixmin_core.lm.tokenizer import pythia_tokenizer_path

    files = list(source_files(config.data).values()) if not (config.sources_dir or config.slimpajama_files) else []
    if config.tokenizer_kind == "pythia" and not config.tokenizer_path:
        files.append(pythia_tokenizer_path())
    return files


def run(config: LMConfig, ctx: RunContext) -> dict:
    domain = LMDomain(ctx, config.data, config.models, trials=config.trials)
    settings = Settings(methods=tuple(config.methods), seed=config.seed, step_size=config.step_size,
                        max_iter=config.max_iter, n_boot=config.n_boot, top_k=config.top_k,
                        regmix_preset=config.regmix_preset, regmix_candidates=config.regmix_candidates,
                        search_max_sources=0, bo_init=config.bo_init, reference="natural")
    return run_experiment(domain, ctx, domain.plan, settings)
