"""`TaskFamily`: a generator of base and variant items along named axes."""
from __future__ import annotations

import hashlib
import random
from typing import Any, ClassVar, Mapping

from .errors import TaskError
from .records import Cell, Item, item_id


def cell_rng(family: str, cell: str, seed: int) -> random.Random:
    """A stream of randomness private to (family, cell, seed), equal across processes."""
    digest = hashlib.sha256(f"{family}\x00{cell}\x00{seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class TaskFamily:
    """Subclasses set `name`, `description`, `axes`, `cells` and implement `sample`.

    `sample(cell, rng)` returns `(prompt, target, axes, meta)` for one item; the
    base class owns seeding, ids and validation so every family behaves alike.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    axes: ClassVar[Mapping[str, str]]  # axis name -> what it measures
    cells: ClassVar[tuple[Cell, ...]]
    shot_separator: ClassVar[str] = "\n"  # what follows each solved example before the next prompt

    # -- subclass hook -----------------------------------------------------
    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    # -- public API --------------------------------------------------------
    @property
    def base_cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.is_base)

    @property
    def variant_cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if not c.is_base)

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.cells)
        raise TaskError(f"family {self.name!r} has no cell {name!r}; its cells are: {known}")

    def generate(self, cell: str, n: int, seed: int = 0) -> list[Item]:
        if not isinstance(n, int) or n <= 0:
            raise TaskError(f"n must be a positive integer, got {n!r}")
        spec = self.cell(cell)
        rng = cell_rng(self.name, cell, seed)
        items = []
        for index in range(n):
            prompt, target, axes, meta = self.sample(spec, rng)
            items.append(Item(id=item_id(self.name, cell, seed, index), family=self.name, cell=cell,
                              axes=axes, prompt=prompt, target=target, meta=meta))
        return items

    def components(self, item: Item) -> list[Item]:
        """The smaller problems `item` composes (each hop, each function), if it has any.

        With them a run can tell a compositional failure (every component right,
        the whole wrong; Press et al. 2022) from a plain one."""
        return []

    def check(self, output: str, item: Item) -> bool:
        """Exact match: the model's answer, up to its end, equals the target (both stripped: a
        target may start with the space that follows `Answer:`)."""
        return output.strip() == item.target.strip()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
