"""Training-dynamics predictors: each hypothesis holds on a constructed history where it must, and
the history reaches predictors through a real run (zoo checkpoints, --checkpoints DIR), with the
blind track's line held at every checkpoint."""
import json
import shutil

import numpy as np
import pytest

from predictors import NotApplicable, Observation, Predictor
from predictors.dynamics import (CheckpointAgreementPredictor, CurveExtrapolationPredictor, EmergenceTimePredictor,
                                 PhaseChangePredictor, RepresentationDriftPredictor)
from predictors.testing import BlindView, FakeModel, check_predictor, fake_history
from tasks import get_family
from tasks.addition import Addition
from tasks.records import Cell

STEPS = (250, 500, 1000, 2000)
DYNAMICS = (EmergenceTimePredictor, CurveExtrapolationPredictor, RepresentationDriftPredictor, PhaseChangePredictor,
            CheckpointAgreementPredictor)


class _WiderAddition(Addition):
    cells = Addition.cells + (Cell("digits=5", {"digits": 5, "carry": (0, 2), "operands": 2}, "productivity"),)


def _items(n=12):
    base, variants = [], []
    for name in ("addition", "multihop"):
        family = get_family(name)
        base += [i for c in family.base_cells for i in family.generate(c.name, n, 0)]
        variants += [i.sealed() for c in family.variant_cells for i in family.generate(c.name, n, 0)]
    return base, variants


def _model(base, curve, script=None):
    """A fake model whose base cell `family/cell` has accuracy curve(family, cell, step) at each step."""
    rank = {}
    for item in base:
        rank.setdefault((item.family, item.cell), []).append(item.id)

    def correct(item, step):
        ids = rank[item.family, item.cell]
        return ids.index(item.id) < round(curve(item.family, item.cell, step) * len(ids))

    history = fake_history(base, correct, STEPS, script=script)
    calibration = [Observation(item, item.target, correct(item, STEPS[-1])) for item in base]
    return FakeModel(history=history, script=(lambda item: script(item, STEPS[-1])) if script else None), calibration


def _mean(scores, variants, family, cell=None):
    return np.mean([s for s, v in zip(scores, variants) if v.family == family and cell in (None, v.cell)])


@pytest.mark.parametrize("cls", DYNAMICS, ids=lambda c: c.name)
def test_conforms(cls):
    assert check_predictor(cls) == []


@pytest.mark.parametrize("cls", DYNAMICS, ids=lambda c: c.name)
def test_without_a_history_it_says_it_does_not_apply(cls):
    base, variants = _items(3)
    calibration = [Observation(i, i.target, True) for i in base]
    with pytest.raises(NotApplicable, match="no training history"):
        cls().fit(FakeModel(), calibration).predict(FakeModel(), variants)


def test_emergence_time_late_skills_score_higher_and_further_items_higher_still():
    base, variants = _items()
    # addition formed by step 250; multihop reached half only at the end
    model, calibration = _model(base, lambda f, c, s: 1.0 if f == "addition" else (0.5 if s == STEPS[-1] else 0.2))
    scores = EmergenceTimePredictor().fit(model, calibration).predict(model, variants)
    assert _mean(scores, variants, "multihop") > _mean(scores, variants, "addition") + 0.3
    assert _mean(scores, variants, "multihop", "hops=12") > _mean(scores, variants, "multihop", "hops=8")


def test_curve_extrapolation_extrapolates_emergence_along_the_axis():
    base, variants = _items()
    emerge = {"digits=1": 250, "digits=2": 750, "digits=3": 1250}  # 500 steps later per digit: 5 digits ~2250 > 2000

    def curve(family, cell, step):
        if family == "multihop":
            return 1.0  # every hop count learned at once: no trend, nothing extrapolated beyond training
        return 1.0 if step >= emerge[cell] else 0.0

    model, calibration = _model(base, curve)
    p = CurveExtrapolationPredictor().fit(model, calibration)
    assert p.trend_["addition"][0] == "digits" and "multihop" not in p.trend_
    far = [i.sealed() for i in _WiderAddition().generate("digits=5", 12, 0)]  # past the suite's own ladder
    scores = p.predict(model, variants + far)
    four, five = _mean(scores, variants, "addition", "digits=4"), float(np.mean(scores[len(variants):]))
    assert 0.3 < four < five and five > 0.5
    assert _mean(scores, variants, "multihop") < four


