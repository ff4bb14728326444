import json
import subprocess
import sys

import pytest

import bench.protocol.stages as run_module
from bench.cli import main
from bench.model.load import ModelSpec
from bench.protocol.spec import RunSpec
from bench.protocol.stages import run
from bench.protocol.verify import verify
from bench.scoring.cache import ScoreCache
from tasks import get_family


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    results = run(RunSpec(n=12, out=out), log=lambda m: None)
    return out, results


def test_run_writes_the_folder_and_scores_real_outcomes(finished_run):
    out, results = finished_run
    for name in ("results.json", "report.html", "predictions.jsonl", "predictions.sha256", "outcomes.jsonl",
                 "items/base.jsonl", "items/variants.sealed.jsonl", "items/variants.jsonl"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["schema_version"] == 1
    from predictors import registered

    assert set(saved["predictors"]) == set(registered())
    # every predictor scored, those reading a training history too: the default model ships with its own;
    # tokenization says why not: the default tokenizer writes one digit per token
    assert {n: p["status"] for n, p in saved["predictors"].items() if p["status"] != "ok"} == {
        "tokenization": "not_applicable"}
    assert [h["name"] for h in saved["history"]] == [f"step-{s}" for s in (2000, 6000, 10000, 14000, 18000, 22000)] \
        + ["final"]
    assert saved["history"][-1]["step"] == 24000 and [h["traced"] for h in saved["history"]] == [False] * 5 + [True] * 2
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    variant = [o for o in outcomes if o["split"] == "variant"]
    assert saved["variant_failure_rate"] == pytest.approx(sum(not o["correct"] for o in variant) / len(variant))
    assert '<svg class="chart"' in (out / "report.html").read_text()
    assert saved["provenance"]["model"]["fingerprint"]


def test_predictions_are_sealed_before_any_variant_is_evaluated(tmp_path, monkeypatch):
    real = run_module.evaluate
    seen = []

    def spy(handle, items, batch_size=64, families=None, **options):
        base = all(i.cell in {c.name for c in get_family(i.family).base_cells} for i in items)
        split = "base" if base else "variant"
        sealed = (tmp_path / "r" / "predictions.sha256").exists()
        seen.append((split, sealed, (tmp_path / "r" / "items" / "variants.jsonl").exists()))
        return real(handle, items, batch_size, families, **options)

    monkeypatch.setattr(run_module, "evaluate", spy)
    run(RunSpec(n=4, out=tmp_path / "r"), log=lambda m: None)
    assert seen == [("base", False, False), ("variant", True, False)]


def test_verify_detects_an_edited_prediction(finished_run, tmp_path):
    out, _ = finished_run
    assert verify(out)[0]
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    text = (copy / "predictions.jsonl").read_text()
    (copy / "predictions.jsonl").write_text(text.replace('"random":0.', '"random":0.9', 1))
    assert not verify(copy)[0]


def test_cli_run_prints_the_table(tmp_path, capsys):
    assert main(["run", "--n", "5", "--out", str(tmp_path / "cli"), "--predictors", "random,confidence"]) == 0
    printed = capsys.readouterr().out
    assert "addition/digits=4" in printed and "confidence" in printed and "AUROC" in printed


def test_cli_missing_model_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--model", str(tmp_path / "nope"), "--n", "2",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("brittlebench: error: no model at")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["run", "--n", "0"], "positive"),
    (["run", "--tasks", "nope"], "unknown task family"),
    (["run", "--predictors", "nope"], "unknown predictor"),
])
def test_cli_user_mistakes_exit_2(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["run", "--n", "2", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_plugin_file_named_relative_to_the_working_folder_runs(tmp_path, monkeypatch):
    """The worker runs in an empty folder of its own: `plugin.py:Class` must still be found."""
    (tmp_path / "plugin.py").write_text(
        "import numpy as np\nfrom predictors import Predictor\n\n"
        "class Half(Predictor):\n    name = 'half'\n\n    def predict(self, model, items):\n"
        "        return np.full(len(items), 0.5)\n")
    monkeypatch.chdir(tmp_path)
    results = run(RunSpec(n=3, out=tmp_path / "r", predictors=("plugin.py:Half",)), log=lambda m: None)
    assert results["predictors"]["half"]["status"] == "ok"


def test_a_second_run_takes_its_outcomes_from_the_cache_and_writes_the_same_files(tmp_path, monkeypatch):
    """The model's outcomes are cached beside its traces: a second run of the same model on the same
    items evaluates nothing, and its outcomes and predictions are those of the first, byte for byte."""
    import bench.model.evaluate as evaluate_module

    spec = dict(n=4, tasks=("addition", "parity"), predictors=("random", "confidence"), cache_dir=str(tmp_path / "c"))
    first = run(RunSpec(out=tmp_path / "a", **spec), log=lambda m: None)
    assert "cached" not in first["evaluation"]
    calls = []
    monkeypatch.setattr(run_module, "evaluate", lambda *a, **k: calls.append(a) or evaluate_module.evaluate(*a, **k))
    second = run(RunSpec(out=tmp_path / "b", **spec), log=lambda m: None)
    assert calls == [] and second["evaluation"] == {"cached": second["n_base"] + second["n_variant"]}
    for name in ("outcomes.jsonl", "predictions.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # an unreadable entry is a miss: evaluated again, and replaced
    for path in (tmp_path / "c").rglob("outcomes-*.jsonl"):
        path.write_text("not json\n")
    third = run(RunSpec(out=tmp_path / "d", **spec), log=lambda m: None)
    assert len(calls) == 2 and "cached" not in third["evaluation"]
    assert (tmp_path / "a" / "outcomes.jsonl").read_bytes() == (tmp_path / "d" / "outcomes.jsonl").read_bytes()


def _without_volatile(results: dict) -> dict:
    """results.json's figures: without when the run was made, its timings, caches and paths."""
    drop = {"created", "timings", "run_dir", "evaluation", "trace", "scores_cached", "spec", "seconds", "mechanistic",
            "cached"}
    if isinstance(results, dict):
        return {k: _without_volatile(v) for k, v in results.items() if k not in drop}
    return [_without_volatile(v) for v in results] if isinstance(results, list) else results


def test_a_second_run_reads_its_scores_from_the_cache_and_a_changed_input_is_a_miss(tmp_path, monkeypatch):
    """Scoring is cached beside the model's traces, keyed by what it is computed from: a second run
    that seals the same predictions draws no resample and writes the same figures; another seed,
    other predictions, --no-cache or an unreadable entry score again."""
    spec = dict(n=4, tasks=("addition", "parity"), predictors=("random", "confidence", "prompt_length"),
                cache_dir=str(tmp_path / "c"))
    first = run(RunSpec(out=tmp_path / "a", **spec), log=lambda m: None)
    assert "scores_cached" not in first
    calls = []
    real = run_module.score
    monkeypatch.setattr(run_module, "score", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = run(RunSpec(out=tmp_path / "b", **spec), log=lambda m: None)
    assert calls == [] and second["scores_cached"] is True
    assert _without_volatile(second) == _without_volatile(first)
    stored = [json.loads((tmp_path / d / "results.json").read_text()) for d in "ab"]
    order = [[k for k in entry["predictors"]["random"] if k != "cached"] for entry in stored]
    assert order[1] == order[0]  # key order kept
    assert stored[1]["predictors"]["random"]["seconds"] == second["predictors"]["random"]["seconds"]  # this run's own
    run(RunSpec(out=tmp_path / "s", seed=1, **spec), log=lambda m: None)
    assert calls == [1]  # another seed: other resamples
    run(RunSpec(out=tmp_path / "n", use_cache=False, **spec), log=lambda m: None)
    assert calls == [1, 1]
    for path in (tmp_path / "c").rglob("scores-*.json"):
        path.write_text("{not json")
    third = run(RunSpec(out=tmp_path / "d", **spec), log=lambda m: None)
    assert calls == [1, 1, 1] and "scores_cached" not in third
    assert _without_volatile(third) == _without_volatile(first)
    entries = sorted((tmp_path / "c").rglob("scores-*.json"))
    swapped = entries[0].with_name("scores-" + "0" * 24 + ".json")
    swapped.write_bytes(entries[0].read_bytes())  # another key's figures under this name: refused, removed
    assert ScoreCache(swapped.parent, ()).get(swapped) is None and not swapped.exists()
    reordered = dict(spec, predictors=tuple(reversed(spec["predictors"])))
    fourth = run(RunSpec(out=tmp_path / "r", **reordered), log=lambda m: None)
    assert calls == [1, 1, 1, 1] and "scores_cached" not in fourth  # the tables follow the predictors' order
    assert list(fourth["predictors"]) == list(reordered["predictors"])


def test_a_second_run_takes_each_predictors_answers_from_the_cache_until_its_code_changes(tmp_path, monkeypatch):
    """A predictor's answers are cached by its code and what it was handed: a second run asks no
    predictor again and seals the same bytes; editing a plugin's file asks that plugin alone again."""
    plugin = tmp_path / "plugin.py"
    source = ("import numpy as np\nfrom predictors import Predictor\n\n"
              "class Fixed(Predictor):\n    name = 'fixed'\n\n    def predict(self, model, items):\n"
              "        return np.full(len(items), VALUE)\n")
    plugin.write_text(source.replace("VALUE", "0.25"))
    spec = dict(n=4, tasks=("addition", "parity"), predictors=("random", "confidence", f"{plugin}:Fixed"),
                cache_dir=str(tmp_path / "c"))
    first = run(RunSpec(out=tmp_path / "a", **spec), log=lambda m: None)
    assert not any(p.get("cached") for p in first["predictors"].values())
    second = run(RunSpec(out=tmp_path / "b", **spec), log=lambda m: None)
    assert all(second["predictors"][n].get("cached") for n in ("random", "confidence", "fixed"))
    for name in ("predictions.jsonl", "predictions.sha256"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    plugin.write_text(source.replace("VALUE", "0.75"))
    third = run(RunSpec(out=tmp_path / "d", **spec), log=lambda m: None)
    assert [n for n, p in third["predictors"].items() if not p.get("cached")] == ["fixed"]
    rows = [json.loads(line) for line in (tmp_path / "d" / "predictions.jsonl").read_text().splitlines()]
    assert {row["scores"]["fixed"] for row in rows} == {0.75}
    fourth = run(RunSpec(out=tmp_path / "e", use_cache=False, **spec), log=lambda m: None)
    assert not any(p.get("cached") for p in fourth["predictors"].values())
    newest = sorted((tmp_path / "c").rglob("predictions/*.json"), key=lambda p: p.stat().st_mtime_ns)
    entries = {p.name.split("-")[0]: p for p in newest}  # each predictor's latest entry
    entries["random"].write_bytes(entries["confidence"].read_bytes())  # another predictor's answers under its name
    slow = json.loads(entries["fixed"].read_text()) | {"seconds": 1000.0}
    entries["fixed"].write_text(json.dumps(slow))  # took longer than the timeout below
    fifth = run(RunSpec(out=tmp_path / "f", predictor_timeout=100, **spec), log=lambda m: None)
    assert [n for n, p in fifth["predictors"].items() if not p.get("cached")] == ["random", "fixed"]
    assert (tmp_path / "f" / "predictions.sha256").read_bytes() == (tmp_path / "d" / "predictions.sha256").read_bytes()


def test_a_predictors_source_digest_covers_the_predictor_classes_it_derives_from(tmp_path, monkeypatch):
    """A plugin deriving from another file's predictor class is asked again when that file changes."""
    import importlib

    from bench.protocol.worker import source_digest

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "bb_base_mod.py").write_text("from predictors import Predictor\n\nclass Base(Predictor):\n"
                                             "    name = 'base'\n    SCALE = 1\n")
    (tmp_path / "bb_child_mod.py").write_text("from bb_base_mod import Base\n\nclass Child(Base):\n"
                                              "    name = 'child'\n")
    before = source_digest(importlib.import_module("bb_child_mod").Child)
    (tmp_path / "bb_base_mod.py").write_text((tmp_path / "bb_base_mod.py").read_text().replace("1", "2"))
    assert before is not None and source_digest(importlib.import_module("bb_child_mod").Child) != before
