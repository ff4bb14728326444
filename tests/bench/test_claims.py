"""Claims: a predictor's named mechanism and the cells it says will be brittle or robust, sealed with
its predictions and tested after the evaluation (predictors/claims.py, bench/scoring/claims.py)."""
import json
import pickle
import shutil

import numpy as np
import pytest

from bench.cli import format_results
from bench.scoring.results import Results
from bench.protocol.folder import RunFolder, read_sealed
from bench.protocol.predict import fit_predict, open_predictors
from bench.protocol.spec import RunSpec
from bench.protocol.stages import run
from bench.protocol.verify import verify
from bench.scoring.claims import claims_summary, judge_claims
from bench.scoring.metrics import wilson
from predictors import Claim, Predictor
from tasks import SealedItem

# -- the record -----------------------------------------------------------------------------------

BAD = {
    "an empty mechanism": (dict(mechanism=" "), "non-empty mechanism"),
    "an empty statement": (dict(statement=""), "non-empty statement"),
    "no cell": (dict(brittle=(), robust=()), "names no cell"),
    "a cell both ways": (dict(robust=("multihop/hops=8",)), "both brittle and robust"),
    "a cell named twice": (dict(brittle=("multihop/hops=8", "multihop/hops=8")), "twice"),
    "a cell without its family": (dict(brittle=("hops=8",)), "is not 'family/cell'"),
    "a string for the cells": (dict(brittle="multihop/hops=8"), "sequence of cells"),
    "threshold 0": (dict(threshold=0.0), "strictly between 0 and 1"),
    "threshold 1": (dict(threshold=1), "strictly between 0 and 1"),
    "threshold True": (dict(threshold=True), "strictly between 0 and 1"),
    "NaN evidence": (dict(evidence={"probe": float("nan")}), "finite number or a string"),
    "list evidence": (dict(evidence={"layers": [1, 2]}), "finite number or a string"),
    "bool evidence": (dict(evidence={"decodable": True}), "finite number or a string"),
}


def _claim(**changes):
    return Claim(**{"mechanism": "bridge", "statement": "The bridge entity is lost after hop 2.",
                    "brittle": ("multihop/hops=8",)} | changes)


@pytest.mark.parametrize("case", BAD)
def test_a_malformed_claim_is_refused_saying_what_to_fix(case):
    changes, said = BAD[case]
    with pytest.raises(ValueError, match=said):
        _claim(**changes)


def test_a_claim_is_frozen_json_and_picklable():
    claim = _claim(robust=["multihop/hops=1"], evidence={"layer": np.int64(3), "probe_acc": np.float32(0.5),
                                                         "site": "hidden"})
    assert claim.robust == ("multihop/hops=1",) and claim.evidence == {"layer": 3, "probe_acc": 0.5, "site": "hidden"}
    assert type(claim.evidence["layer"]) is int and type(claim.evidence["probe_acc"]) is float
    with pytest.raises(TypeError):
        claim.evidence["layer"] = 4
    assert json.loads(json.dumps(claim.to_json())) == claim.to_json()
    assert Claim.from_json(claim.to_json()) == claim == pickle.loads(pickle.dumps(claim))
    assert hash(claim) == hash(Claim.from_json(claim.to_json()))
    with pytest.raises(ValueError, match="no field 'cells'"):
        Claim.from_json(claim.to_json() | {"cells": []})


def test_predictor_claim_appends_and_clone_forgets():
    class Claiming(Predictor):
        name = "claiming"

        def __init__(self, threshold: float = 0.4):
            self.threshold = threshold

    p = Claiming()
    made = p.claim("bridge", "Lost after hop 2.", brittle=["multihop/hops=8"], threshold=p.threshold,
                   evidence={"layer": 3})
    p.claim("carry", "Carries fail.", robust=("addition/digits=1",))
    assert p.claims_ == [made, Claim("carry", "Carries fail.", robust=("addition/digits=1",))]
    assert made.threshold == 0.4 and made.brittle == ("multihop/hops=8",)
    assert not hasattr(p.clone(), "claims_")


# -- the verdicts ---------------------------------------------------------------------------------

def test_wilson_interval_matches_newcombe():
    """Newcombe (1998), Table I: 81/263 gives 0.2553-0.3662; 15/148 gives 0.0624-0.1605; 0/20 gives 0-0.1611."""
    for k, n, lo, hi in ((81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611)):
        assert wilson(k, n) == pytest.approx((lo, hi), abs=5e-5)


