"""Output-based predictors: what the model's own next-token distribution says.
These are the bar to beat for anything that reads internals."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tasks import SealedItem

from .base import Predictor
from .scaling import BaseRelative


class ConfidencePredictor(Predictor):
    """Hypothesis: a model is less often right where it is less sure of its first answer
    token. Score = 1 - max softmax probability at the last prompt position
    (Hendrycks & Gimpel 2017, the maximum-softmax-probability baseline)."""

    name = "confidence"
    reads = frozenset({"logits"})
    version = "1"

    def predict(self, model, items: Sequence[SealedItem]) -> np.ndarray:
        trace = model.trace(items)
        return np.clip(1.0 - trace.top_probs[:, 0].astype(np.float64), 0.0, 1.0)


class EntropyPredictor(Predictor):
    """Hypothesis: a flatter next-token distribution marks an item the model has not
    learned to solve. Score: the entropy at the last prompt position, relative to
    the base region (predictive entropy as uncertainty; Malinin & Gales 2018)."""

    name = "entropy"
    reads = frozenset({"logits"})
    version = "1"

    def fit(self, model, calibration):
        self.scale_ = BaseRelative().fit(model.trace([o.item for o in calibration]).entropy)
        return self

    def predict(self, model, items):
        return self.scale_.transform(model.trace(items).entropy)


class ATCPredictor(Predictor):
    """Average Thresholded Confidence (Garg et al. 2022). Hypothesis: the confidence
    threshold below which base items fail as often as they do transfers to shifted
    items. Fit: the threshold t at which the share of base items under t equals the
    base error rate. Score: sigmoid((t - confidence) / temperature).

    Fallback: with no failures in the base region the threshold would sit below every
    base item; it is then set at the `fallback_quantile` of base confidence (noted)."""

    name = "atc"
    reads = frozenset({"logits"})
    version = "1"

    def __init__(self, temperature: float = 0.05, fallback_quantile: float = 0.05):
        self.temperature = temperature
        self.fallback_quantile = fallback_quantile

    def fit(self, model, calibration):
        confidence = model.trace([o.item for o in calibration]).top_probs[:, 0].astype(np.float64)
        error = float(np.mean([not o.correct for o in calibration])) if calibration else 0.0
        if error == 0.0:
            self.note(f"no failures in the base region: threshold at the {self.fallback_quantile:.0%} quantile of base confidence")
            self.threshold_ = float(np.quantile(confidence, self.fallback_quantile)) if len(confidence) else 0.5
        else:
            self.threshold_ = float(np.quantile(confidence, error))
        return self

    def predict(self, model, items):
        confidence = model.trace(items).top_probs[:, 0].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip((self.threshold_ - confidence) / self.temperature, -50, 50)))
