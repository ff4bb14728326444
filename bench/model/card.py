"""The `ArchitectureCard`: what a model's config and tokenizer say about it, read without a forward pass."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ArchitectureCard:
    """What the config and tokenizer say about the model, before any forward pass."""

    model_type: str
    n_layers: int
    d_model: int
    n_heads: int
    context_length: int | None
    positional_encoding: str  # "learned", "rotary", "alibi", "none"
    vocab_size: int
    n_parameters: int
    tokenizer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_LEARNED = {"gpt2", "opt", "gpt_neo", "gptj_learned", "biogpt", "xglm"}
_ROTARY = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "gpt_neox", "gptj", "phi", "phi3",
           "gemma", "gemma2", "gemma3", "olmo", "olmo2", "stablelm", "starcoder2", "falcon", "cohere", "granite"}
_ALIBI = {"bloom", "mpt"}


def _first(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


_ROPE_FIELDS = ("rope_theta", "rope_scaling", "rope_parameters", "rotary_dim", "rotary_pct", "rotary_emb_base",
                "partial_rotary_factor")


def positional_encoding(config: Any) -> str:
    """The positional scheme: from the model type where it is known (a "_text" suffix, as in Gemma-3's
    "gemma3_text", names the same family), else from the config's own fields (RoPE's base or
    scaling, an `alibi` switch, `position_embedding_type`), so new RoPE models are not "unknown"."""
    config = getattr(config, "text_config", None) or config
    kind = config.model_type.removesuffix("_text")
    declared = getattr(config, "position_embedding_type", None)
    if getattr(config, "alibi", False) or kind in _ALIBI or declared == "alibi":
        return "alibi"
    if kind in _ROTARY or declared in ("rotary", "rope"):
        return "rotary"
    if kind in _LEARNED or declared == "absolute":
        return "learned"
    if any(getattr(config, name, None) is not None for name in _ROPE_FIELDS):
        return "rotary"
    return "unknown"


def tokenizer_facts(tokenizer: Any) -> dict[str, Any]:
    """How the tokenizer cuts the things compositional tasks are made of."""
    def pieces(text: str) -> list[str]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return [tokenizer.decode([i]) for i in ids]

    number = pieces("1234567")
    return {
        "vocab_size": len(tokenizer),
        "number_pieces": number,  # how "1234567" is split
        "digits_per_token": round(7 / max(len(number), 1), 3),
        "single_digit_tokens": all(len(p.strip()) <= 1 for p in number),
        "space_merges_into_word": len(pieces(" walk")) == 1,
        "adds_bos": tokenizer("1")["input_ids"][:1] == [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else False,
    }


def read_card(model: Any, tokenizer: Any) -> ArchitectureCard:
    config = model.config
    return ArchitectureCard(
        model_type=config.model_type,
        n_layers=int(_first(config, "num_hidden_layers", "n_layer", "num_layers")),
        d_model=int(_first(config, "hidden_size", "n_embd", "d_model")),
        n_heads=int(_first(config, "num_attention_heads", "n_head", "num_heads")),
        context_length=_first(config, "max_position_embeddings", "n_positions", "n_ctx", "seq_length"),
        positional_encoding=positional_encoding(config),
        vocab_size=int(config.vocab_size),
        n_parameters=sum(p.numel() for p in model.parameters()),
        tokenizer=tokenizer_facts(tokenizer),
    )
