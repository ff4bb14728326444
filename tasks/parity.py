"""Parity of a bit string: `parity:10110=` -> `1` (odd number of ones).

With `counting` it forms a known contrast in length generalization: RASP-L
(Zhou et al. 2023) predicts that counting generalizes to longer inputs and
parity does not.
"""
from __future__ import annotations

import random
from typing import Any

from .family import TaskFamily
from .records import Cell


class Parity(TaskFamily):
    name = "parity"
    description = "Whether a bit string has an odd (1) or even (0) number of ones."
    axes = {"length": "bits in the string"}
    cells = (
        Cell("length<=8", {"length": (2, 8)}, "base"),
        Cell("length=10", {"length": (10, 10)}, "productivity"),
        Cell("length=12", {"length": (12, 12)}, "productivity"),
        Cell("length=16", {"length": (16, 16)}, "productivity"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        length = rng.randint(*cell.axes["length"])
        bits = "".join(rng.choice("01") for _ in range(length))
        running, prefix = 0, []
        for b in bits:
            running ^= b == "1"
            prefix.append(int(running))
        return f"parity:{bits}=", str(prefix[-1]), {"length": length}, {"prefix_parity": prefix}
