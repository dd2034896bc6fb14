"""GPT-NeoX (Pythia-style) model presets, built from scratch with transformers.

``tiny`` and ``small`` run on CPU in minutes with a small BPE vocabulary trained on the sources;
``pythia-160m`` and ``pythia-410m`` follow the Pythia architecture and the paper's training
settings (context 1024, AdamW 0.9/0.95, weight decay 0.1, cosine schedule with warm-up) and use
the Pythia tokenizer (vocabulary padded to 50,304 as Pythia does).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from mixmin_core.errors import ConfigError

TOKENIZERS = ("bpe", "pythia")


@dataclass(frozen=True)
class ModelPreset:
    """Architecture and optimiser settings of one model size."""

    name: str
    hidden_size: int
    n_layers: int
    n_heads: int
    context: int
    tokenizer: str  # "bpe": trained on the sources (CPU presets); "pythia": GPT-NeoX-20B tokenizer
    bpe_vocab_size: int = 4096
    batch_size: int = 16
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decays to this fraction of the peak learning rate
    warmup_fraction: float = 0.05  # share of the steps with a linear warm-up
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.95)

    @property
    def intermediate_size(self) -> int:
        return 4 * self.hidden_size

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, ModelPreset] = {p.name: p for p in (
    ModelPreset("tiny", hidden_size=128, n_layers=2, n_heads=4, context=128, tokenizer="bpe",
                bpe_vocab_size=4096, batch_size=16, learning_rate=2e-3),
    ModelPreset("small", hidden_size=192, n_layers=4, n_heads=6, context=128, tokenizer="bpe",
                bpe_vocab_size=4096, batch_size=16, learning_rate=1.5e-3),
    # the paper's settings (section 6.1.1): batch 64 / 32 at context 1024, learning rate 5e-3
    ModelPreset("pythia-160m", hidden_size=768, n_layers=12, n_heads=12, context=1024, tokenizer="pythia",
                batch_size=64, learning_rate=5e-3, warmup_fraction=0.01),
    ModelPreset("pythia-410m", hidden_size=1024, n_layers=24, n_heads=16, context=1024, tokenizer="pythia",
                batch_size=32, learning_rate=5e-3, warmup_fraction=0.01),
)}
PYTHIA_VOCAB = 50304  # Pythia pads its embedding matrix to a multiple of 128


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}; got {name!r}.")
    return PRESETS[name]


def model_vocab_size(preset: ModelPreset, tokenizer_vocab: int) -> int:
    """Rows of the embedding matrix: Pythia's 50,304, or the BPE vocabulary rounded up to 64."""
    if preset.tokenizer == "pythia":
        return max(PYTHIA_VOCAB, tokenizer_vocab)
    return -(-tokenizer_vocab // 64) * 64


def build_model(preset: ModelPreset, vocab_size: int):
    """A freshly initialised ``GPTNeoXForCausalLM`` (weights drawn from torch's current RNG)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=vocab_size, hidden_size=preset.hidden_size, num_hidden_layers=preset.n_layers,
        num_attention_heads=preset.n_heads, intermediate_size=preset.intermediate_size,
        max_position_embeddings=preset.context, bos_token_id=0, eos_token_id=0, pad_token_id=1,
        tie_word_embeddings=False, use_parallel_residual=True, use_cache=False,
    )
    return GPTNeoXForCausalLM(config)


def count_params(model) -> dict:
    """``{"params": all, "embedding": input-embedding rows (a lookup, no FLOPs)}``."""
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    return {"params": int(total), "embedding": int(embed)}


def matmul_flops_per_token(preset: ModelPreset, n_params: int, n_embedding: int) -> float:
    """Training FLOPs per token counting the matrix multiplies: 6 x (parameters except the input
    embedding lookup) plus causal attention scores and values (6 x layers x context x hidden)."""
    return 6.0 * (n_params - n_embedding) + 6.0 * preset.n_layers * preset.context * preset.hidden_size


def n_params(preset: ModelPreset, vocab_size: int) -> int:
    """Parameters of ``build_model(preset, vocab_size)``, counted on the meta device (no memory, no
    initialisation): what plans a run's ``6 x parameters x tokens`` before it is trained."""
    import torch

    with torch.device("meta"):
        return count_params(build_model(preset, vocab_size))["params"]
