"""One prompt pass: the trace keeps what evaluation needs, evaluation runs only the answer."""
import numpy as np
import pytest

from bench.model.continuation import Continuations
from bench.model.evaluate import evaluate
from bench.model.load import load_model
from bench.model.trace import TracedModel, trace
from tasks import get_family
from tasks.render import few_shot


def _items(kind):
    if kind == "zoo":  # zero-shot, no shared prefix
        return [i for name in ("addition", "multihop") for c in get_family(name).cells[:4]
                for i in get_family(name).generate(c.name, 4, seed=3)]
    return [item for name in ("copy", "lookup", "twohop") for c in get_family(name).cells[:3]
            for item in few_shot(get_family(name).generate(c.name, 3, 0), get_family(name), 3, 0)]


@pytest.mark.parametrize("model, kind", [("default", "zoo"), ("tiny_gguf", "pretrained"), ("tiny_gpt2", "zoo")])
def test_evaluation_from_the_kept_prompt_pass_equals_the_full_pass(model, kind, request):
    handle = load_model("default" if model == "default" else str(request.getfixturevalue(model)))
    items = _items(kind)
    view = TracedModel(handle, batch_size=5)
    kept = view.keep_continuations([i.id for i in items])
    view.trace([i.sealed() for i in items])
    assert len(kept) == len(items) and kept.used > 0
    stats = {}
    continued = evaluate(handle, items, batch_size=7, continuations=kept, stats=stats)
    full = evaluate(handle, items, batch_size=16)
    generated = evaluate(handle, items, batch_size=16, fast=False)
    assert kept.evaluated > 0
    assert [o.correct for o in continued] == [o.correct for o in full] == [o.correct for o in generated]
    assert [o.output for o in continued] == [o.output for o in full]
    if model == "default":
        assert 0 < sum(o.correct for o in continued) < len(items)  # both outcomes occur: the test can fail


def test_keeping_the_pass_leaves_the_trace_bit_identical(tiny_gguf):
    handle = load_model(str(tiny_gguf))
    sealed = [i.sealed() for i in _items("pretrained")]
    plain = trace(handle, sealed, batch_size=4)
    kept = Continuations([s.id for s in sealed[::2]], budget=1 << 30, margin=1e-3)
    with_keep = trace(handle, sealed, batch_size=4, keep=kept)
    for site in ("hidden", "top_ids", "top_probs", "entropy", "lens_final_prob"):
        assert np.array_equal(getattr(plain, site), getattr(with_keep, site)), site
    assert sorted(i for k in kept.kept for i in k.item_ids) == sorted(s.id for s in sealed[::2])  # only those wanted


def test_a_budget_too_small_keeps_nothing_and_evaluation_still_decides(tiny_gguf):
    handle = load_model(str(tiny_gguf))
    items = _items("pretrained")
    view = TracedModel(handle, batch_size=4)
    kept = view.keep_continuations([i.id for i in items], budget=0)
    view.trace([i.sealed() for i in items])
    assert len(kept) == 0
    assert [o.correct for o in evaluate(handle, items, continuations=kept)] == [o.correct for o in evaluate(handle, items)]
    assert kept.evaluated == 0


def test_chat_prompts_share_their_examples_and_trace_as_whole_passes(tiny_gguf, monkeypatch):
    from bench.model import trace as traces
    from bench.model.prefix import Prefixes, turn_boundary
    from bench.protocol.stages import chat_template
    from tasks.render import chat

    handle = load_model(str(tiny_gguf))
    apply = chat_template(handle)
    items = [item for name in ("copy", "lookup") for c in get_family(name).cells[:3]
             for item in chat(get_family(name).generate(c.name, 3, 0), get_family(name), 3, apply, 0)]
    boundary = turn_boundary(handle.tokenizer)
    assert boundary and all(item.prompt.count(boundary) == 3 for item in items)  # after each of the 3 answers
    prefixes = Prefixes(handle, [i.prompt for i in items])
    assert all(prefixes.prefix) and sum(len(g) >= 5 for g in prefixes.groups().values()) == 2  # one per family
    sealed = [i.sealed() for i in items]
    shared = traces.trace(handle, sealed, batch_size=4)
    monkeypatch.setattr(traces.Prefixes, "groups", lambda self: {"": list(range(len(self.ids)))})
    whole = traces.trace(handle, sealed, batch_size=4)
    assert np.allclose(shared.hidden, whole.hidden, atol=1e-4) and np.array_equal(shared.top_ids[:, 0], whole.top_ids[:, 0])
    monkeypatch.undo()
    view = TracedModel(handle, batch_size=3)
    kept = view.keep_continuations([i.id for i in items])
    view.trace(sealed)
    assert [o.correct for o in evaluate(handle, items, continuations=kept)] == \
        [o.correct for o in evaluate(handle, items, fast=False)]
    assert kept.evaluated == len(items)
