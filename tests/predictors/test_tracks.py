"""The line between the tracks, tested as an adversary would cross it.

Two answer-peeking predictors (each knows nothing about mechanisms):
  * SolverTopOne solves the task from the prompt and compares the answer's first character with
    the model's top next token (read from the trace, its id mapped to a character on the base region);
  * HiddenDecoder fits a decoder from the last hidden state to the first character the model wrote
    (base region), and compares its reading on a variant with the solved answer.
In the blind track (declared blind) they cannot run: the worker has no variant trace to give.
In the trace track they run, and come out no better than the runner's answer-visible reference
row beyond noise: reading the answer is what that row measures.
"""
import gc
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from bench.protocol.spec import RunSpec
from bench.protocol.stages import run
from predictors import Predictor
from predictors.testing import BlindView, FakeModel, check_predictor, example_data

HERE = Path(__file__).resolve()
SOLVERS_FILE = HERE.parents[1] / "tasks" / "solvers.py"
REFUSED = "blind track has no trace of variant items"


def _solvers():
    spec = importlib.util.spec_from_file_location("brittlebench_test_solvers", SOLVERS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SOLVERS


class SolverTopOne(Predictor):
    """Reads the answer: the solved answer's first character against the model's top next token."""

    name = "solver_top1"
    reads = frozenset({"prompt", "logits"})
    version = "1"

    def fit(self, model, calibration):
        trace = model.trace([o.item for o in calibration])  # base items: every track may
        self.written_ = {}
        for o, top in zip(calibration, trace.top_ids[:, 0]):
            if o.output:
                self.written_.setdefault(int(top), o.output[0])
        return self

    def predict(self, model, items):
        solve = _solvers()
        tops = model.trace(items).top_ids[:, 0]
        return np.array([0.0 if self.written_.get(int(top)) == solve[item.family](item.prompt)[:1] else 1.0
                         for item, top in zip(items, tops)])


class HiddenDecoder(Predictor):
    """Reads the answer without top_ids: a decoder from the last hidden state to the first written character."""

    name = "hidden_decoder"
    reads = frozenset({"prompt", "hidden"})
    version = "1"

    def fit(self, model, calibration):
        from sklearn.linear_model import LogisticRegression

        hidden = model.trace([o.item for o in calibration]).hidden[:, -1, :]
        labels = [o.output[:1] or "∅" for o in calibration]
        self.decoder_ = LogisticRegression(max_iter=2000).fit(hidden, labels)
        return self

    def predict(self, model, items):
        solve = _solvers()
        probs = self.decoder_.predict_proba(model.trace(items).hidden[:, -1, :])
        column = {c: k for k, c in enumerate(self.decoder_.classes_)}
        return np.array([1.0 - (probs[i, column[a]] if (a := solve[item.family](item.prompt)[:1]) in column else 0.0)
                         for i, item in enumerate(items)])


class BlindSolverTopOne(SolverTopOne):
    """SolverTopOne declared blind: it may read base traces, and asks for the variants' anyway."""

    name = "blind_solver_top1"
    track = "blind"


class BlindHiddenDecoder(HiddenDecoder):
    name = "blind_hidden_decoder"
    track = "blind"


class BlindLooksAround(Predictor):
    """A blind predictor that looks, inside the worker, for any trace row of a variant item:
    every trace store the process holds (gc) and every trace folder next to them on disk."""

    name = "blind_looks_around"
    reads = frozenset({"prompt"})
    version = "1"

    def predict(self, model, items):
        wanted = {item.id for item in items}
        stores = [o for o in gc.get_objects() if type(o).__name__ == "TraceStore"]
        in_memory = sum(len(wanted & set(store.rows)) for store in stores)
        on_disk = 0
        for store in stores:
            for meta in Path(next(iter(store.sites.values())).filename).parent.parent.glob("*/trace.json"):
                on_disk += len(wanted & set(json.loads(meta.read_text())["item_ids"]))
        self.note(f"stores {len(stores)}; variant rows in memory {in_memory}; on disk {on_disk}")
        return np.full(len(items), 0.5)


def _plugin(cls) -> str:
    return f"{HERE}:{cls.__name__}"


@pytest.fixture(scope="module")
def adversaries(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracks") / "r"
    predictors = ("random", "prompt_length", "confidence", *map(_plugin, (SolverTopOne, HiddenDecoder,
                                                                         BlindSolverTopOne, BlindHiddenDecoder,
                                                                         BlindLooksAround)))
    return run(RunSpec(n=20, out=out, predictors=predictors), log=lambda m: None)


def test_answer_peeking_predictors_cannot_run_in_the_blind_track(adversaries):
    for name in ("blind_solver_top1", "blind_hidden_decoder"):
        status = adversaries["predictors"][name]
        assert status["track"] == "blind" and status["status"] == "failed"
        assert REFUSED in status["reason"], status["reason"]


def test_the_blind_worker_holds_no_variant_trace_anywhere(adversaries):
    status = adversaries["predictors"]["blind_looks_around"]
    assert status["status"] == "ok"
    note = status["notes"][0]
    assert note.startswith("stores 1;") and note.endswith("variant rows in memory 0; on disk 0"), note


def test_in_the_trace_track_reading_the_answer_does_not_beat_the_reference(adversaries):
    reference = adversaries["tracks"]["trace"]["reference"]
    for name in ("solver_top1", "hidden_decoder"):
        p = adversaries["predictors"][name]
        assert p["track"] == "trace" and p["status"] == "ok"
        # The adversaries work (they read the answer well), so the comparison is not a vacuous one ...
        assert p["pair_auroc"]["value"] > 0.75, (name, p["pair_auroc"])
        # ... and the reference row, which reads the same answer, is not beaten beyond noise.
        assert p["vs_reference"]["difference"]["lo"] <= 0, (name, p["vs_reference"], reference["pair_auroc"])
    assert reference["pair_auroc"]["value"] > adversaries["predictors"]["confidence"]["pair_auroc"]["value"]


def test_tables_are_per_track_and_baselines_match_the_track(adversaries):
    tracks = adversaries["tracks"]
    assert list(tracks) == ["blind", "trace"]
    assert tracks["blind"]["baselines"] == ["prompt_length"]  # random is a sanity row, never the bar
    assert tracks["trace"]["baselines"] == ["prompt_length", "confidence"]
    assert tracks["blind"]["sanity"] == "random"
    blind_best = "prompt_length"
    trace_best = max(("prompt_length", "confidence"),
                     key=lambda b: adversaries["predictors"][b]["pair_auroc"]["value"])
    assert tracks["blind"]["best_baseline"] == blind_best and tracks["trace"]["best_baseline"] == trace_best
    assert adversaries["predictors"]["blind_looks_around"]["vs_best_baseline"]["baseline"] == blind_best
    assert adversaries["predictors"]["solver_top1"]["vs_best_baseline"]["baseline"] == trace_best


def test_blind_predictions_are_made_before_any_variant_is_traced(tmp_path, monkeypatch):
    import bench.model.trace as trace_module
    from bench.protocol.worker import PredictorPool

    traced: list[str] = []
    asked: list[tuple[str, int]] = []
    real_trace, real_predict = trace_module.trace, PredictorPool.predict

    def spy_trace(handle, items, *args, **kwargs):
        traced.extend(item.cell for item in items)
        return real_trace(handle, items, *args, **kwargs)

    def note(pool, names, sealed):
        variant_cells = {item.cell for item in sealed}
        asked.extend((pool.infos[name]["track"], sum(cell in variant_cells for cell in traced)) for name in names)

    def spy_predict(self, name, calibration, sealed):
        note(self, [name], sealed)
        return real_predict(self, name, calibration, sealed)

    monkeypatch.setattr(trace_module, "trace", spy_trace)
    monkeypatch.setattr(PredictorPool, "predict", spy_predict)
    results = run(RunSpec(n=3, out=tmp_path / "r", use_cache=False,
                          predictors=("tokenization", "confidence", "prompt_length")), log=lambda m: None)
    assert len(traced) == results["n_base"] + results["n_variant"]  # every item once, the base region included
    assert sorted(track for track, _ in asked) == ["blind", "blind", "trace"]
    assert [track for track, _ in asked][-1] == "trace"
    assert [n for track, n in asked if track == "blind"] == [0, 0]  # no variant traced yet
    assert all(n > 0 for track, n in asked if track == "trace")


def test_a_blind_predictor_that_only_prompts_never_causes_a_variant_trace(tmp_path):
    results = run(RunSpec(n=3, out=tmp_path / "r", use_cache=False, predictors=("prompt_length", "tokenization")),
                  log=lambda m: None)
    assert results["trace"]["items_traced"] == results["n_base"]  # the base region only
    assert "reference" not in results["tracks"]["trace"] and not (tmp_path / "r" / "reference.jsonl").exists()


def test_conformance_catches_a_blind_predictor_that_traces_variants():
    problems = check_predictor(BlindSolverTopOne)
    assert any(p.startswith("blind_never_traces_a_variant") and REFUSED in p for p in problems), problems
    assert check_predictor(SolverTopOne) == []  # the same code, in the trace track, conforms


def test_the_blind_view_lets_base_items_through():
    calibration, variants = example_data()
    view = BlindView(FakeModel(), variants)
    assert len(view.trace([o.item for o in calibration])) == len(calibration)
    with pytest.raises(PermissionError, match=REFUSED):
        view.trace(variants[:1])
