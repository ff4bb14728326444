"""Scores: how well predicted failure matches observed failure.

Point estimates come from scikit-learn and scipy. Bootstrap intervals resample
items (seeded, the same resamples for every predictor, so differences are
paired) and compute each metric for all resamples at once; tests check those
vectorized rows against scikit-learn/scipy on the same resamples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

N_BOOTSTRAP = 1000
ECE_BINS = 10
#: The bar every predictor is shown against (DESIGN.md): random, prompt length, output confidence.
BASELINES = ("random", "prompt_length", "confidence")
METRICS = ("auroc", "auprc", "brier", "ece")  # item level
CELL_METRICS = ("spearman", "mae")  # across cells
HIGHER_IS_BETTER = {"auroc": True, "auprc": True, "brier": False, "ece": False, "spearman": True, "mae": False}


@dataclass(frozen=True)
class Interval:
    value: float | None
    lo: float | None
    hi: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


NONE = Interval(None, None, None)


def format_interval(metric: dict | None, signed: bool = False, around=lambda text: text) -> str:
    """'0.911 [0.868, 0.944]' from a stored interval; `around` wraps the bracketed part."""
    if not metric or metric.get("value") is None:
        return "n/a"
    f = "+.3f" if signed else ".3f"
    if metric.get("lo") is None:
        return format(metric["value"], f)
    return f"{metric['value']:{f}} " + around(f"[{metric['lo']:{f}}, {metric['hi']:{f}}]")


def bootstrap_indices(n: int, seed: int, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """(n_boot, n) resampled item indices, the same for every predictor of a run."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


# -- vectorized metric rows: one value per bootstrap resample -------------------

def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of each row, ties sharing their average rank (scipy's rankdata, one argsort)."""
    n = x.shape[1]
    order = np.argsort(x, axis=1)  # ties are averaged, so their order does not matter
    s = np.take_along_axis(x, order, 1)
    position = np.arange(n)[None, :]
    first = np.ones_like(s, dtype=bool)
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    last = np.ones_like(s, dtype=bool)
    last[:, :-1] = s[:, :-1] != s[:, 1:]
    start = np.maximum.accumulate(np.where(first, position, 0), axis=1)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, position, n - 1), 1), axis=1), 1)
    ranks = np.empty_like(s, dtype=np.float64)
    np.put_along_axis(ranks, order, (start + end) / 2 + 1, 1)
    return ranks


def _auroc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row (Mann-Whitney U / (n_pos * n_neg)); NaN where a row has one class."""
    ranks = average_ranks(scores)
    n_pos = labels.sum(1)
    n_neg = labels.shape[1] - n_pos
    u = (ranks * labels).sum(1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def _auprc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of each row, as scikit-learn defines it (ties share a threshold)."""
    order = np.argsort(-scores, axis=1)  # ties form one threshold, so their order does not matter
    s = np.take_along_axis(scores, order, 1)
    y = np.take_along_axis(labels, order, 1)
    tp = np.cumsum(y, axis=1)
    rank = np.arange(1, s.shape[1] + 1)[None, :]
    last_of_tie = np.ones_like(s, dtype=bool)
    last_of_tie[:, :-1] = s[:, :-1] != s[:, 1:]
    n_pos = y.sum(1, keepdims=True)
    precision = tp / rank
    recall = tp / np.maximum(n_pos, 1)
    # Each tie group counts once, at its last item; the recall step is from the previous group's end.
    first_of_tie = np.ones_like(s, dtype=bool)
    first_of_tie[:, 1:] = s[:, 1:] != s[:, :-1]
    start = np.maximum.accumulate(np.where(first_of_tie, np.arange(s.shape[1])[None, :], 0), axis=1)
    before = np.take_along_axis(recall, np.maximum(start - 1, 0), 1)
    previous = np.where(start > 0, before, 0.0)
    ap = np.where(last_of_tie, (recall - previous) * precision, 0.0).sum(1)
    return np.where(n_pos[:, 0] > 0, ap, np.nan)


def _brier_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return ((scores - labels) ** 2).mean(1)


