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
    kept = Continuations([s.id for s in sealed[::2]])
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
