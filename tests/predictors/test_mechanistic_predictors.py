"""The mechanistic predictors on constructed cases: scripted internals (`FakeMechanistic`) in which
the circuit each one measures is planted, so its measurement and its extrapolation can be checked,
and families where it has nothing to read say so (`NotApplicable`)."""
import numpy as np
import pytest

from predictors import NotApplicable, Observation
from predictors.mechanistic import (INSIDE_RANGE, PAST_RANGE, RAMP, CarriedState, HopResolution, LookupHeads,
                                    PositionalRange)
from predictors.testing import FakeCard, FakeMechanistic, FakeModel
from tasks import get_family

CARD = FakeCard(n_layers=4, d_model=32, n_heads=2, positional_encoding="learned")


def _base(family, n, correct=lambda item: True):
    fam = get_family(family)
    return [Observation(i, i.target, correct(i)) for c in fam.base_cells for i in fam.generate(c.name, n, seed=0)]


def _variants(family, n=12):
    fam = get_family(family)
    return [i.sealed() for c in fam.variant_cells for i in fam.generate(c.name, n, seed=1)]


def _model(script):
    return FakeModel(CARD, mechanistic=FakeMechanistic(CARD, script))


def _noise(item, key, shape):
    seed = abs(hash((item.id, key))) % 2**32
    return np.random.default_rng(seed).normal(scale=0.1, size=shape)


def test_hop_resolution_measures_a_layer_per_hop_and_extrapolates_it():
    def script(item, key):  # the answer's digit written into the last state from layer `hops - 1` on
        if not key.startswith("resid_post."):
            return None
        layer = int(key.split(".")[1])
        x = _noise(item, key, (len(item.prompt) + 1, CARD.d_model))
        if layer + 1 >= item.axes["hops"]:
            x[-1, int(item.target)] += 5.0
        return x

    model = _model(script)
    p = HopResolution().fit(model, _base("multihop", 40))
    fit = p.families_["multihop"]
    assert fit["layers"] == {1: 1.0, 2: 2.0, 3: 3.0} and fit["slope"] == pytest.approx(1.0)
    items = _variants("multihop")
    scores = p.predict(model, items)
    deep = np.mean([s for s, i in zip(scores, items) if i.axes["hops"] >= 8])
    shallow = np.mean([s for s, i in zip(scores, items) if i.axes["hops"] == 2])
    assert deep > 0.99 and shallow < 0.2  # 8 hops need 8 of 4 layers; 2 hops fit
    assert any("1.00 layers per step" in n for n in p.notes_)


def test_lookup_heads_find_the_planted_head_and_its_dilution():
    def script(item, key):  # head 0 of layer 1 attends from the query to the value, less as prompts grow
        if not key.startswith("pattern."):
            return None
        layer = int(key.split(".")[1])
        n = len(item.prompt) + 1
        pattern = np.tril(np.ones((CARD.n_heads, n, n)))
        pattern /= pattern.sum(-1, keepdims=True)
        if layer == 1:
            value = 1 + item.prompt.rfind(item.target)
            share = min(0.95, 8.0 / n)
            pattern[0, -1] = (1 - share) / (n - 1)
            pattern[0, -1, value] = share
        return pattern

    model = _model(script)
    p = LookupHeads().fit(model, _base("recall", 24))
    fit = p.families_["recall"]
    assert fit["heads"][0] == (1, 0) and fit["slope"] < -0.5
    items = [i for i in _variants("recall") if not i.axes["rebound"]]
    scores = p.predict(model, items)
    by_pairs = {k: np.mean([s for s, i in zip(scores, items) if i.axes["pairs"] == k]) for k in (6, 8, 12)}
    assert by_pairs[6] < by_pairs[8] < by_pairs[12]


def test_positional_range_is_a_step_at_the_positions_used():
    model = FakeModel(CARD)  # learned positions: no reach past what the base prompts used
    calibration = _base("addition", 20)
    p = PositionalRange().fit(model, calibration)
    longest = p.families_["addition"]["longest"]
    assert longest == max(len(o.item.prompt) for o in calibration)  # one token per character here
    items = _variants("addition")
    scores = p.predict(model, items)
    steps = {}
    for item, score in zip(items, scores):
        if len(item.prompt) <= longest:
            assert score == pytest.approx(0.01)  # the base failure rate (none failed), clipped
        else:  # a step, and within it a ramp of less than RAMP in how far past the base it reaches
            step = INSIDE_RANGE if score < PAST_RANGE else PAST_RANGE
            assert step <= score < step + RAMP
            steps.setdefault(step, []).append((len(item.prompt), score))
    assert set(steps) == {PAST_RANGE} or set(steps) == {INSIDE_RANGE, PAST_RANGE}
    for pairs in steps.values():  # longer past the base: higher within the step
        assert all(s1 <= s2 for (n1, s1), (n2, s2) in zip(sorted(pairs), sorted(pairs)[1:]) if n1 < n2)


def test_carried_state_holds_the_carries_it_decodes():
    def script(item, key):  # the first two carry bits written into the state at '=', the third not
        if not key.startswith("resid_post."):
            return None
        x = _noise(item, key, (len(item.prompt) + 1, CARD.d_model))
        carries = list(item.meta["carries"]) + [0, 0, 0]
        x[-1, 0] += 4.0 * carries[0]
        x[-1, 1] += 4.0 * carries[1]
        return x

    model = _model(script)
    p = CarriedState().fit(model, _base("addition", 60))
    assert p.families_["addition"]["held"] == 2
    items = _variants("addition")
    scores = p.predict(model, items)
    long_chain = [s for s, i in zip(scores, items) if i.axes["carry"] >= 3]
    short_chain = [s for s, i in zip(scores, items) if i.axes["carry"] <= 1]
    assert min(long_chain) > 0.5 > max(short_chain)


@pytest.mark.parametrize("cls, family", [(HopResolution, "parity"), (LookupHeads, "parity"),
                                         (CarriedState, "multihop")])
def test_nothing_to_read_is_not_applicable(cls, family):
    with pytest.raises(NotApplicable):
        cls().fit(FakeModel(CARD), _base(family, 12))
