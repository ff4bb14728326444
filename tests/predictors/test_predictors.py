import numpy as np
import pytest

from bench.model.load import load_model
from bench.model.trace import TracedModel
from predictors import Predictor, PredictorError, load_predictor, registered
from predictors.baselines import RandomPredictor
from predictors.output import ConfidencePredictor
from tasks import get_family


def test_builtins_register_through_the_entry_point_group():
    entries = registered()
    assert entries["random"].distribution == "brittlebench"
    assert entries["confidence"].target == "predictors.output:ConfidencePredictor"


def test_params_and_clone():
    p = RandomPredictor(seed=5)
    assert p.get_params() == {"seed": 5}
    c = p.clone()
    assert c is not p and c.get_params() == {"seed": 5}
    assert ConfidencePredictor().get_params() == {}
    with pytest.raises(ValueError):
        p.set_params(nope=1)


def test_random_is_deterministic_and_order_free():
    items = [i.sealed() for i in get_family("addition").generate("digits=4", 30, seed=0)]
    a = RandomPredictor(seed=1).predict(None, items)
    assert np.array_equal(a[::-1], RandomPredictor(seed=1).predict(None, items[::-1]))
    assert not np.array_equal(a, RandomPredictor(seed=2).predict(None, items))
    assert ((a >= 0) & (a <= 1)).all()


def test_confidence_is_one_minus_the_top_probability(tiny_gpt2):
    import torch

    handle = load_model(str(tiny_gpt2))
    items = [i.sealed() for i in get_family("addition").generate("digits=2", 5, seed=0)]
    scores = ConfidencePredictor().fit(TracedModel(handle), []).predict(TracedModel(handle), items)
    for item, score in zip(items, scores):
        probs = handle.model(**handle.tokenizer(item.prompt, return_tensors="pt")).logits[0, -1].softmax(-1)
        assert score == pytest.approx(1 - float(probs.max()), abs=1e-5)


def test_load_by_module_and_by_file(tmp_path):
    assert isinstance(load_predictor("predictors.baselines:RandomPredictor"), RandomPredictor)
    plugin = tmp_path / "mine.py"
    plugin.write_text("from predictors import Predictor\nimport numpy as np\n"
                      "class Half(Predictor):\n    name = 'half'\n"
                      "    def predict(self, model, items):\n        return np.full(len(items), 0.5)\n")
    p = load_predictor(f"{plugin}:Half")
    assert isinstance(p, Predictor) and p.name == "half"


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown predictor"),
    ("no_such_module:X", "cannot import"),
    ("predictors.baselines:Nope", "cannot import"),
    ("tasks:Item", "not a brittlebench Predictor"),
])
def test_bad_predictor_names(name, message):
    with pytest.raises(PredictorError, match=message):
        load_predictor(name)
