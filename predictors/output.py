"""Output-based predictors: what the model's own next-token distribution says."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tasks import SealedItem

from .base import Predictor


class ConfidencePredictor(Predictor):
    """Hypothesis: a model is less often right where it is less sure of its first answer
    token. Score = 1 - max softmax probability at the last prompt position
    (Hendrycks & Gimpel 2017, the maximum-softmax-probability baseline)."""

    name = "confidence"
    reads = frozenset({"logits"})
    version = "1"

    def predict(self, model, items: Sequence[SealedItem]) -> np.ndarray:
        trace = model.trace(items)
        return 1.0 - trace.top_probs[:, 0].astype(np.float64)
