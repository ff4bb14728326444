"""The logit lens pooled across a trace's batches (`bench.model.trace.PooledLens`): the same top ids
as item by item and the same probabilities within float32 rounding (the probability is now
exp(logit - max) / sum(exp(logits - max)), not a softmax's entry: the last bits move; both within
1e-5 of a float64 reference), the same bits at every batch size and chunk size, its last layer the
pass's own final logits, and the item-by-item path kept where rows are not invariant."""
import numpy as np
import pytest
import torch

import bench.model.trace as tracing
from bench.model.load import MIN_ROWS, TRACE_VERSION, load_model
from bench.model.trace import trace
from tasks import get_family

MODELS = ["tiny_llama", "tiny_gpt2", "tiny_llama_32k", "tiny_llama_32k_3_layers"]


@pytest.fixture(scope="module")
def tiny_llama_32k_3_layers(tmp_path_factory):
    """Three layers: an item's lens alone is MIN_ROWS rows, the item-by-item path's products too."""
    from tests.conftest import save_tiny

    return save_tiny("llama", tmp_path_factory.mktemp("tiny-llama-32k-3"), vocab_size=32_000, layers=3)


_HANDLES: dict = {}


def _handle(kind, request):
    if kind not in _HANDLES:
        _HANDLES[kind] = load_model(str(request.getfixturevalue(kind)))
    return _HANDLES[kind]


