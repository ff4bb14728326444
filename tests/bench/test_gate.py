"""The project's own regression gate: the default model on the baseline suite must not
regress against leaderboard/baseline.json (refresh it with `make baseline`)."""
import json
from pathlib import Path

from bench.scoring.compare import compare, load_results
from bench.protocol.spec import RunSpec
from bench.protocol.stages import run

ROOT = Path(__file__).resolve().parents[2]


def test_default_model_does_not_regress_against_the_committed_baseline(tmp_path):
    baseline = load_results(ROOT / "leaderboard" / "baseline.json")
    assert baseline["n_variant"] > 0 and len(baseline["predictors"]) >= 10
    new = run(RunSpec(n=baseline["provenance"]["n_per_cell"], seed=baseline["provenance"]["seed"],
                      out=tmp_path / "r"), log=lambda m: None)
    regressed, lines = compare(json.loads((tmp_path / "r" / "results.json").read_text()), baseline,
                               {"auroc": 0.02, "brier": 0.02})
    assert not regressed, "\n".join(lines)
