"""Scores: how well predicted failure matches observed failure.

Point estimates come from scikit-learn; bootstrap intervals resample items
(seeded) and compute AUROC for every resample at once from ranks (scipy).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

N_BOOTSTRAP = 1000


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


def bootstrap_indices(n: int, seed: int, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """(n_boot, n) resampled item indices, the same for every predictor of a run."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _auroc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row (Mann-Whitney U / (n_pos * n_neg)); NaN where a row has one class."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    n_pos = labels.sum(1)
    n_neg = labels.shape[1] - n_pos
    u = (ranks * labels).sum(1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def auroc(failed: Sequence[bool], scores: Sequence[float], seed: int = 0, n_boot: int = N_BOOTSTRAP) -> Interval:
    """AUROC of `scores` for predicting `failed`, with a 95% percentile bootstrap interval."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(failed, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        return Interval(None, None, None)
    value = float(roc_auc_score(y, s))
    idx = bootstrap_indices(len(y), seed, n_boot)
    boots = _auroc_rows(y[idx].astype(np.float64), s[idx])
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return Interval(value, float(lo), float(hi))


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
