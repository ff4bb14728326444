"""Every built-in conforms, and each one's score moves the way its hypothesis says on a
constructed case (a fake model with scripted internals; no torch model)."""
import re

import numpy as np
import pytest

from predictors import NotApplicable, Observation, load_predictor, registered
from predictors.testing import FakeCard, FakeModel, check_predictor, example_data
from tasks import get_family

BUILTINS = sorted(n for n, e in registered().items() if e.distribution == "brittlebench")


def test_at_least_ten_builtins():
    assert len(BUILTINS) >= 10


class ChunkedDigits(FakeModel):
    """A fake whose tokenizer writes a number three digits per token (123|456|7), as GPT-2's does."""

    def __init__(self):
        super().__init__(card=FakeCard(tokenizer={"number_pieces": ["123", "456", "7"], "digits_per_token": 2.333,
                                                  "single_digit_tokens": False, "vocab_size": 1101}))

    def tokenize(self, texts):
        return [re.findall(r"\d{1,3}|\D", text) for text in texts]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_conforms(name):
    model = ChunkedDigits() if name == "tokenization" else None  # one digit per token: not applicable
    assert check_predictor(type(load_predictor(name)), model) == []


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_documents_hypothesis(name):
    doc = type(load_predictor(name)).__doc__ or ""
    assert "Hypothesis" in doc or "hypothesis" in doc or name == "atc", name


