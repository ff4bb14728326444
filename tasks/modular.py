"""Modular addition: `mod:12+45=` -> `4` (sums modulo 53, the modulus never shown).

The grokking setting (Power et al. 2022): a fixed 30% of all pairs (a, b) is the base region,
the training split; the model first memorizes it and, with strong weight decay, later
generalizes to the rest. Variants: the held-out pairs (unseen combinations of seen
numbers: systematicity) and sums of three terms (a longer form: productivity). A pair's split
is fixed by a hash of the pair, the same for every seed.
"""
from __future__ import annotations

import hashlib
import random
from typing import Any

from .family import TaskFamily
from .records import Cell, Item

MODULUS = 53
TRAIN_FRACTION = 0.3


def in_training_split(a: int, b: int) -> bool:
    digest = hashlib.sha256(f"modular {MODULUS} {a} {b}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < TRAIN_FRACTION


SPLIT = {True: [], False: []}
for _a in range(MODULUS):
    for _b in range(MODULUS):
        SPLIT[in_training_split(_a, _b)].append((_a, _b))


class Modular(TaskFamily):
    name = "modular"
    description = f"Sums modulo {MODULUS}; the base region is a fixed 30% of all pairs (the grokking setting)."
    axes = {"terms": "numbers summed", "split": "whether the pair is in the training half (seen) or not (held_out)"}
    cells = (
        Cell("seen", {"terms": 2, "split": "seen"}, "base"),
        Cell("held_out", {"terms": 2, "split": "held_out"}, "systematicity"),
        Cell("terms=3", {"terms": 3, "split": "seen"}, "productivity"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        a, b = rng.choice(SPLIT[cell.axes["split"] == "seen"])
        terms = [a, b]
        if cell.axes["terms"] == 3:  # the first pair and the partial sum with the third term both seen
            terms.append(rng.choice([c for s, c in SPLIT[True] if s == (a + b) % MODULUS]))
        partial = [sum(terms[:k + 1]) % MODULUS for k in range(len(terms))]
        return "mod:" + "+".join(map(str, terms)) + "=", str(partial[-1]), {"terms": len(terms), "split": cell.axes["split"]}, \
            {"terms": terms, "partial_sums": partial}

    def components(self, item: Item) -> list[Item]:
        terms = item.meta["terms"]
        if len(terms) < 3:
            return []
        first = (terms[0] + terms[1]) % MODULUS
        parts = [(f"mod:{terms[0]}+{terms[1]}=", str(first)), (f"mod:{first}+{terms[2]}=", item.target)]
        return [Item(id=f"{item.id}.{k}", family=self.name, cell=f"{item.cell}/component",
                     axes={"terms": 2, "split": "seen"}, prompt=prompt, target=target,
                     meta={"parent": item.id, "step": k}) for k, (prompt, target) in enumerate(parts)]
