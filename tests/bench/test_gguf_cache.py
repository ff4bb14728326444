"""Load once: a GGUF file's dequantized weights cached as a plain HF folder (`bench.model.gguf_cache`)
give the same fingerprint, logits and traces, bit for bit, as a fresh dequantization."""
import numpy as np
import pytest

from bench.model import gguf_cache
from bench.model.load import ModelSpec, load_model
from bench.model.trace import trace
from tasks import get_family


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRITTLEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "gguf"


@pytest.fixture
def dequantized(monkeypatch):
    """How many loads dequantized a file (each such load stores its entry; a hit stores nothing)."""
    calls = []
    store = gguf_cache.store
    monkeypatch.setattr(gguf_cache, "store", lambda *a, **k: calls.append(a[-1]) or store(*a, **k))
    return calls


def _ours(err: str) -> list[str]:
    """Our lines on stderr (transformers' progress bars and this machine's warnings aside)."""
    return [line for line in err.splitlines() if line.startswith("brittlebench:")]


def _items(per_cell=1):
    family = get_family("addition")
    return [i.sealed() for c in family.cells for i in family.generate(c.name, per_cell, seed=0)]


def test_the_second_load_reads_the_cache_and_is_the_same_model_bit_for_bit(cache, tiny_gguf, dequantized):
    import torch

    first = load_model(str(tiny_gguf))
    assert len(dequantized) == 1
    [entry] = gguf_cache.entries()
    assert entry.folder.parent == cache and entry.dtype == "float32" and entry.source == tiny_gguf.name
    assert entry.folder.name.startswith(gguf_cache.file_digest(tiny_gguf)[:32])
    assert (entry.folder / "model.safetensors").is_file()
    second = load_model(str(tiny_gguf))
    assert len(dequantized) == 1  # read as a plain folder
    assert second.fingerprint == first.fingerprint and second.source == first.source
    ids = torch.tensor([first.token_ids(["Q: 12+34=? A:"])[0]])
    with torch.inference_mode():
        assert torch.equal(first.model(input_ids=ids).logits, second.model(input_ids=ids).logits)
    items = _items()
    a, b = trace(first, items, batch_size=4), trace(second, items, batch_size=4)
    for site in a.site_names():
        assert np.array_equal(getattr(a, site), getattr(b, site)), site
    assert first.tokenizer.chat_template == second.tokenizer.chat_template
    assert first.stop_token_ids == second.stop_token_ids


def test_the_dtype_is_part_of_the_key(cache, tiny_gguf, dequantized):
    load_model(str(tiny_gguf))
    half = load_model(ModelSpec(str(tiny_gguf), dtype="float16"))
    assert sorted(e.dtype for e in gguf_cache.entries()) == ["float16", "float32"]
    again = load_model(ModelSpec(str(tiny_gguf), dtype="float16"))
    assert again.fingerprint == half.fingerprint and len(dequantized) == 2


@pytest.mark.parametrize("damage", ["truncate", "config"])
def test_an_unreadable_entry_is_a_miss_recomputed_and_replaced(cache, tiny_gguf, capsys, damage, dequantized):
    fresh = load_model(str(tiny_gguf))
    [entry] = gguf_cache.entries()
    weights = entry.folder / "model.safetensors"
    size = weights.stat().st_size
    if damage == "truncate":
        with open(weights, "r+b") as f:
            f.truncate(size // 2)
    else:
        (entry.folder / "config.json").write_text("{not json")
    capsys.readouterr()
    again = load_model(str(tiny_gguf))
    err = _ours(capsys.readouterr().err)
    assert len(err) == 1 and "could not be read" in err[0] and tiny_gguf.name in err[0]
    assert len(dequantized) == 2  # dequantized again
    assert again.fingerprint == fresh.fingerprint
    assert weights.stat().st_size == size  # replaced whole
    third = load_model(str(tiny_gguf))
    assert _ours(capsys.readouterr().err) == [] and len(dequantized) == 2
    assert third.fingerprint == fresh.fingerprint
    assert not list(cache.glob(".*"))  # no temporary folders left


def test_at_most_n_entries_are_kept_the_least_recently_used_removed(cache, tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    from tests.gguf_file import write_tiny_gguf

    monkeypatch.setenv("BRITTLEBENCH_GGUF_ENTRIES", "2")
    files = [write_tiny_gguf(tmp_path / f"m{seed}.gguf", seed=seed) for seed in range(3)]
    for path in files[:2]:
        load_model(str(path))
    import os
    import time

    old = gguf_cache.entries()[0].folder / gguf_cache.DONE
    os.utime(old, (time.time() - 60, time.time() - 60))
    load_model(str(files[0]))  # a hit: m0 is now the most recently used
    load_model(str(files[2]))
    assert sorted(e.source for e in gguf_cache.entries()) == ["m0.gguf", "m2.gguf"]


def test_the_cache_command_lists_and_clears(cache, tiny_gguf, capsys):
    from bench.cli import main

    assert main(["cache", "list"]) == 0
    assert "no cached" in capsys.readouterr().out
    load_model(str(tiny_gguf))
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert tiny_gguf.name in out and "float32" in out and "MB" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert gguf_cache.entries() == []


def test_a_cache_that_cannot_be_written_costs_only_the_cache(cache, tiny_gguf, capsys):
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the folder would be")
    handle = load_model(str(tiny_gguf))
    err = _ours(capsys.readouterr().err)
    assert handle.fingerprint and len(err) == 1 and "could not cache" in err[0]
