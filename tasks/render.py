"""Zero- and k-shot prompts. Shots come from the base region, seeded, never the item itself."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from .family import TaskFamily, cell_rng
from .records import Item

SHOT_SEED_OFFSET = 7_000_003
POOL_PER_CELL = 32


def shot_pool(family: TaskFamily, seed: int) -> list[Item]:
    return [item for cell in family.base_cells
            for item in family.generate(cell.name, POOL_PER_CELL, seed=SHOT_SEED_OFFSET + seed)]


def few_shot(items: Sequence[Item], family: TaskFamily, k: int, seed: int = 0) -> list[Item]:
    """Each item with k solved base-region examples before its prompt, one per line."""
    if k <= 0:
        return list(items)
    pool = shot_pool(family, seed)
    out = []
    for item in items:
        rng = cell_rng(family.name, f"shots:{item.id}", seed)
        candidates = [shot for shot in pool if shot.prompt != item.prompt]
        shots = rng.sample(candidates, min(k, len(candidates)))
        prefix = "".join(f"{shot.prompt}{shot.target}\n" for shot in shots)
        out.append(replace(item, prompt=prefix + item.prompt))
    return out
