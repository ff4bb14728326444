"""Scores: how well predicted failure matches observed failure.

Bootstrap intervals resample items (seeded, the same resamples for every
predictor, so differences are paired) and compute each metric for all resamples
at once; a point estimate is the same computation on the sample itself. Tests
hold both to scikit-learn and scipy on the same resamples.
"""
from __future__ import annotations

import functools
import hashlib
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..process import one_thread

N_BOOTSTRAP = 1000
#: Bump when a metric or the resampling changes: results record it, verify compares like with like.
SCORING_VERSION = 7
ECE_BINS = 10
#: The bar every predictor is shown against (DESIGN.md), per track: a blind predictor against the
#: blind baselines (prompt length), a trace-track one also against output confidence. `random` is
#: shown beside them as a sanity row (its figure should sit inside the no-signal band), never the bar.
BASELINES = {"blind": ("prompt_length",), "trace": ("prompt_length", "confidence")}
SANITY = "random"
#: What ranks predictors and decides "beats the baselines": the within-family pair-pooled AUROC, every
#: (failed, passed) pair of items of one family counted once (ties half): knowing which family is hard
#: earns nothing, and a family weighs by its pairs, so one with a single passing item weighs almost nothing.
RANKING = "pair_auroc"
#: A family with fewer than this many failed or passed variant items says almost nothing at item level.
INFORMATIVE_MIN = 10
N_PERMUTATIONS = 2000  # draws of the no-signal band
MDE_FACTOR = 2.8  # (z_0.975 + z_0.8): a difference this many standard errors away is detected 80% of the time
SATURATED_SHARE = 0.5  # a predictor giving one value to at least this share of items says little
#: The trace track's reference row: the model's answer read at the answer position (after sealing).
REFERENCE = "answer_visible"
METRICS = ("auroc", "auprc", "brier", "ece")  # item level
CELL_METRICS = ("spearman", "mae")  # across cells
FAMILY_METRICS = ("pair_auroc", "family_auroc", "family_spearman")  # within families
HIGHER_IS_BETTER = {"auroc": True, "auprc": True, "brier": False, "ece": False, "spearman": True, "mae": False,
                    "pair_auroc": True, "family_auroc": True, "family_spearman": True}


@dataclass(frozen=True)
class Interval:
    value: float | None
    lo: float | None
    hi: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return format_interval(self)


NONE = Interval(None, None, None)


def format_interval(metric: Interval | None, signed: bool = False, around=lambda text: text) -> str:
    """'0.911 [0.868, 0.944]' from an interval; `around` wraps the bracketed part."""
    if metric is None or metric.value is None:
        return "n/a"
    f = "+.3f" if signed else ".3f"
    if metric.lo is None:
        return format(metric.value, f)
    return f"{metric.value:{f}} " + around(f"[{metric.lo:{f}}, {metric.hi:{f}}]")


Z95 = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of k failures in n items (0..1 when n is 0): unlike the normal
    approximation it stays inside [0, 1] and stays wide for a handful of items."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def single_threaded(fn):
    """Scoring runs its products on one native thread (`one_thread`): the sums of a matrix product
    are then taken in one order, so the last bits of every figure are the same on any machine."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with one_thread():
            return fn(*args, **kwargs)
    return wrapped


CHUNK = 100  # resamples held in memory at once: (CHUNK, n) indices, whatever n_boot is


def resample_chunks(n: int, seed: int, n_boot: int = N_BOOTSTRAP, chunk: int = CHUNK, family: str | None = None):
    """Resampled item indices, `chunk` resamples at a time, each chunk from its own seeded stream: the
    family's own (`family_stream`) where the items are all of one `family`."""
    for k, start in enumerate(range(0, n_boot, chunk)):
        stream = [seed, k] if family is None else [seed, k, 7919, family_stream(family)]
        yield np.random.default_rng(stream).integers(0, n, size=(min(chunk, n_boot - start), n))


