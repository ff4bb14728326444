import sys

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, mean_absolute_error, roc_auc_score

from bench.scoring.metrics import (_auprc_rows, _cell_points, _auroc_rows, _brier_rows, _ece_rows, auroc, bootstrap_indices, cell_metrics,
                         counts_of, difference, point, score_predictors, _spearman_rows)


def expected_calibration_error(failed, scores, bins: int = 10) -> float:
    """The judge: ECE from scikit-learn's calibration_curve (equal-width bins), weighted by bin size."""
    y, s = np.asarray(failed, dtype=float), np.asarray(scores, dtype=float)
    if len(set(y)) < 2:  # calibration_curve needs both outcomes: one bin term per occupied bin
        occupied = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], s)
        return float(sum(abs((y - s)[occupied == b].sum()) for b in set(occupied)) / len(y))
    observed, predicted = calibration_curve(y, s, n_bins=bins, strategy="uniform")
    occupied = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], s), minlength=bins)
    return float(np.sum(occupied[occupied > 0] / len(s) * np.abs(observed - predicted)))


def test_hand_computable_cases():
    y = [True, True, False, False]
    s = [0.9, 0.4, 0.1, 0.5]
    # 3 of 4 (failure, success) pairs ordered right.
    assert point("auroc", np.array(y), np.array(s)) == pytest.approx(0.75)
    # Ranked 0.9 (fail), 0.5 (ok), 0.4 (fail), 0.1 (ok): AP = 1/2 * 1 + 1/2 * 2/3.
    assert point("auprc", np.array(y), np.array(s)) == pytest.approx(0.5 + 1 / 3)
    # Brier: ((0.1)^2 + (0.6)^2 + (0.1)^2 + (0.5)^2) / 4
    assert point("brier", np.array(y), np.array(s)) == pytest.approx((0.01 + 0.36 + 0.01 + 0.25) / 4)
    # ECE with two items per perfectly-calibrated bin is 0; all-wrong confident predictions give 0.9.
    assert point("ece", np.array([True, False]), np.array([0.55, 0.55])) == pytest.approx(0.05)
    assert point("ece", np.array([False, False]), np.array([0.95, 0.95])) == pytest.approx(0.95)
    assert auroc([True, True], [0.1, 0.2]).value is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_rows_equal_library_metrics_on_each_resample(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(60) < 0.4
    s = np.round(rng.random(60), 1)  # ties included
    idx = bootstrap_indices(60, seed=seed, n_boot=25)
    counts, yf = counts_of(idx, 60), y.astype(float)
    a, p = _auroc_rows(counts, yf, s), _auprc_rows(counts, yf, s)
    b, e = _brier_rows(counts, yf, s), _ece_rows(counts, yf, s)
    for k in range(25):
        yk, sk = y[idx[k]], s[idx[k]]
        two = 0 < yk.sum() < len(yk)
        assert a[k] == pytest.approx(roc_auc_score(yk, sk) if two else np.nan, nan_ok=True)
        assert p[k] == pytest.approx(average_precision_score(yk, sk) if yk.any() else np.nan, nan_ok=True)
        assert b[k] == pytest.approx(brier_score_loss(yk, sk))
        assert e[k] == pytest.approx(expected_calibration_error(yk, sk))


@pytest.mark.parametrize("seed", [0, 1])
def test_point_estimates_equal_library_metrics(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(80) < 0.3
    s = np.round(rng.random(80), 2)
    assert point("auroc", y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert point("auprc", y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert point("brier", y, s) == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    assert point("ece", y, s) == pytest.approx(expected_calibration_error(y, s), abs=1e-12)
    onehot = np.eye(5)[rng.integers(0, 5, 80)]
    cells = _cell_points(y.astype(float), s, onehot)
    observed = [y[onehot[:, k] > 0].mean() for k in range(5)]
    predicted = [s[onehot[:, k] > 0].mean() for k in range(5)]
    assert cells["spearman"] == pytest.approx(spearmanr(predicted, observed).statistic, abs=1e-12)
    assert cells["mae"] == pytest.approx(mean_absolute_error(observed, predicted), abs=1e-12)


def test_spearman_rows_equal_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.random((10, 7)), rng.random((10, 7))
    a[:, 3] = a[:, 4]  # ties
    rows = _spearman_rows(a, b)
    for k in range(10):
        assert rows[k] == pytest.approx(spearmanr(a[k], b[k]).statistic)


def test_cell_metrics_on_a_hand_case():
    failed = np.array([1, 1, 0, 0, 1, 0], dtype=bool)      # cells: a a b b c c
    scores = np.array([0.9, 0.7, 0.1, 0.3, 0.6, 0.4])
    groups = np.array([0, 0, 1, 1, 2, 2])
    m = cell_metrics(failed, scores, groups, 3, bootstrap_indices(6, 0, 50))
    # observed (1, 0, 0.5), predicted (0.8, 0.2, 0.5): same order, MAE = (0.2 + 0.2 + 0) / 3
    assert m["spearman"].value == pytest.approx(1.0)
    assert m["mae"].value == pytest.approx(mean_absolute_error([1, 0, 0.5], [0.8, 0.2, 0.5]))


def test_bootstrap_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.5
    s = (y * 0.3 + rng.random(200)) / 1.3
    a, b = auroc(y, s, seed=5), auroc(y, s, seed=5)
    assert a == b
    assert a.lo < a.value < a.hi
    assert auroc(y, s, seed=6) != a


def test_difference_is_paired_and_flags_a_real_improvement():
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.5
    good = (y * 1.0 + rng.random(400)) / 2
    weak = (y * 0.2 + rng.random(400)) / 1.2
    idx = bootstrap_indices(400, 0)
    diff = difference(y, good, weak, idx)
    assert diff.value > 0 and diff.lo > 0
    same = difference(y, weak, weak, idx)
    assert same.value == 0 and same.lo == 0 and same.hi == 0


def test_score_predictors_compares_with_the_best_baseline():
    rng = np.random.default_rng(2)
    y = rng.random(300) < 0.4
    cells = np.array([f"c{k % 5}" for k in range(300)])
    scores = {"random": rng.random(300), "confidence": np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1),
              "strong": np.clip(y * 0.8 + rng.random(300) * 0.2, 0, 1)}
    out = score_predictors(y, cells, scores, seed=0, n_boot=200)
    assert out["strong"]["vs_best_baseline"]["baseline"] == "confidence"
    assert out["strong"]["vs_best_baseline"]["beats"] is True
    assert out["random"]["vs_best_baseline"]["beats"] is False
    assert set(out["strong"]) >= {"auroc", "auprc", "brier", "ece", "spearman", "mae"}


def test_average_ranks_equal_scipy_rankdata():
    from scipy.stats import rankdata

    from bench.scoring.metrics import average_ranks

    x = np.round(np.random.default_rng(0).random((20, 30)), 1)
    np.testing.assert_allclose(average_ranks(x), rankdata(x, axis=1))


def test_tied_cell_means_stay_tied():
    from bench.scoring.metrics import _cell_points

    # Two cells whose predicted means are equal in exact arithmetic, but not in float summation order.
    s = np.array([0.1, 0.2, 0.3, 0.3, 0.2, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 0, 1, 1, 0, 1, 1], dtype=float)
    onehot = np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 2]]
    points = _cell_points(y, s, onehot)
    assert points["spearman"] == pytest.approx(spearmanr([0.2, 0.2, 0.9], [1 / 3, 2 / 3, 1]).statistic)


def test_family_auroc_is_the_mean_of_each_familys_auroc_and_ignores_family_base_rates():
    from sklearn.metrics import roc_auc_score

    from bench.scoring.metrics import family_metrics

    rng = np.random.default_rng(3)
    cells = np.array([f"{f}/c{k % 3}" for f in ("easy", "hard", "flat") for k in range(60)])
    rates = {"easy": 0.2, "hard": 0.8, "flat": 1.0}
    failed = np.array([rng.random() < rates[c.split("/")[0]] for c in cells])
    failed[cells == "flat/c0"] = True  # one outcome only: left out of the mean
    family_rate = np.array([rates[c.split("/")[0]] for c in cells])  # knows which family is hard, nothing else
    informed = np.clip(failed * 0.3 + rng.random(len(cells)) * 0.7, 0, 1)
    out, rows = family_metrics(failed, cells, {"family_rate": family_rate, "informed": informed}, seed=0, n_boot=200)
    by_hand = np.mean([roc_auc_score(failed[:60], informed[:60]), roc_auc_score(failed[60:120], informed[60:120])])
    assert out["informed"]["family_aurocs"]["flat"] is None
    assert out["informed"]["family_auroc"].value == pytest.approx(by_hand)
    assert out["family_rate"]["family_auroc"].value == pytest.approx(0.5)  # constant within each family
    assert point("auroc", failed, family_rate) > 0.7  # while pooled AUROC rewards it
    assert rows["informed"].shape == (200,)
    assert out["informed"]["family_auroc"].lo < by_hand < out["informed"]["family_auroc"].hi


def test_family_bootstrap_rows_match_scikit_learn_on_the_same_draws():
    from sklearn.metrics import roc_auc_score

    from bench.scoring.metrics import family_metrics, resample_chunks

    rng = np.random.default_rng(5)
    cells = np.array([f"{f}/c{k % 2}" for f in ("a", "b") for k in range(40)])
    failed = rng.random(len(cells)) < 0.5
    scores = rng.random(len(cells))
    _, rows = family_metrics(failed, cells, {"p": scores}, seed=11, n_boot=100)
    members = [np.arange(40), np.arange(40, 80)]
    draws = [next(resample_chunks(40, seed=11, n_boot=100, family=f)) for f in ("a", "b")]  # each family's own
    for r in range(5):  # the ranking figure's rows: each family's U over its pairs, pooled over families
        u = pairs = 0.0
        for m, idx in zip(members, draws):
            picked = m[idx[r]]
            n_pos, n_neg = int(failed[picked].sum()), int((~failed[picked]).sum())
            if n_pos and n_neg:
                u += roc_auc_score(failed[picked], scores[picked]) * n_pos * n_neg
                pairs += n_pos * n_neg
        assert rows["p"][r] == pytest.approx(u / pairs)


def test_each_track_is_judged_against_its_own_baselines_and_the_trace_track_against_the_reference():
    rng = np.random.default_rng(0)
    cells = np.array([f"f{k % 2}/c{k % 4}" for k in range(400)])
    failed = rng.random(400) < 0.5
    noise = lambda: rng.random(400)  # noqa: E731
    scores = {"random": noise(), "prompt_length": noise(), "confidence": np.clip(failed * 0.5 + noise() * 0.5, 0, 1),
              "blind_p": np.clip(failed * 0.2 + noise() * 0.8, 0, 1), "trace_p": np.clip(failed * 0.2 + noise() * 0.8, 0, 1)}
    tracks = {"random": "blind", "prompt_length": "blind", "confidence": "trace", "blind_p": "blind", "trace_p": "trace"}
    out = score_predictors(failed, cells, scores, seed=0, n_boot=200, tracks=tracks, reference=failed * 0.9 + 0.05)
    assert out["blind_p"]["vs_best_baseline"]["baseline"] == "prompt_length"  # never confidence, never random
    assert out["blind_p"]["vs_best_baseline"]["beats"] is True
    assert out["trace_p"]["vs_best_baseline"]["baseline"] == "confidence"
    assert out["trace_p"]["vs_best_baseline"]["beats"] is False  # confidence is the stronger here
    assert out["trace_p"]["vs_reference"]["difference"]["hi"] < 0 and "vs_reference" not in out["blind_p"]
    assert out["answer_visible"]["pair_auroc"]["value"] == pytest.approx(1.0)


def test_a_run_scored_after_its_families_reuses_their_draws_and_gets_the_same_figures():
    """Each family scored alone draws from its own stream; the run's family-balanced figures drawn
    afresh and taken from those per-family scorings agree exactly."""
    rng = np.random.default_rng(8)
    cells = np.array([f"{f}/c{k % 3}" for f in ("a", "b", "c") for k in range(50)])
    failed = rng.random(len(cells)) < 0.4
    scores = {"random": rng.random(len(cells)), "p": np.clip(failed * 0.3 + rng.random(len(cells)) * 0.7, 0, 1)}
    tracks = {"random": "blind", "p": "blind"}
    fresh = score_predictors(failed, cells, scores, seed=3, n_boot=200, tracks=tracks)
    known: dict = {}
    for f in ("a", "b", "c"):
        m = np.char.startswith(cells, f + "/")
        alone = score_predictors(failed[m], cells[m], {k: v[m] for k, v in scores.items()}, seed=3, n_boot=200,
                                 tracks=tracks, families=known)
        assert alone["p"]["family_auroc"] == alone["p"]["pair_auroc"]  # one family: its own AUROC, both ways
        assert alone["p"]["pair_auroc"]["value"] == alone["p"]["auroc"]["value"]
    assert sorted(known) == ["a", "b", "c"]
    reused = score_predictors(failed, cells, scores, seed=3, n_boot=200, tracks=tracks, families=known)
    assert reused == fresh


def test_tie_sums_from_the_draws_equal_those_from_the_counts():
    from bench.scoring.metrics import Drawn, Sorted, _tie_sums, _tie_sums_drawn

    rng = np.random.default_rng(4)
    y = (rng.random(50) < 0.4).astype(float)
    s = np.round(rng.random(50), 1)  # ties
    idx = bootstrap_indices(50, seed=2, n_boot=30)
    drawn, counted = _tie_sums_drawn(Drawn(idx, y), Sorted(s)), _tie_sums(counts_of(idx, 50), y, Sorted(s))
    for a, b in zip(drawn, counted):
        assert a.shape == b.shape and np.array_equal(a, b)


def _brute_pair_auroc(failed, cells, scores):
    """Every (failed, passed) pair inside one family, counted one by one; ties half."""
    fam = np.array([c.split("/")[0] for c in cells])
    concordant, pairs = 0.0, 0
    for i in range(len(failed)):
        for j in range(len(failed)):
            if fam[i] == fam[j] and failed[i] and not failed[j]:
                pairs += 1
                concordant += 1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0
    return concordant / pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_auroc_equals_a_brute_force_pair_count_with_ties_and_one_outcome_families(seed):
    rng = np.random.default_rng(seed)
    cells = np.array([f"{f}/c{k % 2}" for f, n in (("a", 30), ("b", 12), ("c", 9), ("d", 20)) for k in range(n)])
    failed = rng.random(len(cells)) < 0.5
    failed[np.char.startswith(cells, "c/")] = True  # one outcome only: no pairs, no weight
    failed[np.char.startswith(cells, "d/")] = np.arange(20) == 3  # a single passing... failing item
    scores = {"p": np.round(rng.random(len(cells)), 1)}  # ties included
    out = score_predictors(failed, cells, scores, seed=0, n_boot=100)
    assert out["p"]["pair_auroc"]["value"] == pytest.approx(_brute_pair_auroc(failed, cells, scores["p"]), abs=1e-12)
    assert out["p"]["family_aurocs"]["c"] is None


def test_a_predictor_that_knows_only_each_familys_base_rate_scores_exactly_one_half():
    rng = np.random.default_rng(4)
    rates = {"easy": 0.1, "mid": 0.5, "hard": 0.9}
    cells = np.array([f"{f}/c{k % 3}" for f in rates for k in range(100)])
    failed = np.array([rng.random() < rates[c.split("/")[0]] for c in cells])
    base_rate = np.array([rates[c.split("/")[0]] for c in cells])
    out = score_predictors(failed, cells, {"base_rate": base_rate}, seed=0, n_boot=100)
    assert out["base_rate"]["pair_auroc"]["value"] == 0.5
    assert out["base_rate"]["auroc"]["value"] > 0.8  # pooled over families it would look like a finding


def test_no_signal_band_matches_a_slow_permutation_loop():
    from bench.scoring.metrics import no_signal_band

    rng = np.random.default_rng(6)
    cells = np.array([f"{f}/c{k % 4}" for f, n in (("a", 80), ("b", 40), ("c", 25)) for k in range(n)])
    failed = rng.random(len(cells)) < np.where(np.char.startswith(cells, "a/"), 0.3, 0.7)
    band = no_signal_band(failed, cells, seed=1, n_perm=2000)
    fam = np.array([c.split("/")[0] for c in cells])
    slow = []
    base = np.arange(len(cells), dtype=float)
    for _ in range(1000):
        s = base.copy()
        for f in ("a", "b", "c"):
            m = np.flatnonzero(fam == f)
            s[m] = rng.permutation(s[m])
        slow.append(_brute_pair_auroc_fast(failed, fam, s))
    lo, hi = np.percentile(slow, [2.5, 97.5])
    assert band["pair_auroc"]["lo"] == pytest.approx(lo, abs=0.01)
    assert band["pair_auroc"]["hi"] == pytest.approx(hi, abs=0.01)
    assert band["spearman"]["lo"] < 0 < band["spearman"]["hi"]


def _brute_pair_auroc_fast(failed, fam, s):
    concordant = pairs = 0.0
    for f in set(fam.tolist()):
        m = fam == f
        pos, neg = s[m & failed], s[m & ~failed]
        concordant += (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        pairs += len(pos) * len(neg)
    return concordant / pairs


@pytest.mark.parametrize("seed", range(5))
def test_random_scores_sit_inside_the_no_signal_band(seed):
    from bench.scoring.metrics import no_signal_band

    rng = np.random.default_rng(100 + seed)
    cells = np.array([f"{f}/c{k % 3}" for f in ("a", "b", "c", "d") for k in range(150)])
    failed = rng.random(len(cells)) < 0.4
    band = no_signal_band(failed, cells, seed=seed)["pair_auroc"]
    inside = 0
    for k in range(20):
        value = score_predictors(failed, cells, {"random": rng.random(len(cells))}, seed=0,
                                 n_boot=20)["random"]["pair_auroc"]["value"]
        inside += band["lo"] <= value <= band["hi"]
    assert inside >= 16  # 95% expected; 16 of 20 has chance < 2% of failing by luck
    assert band["hi"] - band["lo"] < 0.1


def test_monotone_transforms_are_marked_and_saturated_outputs_measured():
    from bench.scoring.metrics import minimum_detectable_effect, saturation, same_rankings

    rng = np.random.default_rng(0)
    x = rng.random(50)
    scores = {"prompt_length": x, "transformed": 1 / (1 + np.exp(-3 * x)), "other": rng.random(50),
              "flat": np.where(np.arange(50) < 40, 0.5, x)}
    assert same_rankings(scores, first=("prompt_length",)) == {"transformed": "prompt_length"}
    assert saturation(scores["flat"]) == pytest.approx(0.8) and saturation(scores["other"]) == pytest.approx(0.02)
    mde = minimum_detectable_effect([{"value": 0.0, "lo": -0.0392, "hi": 0.0392}], 1000)
    assert mde["value"] == pytest.approx(2.8 * 0.02) and mde["with_4x_items"] == pytest.approx(mde["value"] / 2)
    from bench.scoring.report.rows import power

    same = {"value": 0.0, "lo": 0.0, "hi": 0.0}  # a predictor ranking every item as the baseline does
    unsized = minimum_detectable_effect([same, same, {"value": 0.1, "lo": 0.0, "hi": 0.2}], 40)
    assert unsized["value"] == 0 and "not sized" in power(unsized) and "0.000" not in power(unsized)
    assert power(mde) == mde["note"]