def _outcomes(cells):
    """Each variant's cell and outcome, from {cell: (n, n_failed)}."""
    names = [cell for cell, (n, _) in cells.items() for _ in range(n)]
    failed = np.array([i < k for n, k in cells.values() for i in range(n)])
    return names, failed


# hops=12: 90/100 failed [0.826, 0.945]; hops=1: 2/100 [0.006, 0.070]; hops=8: 50/100 [0.404, 0.596]
CELLS, FAILED = _outcomes({"multihop/hops=12": (100, 90), "multihop/hops=1": (100, 2), "multihop/hops=8": (100, 50),
                           "commands/jump": (100, 100)})


def _judge(flagged=(), **claim):
    [judged] = judge_claims({"p": [_claim(**claim).to_json()]}, CELLS, FAILED, flagged)["p"]
    return judged


def test_every_cell_on_its_side_holds():
    judged = _judge(brittle=("multihop/hops=12",), robust=("multihop/hops=1",))
    assert judged["verdict"] == "held" and [c["verdict"] for c in judged["cells"]] == ["agrees", "agrees"]
    hops12 = judged["cells"][0]
    assert (hops12["n"], hops12["n_failed"], hops12["rate"], hops12["predicted"]) == (100, 90, 0.9, "brittle")
    assert hops12["wilson"] == pytest.approx(list(wilson(90, 100)))
    assert judged["evidence"] == {} and judged["threshold"] == 0.5


def test_one_cell_wholly_on_the_other_side_falsifies():
    judged = _judge(brittle=("multihop/hops=12", "multihop/hops=1"), robust=("multihop/hops=8",))
    assert judged["verdict"] == "falsified"  # hops=1 disagrees, though hops=8 straddles
    assert [c["verdict"] for c in judged["cells"]] == ["agrees", "disagrees", "undecided"]
    assert "multihop/hops=1 predicted brittle, observed 0.020" in judged["reason"]
    robust = _judge(brittle=(), robust=("multihop/hops=12",))
    assert robust["verdict"] == "falsified"


def test_a_straddling_interval_leaves_it_untestable():
    judged = _judge(brittle=("multihop/hops=12", "multihop/hops=8"))
    assert judged["verdict"] == "untestable" and "multihop/hops=8" in judged["reason"]
    assert "straddles 0.5" in judged["reason"]
    assert _judge(brittle=("multihop/hops=8",), threshold=0.3)["verdict"] == "held"  # [0.404, 0.596] >= 0.3
    assert _judge(brittle=("multihop/hops=8",), threshold=0.6)["verdict"] == "falsified"  # wholly below 0.6


def test_a_cell_not_in_the_run_is_absent():
    judged = _judge(brittle=("multihop/hops=12", "multihop/hops=99"))
    assert judged["verdict"] == "untestable"
    absent = judged["cells"][1]
    assert (absent["verdict"], absent["n"], absent["rate"], absent["wilson"]) == ("absent", 0, None, None)
    assert "multihop/hops=99: not a variant cell of this run" in judged["reason"]


def test_a_cell_of_a_flagged_family_is_absent():
    held = _judge(brittle=("commands/jump",))
    assert held["verdict"] == "held"
    judged = _judge(flagged=("commands",), brittle=("commands/jump",))
    assert judged["verdict"] == "untestable" and judged["cells"][0]["verdict"] == "absent"
    assert judged["cells"][0]["rate"] == 1.0 and "flagged" in judged["reason"]


def test_summary_counts_each_verdict():
    judged = [_judge(brittle=("multihop/hops=12",)), _judge(robust=("multihop/hops=12",)),
              _judge(brittle=("multihop/hops=8",)), _judge(brittle=("multihop/hops=9",))]
    assert claims_summary(judged) == {"held": 1, "falsified": 1, "untestable": 2}


# -- through the worker ---------------------------------------------------------------------------

