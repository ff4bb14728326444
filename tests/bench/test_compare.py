import copy
import json

import pytest

from bench.cli import main
from bench.scoring.compare import compare, parse_max_drop
from bench.errors import UserError


def results(auroc, lo, hi, brier=0.1, seed=0, cells=(("addition", "digits=4", 100),)):
    return {"provenance": {"seed": seed},
            "cells": [{"family": f, "cell": c, "n": n} for f, c, n in cells],
            "predictors": {"probe": {"status": "ok", "track": "trace", "auroc": {"value": auroc, "lo": lo, "hi": hi},
                                     "pair_auroc": {"value": auroc, "lo": lo, "hi": hi},
                                     "brier": {"value": brier, "lo": brier - 0.01, "hi": brier + 0.01}}}}


def test_improvement_passes():
    regressed, lines = compare(results(0.90, 0.86, 0.94), results(0.80, 0.75, 0.85), {"auroc": 0.02})
    assert not regressed and "no regression" in lines[-1]


def test_real_regression_fails_and_says_by_how_much():
    regressed, lines = compare(results(0.70, 0.66, 0.74), results(0.80, 0.76, 0.84), {"auroc": 0.02})
    assert regressed
    assert any("REGRESSED probe (trace): auroc 0.800 -> 0.700" in l and "worse by 0.100" in l for l in lines)


def test_noise_is_not_a_regression():
    # Worse by 0.05, but the old value sits inside the new (wide) interval.
    regressed, lines = compare(results(0.75, 0.62, 0.86), results(0.80, 0.70, 0.88), {"auroc": 0.02})
    assert not regressed and any(l.startswith("noise") for l in lines)


def test_lower_is_better_metrics():
    regressed, _ = compare(results(0.8, 0.76, 0.84, brier=0.30), results(0.8, 0.76, 0.84, brier=0.10), {"brier": 0.05})
    assert regressed


def test_a_failed_predictor_is_a_regression():
    new = results(0.8, 0.76, 0.84)
    new["predictors"]["probe"] = {"status": "failed", "reason": "ValueError: boom"}
    assert compare(new, results(0.8, 0.76, 0.84), {"auroc": 0.02})[0]


def test_mismatched_suites_are_unusable_input():
    with pytest.raises(UserError, match="different suites"):
        compare(results(0.8, 0.7, 0.9, seed=1), results(0.8, 0.7, 0.9), {"auroc": 0.02})
    with pytest.raises(UserError, match="different suites"):
        compare(results(0.8, 0.7, 0.9, cells=(("addition", "digits=5", 100),)), results(0.8, 0.7, 0.9), {"auroc": 0.02})


@pytest.mark.parametrize("text", ["auroc", "nope=0.1", "auroc=x", "auroc=-1"])
def test_bad_tolerances(text):
    with pytest.raises(UserError):
        parse_max_drop(text)


def test_cli_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(results(0.80, 0.76, 0.84)))
    bad.write_text(json.dumps(results(0.60, 0.56, 0.64)))
    assert main(["compare", str(good), "--baseline", str(good)]) == 0
    assert main(["compare", str(bad), "--baseline", str(good)]) == 1
    (tmp_path / "corrupt.json").write_text("{not json")
    assert main(["compare", str(tmp_path / "corrupt.json"), "--baseline", str(good)]) == 2
    assert "corrupted" in capsys.readouterr().err
