"""The CI gate for model checkpoints: compare on observed brittleness, and the predict-only screen."""
import json
import shutil

import pytest

from bench.cli import main

RUN = ["--tasks", "addition,multihop,parity", "--n", "16", "--predictors", "random,prompt_length,length_extrapolation,"
       "knn_distance,confidence", "--no-cache"]
VOLATILE = {"created", "timings", "trace", "spec", "run_dir", "resumed", "evaluation", "scores_cached"}
FILES = ("items/base.jsonl", "items/variants.sealed.jsonl", "items/variants.jsonl", "predictions.jsonl",
         "predictions.sha256", "outcomes.jsonl")


def _stable(path):
    results = json.loads(path.read_text())
    out = {k: v for k, v in results.items() if k not in VOLATILE}
    for p in out["predictors"].values():
        p.pop("seconds", None)
        p.pop("cached", None)  # answers from the prediction cache: the same answers
    return out


@pytest.fixture(scope="module")
def forgetful(tmp_path_factory):
    """The default model after a short fine-tune on addition's base region alone: a later checkpoint that
    forgot the other families (the regression a CI gate exists to catch)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.model.load import DEFAULT_MODEL_PATH
    from tasks import get_family

    folder = tmp_path_factory.mktemp("forgetful")
    shutil.copytree(DEFAULT_MODEL_PATH, folder, dirs_exist_ok=True)
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    family = get_family("addition")
    texts = [i.prompt + i.target for c in family.base_cells for i in family.generate(c.name, 40, seed=9)]
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(40):
        batch = tok([t + tok.eos_token for t in texts[step * 8 % len(texts):][:8]], return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate") / "default"
    assert main(["run", "--out", str(out)] + RUN) == 0
    return out


def test_a_checkpoint_that_got_more_brittle_fails_the_gate_naming_its_cells(forgetful, default_run, tmp_path, capsys):
    worse = tmp_path / "forgetful"
    assert main(["run", "--model", str(forgetful), "--out", str(worse)] + RUN) == 0
    capsys.readouterr()
    assert main(["compare", str(worse), "--baseline", str(default_run), "--gate", "brittleness"]) == 1
    printed = capsys.readouterr().out
    regressed = [line for line in printed.splitlines() if line.startswith("REGRESSED")]
    assert regressed and "brittleness regressed" in printed
    assert any(" cell multihop/" in line or " cell parity/" in line for line in regressed)  # the cells, by name
    assert all("paired" in line for line in regressed)  # the same items: a paired interval
    rises = [float(line.split(": failure ")[1].split()[0]) for line in regressed]
    assert rises == sorted(rises, reverse=True)  # worst first
    # the other way round is an improvement, and a rerun of the same checkpoint passes
    assert main(["compare", str(default_run), "--baseline", str(worse), "--gate", "brittleness"]) == 0
    rerun = tmp_path / "rerun"
    assert main(["run", "--out", str(rerun)] + RUN) == 0
    capsys.readouterr()
    assert main(["compare", str(rerun), "--baseline", str(default_run)]) == 0
    assert "0 moved beyond tolerance" in capsys.readouterr().out


def test_noise_within_tolerance_or_interval_is_not_a_regression():
    from bench.scoring.compare import rise

    base = {f"i{k}": float(k % 4 == 0) for k in range(40)}  # 0.25
    new = dict(base, i1=1.0)  # one more failure: +0.025, paired
    value, lo, hi, paired = rise(new, base, "c", seed=0)
    assert paired and value == pytest.approx(0.025) and lo <= 0.025 <= hi
    unpaired = rise({f"#{k}": float(k < 12) for k in range(40)}, {f"#{k}": float(k < 10) for k in range(40)}, "c", 0)
    assert not unpaired[3] and unpaired[1] < 0 < unpaired[2]  # +0.05 from counts alone: inside the noise


def test_a_screen_then_resume_equals_an_uninterrupted_run(default_run, tmp_path, capsys):
    screen = tmp_path / "screen"
    assert main(["run", "--predict-only", "--out", str(screen)] + RUN) == 0
    printed = capsys.readouterr().out
    assert "no variant was traced or evaluated" in printed and "predicted" in printed
    assert not (screen / "outcomes.jsonl").exists() and not (screen / "stages" / "outcomes.variant.jsonl").exists()
    assert not (screen / "items" / "variants.jsonl").exists()  # no variant target written either
    results = json.loads((screen / "results.json").read_text())
    assert results["stage"] == "screen" and results["variant_failure_rate"] is None
    assert {p["track"] for p in results["predictors"].values()} == {"blind"}
    assert all(c["mean_predicted"] for c in results["cells"] if c["split"] == "variant")
    # gate the screen against the full run of the same checkpoint: nothing moved
    assert main(["compare", str(screen), "--baseline", str(default_run)]) == 0
    assert "predicts it" in capsys.readouterr().out  # judged by predicted failure, like for like
    assert main(["run", "--resume", "--out", str(screen)] + RUN) == 0
    for name in FILES:
        assert (screen / name).read_bytes() == (default_run / name).read_bytes(), name
    assert _stable(screen / "results.json") == _stable(default_run / "results.json")
    capsys.readouterr()
    assert main(["verify", str(screen)]) == 0
    assert "before any variant was evaluated; the final predictions hold them unchanged: ok" in capsys.readouterr().out


def test_a_screen_refuses_what_it_cannot_do(default_run, tmp_path, capsys):
    assert main(["run", "--predict-only", "--protocol", "leave-one-family-out", "--out", str(tmp_path / "l")] + RUN) == 2
    assert "--predict-only" in capsys.readouterr().err
    copy = tmp_path / "done"
    shutil.copytree(default_run, copy)
    assert main(["run", "--predict-only", "--resume", "--out", str(copy)] + RUN) == 2
    assert "sealed past its screen" in capsys.readouterr().err
    assert main(["compare", str(default_run), "--baseline", str(default_run), "--gate", "nothing"]) == 2
    assert main(["compare", str(default_run), "--baseline", str(default_run), "--max-rise", "failure=x"]) == 2