class Claimer(Predictor):
    """Claims that 4-digit sums fail and that 1-digit ones do not (made in fit), that 4-digit sums
    are robust (made in predict: false), and one about a cell no run has."""

    name = "claimer"
    reads = frozenset({"prompt"})

    def fit(self, model, calibration):
        self.claim("width", "Sums wider than training fail.", brittle=("addition/digits=4",),
                   evidence={"longest_base_digits": 3, "note": "trained on 1-3 digits"})
        return self

    def predict(self, model, items):
        self.claim("none", "Four-digit sums are fine.", robust=("addition/digits=4",), threshold=0.2)
        self.claim("elsewhere", "A cell of no run.", brittle=("addition/digits=99",))
        return np.array([len(i.prompt) % 10 / 10 for i in items])


class NotAClaim(Predictor):
    name = "not_a_claim"

    def predict(self, model, items):
        self.claims_ = ["multihop/hops=8 will fail"]
        return np.full(len(items), 0.5)


class BadThreshold(Predictor):
    name = "bad_threshold"

    def predict(self, model, items):
        self.claim("bridge", "Lost.", brittle=("multihop/hops=8",), threshold=50)
        return np.full(len(items), 0.5)


def test_the_worker_carries_claims_and_a_malformed_one_fails_its_predictor_alone():
    from tasks import get_family

    items = [i.sealed() for i in get_family("addition").generate("digits=4", 5)]
    names = [f"tests.bench.test_claims:{c}" for c in ("Claimer", "NotAClaim", "BadThreshold")]
    with open_predictors(names, None, log=lambda m: None) as pool:
        scores, status = fit_predict(pool, [], items, log=lambda m: None)
    assert sorted(scores) == ["claimer"]
    assert [Claim.from_json(c).mechanism for c in status["claimer"]["claims"]] == ["width", "none", "elsewhere"]
    assert status["claimer"]["claims"][0]["evidence"] == {"longest_base_digits": 3, "note": "trained on 1-3 digits"}
    assert status["not_a_claim"]["status"] == "failed" and "not a Claim" in status["not_a_claim"]["reason"]
    assert status["bad_threshold"]["status"] == "failed" and "threshold" in status["bad_threshold"]["reason"]


# -- a run: sealed, scored, printed, verified -----------------------------------------------------

@pytest.fixture(scope="module")
def claimed(tmp_path_factory):
    """A small run on the default model with a claiming predictor and a malformed one: its folder,
    and the text `brittlebench run` prints for it."""
    out = tmp_path_factory.mktemp("claims") / "run"
    results = run(RunSpec(n=8, tasks=("addition", "multihop"), out=out, predictors=(
        "random", "prompt_length", "tests.bench.test_claims:Claimer", "tests.bench.test_claims:NotAClaim")),
        log=lambda m: None)
    return out, format_results(Results.of(results))


def test_a_run_seals_tests_and_prints_the_claims(claimed):
    out, printed = claimed
    results = json.loads((out / "results.json").read_text())
    width, none, elsewhere = results["claims"]["claimer"]
    assert width["verdict"] == "held" and none["verdict"] == "falsified" and elsewhere["verdict"] == "untestable"
    cell = width["cells"][0]
    assert (cell["cell"], cell["n"], cell["predicted"], cell["verdict"]) == ("addition/digits=4", 8, "brittle", "agrees")
    assert cell["wilson"] == pytest.approx(list(wilson(cell["n_failed"], 8)))
    assert width["evidence"] == {"longest_base_digits": 3, "note": "trained on 1-3 digits"}
    assert results["predictors"]["claimer"]["claims_summary"] == {"held": 1, "falsified": 1, "untestable": 1}
    assert "claims" not in results["predictors"]["claimer"] and "claims_summary" not in results["predictors"]["random"]
    assert "not a Claim" in results["predictors"]["not_a_claim"]["reason"]
    sealed = json.loads((out / "predictions.claims.json").read_text())
    assert list(sealed) == ["claimer"] and len(sealed["claimer"]) == 3
    assert "claims" not in json.loads((out / "stages" / "predictors.json").read_text())["claimer"]
    assert (out / "predictions.sha256").read_text().endswith("predictions.jsonl + predictions.claims.json\n")
    table = printed[printed.index("\nclaims: "):]
    assert "claimer                  width                        held" in table
    assert "    addition/digits=4              brittle 1.000 [0.676, 1.000] n=8" in table
    assert "addition/digits=99             brittle not in this run" in table
    report = (out / "report.html").read_text()
    section = report[report.index('<section id="claims"'):]
    section = section[:section.index("</section>")]
    assert section.count("<td><b>claimer</b></td>") == 3 and "<code>addition/digits=99</code> brittle: not in this run" \
        in section and "longest_base_digits = 3" in section and '<span class="flag">falsified</span>' in section
    ok, lines = verify(out)
    assert ok, lines
    assert any("3 claims tested against the sealed claims file): ok" in l for l in lines)


