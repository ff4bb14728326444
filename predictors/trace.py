"""`Trace`: what one prompt-only forward pass recorded per item (numpy only, no torch).

Built by the runner (`bench.model.trace`, which names every site and its shape) and
read by predictors through `ModelView.trace(items)`. A record, so that predictors and
their tests need nothing of the runner to hold one.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Trace:
    item_ids: tuple[str, ...]
    hidden: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    entropy: np.ndarray
    prompt_tokens: np.ndarray
    lens_top_ids: np.ndarray | None = None
    lens_final_prob: np.ndarray | None = None
    attn_entropy: np.ndarray | None = None
    attn_prev: np.ndarray | None = None
    attn_first: np.ndarray | None = None
    attn_induction: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def has_attention(self) -> bool:
        return self.attn_entropy is not None

    def site_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "item_ids" and getattr(self, f.name) is not None]

    def take(self, rows: Sequence[int]) -> "Trace":
        """The trace of the items at positions `rows`, in that order (a copy)."""
        index = np.asarray(list(rows), dtype=np.int64)
        return Trace(tuple(self.item_ids[i] for i in index), **{n: getattr(self, n)[index] for n in self.site_names()})

    @staticmethod
    def concat(parts: Sequence["Trace"], order: Sequence[str]) -> "Trace":
        """Rows of `parts`, arranged in the order of item ids `order`."""
        names = [n for n in parts[0].site_names() if all(getattr(q, n) is not None for q in parts)]
        if len(parts) == 1 and tuple(order) == parts[0].item_ids:
            return Trace(tuple(order), **{n: getattr(parts[0], n) for n in names})  # no copy
        where = {item_id: (p, r) for p, part in enumerate(parts) for r, item_id in enumerate(part.item_ids)}
        which = np.array([where[i][0] for i in order], dtype=np.int64)
        rows = np.array([where[i][1] for i in order], dtype=np.int64)
        out = {}
        for name in names:
            first = getattr(parts[0], name)
            column = np.empty((len(order),) + first.shape[1:], dtype=first.dtype)
            for p, part in enumerate(parts):
                mask = which == p
                if mask.any():
                    column[mask] = getattr(part, name)[rows[mask]]
            out[name] = column
        return Trace(tuple(order), **out)
