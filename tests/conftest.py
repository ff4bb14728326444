"""Shared fixtures: tiny random-config HF models saved to disk, loaded by path."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
__import__("bench.process").process.reproducible_numerics()  # MKL_CBWR, as the command line sets it
os.environ["BRITTLEBENCH_CACHE"] = _CACHE = __import__("tempfile").mkdtemp(prefix="brittlebench-test-cache-")
__import__("atexit").register(__import__("shutil").rmtree, _CACHE, True)  # no trace caches left in /tmp

import pytest  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one native thread each, not two
    __import__("torch").set_num_threads(1)  # (spinning threads of two processes slow both many times over)


def save_tiny(kind: str, folder, seed: int = 0, context: int = 64, vocab_size: int | None = None, layers: int = 2):
    """Save a tiny random model of `kind` with the zoo's char tokenizer and a context of `context`
    tokens; return the folder. A llama may be given a larger vocabulary than the tokenizer's (ids
    past it never come up) and more layers."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from bench.zoo.tokenizer import build_tokenizer

    tok = build_tokenizer()
    special = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=context, n_embd=32, n_layer=2, n_head=2, **special))
    elif kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size or len(tok), max_position_embeddings=context,
                                             hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                             num_attention_heads=4,
                                             num_key_value_heads=2, **special))
    else:
        raise ValueError(kind)
    model.eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return save_tiny("gpt2", tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_llama_32k(tmp_path_factory):
    """A tiny llama with a large vocabulary (32,000 ids): the logit lens's unembedding dominates."""
    return save_tiny("llama", tmp_path_factory.mktemp("tiny-llama-32k"), vocab_size=32_000)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory):
    """A tiny llama as a .gguf file (needs the gguf package, a test dependency)."""
    pytest.importorskip("gguf")
    from tests.gguf_file import write_tiny_gguf

    path = tmp_path_factory.mktemp("tiny-gguf") / "tiny.Q.gguf"
    write_tiny_gguf(path)
    return path
