import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.score import _auroc_rows, auroc, bootstrap_indices


def test_auroc_hand_computable():
    # Failures scored 0.9 and 0.4, successes 0.1 and 0.5: 3 of 4 pairs ordered right.
    result = auroc([True, True, False, False], [0.9, 0.4, 0.1, 0.5])
    assert result.value == pytest.approx(0.75)
    assert auroc([True, False], [1.0, 0.0]).value == 1.0


def test_auroc_is_none_with_one_class():
    assert auroc([True, True], [0.1, 0.2]).value is None


def test_vectorized_bootstrap_rows_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.4
    s = np.round(rng.random(60), 1)  # ties included
    idx = bootstrap_indices(60, seed=1, n_boot=20)
    rows = _auroc_rows(y[idx].astype(float), s[idx])
    for k in range(20):
        yk, sk = y[idx[k]], s[idx[k]]
        expected = roc_auc_score(yk, sk) if 0 < yk.sum() < len(yk) else np.nan
        assert rows[k] == pytest.approx(expected, nan_ok=True)


def test_bootstrap_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.5
    s = y * 0.3 + rng.random(200)
    a, b = auroc(y, s, seed=5), auroc(y, s, seed=5)
    assert a == b
    assert a.lo < a.value < a.hi
