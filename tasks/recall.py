"""Key-value recall in context: `ka:41 zo:07 mi:93 zo?` -> `07`.

The induction-head / in-context-learning case. Axes: how many pairs are
listed, where the queried pair stands, and whether a key is bound twice (the
later binding is the answer; the earlier one is a distractor).
"""
from __future__ import annotations

import random
import string
from typing import Any

from .family import TaskFamily
from .records import Cell


def lookup(prompt: str) -> str:
    """The answer by reading the prompt: the last value bound to the queried key."""
    body, query = prompt.rsplit(" ", 1)
    key = query.removesuffix("?")
    value = None
    for pair in body.split(" "):
        k, v = pair.split(":")
        if k == key:
            value = v
    return value


class Recall(TaskFamily):
    name = "recall"
    description = "Recall the value bound to a queried key from a list of key:value pairs."
    axes = {"pairs": "key:value pairs listed", "query_position": "index of the pair that answers (0 = first)",
            "rebound": "whether the queried key was bound once before (the later value counts)"}
    cells = (
        Cell("pairs=2", {"pairs": 2, "rebound": False}, "base"),
        Cell("pairs=3", {"pairs": 3, "rebound": False}, "base"),
        Cell("pairs=4", {"pairs": 4, "rebound": False}, "base"),
        Cell("pairs=6", {"pairs": 6, "rebound": False}, "productivity", "two pairs beyond the base region"),
        Cell("pairs=8", {"pairs": 8, "rebound": False}, "productivity"),
        Cell("pairs=10", {"pairs": 10, "rebound": False}, "productivity"),
        Cell("pairs=12", {"pairs": 12, "rebound": False}, "productivity"),
        Cell("rebound", {"pairs": 4, "rebound": True}, "distraction",
             "the queried key appears twice; the earlier binding is stale"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        n = cell.axes["pairs"]
        keys: list[str] = []
        while len(keys) < n:
            key = "".join(rng.choice(string.ascii_lowercase) for _ in range(2))
            if key not in keys:
                keys.append(key)
        values = [f"{rng.randrange(100):02d}" for _ in range(n)]
        pairs = list(zip(keys, values))
        if cell.axes["rebound"]:
            first = rng.randrange(n - 1)
            later = rng.randrange(first + 1, n)
            key, stale = pairs[first][0], pairs[first][1]
            fresh = stale
            while fresh == stale:
                fresh = f"{rng.randrange(100):02d}"
            pairs[later] = (key, fresh)
            position, query = later, key
        else:
            position = rng.randrange(n)
            query = pairs[position][0]
        prompt = " ".join(f"{k}:{v}" for k, v in pairs) + f" {query}?"
        target = pairs[position][1]
        axes = {"pairs": n, "query_position": position, "rebound": cell.axes["rebound"]}
        return prompt, target, axes, {"pairs": [list(p) for p in pairs], "query": query}
