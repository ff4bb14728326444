import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, mean_absolute_error, roc_auc_score

from bench.scoring.metrics import (_auprc_rows, _auroc_rows, _brier_rows, _ece_rows, auroc, bootstrap_indices, cell_metrics,
                         counts_of, difference, expected_calibration_error, point, score_predictors, _spearman_rows)


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
    assert expected_calibration_error([True, False], [0.55, 0.55]) == pytest.approx(0.05)
    assert expected_calibration_error([False, False], [0.95, 0.95]) == pytest.approx(0.95)
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
    points, _ = _cell_points(y, s, onehot)
    assert points["spearman"] == pytest.approx(spearmanr([0.2, 0.2, 0.9], [1 / 3, 2 / 3, 1]).statistic)
