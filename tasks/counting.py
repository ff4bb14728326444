"""Counting up: `count:12,16=` -> `12 13 14 15 16`.

The RASP-L counting task of Zhou et al. 2023, which a transformer is predicted
to length-generalize on (contrast: `parity`). Axes: how many numbers are
written, and where the run starts: the base region counts among 10-99; the
`padded` cells start below 10 and write those numbers with a leading zero
(`count:07,10=` -> `07 08 09 10`).
"""
from __future__ import annotations

import random
from typing import Any

from .family import TaskFamily
from .records import Cell


class Counting(TaskFamily):
    name = "counting"
    description = "Write the integers from a to b inclusive, space separated (two-digit numbers)."
    axes = {"length": "numbers written",
            "first": "the first number (10 or more throughout the base region, whose items do not record it)"}
    cells = (
        Cell("length<=5", {"length": (1, 5)}, "base"),
        Cell("length=6", {"length": (6, 6)}, "productivity", "one number more than any run in the base region"),
        Cell("padded,length=2-3", {"length": (2, 3), "first": (0, 9)}, "substitutivity",
             "a short run from 00-09: two-digit numerals the base region never shows"),
        Cell("padded,length=4-5", {"length": (4, 5), "first": (0, 9)}, "substitutivity",
             "a longer run from 00-09, mostly among numerals the base region never shows"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        length = rng.randint(*cell.axes["length"])
        if "first" in cell.axes:
            start = rng.randint(*cell.axes["first"])
            axes = {"length": length, "first": start}
        else:
            start = rng.randint(10, 99 - length + 1)
            axes = {"length": length}
        numbers = list(range(start, start + length))
        written = [f"{n:02d}" for n in numbers]
        return f"count:{written[0]},{written[-1]}=", " ".join(written), axes, {"numbers": numbers}