BATCH_CELLS = 1_000_000  # (resample, item) cells computed at once: chunks of a few items' draws go together


def together(chunks, n: int):
    """Consecutive chunks of resamples joined while they hold at most BATCH_CELLS (resample, item)
    cells: the draws are the chunks' own, the metric rows fewer, larger passes where items are few."""
    held: list[np.ndarray] = []
    for idx in chunks:
        if held and (sum(map(len, held)) + len(idx)) * max(n, 1) > BATCH_CELLS:
            yield np.concatenate(held)
            held = []
        held.append(idx)
    if held:
        yield np.concatenate(held)


def bootstrap_indices(n: int, seed: int, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """All (n_boot, n) resampled indices at once (small n only: tests and hand checks)."""
    return np.concatenate(list(resample_chunks(n, seed, n_boot)))


# -- vectorized metric rows: one value per bootstrap resample ------------------
#
# A resample is a vector of counts (how often each item was drawn), so every metric of
# a chunk of resamples is a few matrix products and cumulative sums over one sort of
# the scores: O(n) per resample, no re-sorting.

def counts_of(idx: np.ndarray, n: int) -> np.ndarray:
    """(resample, item) draw counts from (resample, draw) indices."""
    offsets = (np.arange(idx.shape[0]) * n)[:, None]
    return np.bincount((idx + offsets).ravel(), minlength=idx.shape[0] * n).reshape(idx.shape[0], n).astype(np.float64)


class Sorted:
    """One predictor's scores sorted once, with their tie groups (equal scores share a threshold)."""

    def __init__(self, scores: np.ndarray):
        self.order = np.argsort(scores, kind="stable")
        ranked = scores[self.order]
        first = np.r_[True, ranked[1:] != ranked[:-1]] if len(ranked) else np.zeros(0, dtype=bool)
        self.starts = np.flatnonzero(first)
        self.group_of = np.empty(len(scores), dtype=np.int64)  # each item's tie group, ascending score
        self.group_of[self.order] = np.cumsum(first) - 1


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


def _tie_sums(counts: np.ndarray, y: np.ndarray, sorted_: Sorted) -> tuple[np.ndarray, np.ndarray]:
    """Drawn failures and successes per tie group, groups in ascending score: (resample, group) each."""
    c = counts[:, sorted_.order]
    failures = c * y[sorted_.order]
    return np.add.reduceat(failures, sorted_.starts, axis=1), np.add.reduceat(c - failures, sorted_.starts, axis=1)


class Drawn:
    """A chunk of resamples as drawn: (resample, draw) indices, and each draw's offset in a
    (resample, outcome, group) count array, computed once and shared by every predictor."""

    def __init__(self, idx: np.ndarray, y: np.ndarray):
        self.idx, self.n = idx, len(y)
        self.base = (y[idx] > 0).astype(np.int64) * self.n
        self.base += (np.arange(idx.shape[0], dtype=np.int64) * (2 * self.n))[:, None]


def _tie_sums_drawn(drawn: Drawn, sorted_: Sorted) -> tuple[np.ndarray, np.ndarray]:
    """As `_tie_sums`, straight from the draws: one integer bincount over (resample, outcome, group)
    instead of reordering and summing a float count matrix. The same sums, exactly."""
    rows, groups = drawn.idx.shape[0], len(sorted_.starts)
    key = sorted_.group_of.take(drawn.idx)
    key += drawn.base
    both = np.bincount(key.ravel(), minlength=rows * 2 * drawn.n).reshape(rows, 2, drawn.n)
    return both[:, 1, :groups].astype(np.float64), both[:, 0, :groups].astype(np.float64)


def _concordance(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample, from tie sums: Mann-Whitney U (failed items scored above passed ones, ties half)
    and the number of (failed, passed) pairs."""
    below = np.cumsum(neg, axis=1) - neg  # successes scored strictly lower
    return (pos * (below + 0.5 * neg)).sum(1), pos.sum(1) * neg.sum(1)


def _auc(u: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """AUROC from U and pairs, per resample; NaN where a resample has one class (no pairs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, u / pairs, np.nan)


def _auroc_rows(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUROC of each resample (Mann-Whitney U over tie groups); NaN where a resample has one class."""
    return _auc(*_concordance(*_tie_sums(counts, y, Sorted(s))))


def _auprc_rows(counts: np.ndarray, y: np.ndarray, s: np.ndarray, ties: tuple | None = None) -> np.ndarray:
    """Average precision of each resample as scikit-learn defines it: thresholds from the top score down."""
    pos, neg = ties or _tie_sums(counts, y, Sorted(s))
    pos, neg = pos[:, ::-1], neg[:, ::-1]
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        n_pos = pos.sum(1)
        return np.where(n_pos > 0, (pos * precision).sum(1) / n_pos, np.nan)


def _brier_rows(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Brier score of each resample (each draws len(y) items)."""
    return counts @ ((s - y) ** 2) / len(y)


def _ece_rows(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Expected calibration error: drawn failures minus predicted failure, summed per bin, over n. The
    bins are sklearn.calibration.calibration_curve's equal-width ones."""
    onehot = np.eye(ECE_BINS)[np.searchsorted(np.linspace(0.0, 1.0, ECE_BINS + 1)[1:-1], s)]  # (item, bin)
    return np.abs(counts @ (onehot * (y - s)[:, None])).sum(1) / len(y)


_ROWS = {"auroc": _auroc_rows, "auprc": _auprc_rows, "brier": _brier_rows, "ece": _ece_rows}


def point(metric: str, failed: np.ndarray, scores: np.ndarray) -> float | None:
    """A metric's point estimate: its vectorized row on the sample itself (every item drawn once).
    Tests hold these to scikit-learn's roc_auc_score, average_precision_score, brier_score_loss and
    calibration_curve; computing them here keeps scikit-learn's import (~2 s) out of every run."""
    y = np.asarray(failed, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if metric not in _ROWS:
        raise ValueError(metric)
    if not len(y) or metric in ("auroc", "auprc") and (y.all() or not y.any()):
        return None
    return float(_ROWS[metric](np.ones((1, len(y))), y.astype(np.float64), s)[0])


def _interval(value: float | None, rows: np.ndarray) -> Interval:
    """`value` with the 95% percentile interval of its bootstrap rows (none where every row is NaN)."""
    if value is None:
        return NONE
    if np.isnan(rows).all():
        return Interval(value, None, None)
    lo, hi = np.nanpercentile(rows, [2.5, 97.5])
    return Interval(value, float(lo), float(hi))


def auroc(failed: Sequence[bool], scores: Sequence[float], seed: int = 0, n_boot: int = N_BOOTSTRAP) -> Interval:
    """AUROC of `scores` for predicting `failed`, with a 95% percentile bootstrap interval."""
    y = np.asarray(failed, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    counts = counts_of(bootstrap_indices(len(y), seed, n_boot), len(y))
    return _interval(point("auroc", y, s), _auroc_rows(counts, y, s))


# -- cells ------------------------------------------------------------------------

CELL_DECIMALS = 12  # cell means that tie must tie, whatever order the sums ran in


def _onehot(cells: np.ndarray) -> np.ndarray:
    """(item, cell) one-hot of each item's cell."""
    _, groups = np.unique(cells, return_inverse=True)
    return np.eye(int(groups.max()) + 1 if len(groups) else 0)[groups]


def _group_means(values: np.ndarray, onehot: np.ndarray, counts: np.ndarray, per_group: np.ndarray | None = None
                 ) -> np.ndarray:
    """(resample, group) mean of `values` over each resample's draws in each group, rounded so
    that equal means compare equal (Spearman's ranks must not depend on summation order). `per_group`:
    the draws in each group (`counts @ onehot`), where known."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.round((counts @ (onehot * values[:, None])) / (counts @ onehot if per_group is None else per_group),
                        CELL_DECIMALS)


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


def _cell_points(y, s, onehot) -> dict[str, float | None]:
    """Across cells: mean absolute error and Spearman's rho (None under 3 cells or a constant side)
    between mean predicted and observed failure."""
    once = np.ones((1, len(y)))
    observed, predicted = _group_means(y, onehot, once)[0], _group_means(s, onehot, once)[0]
    n_groups = onehot.shape[1]
    rho = None
    if n_groups >= 3 and np.ptp(observed) > 0 and np.ptp(predicted) > 0:
        rho = float(_spearman_rows(predicted[None, :], observed[None, :])[0])
    return {"mae": float(np.mean(np.abs(observed - predicted))), "spearman": rho}


def _cell_rows(y, s, onehot, counts, observed_rows=None, per_group=None) -> dict[str, np.ndarray]:
    boot_obs = observed_rows if observed_rows is not None else _group_means(y, onehot, counts, per_group)
    boot_pred = _group_means(s, onehot, counts, per_group)
    return {"mae": np.nanmean(np.abs(boot_obs - boot_pred), 1), "spearman": _spearman_rows(boot_pred, boot_obs)}


def cell_metrics(failed, scores, groups: np.ndarray, n_groups: int, idx: np.ndarray) -> dict[str, Interval]:
    """Across cells: Spearman rho and mean absolute error between mean predicted and observed failure."""
    y = np.asarray(failed, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    onehot = np.eye(n_groups)[groups]
    points, rows = _cell_points(y, s, onehot), _cell_rows(y, s, onehot, counts_of(idx, len(y)))
    return {m: _interval(points[m], rows[m]) for m in CELL_METRICS}


def difference(failed, scores, reference, idx: np.ndarray, metric: str = "auroc") -> Interval:
    """metric(scores) - metric(reference), with a paired bootstrap interval."""
    y = np.asarray(failed, dtype=np.float64)
    a, b = point(metric, y.astype(bool), scores), point(metric, y.astype(bool), reference)
    if a is None or b is None:
        return NONE
    counts = counts_of(idx, len(y))
    rows = _ROWS[metric](counts, y, np.asarray(scores, float)) - _ROWS[metric](counts, y, np.asarray(reference, float))
    return _interval(a - b, rows)


# -- within-family figures ---------------------------------------------------------------
#
# Pooled AUROC rewards knowing which family is hard, so the ranking figure (RANKING) counts only
# pairs inside a family. Intervals come from a stratified bootstrap: every resample draws each
# family's items within the family, the same draws for every predictor (paired differences).

def family_of(cells: np.ndarray) -> np.ndarray:
    """'family/cell' labels to their family."""
    return np.array([c.split("/", 1)[0] for c in cells]) if len(cells) else np.array([], dtype=str)


def _only_family(cells: np.ndarray) -> str | None:
    """The family of every item, where they are all of one; else None."""
    fams = family_of(cells)
    return fams[0] if len(set(fams.tolist())) == 1 else None


def family_stream(name: str) -> int:
    """A family's own resampling stream, from its name: a family's draws are the same whether it is
    scored alone (its own table) or among others (the run's family-balanced figures)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def _within(points: list[dict], rows: list[dict], metric: str) -> tuple[float | None, np.ndarray]:
    """The mean of `metric` over the families that have a point value, and its bootstrap rows, from
    each family's points and rows."""
    used = [i for i, p in enumerate(points) if p[metric] is not None]
    if not used:
        return None, np.full(len(rows[0][metric]) if rows else 0, np.nan)
    stacked = np.stack([rows[i][metric] for i in used])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where no family has a value
        return float(np.mean([points[i][metric] for i in used])), np.nanmean(stacked, axis=0)


def _pooled(points: list[dict], rows: list[dict]) -> tuple[float | None, np.ndarray]:
    """The pair-pooled AUROC and its bootstrap rows from each family's U and pairs: the sum of the
    families' U over the sum of their pairs (a resample where a family has one outcome adds nothing)."""
    u, pairs = sum(p["u"] for p in points), sum(p["pairs"] for p in points)
    return (float(u / pairs) if pairs > 0 else None), _auc(sum(r["u"] for r in rows), sum(r["pairs"] for r in rows))


@single_threaded
def family_metrics(failed, cells, scores: dict[str, np.ndarray], seed: int, n_boot: int = N_BOOTSTRAP,
                   known: dict[str, tuple] | None = None):
    """Per predictor: the pair-pooled AUROC `pair_auroc` (the ranking figure), each family's AUROC
    (None where one outcome only) and their mean `family_auroc`, the mean within-family cell rho
    `family_spearman`; and the ranking figure's bootstrap rows. `known` (family -> `pooled_rows` of
    that family scored alone, on the same draws) saves recomputing what is already there."""
    y = np.asarray(failed, dtype=np.float64)
    cells = np.asarray(cells)
    fam = family_of(cells)
    names = list(dict.fromkeys(fam.tolist()))
    known = dict(known or {})
    for f in names:
        if f not in known or not known[f][0].keys() >= scores.keys():
            m = np.flatnonzero(fam == f)
            subset = {n: np.asarray(s, dtype=np.float64)[m] for n, s in scores.items()}
            known[f] = pooled_rows(y[m], cells[m], subset, seed, n_boot)
    out, boot = {}, {}
    for name in scores:
        points, rows = [known[f][0][name] for f in names], [known[f][1][name] for f in names]
        pair, boot[name] = _pooled(points, rows)
        out[name] = {"pair_auroc": _interval(pair, boot[name]),
                     "family_auroc": _interval(*_within(points, rows, "auroc")),
                     "family_spearman": _interval(*_within(points, rows, "spearman")),
                     "family_aurocs": {f: p["auroc"] for f, p in zip(names, points)}}
    return out, boot


# -- chance, power and the shape of a predictor's scores ------------------------------------

@single_threaded
def no_signal_band(failed, cells, seed: int, n_perm: int = N_PERMUTATIONS) -> dict[str, Any]:
    """The 95% range of the ranking figure (pair-pooled AUROC) and of the task-level figure (Spearman
    rho across cells) for scores that carry no signal: scores permuted within each family, drawn
    once for the run's items. A tie-free score permuted within a family puts its failed items at a
    random subset of ranks, so each draw is a sum of random ranks (vectorized over draws)."""
    y = np.asarray(failed, dtype=bool)
    cells = np.asarray(cells)
    fam = family_of(cells)
    u, pairs = np.zeros(n_perm), 0.0
    for f in dict.fromkeys(fam.tolist()):
        m = y[fam == f]
        n_pos, n = int(m.sum()), len(m)
        if 0 < n_pos < n:
            rng = np.random.default_rng([seed, 104729, family_stream(f)])
            ranks = np.argsort(rng.random((n_perm, n)), axis=1)[:, :n_pos] + 1  # the failed items' ranks
            u += ranks.sum(1) - n_pos * (n_pos + 1) / 2
            pairs += n_pos * (n - n_pos)
    band: dict[str, Any] = {"n_permutations": n_perm, "pair_auroc": None, "spearman": None}
    if pairs:
        lo, hi = np.percentile(u / pairs, [2.5, 97.5])
        band["pair_auroc"] = {"lo": float(lo), "hi": float(hi)}
    names, groups = np.unique(cells, return_inverse=True)
    if len(names) >= 3:
        observed = np.round(np.bincount(groups, weights=y) / np.bincount(groups), CELL_DECIMALS)
        if np.ptp(observed) > 0:
            rng = np.random.default_rng([seed, 104729])
            rho = _spearman_rows(rng.random((n_perm, len(names))), np.broadcast_to(observed, (n_perm, len(names))).copy())
            lo, hi = np.percentile(rho, [2.5, 97.5])
            band["spearman"] = {"lo": float(lo), "hi": float(hi)}
    return band


def minimum_detectable_effect(differences: list[dict], n_items: int) -> dict[str, Any] | None:
    """The smallest difference in the ranking figure from the best baseline that this run's items
    could detect (MDE_FACTOR bootstrap standard errors of the paired difference, the median over the
    track's predictors); it shrinks as 1/sqrt(n). Zero where most of the track's differences are the
    same on every resample (predictors ranking every item as the baseline does): `rows.power` says so."""
    ses = [(d["hi"] - d["lo"]) / (2 * 1.96) for d in differences if d and d.get("lo") is not None]
    if not ses:
        return None
    mde = MDE_FACTOR * float(np.median(ses))
    return {"value": mde, "n_items": n_items, "with_4x_items": mde / 2,
            "note": f"a difference from the best baseline smaller than {mde:.3f} is likely to go undetected with "
                    f"{n_items} items; four times the items (--n x4) halves it"}


def saturation(scores: np.ndarray) -> float:
    """The share of items at the predictor's most common value."""
    s = np.asarray(scores, dtype=np.float64)
    if not len(s):
        return 0.0
    _, counts = np.unique(s, return_counts=True)
    return float(counts.max() / len(s))


def same_rankings(scores: dict[str, np.ndarray], first: tuple[str, ...] = ()) -> dict[str, str]:
    """Predictors whose scores rank every item as another's do (a monotone transform of it): name ->
    the one it repeats (a baseline in `first` where one matches, else the earlier name)."""
    order = [n for n in first if n in scores] + sorted(n for n in scores if n not in first)
    ranks = {n: average_ranks(np.asarray(scores[n], dtype=np.float64)[None, :])[0] for n in order}
    out: dict[str, str] = {}
    for i, name in enumerate(order):
        if name in first or len(ranks[name]) < 2 or np.ptp(ranks[name]) == 0:
            continue
        match = next((o for o in order[:i] if o not in out and np.array_equal(ranks[o], ranks[name])), None)
        if match is not None:
            out[name] = match
    return out


def cell_table(rows: Sequence[dict], predictions: dict[str, np.ndarray]) -> list[dict]:
    """Observed failure rate and mean predicted failure per (family, cell). `rows`: dicts with family,
    cell, shift, split and failed (a variant's also its `pred_index` into each of `predictions`)."""
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


@single_threaded
def pooled_rows(failed: np.ndarray, cells: np.ndarray, scores: dict[str, np.ndarray], seed: int,
                n_boot: int = N_BOOTSTRAP) -> tuple[dict, dict]:
    """Each predictor's point metrics and their bootstrap rows over all the items given, its Mann-Whitney
    U and (failed, passed) pairs among them: the costly part of `score_predictors`."""
    y = np.asarray(failed, dtype=np.float64)
    onehot = _onehot(cells)
    sorts = {name: Sorted(s) for name, s in scores.items()}
    points = {}
    for name, s in scores.items():
        u, pairs = _concordance(*_tie_sums(np.ones((1, len(y))), y, sorts[name]))
        points[name] = ({metric: point(metric, y.astype(bool), s) for metric in METRICS} | _cell_points(y, s, onehot)
                        | {"u": float(u[0]), "pairs": float(pairs[0])})
    chunks = []
    for idx in together(resample_chunks(len(y), seed, n_boot, family=_only_family(np.asarray(cells))), len(y)):
        counts = counts_of(idx, len(y))
        per_group = counts @ onehot  # draws per cell, the same for every predictor: computed once
        observed = _group_means(y, onehot, counts, per_group)
        drawn = Drawn(idx, y)
        chunk = {}
        for name, s in scores.items():
            ties = _tie_sums_drawn(drawn, sorts[name])
            u, pairs = _concordance(*ties)
            chunk[name] = {"auroc": _auc(u, pairs), "auprc": _auprc_rows(counts, y, s, ties), "u": u, "pairs": pairs,
                           "brier": _brier_rows(counts, y, s), "ece": _ece_rows(counts, y, s)}
            chunk[name] |= _cell_rows(y, s, onehot, counts, observed, per_group)
        chunks.append(chunk)
    return points, {name: {k: np.concatenate([c[name][k] for c in chunks]) for k in chunks[0][name]} for name in scores}


@single_threaded
def score_predictors(failed: np.ndarray, cells: np.ndarray, scores: dict[str, np.ndarray], seed: int,
                      n_boot: int = N_BOOTSTRAP, tracks: dict[str, str] | None = None,
                      reference: np.ndarray | None = None, families: dict[str, dict] | None = None) -> dict[str, dict]:
    """Every metric for every predictor, and each one's ranking figure (pair-pooled AUROC) against
    the best baseline of its track (`tracks`: name -> "blind" or "trace"; None: every predictor in the
    trace track). With `reference` (the answer-visible scores), it is scored too, under REFERENCE,
    and each trace-track predictor is also shown against it.

    Resamples are drawn a chunk at a time and shared by every predictor (paired differences),
    so memory stays bounded however many items there are. Items of one family are drawn from that
    family's own stream (`resample_chunks`), the draws its share of a run's family-balanced figures
    uses; `families` (a dict, shared across calls) keeps each family scored alone so that scoring
    the run after its families reuses their rows instead of recomputing them."""
    y = np.asarray(failed, dtype=np.float64)
    cells = np.asarray(cells)
    values = {name: np.asarray(s, dtype=np.float64) for name, s in scores.items()}
    tracks = dict(tracks) if tracks is not None else {name: "trace" for name in scores}
    if reference is not None:
        values[REFERENCE] = np.asarray(reference, dtype=np.float64)
        tracks[REFERENCE] = "reference"
    points, boot = pooled_rows(y, cells, values, seed, n_boot)
    alone = _only_family(cells)
    if alone is not None and families is not None and alone not in families:
        families[alone] = points, boot
    family, family_rows = family_metrics(y, cells, values, seed, n_boot, families) if len(y) else ({}, {})
    out: dict[str, dict] = {}
    for name in values:
        out[name] = {m: _interval(points[name][m], boot[name][m]).to_dict() for m in METRICS + CELL_METRICS}
        if name in family:
            out[name].update({m: family[name][m].to_dict() for m in FAMILY_METRICS},
                             family_aurocs=family[name]["family_aurocs"])
        out[name]["saturation"] = saturation(values[name])
    for track in dict.fromkeys(tracks.values()):
        present = [b for b in BASELINES.get(track, ()) if b in values and out[b].get(RANKING, {}).get("value") is not None]
        if not present:
            continue
        best = max(present, key=lambda b: out[b][RANKING]["value"])
        for name in [n for n, t in tracks.items() if t == track]:
            out[name]["vs_best_baseline"] = _versus(out, family_rows, name, best) | {"baseline": best}
            if track == "trace" and REFERENCE in values:
                out[name]["vs_reference"] = _versus(out, family_rows, name, REFERENCE)
    return out


def _versus(out: dict, rows: dict[str, np.ndarray], name: str, other: str) -> dict:
    """`name`'s ranking figure minus `other`'s, with its paired bootstrap interval; `beats` when the
    interval lies above zero."""
    a, b = out[name].get(RANKING, {}).get("value"), out[other].get(RANKING, {}).get("value")
    diff = NONE if a is None or b is None else _interval(a - b, rows[name] - rows[other])
    return {"metric": RANKING, "difference": diff.to_dict(), "beats": bool(diff.lo is not None and diff.lo > 0)}
