"""Every user mistake: one line on stderr saying what is wrong and what to do, exit 2, no traceback."""
import json
import shutil

import pytest
import torch

from bench.cli import main
from bench.model.load import load_model
from tests.conftest import save_tiny


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_gpt2):
    root = tmp_path_factory.mktemp("bad")
    (root / "a_file").write_text("x")
    (root / "no_config").mkdir()
    pickled = root / "pickled"
    handle = load_model(str(tiny_gpt2))
    pickled.mkdir()
    shutil.copy(tiny_gpt2 / "config.json", pickled)
    handle.tokenizer.save_pretrained(pickled)
    torch.save(handle.model.state_dict(), pickled / "pytorch_model.bin")
    remote = root / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "custom_x", "auto_map": {"AutoConfig": "c.C"}}))
    (remote / "model.safetensors").write_bytes(b"")
    (root / "empty.jsonl").write_text("")
    (root / "broken.jsonl").write_text('{"prompt": "x", "cell": "c", "split": "base"}\n')
    (root / "corrupt.json").write_text("{oops")
    good = {"provenance": {"seed": 0}, "cells": [{"family": "addition", "cell": "digits=4", "n": 5}],
            "predictors": {}}
    (root / "good.json").write_text(json.dumps(good))
    (root / "other.json").write_text(json.dumps(good | {"provenance": {"seed": 1}}))
    (root / "plugin_error.py").write_text("raise ImportError('missing dependency foo')\n")
    run_dir = root / "notarun"
    run_dir.mkdir()
    from bench.model.load import DEFAULT_MODEL_PATH

    no_history = root / "no_history"  # the default model without the checkpoints it ships with
    no_history.mkdir()
    for f in DEFAULT_MODEL_PATH.iterdir():
        if f.is_file():
            (no_history / f.name).write_bytes(f.read_bytes())
    return root


CASES = [
    ("unknown model name, no hub", ["run", "--model", "nobody/no-such-model"], "not in the local HF cache"),
    ("path that does not exist", ["run", "--model", "./no/such/dir"], "no model at"),
    ("model path is a file", ["run", "--model", "{root}/a_file"], "is a file"),
    ("folder without config.json", ["run", "--model", "{root}/no_config"], "no config.json"),
    ("pickle weights without opt-in", ["run", "--model", "{root}/pickled"], "--allow-pickle"),
    ("remote code without opt-in", ["run", "--model", "{root}/remote"], "--trust-remote-code"),
    ("unknown task family", ["run", "--tasks", "algebra"], "unknown task family"),
    ("unknown cell", ["tasks", "show", "addition", "--cell", "digits=99"], "has no cell"),
    ("unknown axis", ["tasks", "show", "addition", "--axis", "colour"], "has no axis"),
    ("n is zero", ["run", "--n", "0"], "positive"),
    ("n is negative in show", ["tasks", "show", "addition", "-n", "-3"], "positive"),
    ("empty task file", ["run", "--tasks", "{root}/empty.jsonl"], "has no items"),
    ("malformed task file", ["run", "--tasks", "{root}/broken.jsonl"], "line 1: field 'target' is missing"),
    ("unknown predictor", ["run", "--predictors", "oracle"], "unknown predictor"),
    ("plugin import error", ["run", "--predictors", "{root}/plugin_error.py:P"], "missing dependency foo"),
    ("plugin module missing", ["run", "--predictors", "no_such_pkg.mod:P"], "cannot import"),
    ("unknown protocol", ["run", "--protocol", "leave-one-out"], "unknown protocol"),
    ("unknown target", ["run", "--target", "partial"], "unknown target"),
    ("output folder is a file", ["run", "--out", "{root}/a_file"], "is a file"),
    ("batch size zero", ["run", "--batch-size", "0"], "--batch-size"),
    ("batch size not a number", ["run", "--batch-size", "lots"], "positive number or auto"),
    ("private seed file missing", ["run", "--private-seed-file", "{root}/no_secret"], "cannot read --private-seed-file"),
    ("private seed too short", ["run", "--private-seed-file", "{root}/a_file"], "at least 16"),
    ("negative shots", ["run", "--shots", "-1"], "--shots"),
    ("unknown dtype", ["run", "--dtype", "int3"], "invalid choice"),
    ("unknown device", ["run", "--model", "default", "--device", "tpu:9", "--n", "2"], "device"),
    ("compare mismatched suites", ["compare", "{root}/other.json", "--baseline", "{root}/good.json"], "different suites"),
    ("compare corrupted results", ["compare", "{root}/corrupt.json", "--baseline", "{root}/good.json"], "corrupted"),
    ("bad tolerance", ["compare", "{root}/good.json", "--baseline", "{root}/good.json", "--max-drop", "auroc"],
     "--max-drop"),
    ("verify a folder that is not a run", ["verify", "{root}/notarun"], "not a finished brittlebench run"),
    ("verify a missing folder", ["verify", "{root}/nowhere"], "no run folder"),
    ("validate a non-submission", ["leaderboard", "validate", "{root}/notarun"], "not a finished brittlebench run"),
    ("unknown zoo preset", ["zoo", "train", "--preset", "gigantic", "--out", "{root}/z"], "unknown zoo preset"),
    ("resume a folder that holds no run", ["run", "--resume", "--out", "{root}"], "nothing to resume"),
    ("checkpoints folder missing", ["run", "--checkpoints", "{root}/nowhere"], "--checkpoints"),
    ("two histories named", ["run", "--checkpoints", "{root}/no_config", "--revisions", "a,b"], "pass one of them"),
    ("checkpoints folder without one", ["run", "--checkpoints", "{root}/no_config", "--predictors", "emergence_time",
                                        "--n", "2"], "holds no checkpoint"),
    ("each checkpoint of a model without any", ["run", "--model", "{root}/no_history", "--at-each-checkpoint", "--n", "2"],
     "has no checkpoints"),
    ("unknown command", ["frobnicate"], "invalid choice"),
    ("unknown export format", ["tasks", "export", "--format", "csv", "--out", "{root}/x"], "invalid choice"),
]


@pytest.mark.parametrize("case, argv, message", CASES, ids=[c[0] for c in CASES])
def test_user_mistake(case, argv, message, places, capsys):
    argv = [a.replace("{root}", str(places)) for a in argv]
    if argv[0] == "run" and "--out" not in argv:
        argv += ["--out", str(places / "out" / case.replace(" ", "_"))]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    assert err.startswith("brittlebench: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in err


def test_at_least_twenty_cases():
    assert len(CASES) >= 20
