"""The prompt pass, kept for evaluation: one forward pass over each prompt where there were two.

Before sealing, the trace runs every variant's prompt once (its own tokens after the family's
shared prefix, `bench.model.prefix`). Where the runner asks for it, that pass also keeps what
evaluation needs to go on from the prompt: each item's own keys and values (every layer) and the
argmax and top-1/top-2 logit gap at its last prompt token, which is the first answer position.
After sealing, teacher-forced evaluation runs only the answer tokens on top of the prefix's cache
and those kept keys and values (`bench.model.evaluate.teacher_forced`).

Nothing here reaches a predictor: the store lives in the runner's process, beside the model. It
holds at most `budget` bytes (default: a quarter of the available memory, at most 4 GiB); items
beyond it, models whose cache is not plain keys and values (linear attention, state-space layers,
a sliding window shorter than the prompt), and runs that read their traces from the disk cache
are evaluated by the full pass as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

BUDGET_CAP = 4 << 30  # bytes: at most this much, and at most a quarter of the available memory


def top_and_margin(logits, margin: float) -> tuple[list, list]:
    """Over the last axis of `logits` (float): the argmax, and whether it leads the runner-up by more
    than `margin` (a decision the last bits of the logits cannot change), as nested lists."""
    top2 = logits.topk(2, dim=-1)
    return top2.indices[..., 0].cpu().tolist(), ((top2.values[..., 0] - top2.values[..., 1]) > margin).cpu().tolist()


@dataclass
class Kept:
    """One trace batch's continuation: its rows' item ids, the shared prefix they continue ("" for
    none), their own keys and values per layer (row, head, own token, dim), and each row's argmax
    and trusted-margin flag at the first answer position."""
    prefix: str
    item_ids: list[str]
    layers: list[tuple[Any, Any]]
    first: list[int]
    first_ok: list[bool]


class Continuations:
    """Kept prompt passes of the items in `wanted`, at most `budget` bytes; a first answer token is
    trusted where its top-1/top-2 logit gap exceeds `margin` (evaluation's MARGIN)."""

    def __init__(self, wanted: Iterable[str], budget: int, margin: float):
        self.wanted = set(wanted)
        self.budget = budget
        self.margin = margin
        self.used = 0
        self.kept: list[Kept] = []
        self.evaluated = 0  # items evaluated from a kept pass

    def keep(self, prefix: str, item_ids: Sequence[str], cache, start: int, own: int, last_logits) -> None:
        """Keep the rows of one trace pass that are wanted: `cache` holds `start` prefix tokens then
        `own` tokens of each row; `last_logits` (row, vocab) is the last prompt position's."""
        rows = [r for r, item_id in enumerate(item_ids) if item_id in self.wanted]
        layers = getattr(cache, "layers", None)
        if not rows or not layers or not all(hasattr(layer, "keys") and getattr(layer, "keys", None) is not None
                                             and layer.keys.shape[2] == start + own for layer in layers):
            return
        import torch

        index = torch.tensor(rows)
        own_layers = [(layer.keys[:, :, start:, :].index_select(0, index.to(layer.keys.device)).clone(),
                       layer.values[:, :, start:, :].index_select(0, index.to(layer.values.device)).clone())
                      for layer in layers]
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in own_layers)
        if self.used + size > self.budget:
            return
        first, first_ok = top_and_margin(last_logits.index_select(0, index.to(last_logits.device)).float(), self.margin)
        self.used += size
        self.kept.append(Kept(prefix, [item_ids[r] for r in rows], own_layers, first, first_ok))
        self.wanted.difference_update(item_ids[r] for r in rows)  # kept once, whatever traces it again

    def __len__(self) -> int:
        return sum(len(k.item_ids) for k in self.kept)

    def forget(self) -> None:
        self.kept, self.used, self.wanted = [], 0, set()
