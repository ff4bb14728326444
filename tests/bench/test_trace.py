import numpy as np
import pytest
import torch

from bench.model.load import load_model
from bench.model.trace import TracedModel
from bench.model.trace import TraceCache, trace
from tasks import get_family


@pytest.fixture(scope="module")
def llama(tiny_llama):
    return load_model(str(tiny_llama))


def _items(n=24):
    cells = ("digits=1", "digits=3", "digits=4", "carry=3,short")
    return [i.sealed() for c in cells for i in get_family("addition").generate(c, n // len(cells), seed=0)]


def test_trace_is_bit_identical_at_batch_sizes_1_7_32_and_in_any_company(llama):
    items = _items()
    traces = [trace(llama, items, batch_size=b, attention=True) for b in (1, 7, 32)]
    alone = trace(llama, items[5:6], batch_size=1, attention=True)
    for other in traces[1:]:
        for name in traces[0].site_names():
            np.testing.assert_array_equal(getattr(traces[0], name), getattr(other, name), err_msg=name)
    np.testing.assert_array_equal(alone.hidden[0], traces[2].hidden[5])


def test_two_threads_where_row_blocks_stay_invariant_and_the_trace_unchanged(llama):
    """The pass takes every core where blocks of MIN_ROWS rows of the model's own products do not
    depend on the batch or the thread count (checked on its layers' shapes: some shapes keep them on
    two threads and some do not); the trace is the same as on one thread either way."""
    from bench.process import threads_keep_rows_invariant, torch_threads

    class Shifty(torch.nn.Linear):  # a product whose rows depend on the batch's size
        def forward(self, x):
            return super().forward(x) + (x.shape[0] % 7) * 1e-6

    assert not threads_keep_rows_invariant(torch.nn.Sequential(torch.nn.Linear(8, 8), Shifty(8, 8)))
    with torch_threads(1):
        assert threads_keep_rows_invariant(torch.nn.Sequential(torch.nn.Linear(8, 8)))
        one = trace(llama, _items(), batch_size=32, attention=True)
    with torch_threads(2):
        two = [trace(llama, _items(), batch_size=b, attention=True) for b in (1, 32)]
    for other in two:
        for name in one.site_names():
            np.testing.assert_array_equal(getattr(one, name), getattr(other, name), err_msg=name)


def test_attention_summaries_match_a_direct_eager_pass(llama):
    items = [get_family("addition").generate("digits=3", 1, seed=4)[0].sealed()]
    t = trace(llama, items + _items(8), batch_size=9, attention=True)  # padded batch
    ids = llama.tokenizer(items[0].prompt, return_tensors="pt")["input_ids"]
    llama.model.set_attn_implementation("eager")
    try:
        attn = llama.model(input_ids=ids, output_attentions=True).attentions
    finally:
        llama.model.set_attn_implementation("sdpa")
    tokens = ids[0].tolist()
    for layer, a in enumerate(attn):
        p = a[0, :, -1, :]  # (head, key)
        assert np.allclose(t.attn_prev[0, layer], p[:, -2].numpy(), atol=1e-5)
        assert np.allclose(t.attn_first[0, layer], p[:, 0].numpy(), atol=1e-5)
        entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)
        assert np.allclose(t.attn_entropy[0, layer], entropy.numpy(), atol=1e-4)
        targets = [j + 1 for j in range(len(tokens) - 2) if tokens[j] == tokens[-1]]
        assert np.allclose(t.attn_induction[0, layer], p[:, targets].sum(-1).numpy(), atol=1e-5)
    assert llama.model.config._attn_implementation == "sdpa"  # switched back for evaluation


def test_hidden_states_come_from_the_model_as_loaded(llama):
    items = _items(4)
    t = trace(llama, items, batch_size=4)
    ids = llama.tokenizer(items[0].prompt, return_tensors="pt")
    out = llama.model(**ids, output_hidden_states=True)
    expected = torch.stack([h[0, -1] for h in out.hidden_states]).numpy()
    np.testing.assert_allclose(t.hidden[0], expected, atol=1e-5)
    assert t.hidden.shape == (4, llama.card.n_layers + 1, llama.card.d_model)


def test_disk_cache_hit_avoids_recomputation(llama, tmp_path):
    items = _items(16)
    first = TracedModel(llama, cache=TraceCache(tmp_path, llama.fingerprint))
    a = first.trace(items)
    assert first.traced == 16
    second = TracedModel(llama, cache=TraceCache(tmp_path, llama.fingerprint))
    b = second.trace(items[::-1])
    assert second.traced == 0 and second.cache.hits == 16
    np.testing.assert_array_equal(a.hidden[::-1], b.hidden)
    assert b.item_ids == tuple(i.id for i in items[::-1])
    # A trace that needs attention does not take a cached trace without it.
    third = TracedModel(llama, attention=True, cache=TraceCache(tmp_path, llama.fingerprint))
    assert third.trace(items).has_attention and third.traced == 16


def test_traced_model_computes_each_item_once(llama):
    model = TracedModel(llama)
    items = _items(8)
    model.trace(items)
    model.trace(items[:3])
    assert model.traced == 8


def test_logit_lens_last_layer_agrees_with_the_output(llama):
    t = trace(llama, _items(8), batch_size=8)
    assert t.lens_top_ids.shape == (8, llama.card.n_layers + 1)
    np.testing.assert_array_equal(t.lens_top_ids[:, -1], t.top_ids[:, 0])
    np.testing.assert_allclose(t.lens_final_prob[:, -1], t.top_probs[:, 0], atol=1e-5)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "mistral", "qwen2", "gpt_neox", "opt"])
