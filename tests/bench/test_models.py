import json

import pytest
import torch

from bench.errors import UserError
from bench.model.load import ModelLoadError, ModelSpec, load_model
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
    assert handle.card.model_type == "llama" and handle.card.positional_encoding == "rotary"
    assert handle.tokenizer.padding_side == "left"


@pytest.mark.parametrize("name, message", [
    ("./no/such/folder", "no model at ./no/such/folder"),
    ("not a valid name!", "no model at"),
    ("EleutherAI/pythia-160m", "not in the local HF cache"),
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


def test_model_needing_remote_code_is_refused_without_the_flag(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "brittle_custom", "auto_map": {
        "AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XModel"}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="--trust-remote-code"):
        load_model(ModelSpec(str(tmp_path)))


def test_folder_without_tokenizer_says_which_part_failed(tmp_path, tiny_gpt2):
    import shutil

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_gpt2 / name, tmp_path / name)
    with pytest.raises(ModelLoadError, match="cannot load the tokenizer"):
        load_model(ModelSpec(str(tmp_path)))


def test_unknown_device_is_a_user_error(tiny_gpt2):
    with pytest.raises(ModelLoadError, match="device"):
        load_model(ModelSpec(str(tiny_gpt2), device="cuda:7"))


def test_a_device_map_changes_no_card_trace_or_outcome(tiny_llama, tmp_path, capsys):
    """--device-map auto (accelerate; a model larger than one GPU): inputs go to the embedding's
    device, and on a machine without accelerators everything lands on the CPU, so a run gives the
    outcomes and predictions (and so traces) of the model loaded without it."""
    from bench.cli import main

    mapped = load_model(ModelSpec(str(tiny_llama), device_map="auto"))
    plain = load_model(ModelSpec(str(tiny_llama)))
    assert mapped.device == mapped.model.get_input_embeddings().weight.device
    assert mapped.device.type == "cpu" and mapped.card == plain.card and mapped.fingerprint == plain.fingerprint
    argv = ["run", "--model", str(tiny_llama), "--tasks", "addition", "--n", "2", "--shots", "0", "--no-cache",
            "--predictors", "random,confidence,entropy,prompt_length"]
    assert main(argv + ["--out", str(tmp_path / "plain")]) == 0
    assert main(argv + ["--device-map", "auto", "--out", str(tmp_path / "mapped")]) == 0
    capsys.readouterr()
    for name in ("items/variants.jsonl", "predictions.jsonl", "outcomes.jsonl"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "mapped" / name).read_bytes(), name
    identity = json.loads((tmp_path / "mapped" / "run.json").read_text())["identity"]
    assert identity["model"]["device_map"] == "auto"


@pytest.mark.parametrize("spec, message", [(dict(device_map="everywhere"), "unknown device map"),
                                           (dict(device_map="auto", device="cuda"), "pass one of them")])
def test_device_map_mistakes_are_user_errors(tiny_gpt2, spec, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(ModelSpec(str(tiny_gpt2), **spec))
