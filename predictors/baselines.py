"""Baselines: a predictor is only interesting where it beats these."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from tasks import SealedItem

from .base import Predictor
from .scaling import BaseRelative


class RandomPredictor(Predictor):
    """Hypothesis: none. A uniform draw per item, keyed by (seed, item id) so it does
    not depend on item order. Its AUROC is 0.5 up to noise: the floor of the table."""

    name = "random"
    reads = frozenset()
    version = "1"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def predict(self, model, items: Sequence[SealedItem]) -> np.ndarray:
        def draw(item_id: str) -> float:
            digest = hashlib.sha256(f"{self.seed}:{item_id}".encode()).digest()
            return int.from_bytes(digest[:8], "big") / 2**64

        return np.array([draw(item.id) for item in items], dtype=np.float64)


class PromptLengthPredictor(Predictor):
    """Hypothesis: longer prompts fail more often. Score: the prompt's length in the
    model's tokens, relative to the base region's lengths. The simplest account of
    length generalization failure (Anil et al. 2022): any predictor must beat it."""

    name = "prompt_length"
    reads = frozenset({"prompt"})
    version = "1"

    def fit(self, model, calibration):
        lengths = [len(t) for t in model.tokenize([obs.item.prompt for obs in calibration])]
        self.scale_ = BaseRelative().fit(lengths)
        return self

    def predict(self, model, items):
        return self.scale_.transform([len(t) for t in model.tokenize([i.prompt for i in items])])


def _ngrams(text: str, n: int) -> set[str]:
    return {text[i:i + n] for i in range(max(1, len(text) - n + 1))}


class SurfaceNoveltyPredictor(Predictor):
    """Hypothesis: items whose surface form the base region never showed fail more.
    Score: the share of the prompt's character n-grams absent from every base prompt
    (a text-only out-of-distribution baseline; cf. n-gram novelty in McCoy et al. 2023)."""

    name = "surface_novelty"
    reads = frozenset({"prompt"})
    version = "1"

    def __init__(self, n: int = 3):
        self.n = n

    def fit(self, model, calibration):
        self.seen_ = set().union(*(_ngrams(obs.item.prompt, self.n) for obs in calibration)) if calibration else set()
        return self

    def predict(self, model, items):
        out = []
        for item in items:
            grams = _ngrams(item.prompt, self.n)
            out.append(len(grams - self.seen_) / len(grams))
        return np.array(out, dtype=np.float64)