def test_representation_drift_cells_still_moving_score_higher():
    base, variants = _items()
    rng = np.random.default_rng(0)
    fixed = {item.id: rng.normal(size=(5, 16)).astype(np.float32) for item in base}
    moved = {item.id: rng.normal(size=(5, 16)).astype(np.float32) * 3 for item in base}

    def script(item, step):
        if item.id not in fixed:
            return {}
        h = fixed[item.id].copy()
        if item.family == "multihop" and step == STEPS[-1]:  # multihop's states still moving at the end
            h = h + moved[item.id]
        return {"hidden": h}

    model, calibration = _model(base, lambda f, c, s: 1.0, script=script)
    scores = RepresentationDriftPredictor().fit(model, calibration).predict(model, variants)
    assert _mean(scores, variants, "multihop") > _mean(scores, variants, "addition") + 0.3
    # blind: it read base traces only, and runs where variant traces are refused
    blind = BlindView(model, variants)
    assert np.allclose(RepresentationDriftPredictor().fit(blind, calibration).predict(blind, variants), scores)


def test_phase_change_gradual_learning_scores_higher_than_a_jump():
    base, variants = _items()
    ramp = dict(zip(STEPS, (0.25, 0.5, 0.75, 1.0)))
    model, calibration = _model(base, lambda f, c, s: (1.0 if s == STEPS[-1] else 0.0) if f == "addition" else ramp[s])
    scores = PhaseChangePredictor().fit(model, calibration).predict(model, variants)
    assert _mean(scores, variants, "multihop") > _mean(scores, variants, "addition") + 0.3


def test_checkpoint_agreement_disagreeing_late_checkpoints_score_higher():
    base, variants = _items()
    unstable = {v.id for k, v in enumerate(variants) if k % 2 == 0}

    def script(item, step):
        top = 7 if item.id not in unstable or step == STEPS[-1] else 3 + step % 5
        return {"top_ids": np.array([top] + list(range(20, 27))), "top_probs": np.full(8, 0.1, dtype=np.float32)}

    model, calibration = _model(base, lambda f, c, s: 1.0, script=script)
    scores = CheckpointAgreementPredictor().fit(model, calibration).predict(model, variants)
    is_unstable = np.array([v.id in unstable for v in variants])
    assert scores[is_unstable].min() > scores[~is_unstable].max()


class BlindCheckpointPeek(Predictor):
    """Declared blind, reads the history, and asks a checkpoint for a variant's trace."""

    name = "blind_checkpoint_peek"
    reads = frozenset({"history", "hidden"})
    version = "1"
    track = "blind"

    def predict(self, model, items):
        return np.full(len(items), float(model.history[0].trace(items).hidden.mean() > 0))


class HistoryReport(Predictor):
    """Reports what the history holds, in notes: names, steps, base accuracy, variant traces readable."""

    name = "history_report"
    reads = frozenset({"history", "logits"})
    version = "1"

    def fit(self, model, calibration):
        base = [o.item for o in calibration]
        for c in model.history:
            self.note(f"{c.name}@{c.step}: base {c.outcomes(c.evaluated(base)).mean():.3f} "
                      f"n={len(c.evaluated(base))} traced={c.traced}")
        return self

    def predict(self, model, items):
        self.note(f"variant traces at {sum(c.traced and len(c.trace(items)) == len(items) for c in model.history)} "
                  "checkpoints")
        untraced = [c for c in model.history if not c.traced]
        if untraced:
            try:
                untraced[0].trace(items)
            except PermissionError as e:
                self.note(f"refused: {e}")
        return np.full(len(items), 0.5)


