"""Turn a raw brittleness score into a probability-like number relative to the base region."""
from __future__ import annotations

import numpy as np


class BaseRelative:
    """sigmoid((x - median of base) / spread of base): 0.5 at the typical base item,
    towards 1 as an item moves past what the base region showed. Monotone, so AUROC
    is the raw score's; the base region anchors it for calibration metrics.

    `distances=True` (for positive scores such as distances) takes log(x) and squashes with the
    heavy-tailed 0.5 + 0.5 z / (1 + |z|) instead of the logistic: on a real model the variants'
    distances lie tens of base spreads away, where a logistic rounds to exactly 1.0 for most items,
    one tied value where the raw distances still ranked them."""

    def __init__(self, distances: bool = False):
        self.distances = distances

    def _raw(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return np.log(np.maximum(values, 1e-300)) if self.distances else values

    def fit(self, base_values) -> "BaseRelative":
        values = self._raw(base_values)
        values = values[np.isfinite(values)]
        if values.size == 0:
            self.center_, self.scale_ = 0.0, 1.0
            return self
        self.center_ = float(np.median(values))
        q75, q25 = np.percentile(values, [75, 25])
        spread = (q75 - q25) / 1.349 if q75 > q25 else float(values.std())
        self.scale_ = max(spread, 1e-6 * max(1.0, abs(self.center_)), 1e-9)
        return self

    def transform(self, values) -> np.ndarray:
        z = (self._raw(values) - self.center_) / self.scale_
        if self.distances:
            return 0.5 + 0.5 * z / (1.0 + np.abs(z))
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