def _items(n=16):
    cells = ("digits=1", "digits=3", "digits=4", "carry=3,short")
    return [i.sealed() for c in cells for i in get_family("addition").generate(c, n // len(cells), seed=0)]


def _per_item(monkeypatch):
    """The lens item by item, as before: what the trace does where rows are not batch-invariant."""
    monkeypatch.setattr(tracing, "lens_batched", lambda head: False)


def _lens(t):
    return {"lens_top_ids": t.lens_top_ids, "lens_final_prob": t.lens_final_prob}


@pytest.mark.parametrize("kind", MODELS)
def test_batch_sizes_1_and_8_give_the_same_bits(kind, request):
    handle = _handle(kind, request)
    items = _items()
    one, eight = trace(handle, items, batch_size=1), trace(handle, items, batch_size=8)
    assert tracing.lens_batched(handle.model.get_output_embeddings())  # the batched path is the one tested
    assert one.lens_top_ids is not None
    for name in one.site_names():
        np.testing.assert_array_equal(getattr(one, name), getattr(eight, name), err_msg=name)


@pytest.mark.parametrize("kind", MODELS)
def test_the_batched_lens_equals_the_lens_item_by_item(kind, request, monkeypatch):
    handle = _handle(kind, request)
    items = _items()
    batched = trace(handle, items, batch_size=8)
    _per_item(monkeypatch)
    alone = trace(handle, items, batch_size=8)
    monkeypatch.undo()
    np.testing.assert_array_equal(batched.hidden, alone.hidden)  # the lens changed, nothing else
    np.testing.assert_array_equal(batched.lens_top_ids, alone.lens_top_ids)
    # another formula (and, for fewer than MIN_ROWS rows an item, other BLAS kernels): the last bits move
    np.testing.assert_allclose(batched.lens_final_prob, alone.lens_final_prob, rtol=1e-5)


@pytest.mark.parametrize("kind", MODELS)
def test_the_lens_matches_a_float64_reference(kind, request):
    """Top ids and the final top token's probability, against the unembedding in float64 of the
    states the trace stored (the final norm applied to every layer's but the last)."""
    handle = _handle(kind, request)
    t = trace(handle, _items(), batch_size=8)
    model = handle.model
    norm, weight = tracing.final_norm(model), model.get_output_embeddings().weight.double()
    with torch.inference_mode():
        states = torch.from_numpy(t.hidden)
        states = torch.cat([norm(states[:, :-1]), states[:, -1:]], dim=1).double()
        logits = states @ weight.T  # (item, layer + 1, vocab)
        bias = getattr(model.get_output_embeddings(), "bias", None)
        if bias is not None:
            logits = logits + bias.double()
        probs = torch.softmax(logits, dim=-1)
    expected = probs.gather(-1, torch.from_numpy(t.top_ids[:, :1])[:, None, :].expand(-1, probs.shape[1], 1))[..., 0]
    np.testing.assert_allclose(t.lens_final_prob, expected.numpy(), rtol=1e-5)  # measured: 1.3e-6 at most
    top2 = logits.topk(2, dim=-1)
    clear = (top2.values[..., 0] - top2.values[..., 1] > 1e-4).numpy()  # no near tie float32 could reorder
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(t.lens_top_ids[clear], top2.indices[..., 0].numpy()[clear])


@pytest.mark.parametrize("kind", MODELS)
def test_the_last_layer_is_the_pass_s_own_final_logits(kind, request, monkeypatch):
    """The final layer's row is taken from the pass's final logits, not unembedded again: the same
    bits as unembedding it again, and the lens's last top id is the trace's top id."""
    handle = _handle(kind, request)
    items = _items()
    rows = []
    unembed = tracing.unembed_rows
    monkeypatch.setattr(tracing, "unembed_rows", lambda head, x: rows.append(x.shape[0]) or unembed(head, x))
    reused = trace(handle, items, batch_size=8)
    monkeypatch.undo()
    layers = handle.card.n_layers
    assert sum(rows) == len(items) * layers, rows  # the layers before the last only
    rows.clear()
    monkeypatch.setattr(tracing, "unembed_rows", lambda head, x: rows.append(x.shape[0]) or unembed(head, x))
    monkeypatch.setattr(tracing.PooledLens, "reuse_final", False)
    again = trace(handle, items, batch_size=8)
    monkeypatch.undo()
    assert sum(rows) == len(items) * (layers + 1), rows  # every layer unembedded
    for name, values in _lens(reused).items():
        np.testing.assert_array_equal(values, _lens(again)[name], err_msg=name)
    np.testing.assert_array_equal(reused.lens_top_ids[:, -1], reused.top_ids[:, 0])
    np.testing.assert_allclose(reused.lens_final_prob[:, -1], reused.top_probs[:, 0], rtol=1e-5)


def test_where_rows_are_not_invariant_the_lens_goes_item_by_item(tiny_llama, monkeypatch):
    handle = load_model(str(tiny_llama))
    head = handle.model.get_output_embeddings()
    monkeypatch.setattr(tracing, "_LENS_CHECKED", {})
    monkeypatch.setattr(tracing, "rows_are_batch_invariant", lambda: False)
    assert not tracing.lens_batched(head)
    monkeypatch.setattr(tracing, "_LENS_CHECKED", {})
    monkeypatch.setattr(tracing, "rows_are_batch_invariant", lambda: True)
    monkeypatch.setattr(tracing, "exp_sums_keep_rows", lambda: False)
    assert not tracing.lens_batched(head)
    alone = []  # the lens's products: 2-D inputs (the final logits' is (item, 1, d_model))
    hook = head.register_forward_pre_hook(lambda module, args: alone.append(args[0].shape) if args[0].ndim == 2 else None)
    try:
        t = trace(handle, _items(8), batch_size=8)
    finally:
        hook.remove()
    assert alone == [(handle.card.n_layers + 1, handle.card.d_model)] * 8  # one product per item, every layer
    assert t.lens_top_ids.shape == (8, handle.card.n_layers + 1)


def test_a_float32_matrix_on_the_cpu_only(tiny_llama):
    handle = load_model(str(tiny_llama))
    head = handle.model.get_output_embeddings()
    assert tracing.lens_batched(head)
    half = torch.nn.Linear(4, 4, bias=False).to(torch.bfloat16)
    assert not tracing.lens_batched(half)


def test_the_trace_version_keys_the_cache(tiny_llama, monkeypatch):
    """Traces of another trace version (here: the lens computed item by item) are not read back."""
    import bench.model.load as load

    handle = load_model(str(tiny_llama))
    here = handle.cache_name
    assert TRACE_VERSION >= 2
    monkeypatch.setattr(load, "TRACE_VERSION", TRACE_VERSION - 1)
    assert handle.cache_name != here and handle.cache_name.startswith(handle.fingerprint + "-")


@pytest.mark.parametrize("kind", ["tiny_llama", "tiny_llama_32k"])
def test_the_chunk_size_does_not_move_a_bit(kind, request, monkeypatch):
    """Rows pooled in products of MIN_ROWS rows, or all in one: the same bits."""
    handle = _handle(kind, request)
    items = _items()
    rows = []
    unembed = tracing.unembed_rows
    monkeypatch.setattr(tracing, "unembed_rows", lambda head, x: rows.append(x.shape[0]) or unembed(head, x))
    monkeypatch.setattr(tracing, "LENS_CHUNK_BYTES", 1)
    small = trace(handle, items, batch_size=8)
    assert max(rows) == MIN_ROWS
    monkeypatch.setattr(tracing, "LENS_CHUNK_BYTES", 2**40)
    rows.clear()
    whole = trace(handle, items, batch_size=8)
    assert rows == [len(items) * handle.card.n_layers]  # one product for the whole call
    for name, values in _lens(small).items():
        np.testing.assert_array_equal(values, _lens(whole)[name], err_msg=name)


def test_lens_reduce_against_float64_and_row_by_row():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 50_257, generator=generator) * 5  # an odd vocabulary
    logits[3, 17] = logits[3, 90] = 40.0  # a tie: the first index wins
    final_top = torch.randint(0, logits.shape[1], (9,), generator=generator)
    final_top[0] = logits[0].argmax()
    top, prob = tracing.lens_reduce(logits.clone(), final_top)
    expected = torch.softmax(logits.double(), dim=-1).gather(-1, final_top[:, None])[:, 0]
    np.testing.assert_array_equal(top.numpy(), logits.argmax(-1).numpy())
    assert top[3] == 17
    np.testing.assert_allclose(prob.numpy(), expected.numpy(), rtol=1e-5)
    for start, n in ((0, 4), (4, 5), (2, 4)):  # any MIN_ROWS or more rows: the same bits
        part_top, part_prob = tracing.lens_reduce(logits[start:start + n].clone(), final_top[start:start + n])
        assert torch.equal(part_top, top[start:start + n]) and torch.equal(part_prob, prob[start:start + n])


def test_exp_and_sum_keep_rows_here():
    """What the pooled lens's reductions rest on, as `bench.model.load`'s check does for products."""
    assert tracing.exp_sums_keep_rows()
