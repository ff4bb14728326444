"""The teacher-forced fast path must agree item for item with plain greedy generation."""
import pytest

from bench.model.evaluate import _decide, evaluate
from bench.model.load import load_model
from tasks import family_names, get_family


def _items(families, n=6):
    return [i for name in families for c in get_family(name).cells for i in get_family(name).generate(c.name, n, seed=2)]


@pytest.mark.parametrize("which", ["default", "tiny_gpt2", "tiny_llama"])
def test_fast_path_equals_generation(which, request):
    handle = load_model("default" if which == "default" else str(request.getfixturevalue(which)))
    families = ["addition"] if which == "default" else ["addition", "multihop", "compose", "parity"]  # fit 64 positions
    items = _items(families, n=12 if which == "default" else 3)
    stats = {}
    fast = evaluate(handle, items, batch_size=7, stats=stats)
    slow = evaluate(handle, items, batch_size=16, fast=False)
    assert [o.correct for o in fast] == [o.correct for o in slow]
    for f, s in zip(fast, slow):
        if f.complete:
            assert f.output == s.output
        else:
            assert s.output.startswith(f.output.split("\n")[0])  # the decided prefix of the real answer
    assert stats["teacher_forced"] > 0
    if which == "default":
        assert 0 < sum(o.correct for o in fast) < len(items)


class _Tok:
    """Each id is one character; 0 is the stop token."""

    def decode(self, ids, skip_special_tokens=False):
        return "".join({1: "1", 2: "6", 3: "8", 4: " ", 5: "x", 6: "\n", 7: "68"}[i] for i in ids)


class _Handle:
    tokenizer = _Tok()
    stop_token_ids = [0]


@pytest.mark.parametrize("argmax, expected", [
    ([1, 2, 3, 0], (True, "168", True)),    # every token right, then stop
    ([1, 5, 3, 0], (False, "1x", False)),   # a wrong character: decided, the rest unknown
    ([1, 2, 0, 0], (False, "16", True)),    # stopped early: the output is known
    ([1, 2, 3, 5], (False, "168x", False)), # did not stop, wrote a character
    ([1, 2, 3, 4], None),                   # a trailing space might still strip away: generate
    ([4, 2, 3, 0], None),                   # a leading space might strip away: generate
    ([1, 7, 3, 0], None),                   # a merged token "68" may still spell the target: generate
    ([1, 6, 3, 0], (False, "1", True)),     # a newline ends the answer at "1"
])
def test_decide(argmax, expected):
    assert _decide(_Handle(), "168", [1, 2, 3], argmax, [True] * 4) == expected


def test_a_near_tie_is_not_trusted():
    assert _decide(_Handle(), "168", [1, 2, 3], [1, 2, 3, 0], [True, False, True, True]) is None