def _ece_rows(labels: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Expected calibration error with equal-width bins (the binning of sklearn's calibration_curve)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], scores)  # the same bins as sklearn.calibration.calibration_curve
    n = scores.shape[1]
    offsets = (np.arange(scores.shape[0]) * bins)[:, None]
    flat = (which + offsets).ravel()
    count = np.bincount(flat, minlength=scores.shape[0] * bins).reshape(-1, bins)
    conf = np.bincount(flat, weights=scores.ravel(), minlength=scores.shape[0] * bins).reshape(-1, bins)
    acc = np.bincount(flat, weights=labels.ravel(), minlength=scores.shape[0] * bins).reshape(-1, bins)
    return (np.abs(acc - conf)).sum(1) / n


_ROWS = {"auroc": _auroc_rows, "auprc": _auprc_rows, "brier": _brier_rows, "ece": _ece_rows}


def point(metric: str, failed: np.ndarray, scores: np.ndarray) -> float | None:
    """A metric's point estimate from scikit-learn (ECE from sklearn's calibration bins)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.asarray(failed, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if metric in ("auroc", "auprc") and (y.all() or not y.any()):
        return None
    if metric == "auroc":
        return float(roc_auc_score(y, s))
    if metric == "auprc":
        return float(average_precision_score(y, s))
    if metric == "brier":
        return float(brier_score_loss(y, s, pos_label=True)) if len(y) else None
    if metric == "ece":
        return expected_calibration_error(y, s)
    raise ValueError(metric)


def expected_calibration_error(failed, scores, bins: int = ECE_BINS) -> float:
    from sklearn.calibration import calibration_curve

    y = np.asarray(failed, dtype=float)
    s = np.asarray(scores, dtype=float)
    if len(y) == 0:
        return float("nan")
    if len(set(y)) < 2:  # calibration_curve needs both outcomes; one bin term per occupied bin
        return float(_ece_rows(y[None], s[None], bins)[0])
    observed, predicted = calibration_curve(y, s, n_bins=bins, strategy="uniform")
    occupied = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], s),
                           minlength=bins)
    weights = occupied[occupied > 0] / len(s)
    return float(np.sum(weights * np.abs(observed - predicted)))


def _interval(value: float | None, rows: np.ndarray) -> Interval:
    if value is None or np.isnan(rows).all():
        return Interval(value, None, None) if value is not None else NONE
    lo, hi = np.nanpercentile(rows, [2.5, 97.5])
    return Interval(value, float(lo), float(hi))


def item_metrics(failed, scores, idx: np.ndarray, rows: dict | None = None) -> dict[str, Interval]:
    """Every item-level metric with its bootstrap interval, over resamples `idx`.
    Pass a dict as `rows` to get each metric's bootstrap rows back in it."""
    y = np.asarray(failed, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    yb, sb = y[idx], s[idx]
    out = {}
    for metric in METRICS:
        value = point(metric, y.astype(bool), s)
        if value is None:
            out[metric] = NONE
            continue
        boot = _ROWS[metric](yb, sb)
        if rows is not None:
            rows[metric] = boot
        out[metric] = _interval(value, boot)
    return out


def auroc(failed: Sequence[bool], scores: Sequence[float], seed: int = 0, n_boot: int = N_BOOTSTRAP) -> Interval:
    """AUROC of `scores` for predicting `failed`, with a 95% percentile bootstrap interval."""
    y = np.asarray(failed, dtype=bool)
    return item_metrics(y, scores, bootstrap_indices(len(y), seed, n_boot))["auroc"]


# -- cells ------------------------------------------------------------------------

def _group_means(values: np.ndarray, groups: np.ndarray, n_groups: int, idx: np.ndarray) -> np.ndarray:
    """(resample, group) mean of `values` over each resample's items in each group."""
    b = idx.shape[0]
    g = groups[idx] + (np.arange(b) * n_groups)[:, None]
    total = np.bincount(g.ravel(), weights=values[idx].ravel(), minlength=b * n_groups).reshape(b, n_groups)
    count = np.bincount(g.ravel(), minlength=b * n_groups).reshape(b, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (Pearson correlation of ranks), ignoring NaN cells."""
    out = np.full(a.shape[0], np.nan)
    ok = ~(np.isnan(a) | np.isnan(b))
    full = ok.all(1)
    if full.any():
        ra, rb = average_ranks(a[full]), average_ranks(b[full])
        ra -= ra.mean(1, keepdims=True)
        rb -= rb.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[full] = (ra * rb).sum(1) / np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return out


def cell_metrics(failed, scores, groups: np.ndarray, n_groups: int, idx: np.ndarray) -> dict[str, Interval]:
    """Across cells: Spearman rho and mean absolute error between mean predicted and observed failure."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error

    y = np.asarray(failed, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    identity = np.arange(len(y))[None, :]
    observed, predicted = _group_means(y, groups, n_groups, identity)[0], _group_means(s, groups, n_groups, identity)[0]
    boot_obs, boot_pred = _group_means(y, groups, n_groups, idx), _group_means(s, groups, n_groups, idx)
    out = {"mae": _interval(float(mean_absolute_error(observed, predicted)), np.nanmean(np.abs(boot_obs - boot_pred), 1))}
    if n_groups >= 3 and np.ptp(observed) > 0 and np.ptp(predicted) > 0:
        rho = float(spearmanr(predicted, observed).statistic)
        out["spearman"] = _interval(rho, _spearman_rows(boot_pred, boot_obs))
    else:
        out["spearman"] = NONE
    return out


def difference(failed, scores, reference, idx: np.ndarray, metric: str = "auroc") -> Interval:
    """metric(scores) - metric(reference), with a paired bootstrap interval."""
    y = np.asarray(failed, dtype=np.float64)
    a, b = point(metric, y.astype(bool), scores), point(metric, y.astype(bool), reference)
    if a is None or b is None:
        return NONE
    rows = _ROWS[metric](y[idx], np.asarray(scores, float)[idx]) - _ROWS[metric](y[idx], np.asarray(reference, float)[idx])
    return _interval(a - b, rows)


def cell_table(rows: Sequence[dict], predictions: dict[str, np.ndarray]) -> list[dict]:
    """Observed failure rate and mean predicted failure per (family, cell).

    `rows` are dicts with family, cell, shift, split and failed, in item order;
    `predictions` maps predictor name to scores in the same order (variants only
    have them; base rows get none)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row["family"], row["cell"]), []).append(i)
    table = []
    for (family, cell), index in groups.items():
        first = rows[index[0]]
        failed = np.array([rows[i]["failed"] for i in index], dtype=float)
        entry = {"family": family, "cell": cell, "shift": first["shift"], "split": first["split"],
                 "n": len(index), "failure_rate": float(failed.mean())}
        if first["split"] == "variant":
            entry["mean_predicted"] = {name: float(np.mean(p[[rows[i]["pred_index"] for i in index]]))
                                       for name, p in predictions.items()}
        table.append(entry)
    return table


def score_predictors(failed: np.ndarray, cells: np.ndarray, scores: dict[str, np.ndarray], seed: int,
                     n_boot: int = N_BOOTSTRAP) -> dict[str, dict]:
    """Every metric for every predictor, and each one's AUROC difference from the best baseline."""
    failed = np.asarray(failed, dtype=bool)
    idx = bootstrap_indices(len(failed), seed, n_boot)
    _, groups = np.unique(cells, return_inverse=True)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    out: dict[str, dict] = {}
    rows: dict[str, dict] = {}
    for name, s in scores.items():
        rows[name] = {}
        metrics = item_metrics(failed, s, idx, rows[name])
        metrics.update(cell_metrics(failed, s, groups, n_groups, idx))
        out[name] = {k: v.to_dict() for k, v in metrics.items()}
    present = [b for b in BASELINES if b in scores and out[b]["auroc"]["value"] is not None]
    if present:
        best = max(present, key=lambda b: out[b]["auroc"]["value"])
        for name in scores:
            value = out[name]["auroc"]["value"]
            diff = NONE if value is None else _interval(value - out[best]["auroc"]["value"],
                                                        rows[name]["auroc"] - rows[best]["auroc"])
            out[name]["vs_best_baseline"] = {"baseline": best, "auroc_difference": diff.to_dict(),
                                             "beats": bool(diff.lo is not None and diff.lo > 0)}
    return out