@pytest.fixture(scope="module")
def zoo_member(tmp_path_factory):
    from dataclasses import replace

    from bench.zoo.recipe import get_preset
    from bench.zoo.trainer import train

    folder = tmp_path_factory.mktemp("zoo") / "tiny"
    train(replace(get_preset("tiny"), steps=30, checkpoints=(10, 20)), folder, progress=False, log=lambda m: None,
          preset="tiny")
    return folder


def test_a_zoo_members_checkpoints_are_its_history_in_a_run(zoo_member, tmp_path):
    from bench.model.load import ModelSpec
    from bench.protocol.spec import RunSpec
    from bench.protocol.stages import run

    here = f"{__file__}:"
    results = run(RunSpec(model=ModelSpec(str(zoo_member)), n=3, out=tmp_path / "r", history_traces=2,
                          predictors=(here + "HistoryReport", here + "BlindCheckpointPeek", "emergence_time",
                                      "checkpoint_agreement")), log=lambda m: None)
    assert [h["name"] for h in results["history"]] == ["step-10", "step-20", "final"]
    assert [h["step"] for h in results["history"]] == [10, 20, 30]
    notes = results["predictors"]["history_report"]["notes"]
    assert [n.split(":")[0] for n in notes[:3]] == ["step-10@10", "step-20@20", "final@30"]
    assert notes[-1] == "variant traces at 3 checkpoints"  # the trace track reads them
    peek = results["predictors"]["blind_checkpoint_peek"]
    assert peek["status"] == "failed" and "blind track has no trace of variant items" in peek["reason"]
    assert results["predictors"]["emergence_time"]["status"] == "ok"
    final = {c["cell"]: c["failure_rate"] for c in results["cells"] if c["split"] == "base"}
    assert results["history"][-1]["base_accuracy"] == {f"addition/{k}": 1 - v for k, v in final.items()}


def test_a_history_costs_what_history_n_and_history_traces_allow(zoo_member, tmp_path):
    """Every checkpoint is evaluated on the first --history-n base items of each cell; only the
    latest --history-traces are traced, and reading an untraced one is refused with the reason."""
    from bench.model.load import ModelSpec
    from bench.protocol.spec import RunSpec
    from bench.protocol.stages import run

    here = f"{__file__}:"
    results = run(RunSpec(model=ModelSpec(str(zoo_member)), n=3, out=tmp_path / "r", history_n=1,
                          predictors=(here + "HistoryReport", "representation_drift", "checkpoint_agreement")),
                  log=lambda m: None)
    cells = {c["cell"] for c in results["cells"] if c["split"] == "base"}
    notes = results["predictors"]["history_report"]["notes"]
    assert [n.split(" ", 3)[-1] for n in notes[:3]] == [f"n={len(cells)} traced=False", f"n={len(cells)} traced=True",
                                                        f"n={3 * len(cells)} traced=True"]
    assert notes[3] == "variant traces at 2 checkpoints"
    assert "step-10: not traced in this run" in notes[4]
    assert [h["traced"] for h in results["history"]] == [False, True, True]
    assert all(set(h["base_n"].values()) == {1} for h in results["history"][:2])
    assert set(results["history"][-1]["base_n"].values()) == {3}
    assert results["predictors"]["representation_drift"]["status"] == "ok"
    assert results["predictors"]["checkpoint_agreement"]["status"] == "ok"
    none = run(RunSpec(model=ModelSpec(str(zoo_member)), n=2, out=tmp_path / "z", history_traces=0,
                       predictors=("representation_drift", "checkpoint_agreement", "phase_change")), log=lambda m: None)
    assert {n: p["status"] for n, p in none["predictors"].items()} == {
        "representation_drift": "not_applicable", "checkpoint_agreement": "not_applicable", "phase_change": "ok"}
    assert "--history-traces 0" in none["predictors"]["checkpoint_agreement"]["reason"]