def test_attention_read_through_the_interface_matches_eager_for_each_architecture(kind, tmp_path, monkeypatch):
    """The probe reads the last query's weights from the layer's own query and key (no eager pass:
    it is made to fail here); they match eager attention's weights item by item, batched."""
    import bench.model.trace as bt
    from tests.bench.test_architecture import _save

    handle = load_model(str(_save(kind, tmp_path)))
    items = _items(12)

    def no_eager(model):
        raise AssertionError("fell back to eager attention")

    monkeypatch.setattr(bt, "eager_attention", no_eager)
    t = trace(handle, items, batch_size=32, attention=True)
    monkeypatch.undo()
    assert handle.model.config._attn_implementation == "sdpa"
    for row, item in enumerate(items):
        ids = handle.tokenizer(item.prompt, return_tensors="pt")["input_ids"]
        handle.model.set_attn_implementation("eager")
        try:
            with torch.inference_mode():
                attn = handle.model(input_ids=ids, output_attentions=True).attentions
        finally:
            handle.model.set_attn_implementation("sdpa")
        for layer, a in enumerate(attn):
            p = a[0, :, -1, :].float()
            np.testing.assert_allclose(t.attn_prev[row, layer], p[:, -2].numpy(), atol=1e-5)
            np.testing.assert_allclose(t.attn_first[row, layer], p[:, 0].numpy(), atol=1e-5)
            entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)
            np.testing.assert_allclose(t.attn_entropy[row, layer], entropy.numpy(), atol=1e-4)


def test_the_worker_tokenizes_as_the_run_does_even_after_padded_batches(llama):
    """The worker rebuilds the tokenizer from its JSON, which carries any padding that a
    batched call switched on: it must not pad (a real bug: every length came out equal)."""
    from bench.protocol.worker import WorkerView

    texts = ["1+2=", "123+456=", "walk twice and jump ="]
    trace(llama, _items(4), batch_size=4)  # a padded, batched call on the run's tokenizer
    view = WorkerView(llama.card, TracedModel(llama).tokenizer_json(), None)
    assert view.tokenize(texts) == TracedModel(llama).tokenize(texts)
    assert [len(t) for t in view.tokenize(texts)] == [4, 8, 21]


def test_traces_under_other_numerics_are_cached_apart(llama, monkeypatch):
    """A trace's last bits depend on MKL's branch: the cache folder names the numerics, not only the model."""
    from bench.model.load import ModelHandle

    here = llama.cache_name
    assert here.startswith(llama.fingerprint + "-") and "MKL_CBWR=" in llama.numerics
    other = ModelHandle(llama.spec, llama.model, llama.tokenizer, llama.source)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert other.fingerprint == llama.fingerprint and other.cache_name != here
