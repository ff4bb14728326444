"""Zero- and k-shot prompts. Shots come from the base region, seeded, never the item itself.

Two conventions:
  * fixed (the default, as MMLU and lm-evaluation-harness do): one set of k examples per family
    and seed, the same before every item of the family, so every prompt of a family shares its
    prefix; an item that is itself one of the examples gets the next example of the pool instead;
  * per item: each item draws its own k examples (seeded by its id).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from .family import TaskFamily, cell_rng
from .records import Item

SHOT_SEED_OFFSET = 7_000_003
POOL_PER_CELL = 32
SHOT_MODES = ("fixed", "per-item")


def shot_pool(family: TaskFamily, seed: int) -> list[Item]:
    return [item for cell in family.base_cells
            for item in family.generate(cell.name, POOL_PER_CELL, seed=SHOT_SEED_OFFSET + seed)]


def shots_for(items: Sequence[Item], family: TaskFamily, k: int, seed: int = 0, mode: str = "fixed") -> list[list[Item]]:
    """The solved examples shown before each item, in order."""
    if k <= 0:
        return [[] for _ in items]
    pool = shot_pool(family, seed)
    if mode == "fixed":
        order = cell_rng(family.name, "shots", seed).sample(pool, len(pool))
        return [[shot for shot in order if shot.prompt != item.prompt][:k] for item in items]
    if mode != "per-item":
        raise ValueError(f"unknown shot mode {mode!r}: use one of {', '.join(SHOT_MODES)}")
    out = []
    for item in items:
        rng = cell_rng(family.name, f"shots:{item.id}", seed)
        candidates = [shot for shot in pool if shot.prompt != item.prompt]
        out.append(rng.sample(candidates, min(k, len(candidates))))
    return out


def few_shot(items: Sequence[Item], family: TaskFamily, k: int, seed: int = 0, mode: str = "fixed") -> list[Item]:
    """Each item with k solved base-region examples before its prompt, each followed by the
    family's `shot_separator` (a newline; a blank line for the plain-language suite)."""
    if k <= 0:
        return list(items)
    sep = family.shot_separator
    return [replace(item, prompt="".join(f"{s.prompt}{s.target}{sep}" for s in shots) + item.prompt)
            for item, shots in zip(items, shots_for(items, family, k, seed, mode))]


def chat(items: Sequence[Item], family: TaskFamily, k: int, apply, seed: int = 0, mode: str = "fixed") -> list[Item]:
    """Each item as a chat: every example a user turn and the assistant's answer, then the item's
    prompt as the last user turn. `apply(messages)` renders the conversation with the model's chat
    template, ending where the assistant's answer starts; targets lose their leading space there."""
    out = []
    for item, shots in zip(items, shots_for(items, family, k, seed, mode)):
        messages = []
        for shot in shots:
            messages += [{"role": "user", "content": shot.prompt}, {"role": "assistant", "content": shot.target.strip()}]
        messages.append({"role": "user", "content": item.prompt})
        out.append(replace(item, prompt=apply(messages), target=item.target.strip()))
    return out