def test_history_flags_are_checked(capsys):
    from bench.cli import main

    for flags, message in ((["--history-n", "0"], "--history-n must be a positive"),
                           (["--history-n", "some"], "must be a positive number or all"),
                           (["--history-traces", "-1"], "--history-traces must be 0 or more")):
        try:
            code = main(["run", "--n", "1", *flags])
        except SystemExit as e:  # argparse's own refusal
            code = e.code
        assert code == 2 and message in capsys.readouterr().err


def test_a_folder_of_checkpoints_is_a_history(zoo_member, tmp_path):
    from bench.model.load import ModelSpec
    from bench.protocol.spec import RunSpec
    from bench.protocol.stages import run

    folder = tmp_path / "ckpts"
    for step in (10, 20):
        shutil.copytree(zoo_member / "checkpoints" / f"step-{step}", folder / f"after{step}steps")
    (folder / "notes").mkdir()  # not a checkpoint: ignored
    results = run(RunSpec(model=ModelSpec(str(zoo_member)), n=2, out=tmp_path / "r", checkpoints=folder,
                          predictors=("phase_change",)), log=lambda m: None)
    assert [(h["name"], h["step"]) for h in results["history"]] == [("after10steps", 10), ("after20steps", 20),
                                                                    ("final", 30)]
    assert json.loads((tmp_path / "r" / "run.json").read_text())["identity"]["checkpoints"] == str(folder)


def test_at_each_checkpoint_runs_the_protocol_with_the_history_before_each(zoo_member, tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "o"
    argv = ["run", "--model", str(zoo_member), "--n", "2", "--predictors", "emergence_time,prompt_length,random",
            "--at-each-checkpoint", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "over_training.json").read_text())
    assert [(p["name"], p["step"]) for p in summary["points"]] == [("step-10", 10), ("step-20", 20), ("final", 30)]
    for point, earlier in zip(summary["points"], ([], ["step-10"], ["step-10", "step-20"])):
        results = json.loads((out / point["name"] / "results.json").read_text())
        assert [h["name"] for h in results.get("history", [])][:-1] == earlier
        emergence = results["predictors"]["emergence_time"]
        if earlier:  # a history of two checkpoints or more: it reads it
            assert emergence["status"] == "ok" and point["predictors"]["emergence_time"]["track"] == "blind"
        else:  # the first checkpoint has no history before it: not applicable, not ranked
            assert emergence["status"] == "not_applicable" and "emergence_time" not in point["predictors"]
    assert "<img" in (out / "over_training.html").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # rerunning keeps the finished runs
    assert capsys.readouterr().err.count("already run, kept") == 3


def test_revisions_of_a_model_in_the_local_hf_cache_are_its_history(zoo_member, tmp_path):
    """--revisions: checkpoints published as revisions of one HF model (Pythia's stepN), read from
    the local HF cache offline, exactly as from_pretrained(name, revision=...) finds them."""
    import subprocess
    import sys

    cache = tmp_path / "hub"
    repo = cache / "models--brittle--tiny"
    for k, (revision, source) in enumerate([("step10", zoo_member / "checkpoints" / "step-10"),
                                            ("step20", zoo_member / "checkpoints" / "step-20"),
                                            ("main", zoo_member)]):
        commit = f"{k + 1:040x}"
        shutil.copytree(source, repo / "snapshots" / commit, ignore=shutil.ignore_patterns("checkpoints", "*.pt"))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
    env = dict(__import__("os").environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--model", "brittle/tiny", "--revisions",
                           "step10,step20", "--tasks", "addition", "--shots", "0", "--n", "2", "--predictors",
                           "phase_change,prompt_length", "--out", str(tmp_path / "r")],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [(h["name"], h["step"]) for h in results["history"]][:2] == [("step10", 10), ("step20", 20)]
    fingerprints = [h["fingerprint"] for h in results["history"]]
    assert len(set(fingerprints)) == 3  # three different models: two revisions and main
