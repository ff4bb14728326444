import torch

from bench.model.evaluate import answer_budget, decode_answer, evaluate
from bench.model.load import ModelSpec, load_model
from bench.model.trace import trace
from tasks import get_family


def plain_greedy(handle, prompt, budget):
    """One item at a time, no cache, no padding: the reference greedy loop."""
    ids = handle.tokenizer(prompt, return_tensors="pt")["input_ids"]
    new = []
    for _ in range(budget):
        nxt = int(handle.model(input_ids=ids).logits[0, -1].argmax())
        new.append(nxt)
        if nxt in handle.stop_token_ids:
            break
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return decode_answer(handle, new)


def test_batched_evaluation_equals_plain_greedy_loop(tiny_gpt2):
    handle = load_model(ModelSpec(str(tiny_gpt2)))
    family = get_family("addition")
    items = [i for c in ("digits=1", "digits=3", "digits=4") for i in family.generate(c, 8, seed=0)]
    outcomes = evaluate(handle, items, batch_size=5, fast=False)  # the generation path itself
    for item, outcome in zip(items, outcomes):
        expected = plain_greedy(handle, item.prompt, answer_budget(handle, item.target))
        assert outcome.output == expected
        assert outcome.correct == (expected.strip() == item.target)


def test_default_model_solves_base_items_and_fails_on_harder_variants():
    handle = load_model("default")
    family = get_family("addition")
    base = evaluate(handle, family.generate("digits=2", 50, seed=3))
    longer = evaluate(handle, family.generate("digits=4", 50, seed=3))
    assert sum(o.correct for o in base) / len(base) >= 0.9
    assert sum(o.correct for o in longer) / len(longer) <= 0.5


def test_trace_matches_unpadded_forward_and_batch_size(tiny_llama):
    handle = load_model(ModelSpec(str(tiny_llama)))
    items = [i.sealed() for c in ("digits=1", "digits=4") for i in get_family("addition").generate(c, 6, seed=0)]
    small, big = trace(handle, items, batch_size=1), trace(handle, items, batch_size=12)
    assert small.hidden.shape == (12, 3, 32)  # (item, layer + 1, d_model)
    assert torch.allclose(torch.from_numpy(small.hidden), torch.from_numpy(big.hidden), atol=1e-5)
    ids = handle.tokenizer(items[0].prompt, return_tensors="pt")
    probs = handle.model(**ids).logits[0, -1].softmax(-1)
    assert abs(float(probs.max()) - float(big.top_probs[0, 0])) < 1e-5


def test_special_tokens_are_not_stripped_from_answers():
    handle = load_model("default")
    tok = handle.tokenizer
    ids = tok("12", add_special_tokens=False)["input_ids"] + [tok.pad_token_id] + tok("3", add_special_tokens=False)["input_ids"]
    assert decode_answer(handle, ids) == "12<pad>3"
    assert decode_answer(handle, ids[:2] + [tok.eos_token_id] + ids) == "12"


def test_auto_batch_size_is_a_power_of_two_that_shrinks_with_longer_inputs(tiny_gpt2, monkeypatch):
    import bench.model.evaluate as be
    from bench.model.evaluate import auto_batch_size

    handle = load_model(str(tiny_gpt2))
    roomy = auto_batch_size(handle, 32)
    assert roomy == 64  # the CPU cap, for a tiny model
    monkeypatch.setattr(be, "_available_ram", lambda: 64 * 2**20)  # 64 MiB free
    tight = auto_batch_size(handle, 2048)
    assert 1 <= tight < roomy and tight & (tight - 1) == 0


def test_logit_batches_keep_each_pass_under_the_logits_budget(monkeypatch):
    import bench.model.evaluate as evaluate_module
    from bench.model.evaluate import logit_batches

    monkeypatch.setattr(evaluate_module, "LOGITS_BYTES", 4 * 1000 * 10)  # 10 answer positions of a 1000 vocabulary
    widths = [1, 2, 2, 5, 5, 6, 11]
    batches = list(logit_batches(list(range(7)), widths, batch_size=4, vocab=1000))
    assert [i for b in batches for i in b] == list(range(7))  # in order, each once
    for b in batches:
        assert len(b) <= 4 and (len(b) == 1 or len(b) * max(widths[i] for i in b) <= 10)
    assert batches == [[0, 1, 2], [3, 4], [5], [6]]  # a row wider than the budget still goes, alone


def test_a_small_logits_budget_gives_the_same_outcomes(monkeypatch):
    import bench.model.evaluate as evaluate_module

    handle = load_model("default")
    family = get_family("addition")
    items = [i for c in ("digits=1", "digits=3", "digits=4") for i in family.generate(c, 12, seed=3)]
    whole = evaluate(handle, items, batch_size=16)
    monkeypatch.setattr(evaluate_module, "LOGITS_BYTES", 4 * handle.card.vocab_size * 8)  # 8 answer positions a pass
    assert evaluate(handle, items, batch_size=16) == whole


def test_logit_batches_keep_padding_under_half_a_pass():
    from bench.model.evaluate import logit_batches

    lengths = [400, 380, 210, 190, 60, 40, 30]  # longest first, as the teacher-forced pass orders them
    batches = list(logit_batches(list(range(7)), [1] * 7, batch_size=64, vocab=10, lengths=lengths))
    assert batches == [[0, 1, 2], [3], [4, 5, 6]]  # each at least half as long as its batch's first
