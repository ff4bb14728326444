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
    cells, _ = _cell_points(y.astype(float), s, onehot)
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
    points, _ = _cell_points(y, s, onehot)
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

    from bench.scoring.metrics import family_metrics, family_resamples

    rng = np.random.default_rng(5)
    cells = np.array([f"{f}/c{k % 2}" for f in ("a", "b") for k in range(40)])
    failed = rng.random(len(cells)) < 0.5
    scores = rng.random(len(cells))
    _, rows = family_metrics(failed, cells, {"p": scores}, seed=11, n_boot=100)
    members = [np.arange(40), np.arange(40, 80)]
    draws = next(family_resamples(["a", "b"], members, seed=11, n_boot=100))
    for r in range(5):
        per_family = []
        for m, idx in zip(members, draws):
            picked = m[idx[r]]
            if failed[picked].all() or not failed[picked].any():
                continue
            per_family.append(roc_auc_score(failed[picked], scores[picked]))
        assert rows["p"][r] == pytest.approx(np.mean(per_family))


def test_each_track_is_judged_against_its_own_baselines_and_the_trace_track_against_the_reference():
    rng = np.random.default_rng(0)
    cells = np.array([f"f{k % 2}/c{k % 4}" for k in range(400)])
    failed = rng.random(400) < 0.5
    noise = lambda: rng.random(400)  # noqa: E731
    scores = {"random": noise(), "prompt_length": noise(), "confidence": np.clip(failed * 0.5 + noise() * 0.5, 0, 1),
              "blind_p": np.clip(failed * 0.2 + noise() * 0.8, 0, 1), "trace_p": np.clip(failed * 0.2 + noise() * 0.8, 0, 1)}
    tracks = {"random": "blind", "prompt_length": "blind", "confidence": "trace", "blind_p": "blind", "trace_p": "trace"}
    out = score_predictors(failed, cells, scores, seed=0, n_boot=200, tracks=tracks, reference=failed * 0.9 + 0.05)
    assert out["blind_p"]["vs_best_baseline"]["baseline"] in ("random", "prompt_length")  # never confidence
    assert out["blind_p"]["vs_best_baseline"]["beats"] is True
    assert out["trace_p"]["vs_best_baseline"]["baseline"] == "confidence"
    assert out["trace_p"]["vs_best_baseline"]["beats"] is False  # confidence is the stronger here
    assert out["trace_p"]["vs_reference"]["difference"]["hi"] < 0 and "vs_reference" not in out["blind_p"]
    assert out["answer_visible"]["family_auroc"]["value"] == pytest.approx(1.0)


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
        assert alone["p"]["family_auroc"] == alone["p"]["auroc"]  # one family: the pooled figure
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


def test_pooled_rows_from_a_second_process_give_the_same_figures(monkeypatch):
    """The run scores its pooled figures in a forked child while it scores the families: the rows
    that come back are the ones computed here, and a child that fails is replaced by computing
    them here."""
    import os
    import sys

    from bench.background import Background
    from bench.scoring.metrics import pooled_rows

    rng = np.random.default_rng(9)
    cells = np.array([f"{f}/c{k % 3}" for f in ("a", "b") for k in range(60)])
    failed = rng.random(len(cells)) < 0.4
    scores = {"random": rng.random(len(cells)), "p": np.clip(failed * 0.3 + rng.random(len(cells)) * 0.7, 0, 1)}
    here = score_predictors(failed, cells, scores, seed=4, n_boot=200)
    job = Background(pooled_rows, failed, cells, scores, 4, 200)
    if sys.platform.startswith("linux"):
        assert job._pid is not None and job._pid != os.getpid()  # it did fork
    assert score_predictors(failed, cells, scores, seed=4, n_boot=200, rows=job.result()) == here

    def broken(*args):
        raise RuntimeError("the child fails")

    failing = Background(broken)
    with pytest.raises(RuntimeError, match="the child fails"):  # computed here after the child failed
        failing.result()
    idle = Background(pooled_rows, failed, cells, scores, 4, 200)
    idle.cancel()  # an interrupted caller leaves no child behind
    assert idle._pid is None


def test_the_runs_scoring_split_over_two_processes_gives_the_figures_of_one(monkeypatch, tmp_path):
    """The run's families are taken in turn by this process and the child that resamples the pooled
    items: the same figures as all in one process, and a family the child claimed before it died is
    computed here."""
    import os
    import time
    from types import SimpleNamespace

    from bench import background
    from bench.protocol import stages

    rng = np.random.default_rng(5)
    names = ("a", "b", "c", "d")
    variants = [SimpleNamespace(family=f) for f in names for _ in range(40)]
    cells = np.array([f"{v.family}/c{k % 2}" for k, v in enumerate(variants)])
    failed = rng.random(len(cells)) < 0.4
    scores = {"random": rng.random(len(cells)), "p": np.clip(failed * 0.3 + rng.random(len(cells)) * 0.7, 0, 1)}
    tracks = {"random": "blind", "p": "blind"}
    competence = {"base_failure": {f: 0.0 for f in names}, "flagged": []}
    kept = np.ones(len(cells), dtype=bool)
    monkeypatch.setattr(stages, "N_BOOTSTRAP", 200)

    def scored():
        return stages._score_families(dict.fromkeys(names), variants, failed, cells, scores, 3, tracks, None,
                                      competence, kept)

    split = scored()
    with monkeypatch.context() as m:
        m.setattr(background, "_fork", lambda: None)  # no child: everything here
        alone = scored()
    assert split == alone

    parent, real = os.getpid(), stages.score_predictors
    taken = []

    def slow_here_dead_there(failed_, cells_, *args, **kwargs):
        if len(set(c.split("/")[0] for c in cells_)) == 1:  # one family's scoring
            if os.getpid() != parent:
                (tmp_path / "claimed").write_text(cells_[0])
                os._exit(1)  # the child dies holding the family it claimed
            taken.append(cells_[0])
            time.sleep(0.5)  # this process is slow: the child finishes its pooled rows and claims one
        return real(failed_, cells_, *args, **kwargs)

    monkeypatch.setattr(stages, "score_predictors", slow_here_dead_there)
    assert scored() == alone
    if sys.platform.startswith("linux"):
        lost = (tmp_path / "claimed").read_text().split("/")[0]  # the child did claim one, and died
        assert lost in names and lost in [c.split("/")[0] for c in taken]  # which was computed here
    assert len(taken) == len(names)
