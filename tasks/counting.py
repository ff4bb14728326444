"""Counting up: `count:12,16=` -> `12 13 14 15 16`.

The RASP-L counting task of Zhou et al. 2023, which a transformer is predicted
to length-generalize on (contrast: `parity`). Axis: how many numbers are
written.
"""
from __future__ import annotations

import random
from typing import Any

from .family import TaskFamily
from .records import Cell


class Counting(TaskFamily):
    name = "counting"
    description = "Write the integers from a to b inclusive, space separated (two-digit numbers)."
    axes = {"length": "numbers written"}
    cells = (
        Cell("length<=5", {"length": (1, 5)}, "base"),
        Cell("length=8", {"length": (8, 8)}, "productivity"),
        Cell("length=12", {"length": (12, 12)}, "productivity"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        length = rng.randint(*cell.axes["length"])
        start = rng.randint(10, 99 - length + 1)
        numbers = list(range(start, start + length))
        return f"count:{start},{numbers[-1]}=", " ".join(map(str, numbers)), {"length": length}, {"numbers": numbers}
