import pytest
import torch

from bench.errors import UserError
from bench.models import ModelLoadError, ModelSpec, load_model
from tests.conftest import save_tiny


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_load_by_path_and_round_trip_gives_same_logits(kind, tmp_path):
    folder = save_tiny(kind, tmp_path / "a", seed=1)
    handle = load_model(ModelSpec(str(folder)))
    assert not handle.model.training  # dropout off
    ids = handle.tokenizer(["12+34="], return_tensors="pt")
    before = handle.model(**ids).logits
    handle.model.save_pretrained(tmp_path / "b")
    handle.tokenizer.save_pretrained(tmp_path / "b")
    again = load_model(ModelSpec(str(tmp_path / "b")))
    assert torch.equal(before, again.model(**ids).logits)
    assert again.fingerprint == handle.fingerprint
    assert handle.card.model_type == kind
    assert handle.card.n_layers == 2
    assert handle.card.positional_encoding == {"gpt2": "learned", "llama": "rotary"}[kind]
    assert handle.card.tokenizer["single_digit_tokens"] is True


def test_fingerprint_changes_with_weights(tmp_path):
    a = load_model(ModelSpec(str(save_tiny("gpt2", tmp_path / "a", seed=1))))
    b = load_model(ModelSpec(str(save_tiny("gpt2", tmp_path / "b", seed=2))))
    assert a.fingerprint != b.fingerprint


def test_bundled_default_model_loads():
    handle = load_model("default")
    assert handle.card.model_type == "gpt2"
    assert handle.tokenizer.padding_side == "left"


@pytest.mark.parametrize("name, message", [
    ("./no/such/folder", "no model at ./no/such/folder"),
    ("not a valid name!", "no model at"),
    ("EleutherAI/pythia-160m", "hub cannot be reached"),
])
def test_missing_models_give_one_line_errors(name, message):
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(ModelSpec(name))
    assert "\n" not in str(info.value)


def test_folder_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load_model(ModelSpec(str(tmp_path)))


def test_pickle_only_weights_refused_unless_allowed(tmp_path, tiny_gpt2):
    handle = load_model(ModelSpec(str(tiny_gpt2)))
    handle.model.save_pretrained(tmp_path, safe_serialization=False)
    handle.tokenizer.save_pretrained(tmp_path)
    if any(tmp_path.glob("*.safetensors")):  # transformers 5 may always write safetensors
        for f in tmp_path.glob("*.safetensors"):
            f.unlink()
        torch.save(handle.model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load_model(ModelSpec(str(tmp_path)))
    allowed = load_model(ModelSpec(str(tmp_path), allow_pickle=True))
    assert allowed.fingerprint == handle.fingerprint
