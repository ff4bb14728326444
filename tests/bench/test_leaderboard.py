import json
import shutil

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.runs.zoo_runs import KEEP
from bench.leaderboard.board import build, validate
from bench.protocol.spec import RunSpec
from bench.protocol.stages import run


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("leaderboard")
    scratch = tmp_path_factory.mktemp("scratch") / "r"
    run(RunSpec(n=10, out=scratch, predictors=("random", "confidence", "prompt_length", "knn_distance")), log=lambda m: None)
    for folder in (root / "runs" / "default", root / "submissions" / "knn"):
        folder.mkdir(parents=True)
        for name in KEEP:
            src = scratch / name
            if src.exists():  # no predictor here claims: no predictions.claims.json
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, folder / name)
    (root / "submissions" / "knn" / "submission.json").write_text(
        json.dumps({"predictor": "knn_distance", "source": "https://example.org/knn.git@v1", "authors": "A. N. Other"}))
    return root


def test_build_writes_json_markdown_and_sortable_html(root):
    board = build(root)
    assert board["models"] == ["default"]
    assert set(board["tracks"]["blind"]) == {"random", "prompt_length"}
    assert set(board["tracks"]["trace"]) == {"confidence", "knn_distance", "answer_visible (reference)"}
    assert list(board["tracks"]["trace"])[-1] == "answer_visible (reference)"  # shown, never ranked
    saved = json.loads((root / "leaderboard.json").read_text())
    assert saved["schema_version"] == 4 and saved["tracks"]["trace"].keys() == board["tracks"]["trace"].keys()
    assert board["tracks"]["blind"]["random"]["role"] == "sanity"
    assert board["tracks"]["blind"]["prompt_length"]["role"] == "baseline"
    assert board["tracks"]["trace"]["knn_distance"]["coverage"] == "1/1"
    md = (root / "LEADERBOARD.md").read_text()
    assert md.index("## blind track") < md.index("## trace track")
    assert "| predictor | beats (wins / Holm / chance) | mean | coverage | cell ρ | default |" in md
    assert "| random (sanity) |" in md and "`–`: the predictor did not run on that model" in md
    page = (root / "leaderboard.html").read_text()
    assert page.count("<table class='board'>") == 2 and "addEventListener('click'" in page
    # findings: the non-baseline predictors only, each model in exactly one of held, falsified, no signal
    assert list(board["findings"]) == ["knn_distance"]
    knn = board["findings"]["knn_distance"]
    assert knn["track"] == "trace" and sorted(knn["held"] + knn["falsified"] + knn["no signal"]) == ["default"]
    assert knn["pair_auroc"]["default"] == board["tracks"]["trace"]["knn_distance"]["models"]["default"]["pair_auroc"][
        "value"]
    assert "## Findings" in md and f"| knn_distance | trace | {len(knn['held'])} | {len(knn['falsified'])} |" in md
    assert board["tracks"]["blind"]["random"]["claims"] == {"held": 0, "falsified": 0, "untestable": 0}
    assert "No predictor made claims on the ranked models." in md


def test_valid_submission(root, capsys):
    assert main(["leaderboard", "validate", str(root / "submissions" / "knn")]) == 0
    assert "valid: knn_distance" in capsys.readouterr().out


def _copy(root, tmp_path):
    target = tmp_path / "sub"
    shutil.copytree(root / "submissions" / "knn", target)
    return target


def test_tampered_predictions_are_rejected(root, tmp_path):
    sub = _copy(root, tmp_path)
    text = (sub / "predictions.jsonl").read_text()
    (sub / "predictions.jsonl").write_text(text.replace('"knn_distance":0.', '"knn_distance":0.9', 1))
    with pytest.raises(UserError, match="tampered"):
        validate(sub)


def test_tampered_outcomes_are_rejected(root, tmp_path):
    sub = _copy(root, tmp_path)
    rows = [json.loads(l) for l in (sub / "outcomes.jsonl").read_text().splitlines()]
    flipped = next(r for r in rows if r["split"] == "variant")
    flipped["correct"] = not flipped["correct"]
    (sub / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match="tampered"):
        validate(sub)