def _sealed_items(folder):
    return [SealedItem.from_dict(r) for r in map(json.loads, (folder / "items" / "variants.sealed.jsonl").open())]


def _edited(claimed, tmp_path, edit):
    folder = tmp_path / "edited"
    shutil.copytree(claimed[0], folder)
    edit(folder)
    return folder


def _robust_to_brittle(folder):
    path = folder / "predictions.claims.json"
    claims = json.loads(path.read_text())
    claims["claimer"][1]["brittle"], claims["claimer"][1]["robust"] = claims["claimer"][1]["robust"], []
    path.write_text(json.dumps(claims, indent=2) + "\n")


@pytest.mark.parametrize("edit", [_robust_to_brittle, lambda f: (f / "predictions.claims.json").unlink()],
                         ids=["a claim turned around", "the claims removed"])
def test_a_claim_edited_after_sealing_is_detected(claimed, tmp_path, edit):
    folder = _edited(claimed, tmp_path, edit)
    status = json.loads((folder / "stages" / "predictors.json").read_text())
    assert read_sealed(folder, "predictions", _sealed_items(claimed[0]), status) is None
    assert RunFolder(folder, resume=True).stored_predictions(_sealed_items(folder)) is None  # --resume predicts again
    ok, lines = verify(folder)
    assert not ok and any(l.startswith("predictions.sha256") and l.endswith("MISMATCH") for l in lines)


def test_the_untouched_seal_reads_back_with_its_claims(claimed):
    folder = claimed[0]
    stored = RunFolder(folder, resume=True).stored_predictions(_sealed_items(folder))
    assert stored is not None
    scores, status, digest = stored
    assert [c["mechanism"] for c in status["claimer"]["claims"]] == ["width", "none", "elsewhere"]
    assert "claims" not in status["random"] and digest == json.loads((folder / "results.json").read_text())[
        "predictions_sha256"]


def test_an_edited_verdict_in_results_is_named(claimed, tmp_path):
    def falsify(folder):
        results = json.loads((folder / "results.json").read_text())
        results["claims"]["claimer"][0]["verdict"] = "falsified"
        (folder / "results.json").write_text(json.dumps(results))

    ok, lines = verify(_edited(claimed, tmp_path, falsify))
    assert not ok and any(l.startswith("scores: MISMATCH") and "claims.claimer[0].verdict" in l for l in lines)


def test_the_leaderboard_counts_claims_per_predictor(claimed, tmp_path):
    from bench.leaderboard.board import build
    from bench.runs.zoo_runs import KEEP

    folder = tmp_path / "runs" / "default"
    folder.mkdir(parents=True)
    for name in KEEP:
        if (claimed[0] / name).is_file():
            shutil.copy2(claimed[0] / name, folder / name)
    assert (folder / "predictions.claims.json").is_file()  # kept: the digest covers it
    board = build(tmp_path)
    assert board["tracks"]["blind"]["claimer"]["claims"] == {"held": 1, "falsified": 1, "untestable": 1}
    assert board["tracks"]["blind"]["random"]["claims"] == {"held": 0, "falsified": 0, "untestable": 0}
    md = (tmp_path / "LEADERBOARD.md").read_text()
    claims = md[md.index("## Claims"):]
    assert "| claimer | blind | 1 | 1 | 1 |" in claims and "| random |" not in claims


def test_the_tables_count_the_items_their_figures_are_over(claimed):
    """Where a family is flagged, the run-level figures are over the other families' variants, and
    the tables' header says that count, as the power line does."""
    import json

    out, _ = claimed
    results = json.loads((out / "results.json").read_text())
    n = results["families"]["multihop"]["n"]
    assert f"  {results['n_variant']} items; ranked" in format_results(Results.of(results))
    results["competence"]["scored_families"] = ["multihop"]
    assert f"  {n} items; ranked" in format_results(Results.of(results)) and n < results["n_variant"]
