"""A tiny llama written as a GGUF file with the `gguf` package, as llama.cpp lays one out: byte-level
BPE tokenizer (256 byte tokens, no merges) and float32 tensors under llama.cpp's names. Enough for
transformers' GGUF loader to build a LlamaForCausalLM and its tokenizer from the file alone."""
from __future__ import annotations

import numpy as np


def byte_symbols() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte as the printable character its BPE vocabularies use."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + k) for k, b in enumerate(moved)}}


def write_tiny_gguf(path, seed=0, d=32, layers=2, heads=4, kv=2, ff=64):
    import gguf

    rng = np.random.default_rng(seed)
    symbols = byte_symbols()
    tokens = ["<unk>", "<s>", "</s>"] + [symbols[b] for b in range(256)]
    types = [2, 3, 3] + [1] * 256   # unknown, control, control, normal
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(4096)  # byte tokens: the pretrained suite's longest prompts fit
    w.add_embedding_length(d)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(d // heads)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_token_scores([0.0] * vocab)
    w.add_chat_template("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                        "{% if add_generation_prompt %}<|assistant|>{% endif %}")

    def t(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))
    t("token_embd.weight", vocab, d)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, np.float32))
        t(f"blk.{i}.attn_q.weight", d, d)
        t(f"blk.{i}.attn_k.weight", kv * d // heads, d)
        t(f"blk.{i}.attn_v.weight", kv * d // heads, d)
        t(f"blk.{i}.attn_output.weight", d, d)
        t(f"blk.{i}.ffn_gate.weight", ff, d)
        t(f"blk.{i}.ffn_up.weight", ff, d)
        t(f"blk.{i}.ffn_down.weight", d, ff)
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    t("output.weight", vocab, d)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path

