"""Baselines: a predictor is only interesting where it beats these."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from tasks import SealedItem

from .base import Predictor


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
