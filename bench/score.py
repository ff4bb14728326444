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
#: Bump when a metric or the resampling changes: results record it, verify compares like with like.
SCORING_VERSION = 2
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


CHUNK = 100  # resamples held in memory at once: (CHUNK, n) indices, whatever n_boot is


def resample_chunks(n: int, seed: int, n_boot: int = N_BOOTSTRAP, chunk: int = CHUNK):
    """Resampled item indices, `chunk` resamples at a time, each chunk from its own seeded stream."""
    for k, start in enumerate(range(0, n_boot, chunk)):
        yield np.random.default_rng([seed, k]).integers(0, n, size=(min(chunk, n_boot - start), n))


def bootstrap_indices(n: int, seed: int, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """All (n_boot, n) resampled indices at once (small n only: tests and hand checks)."""
    return np.concatenate(list(resample_chunks(n, seed, n_boot)))


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


def _item_rows(y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    yb, sb = y[idx], s[idx]
    return {metric: _ROWS[metric](yb, sb) for metric in METRICS}


def _points(y: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    return {metric: point(metric, y.astype(bool), s) for metric in METRICS}


def item_metrics(failed, scores, idx: np.ndarray) -> dict[str, Interval]:
    """Every item-level metric with its bootstrap interval, over resamples `idx`."""
    y = np.asarray(failed, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    rows, points = _item_rows(y, s, idx), _points(y, s)
    return {m: _interval(points[m], rows[m]) if points[m] is not None else NONE for m in METRICS}


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


def _cell_points(y, s, groups, n_groups) -> tuple[dict[str, float | None], np.ndarray]:
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error

    identity = np.arange(len(y))[None, :]
    observed, predicted = _group_means(y, groups, n_groups, identity)[0], _group_means(s, groups, n_groups, identity)[0]
    rho = None
    if n_groups >= 3 and np.ptp(observed) > 0 and np.ptp(predicted) > 0:
        rho = float(spearmanr(predicted, observed).statistic)
    return {"mae": float(mean_absolute_error(observed, predicted)), "spearman": rho}, observed


def _cell_rows(y, s, groups, n_groups, idx, observed_rows=None) -> dict[str, np.ndarray]:
    boot_obs = observed_rows if observed_rows is not None else _group_means(y, groups, n_groups, idx)
    boot_pred = _group_means(s, groups, n_groups, idx)
    return {"mae": np.nanmean(np.abs(boot_obs - boot_pred), 1), "spearman": _spearman_rows(boot_pred, boot_obs)}


def cell_metrics(failed, scores, groups: np.ndarray, n_groups: int, idx: np.ndarray) -> dict[str, Interval]:
    """Across cells: Spearman rho and mean absolute error between mean predicted and observed failure."""
    y = np.asarray(failed, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    points, _ = _cell_points(y, s, groups, n_groups)
    rows = _cell_rows(y, s, groups, n_groups, idx)
    return {m: _interval(points[m], rows[m]) if points[m] is not None else NONE for m in CELL_METRICS}


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
    """Every metric for every predictor, and each one's AUROC difference from the best baseline.

    Resamples are drawn a chunk at a time and shared by every predictor (paired differences),
    so memory stays bounded however many items there are."""
    y = np.asarray(failed, dtype=np.float64)
    _, groups = np.unique(cells, return_inverse=True)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    values = {name: np.asarray(s, dtype=np.float64) for name, s in scores.items()}
    points = {}
    for name, s in values.items():
        cell_points, _ = _cell_points(y, s, groups, n_groups)
        points[name] = _points(y, s) | cell_points
    rows: dict[str, dict[str, list]] = {name: {m: [] for m in METRICS + CELL_METRICS} for name in values}
    for idx in resample_chunks(len(y), seed, n_boot):
        observed_rows = _group_means(y, groups, n_groups, idx)
        for name, s in values.items():
            chunk = _item_rows(y, s, idx) | _cell_rows(y, s, groups, n_groups, idx, observed_rows)
            for metric, r in chunk.items():
                rows[name][metric].append(r)
    out: dict[str, dict] = {}
    boot = {name: {m: np.concatenate(r) for m, r in per.items()} for name, per in rows.items()}
    for name in values:
        out[name] = {m: (_interval(points[name][m], boot[name][m]) if points[name][m] is not None else NONE).to_dict()
                     for m in METRICS + CELL_METRICS}
    present = [b for b in BASELINES if b in values and out[b]["auroc"]["value"] is not None]
    if present:
        best = max(present, key=lambda b: out[b]["auroc"]["value"])
        for name in values:
            value = out[name]["auroc"]["value"]
            diff = NONE if value is None else _interval(value - out[best]["auroc"]["value"],
                                                        boot[name]["auroc"] - boot[best]["auroc"])
            out[name]["vs_best_baseline"] = {"baseline": best, "auroc_difference": diff.to_dict(),
                                             "beats": bool(diff.lo is not None and diff.lo > 0)}
    return out
