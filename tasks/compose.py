"""String functions applied in sequence: `rev inc:1234=` -> inc(rev("1234")) = `5432`.

Functions are applied left to right as written. Axes: depth (functions
composed), input length, and whether an adjacent pair of functions is one the
base region never shows together (systematicity).
"""
from __future__ import annotations

import random
from typing import Any, Callable

from .family import TaskFamily
from .records import Cell, Item

FUNCTIONS: dict[str, Callable[[str], str]] = {
    "rev": lambda s: s[::-1],
    "rot": lambda s: s[1:] + s[:1],
    "inc": lambda s: "".join(str((int(c) + 1) % 10) for c in s),
    "swap": lambda s: "".join(s[i + 1] + s[i] if i + 1 < len(s) else s[i] for i in range(0, len(s), 2)),
}
HELD_OUT_PAIRS = {("rev", "inc"), ("swap", "rot")}  # never adjacent in the base region


def apply(names: list[str], text: str) -> list[str]:
    """The string after each function, in order."""
    steps = []
    for name in names:
        text = FUNCTIONS[name](text)
        steps.append(text)
    return steps


def _pairs(names: list[str]) -> set[tuple[str, str]]:
    return set(zip(names, names[1:]))


class Compose(TaskFamily):
    name = "compose"
    description = "Apply string functions (rev, rot, inc, swap) left to right to a digit string."
    axes = {"depth": "functions composed", "length": "input length",
            "held_out_pair": "whether an adjacent pair never seen together in the base region occurs"}
    cells = (
        Cell("depth=1", {"depth": 1, "length": (3, 5), "held_out_pair": False}, "base"),
        Cell("depth=2", {"depth": 2, "length": (3, 5), "held_out_pair": False}, "base"),
        Cell("depth=3", {"depth": 3, "length": (3, 5), "held_out_pair": False}, "depth"),
        Cell("length=1", {"depth": (1, 2), "length": (1, 1), "held_out_pair": False}, "productivity",
             "a one-digit input, shorter than any in the base region"),
        Cell("depth=3,length=1", {"depth": 3, "length": (1, 1), "held_out_pair": False}, "depth",
             "three functions on a one-digit input, where only inc changes the string"),
        Cell("held_out_pair", {"depth": 2, "length": (3, 5), "held_out_pair": True}, "systematicity",
             "two functions each seen in the base region, never seen one after the other"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        depth = cell.axes["depth"]
        depth = rng.randint(*depth) if isinstance(depth, tuple) else depth
        if cell.axes["held_out_pair"]:
            names = list(rng.choice(sorted(HELD_OUT_PAIRS)))
        else:
            while True:
                names = [rng.choice(sorted(FUNCTIONS)) for _ in range(depth)]
                if not _pairs(names) & HELD_OUT_PAIRS:
                    break
        text = "".join(str(rng.randrange(10)) for _ in range(rng.randint(*cell.axes["length"])))
        steps = apply(names, text)
        prompt = f"{' '.join(names)}:{text}="
        axes = {"depth": len(names), "length": len(text), "held_out_pair": bool(_pairs(names) & HELD_OUT_PAIRS)}
        return prompt, steps[-1], axes, {"functions": names, "input": text, "steps": steps}

    def components(self, item: Item) -> list[Item]:
        """One item per function, applied to the string it receives in the whole."""
        inputs = [item.meta["input"]] + list(item.meta["steps"][:-1])
        return [Item(id=f"{item.id}.{k}", family=self.name, cell=f"{item.cell}/component",
                     axes={"depth": 1, "length": len(text), "held_out_pair": False},
                     prompt=f"{name}:{text}=", target=FUNCTIONS[name](text), meta={"parent": item.id, "step": k})
                for k, (name, text) in enumerate(zip(item.meta["functions"], inputs))]