def _base(n=30, fail=lambda item: False):
    family = get_family("addition")
    items = [i for c in family.base_cells for i in family.generate(c.name, n // 3, seed=0)]
    return [Observation(i, i.target, not fail(i)) for i in items]


def _sealed(cell, n=12, family="addition"):
    return [i.sealed() for i in get_family(family).generate(cell, n, seed=1)]


def _scores(name, model, calibration, items, **params):
    p = type(load_predictor(name))(**params)
    return p.fit(model, calibration).predict(model, items)


@pytest.mark.parametrize("name", ["mahalanobis", "knn_distance", "probe"])
def test_states_far_from_base_score_higher(name):
    far_ids = {i.id for i in _sealed("digits=4")}
    model = FakeModel(script=lambda item: {"hidden": np.random.default_rng(len(item.prompt)).normal(
        loc=6.0 if item.id in far_ids else 0.0, size=(5, 16)).astype(np.float32)})
    near, far = _sealed("carry=3"), _sealed("digits=4")
    scores = _scores(name, model, _base(), near + far)
    assert scores[len(near):].min() > scores[:len(near)].max()


def test_probe_learns_failure_written_in_the_states():
    fails = lambda item: "7" in item.prompt  # noqa: E731
    model = FakeModel(script=lambda item: {"hidden": np.full((5, 16), 3.0 if fails(item) else -3.0, np.float32)
                                           + np.random.default_rng(len(item.prompt)).normal(size=(5, 16)).astype(np.float32)})
    calibration = _base(60, fail=fails)
    items = _sealed("digits=4", 40)
    p = load_predictor("probe").fit(model, calibration)
    assert getattr(p, "fallback_", None) is None  # enough failures: a real probe
    scores = p.predict(model, items)
    with7 = np.array([fails(i) for i in items])
    assert scores[with7].min() > scores[~with7].max()


def _probability_script(low_ids):
    def script(item):
        p = 0.2 if item.id in low_ids else 0.95
        entropy = 2.0 if item.id in low_ids else 0.1
        return {"top_probs": np.array([p] + [0.0] * 7, np.float32), "entropy": np.float32(entropy)}
    return script


@pytest.mark.parametrize("name", ["confidence", "entropy", "atc"])
def test_unsure_outputs_score_higher(name):
    unsure = _sealed("carry=3")
    model = FakeModel(script=_probability_script({i.id for i in unsure}))
    sure = _sealed("digits=4")
    scores = _scores(name, model, _base(), sure + unsure)
    assert scores[len(sure):].min() > scores[:len(sure)].max()


def test_depth_budget_scores_longer_carry_chains_higher():
    model = FakeModel(card=FakeCard(n_layers=2))
    shallow, deep = _sealed("digits=4"), _sealed("carry=3")
    scores = _scores("depth_budget", model, _base(), shallow + deep)
    assert scores[len(shallow):].min() > scores[:len(shallow)].max()


def test_length_extrapolation_longer_prompts_and_learned_positions():
    short, long = _sealed("digits=1"), _sealed("digits=4")
    learned = _scores("length_extrapolation", FakeModel(), _base(), short + long)
    assert learned[len(short):].min() > learned[:len(short)].max()
    alibi = _scores("length_extrapolation", FakeModel(card=FakeCard(positional_encoding="alibi")), _base(), long)
    assert (learned[len(short):] >= alibi).all() and (learned[len(short):] > alibi + 0.1).any()


def test_tokenization_flags_numbers_split_in_unseen_ways():
    seen, unseen = _sealed("digits=3"), _sealed("digits=4")
    scores = _scores("tokenization", ChunkedDigits(), _base(), seen + unseen)
    assert scores[len(seen):].min() > scores[:len(seen)].max()


def test_tokenization_is_not_applicable_to_one_digit_per_token():
    with pytest.raises(NotApplicable, match="one digit per token"):
        _scores("tokenization", FakeModel(), _base(), _sealed("digits=4"))


def test_depth_budget_is_not_applicable_where_most_items_count_no_steps():
    deep, flat = _sealed("hops=8", family="multihop"), _sealed("length=12", family="parity") * 2
    assert len(_scores("depth_budget", FakeModel(), _base(), deep + _sealed("hops=1", family="multihop"))) == 24
    with pytest.raises(NotApplicable, match="12 of 36 items count composition steps"):
        _scores("depth_budget", FakeModel(), _base(), deep + flat)


@pytest.mark.parametrize("name", ["prompt_length", "surface_novelty"])
def test_text_baselines(name):
    near = [o.item.sealed() for o in _base(12)[:4]]
    far = _sealed("hops=8", family="multihop")
    scores = _scores(name, FakeModel(), _base(), near + far)
    assert scores[len(near):].min() > scores[:len(near)].max()


def test_logit_lens_late_settling_scores_higher():
    late = {i.id for i in _sealed("digits=4")}
    model = FakeModel(script=lambda item: {"lens_top_ids": np.array([1, 2, 3, 4, 9]) if item.id in late
                                           else np.array([1, 9, 9, 9, 9])})
    early_items, late_items = _sealed("carry=3"), _sealed("digits=4")
    scores = _scores("logit_lens_settling", model, _base(), early_items + late_items)
    assert scores[len(early_items):].min() > scores[:len(early_items)].max()


def test_attention_shift_flags_unusual_attention_entropy():
    shifted = {i.id for i in _sealed("digits=4")}
    model = FakeModel(script=lambda item: {"attn_entropy": np.full((4, 2), 3.0 if item.id in shifted else 1.0, np.float32)
                                           + np.random.default_rng(len(item.prompt)).normal(0, 0.05, (4, 2)).astype(np.float32)})
    usual, unusual = _sealed("carry=3"), _sealed("digits=4")
    scores = _scores("attention_shift", model, _base(), usual + unusual)
    assert scores[len(usual):].min() > scores[:len(usual)].max()


def test_fallbacks_are_noted_not_silent():
    calm, variants = example_data(all_correct=True)
    model = FakeModel()
    probe = load_predictor("probe").fit(model, calm)
    assert any("instead" in n for n in probe.notes_)
    assert len(set(np.round(probe.predict(model, variants), 6))) > 1  # not a constant
    atc = load_predictor("atc").fit(model, calm)
    assert any("no failures" in n for n in atc.notes_)


def test_representation_predictors_read_a_bounded_summary_of_wide_deep_models():
    from predictors.representation import MAX_DIM, MAX_LAYERS, bounded, candidate_layers

    assert candidate_layers(5) == [1, 2, 3, 4]  # a small model: every layer
    deep = candidate_layers(33)  # 32 blocks
    assert len(deep) == MAX_LAYERS and deep[-1] == 32 and deep[0] == 1
    wide = np.random.default_rng(0).standard_normal((20, 3 * MAX_DIM))
    projected = bounded(wide)
    assert projected.shape == (20, MAX_DIM) and np.array_equal(projected, bounded(wide))  # seeded, the same each call
    d = np.linalg.norm(wide[:1] - wide[1:], axis=1)
    ratio = np.linalg.norm(projected[:1] - projected[1:], axis=1) / d
    assert 0.7 < ratio.min() and ratio.max() < 1.3  # distances kept up to a small factor
    narrow = wide[:, :64]
    assert np.array_equal(bounded(narrow), narrow)  # a narrow model: its states as they are


def test_distances_far_beyond_the_base_region_do_not_saturate():
    from predictors.scaling import BaseRelative

    base = np.random.default_rng(1).uniform(1.0, 1.2, 200)
    far = np.array([50.0, 80.0, 200.0, 1e4])  # many base spreads away, as on a real model's variants
    linear, logged = BaseRelative().fit(base).transform(far), BaseRelative(distances=True).fit(base).transform(far)
    assert len(set(linear.tolist())) == 1  # every one rounds to 1.0: one tied value
    assert len(set(logged.tolist())) == len(far) and np.all(np.diff(logged) > 0)  # still ranked