@pytest.mark.parametrize("meta, message", [
    (None, "no submission.json"),
    ("[1]", "must be a JSON object"),
    ('{"predictor": "knn_distance", "source": ""}', "'source' must say"),
    ('{"predictor": "nope", "source": "x"}', "'predictor' must be the predictor's name as the run lists it"),
])
def test_malformed_submissions(root, tmp_path, meta, message, capsys):
    sub = _copy(root, tmp_path)
    if meta is None:
        (sub / "submission.json").unlink()
    else:
        (sub / "submission.json").write_text(meta)
    assert main(["leaderboard", "validate", str(sub)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_committed_leaderboard_verifies_and_covers_the_zoo():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    from bench.model.load import load_model

    members = sorted(["default"] + [p.name for p in (root / "zoo").iterdir() if (p / "zoo.json").is_file()])
    runs = sorted(p for p in (root / "leaderboard" / "runs").iterdir() if p.is_dir())
    assert [p.name for p in runs] == members
    for folder in runs:
        assert validate(folder, submission=False)["model_name"] == folder.name
    # The default column is the bundled model as it is now, not an earlier one.
    default = json.loads((root / "leaderboard" / "runs" / "default" / "results.json").read_text())
    assert default["provenance"]["model"]["fingerprint"] == load_model("default").fingerprint
    board = json.loads((root / "leaderboard" / "leaderboard.json").read_text())
    assert sorted(board["models"] + list(board["left_out"])) == members
    for model, why in board["left_out"].items():  # only a model that fails its own base region is left out
        assert "base region" in why
    md = (root / "leaderboard" / "LEADERBOARD.md").read_text()
    assert all(m in md for m in members)


def test_run_zoo_runs_the_bundled_model_and_the_members_it_is_asked_for(tmp_path):
    from bench.leaderboard.board import model_label
    from bench.runs.zoo_runs import run_zoo
    from bench.zoo.recipe import get_preset
    from bench.zoo.trainer import train

    train(get_preset("tiny"), tmp_path / "zoo" / "zoo-tiny", progress=False, log=lambda m: None, preset="tiny")
    with pytest.raises(UserError, match="no zoo member nope"):
        run_zoo(tmp_path / "zoo", tmp_path / "out", n=2, seed=0, log=lambda m: None, members=["nope"])
    folders = run_zoo(tmp_path / "zoo", tmp_path / "out", n=2, seed=0, log=lambda m: None,
                      members=["default", "zoo-tiny"])
    assert [f.name for f in folders] == ["default", "zoo-tiny"]
    for folder in folders:
        claimed = "claims" in json.loads((folder / "results.json").read_text())  # the claims file where claims were made
        assert sorted(p.name for p in folder.iterdir()) == sorted(set(KEEP) if claimed else set(KEEP) - {"predictions.claims.json"})
    # Tables name a zoo model by its preset
    assert [model_label(validate(f, submission=False)) for f in folders] == ["default", "tiny"]


def test_a_finding_is_a_win_a_ranking_below_the_no_signal_band_or_neither():
    from bench.leaderboard.board import finding

    band = {"lo": 0.47, "hi": 0.53}
    beats = {"pair_auroc": {"value": 0.6, "lo": 0.55, "hi": 0.65}, "vs_best_baseline": {"beats": True}}
    below = {"pair_auroc": {"value": 0.42, "lo": 0.40, "hi": 0.46}, "vs_best_baseline": {"beats": False}}
    touching = {"pair_auroc": {"value": 0.44, "lo": 0.41, "hi": 0.47}, "vs_best_baseline": {"beats": False}}
    above = {"pair_auroc": {"value": 0.6, "lo": 0.55, "hi": 0.65}, "vs_best_baseline": {"beats": False}}
    assert [finding(p, band) for p in (beats, below, touching, above)] == ["held", "falsified", "no signal",
                                                                           "no signal"]
    assert finding(below, None) == "no signal"  # a run without a band (no failed/passed pair) falsifies nothing


def test_holm_counts_only_the_wins_that_survive_the_correction():
    from bench.leaderboard.board import holm_wins

    strong = {"value": 0.10, "lo": 0.06, "hi": 0.14}  # z ~ 4.9
    marginal = {"value": 0.021, "lo": 0.001, "hi": 0.041}  # lower end above 0: a win alone; z ~ 2.06
    assert holm_wins([strong, strong, strong]) == 3
    assert holm_wins([marginal]) == 1
    assert holm_wins([marginal] * 10) == 0  # ten marginal wins are what chance gives among many tests
    assert holm_wins([strong, marginal, None]) == 1


def test_a_model_that_fails_its_base_region_is_left_out_with_its_reason():
    from bench.leaderboard.board import admission

    assert admission({"competence": {"flagged": [], "limit": 0.2}}) is None
    why = admission({"competence": {"flagged": ["addition"], "limit": 0.2}})
    assert "addition" in why and "base region" in why
