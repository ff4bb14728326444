"""A third-party predictor, registered through the `brittlebench.predictors` entry point."""
from __future__ import annotations

import re

import numpy as np

from predictors import Predictor


class AnswerDigitsPredictor(Predictor):
    """Hypothesis: the more digits in the prompt beyond what base prompts had, the more
    likely the model fails. Score: 1 - exp(-excess digits / scale)."""

    name = "answer_digits"
    reads = frozenset({"prompt"})
    version = "0.1.0"

    def __init__(self, scale: float = 2.0):
        self.scale = scale

    @staticmethod
    def _digits(prompt: str) -> int:
        return sum(len(n) for n in re.findall(r"\d+", prompt))

    def fit(self, model, calibration):
        self.base_max_ = max((self._digits(o.item.prompt) for o in calibration), default=0)
        return self

    def predict(self, model, items):
        excess = np.array([max(0, self._digits(i.prompt) - self.base_max_) for i in items], dtype=float)
        return 1.0 - np.exp(-excess / self.scale)
