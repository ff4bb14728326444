"""Variable binding chains in context: `b=7;c=b;a=c;a?` -> `7`.

Axes: hops (assignments followed from the query to a literal), distractor
assignments (unrelated variables, some with chains of their own), and the
order the chain is written in. The base region writes chains of 1-3 hops in
dependency order with at most two distractors.
"""
from __future__ import annotations

import random
import string
from typing import Any

from .family import TaskFamily
from .records import Cell, Item

LETTERS = string.ascii_lowercase


def resolve(statements: list[tuple[str, str]], name: str) -> str:
    """Follow assignments from `name` to its literal value (the last binding wins)."""
    env = dict(statements)
    seen = set()
    while not env[name].isdigit():
        if name in seen:
            raise ValueError("cycle")
        seen.add(name)
        name = env[name]
    return env[name]


def render(statements: list[tuple[str, str]], query: str) -> str:
    return ";".join(f"{lhs}={rhs}" for lhs, rhs in statements) + f";{query}?"


class Multihop(TaskFamily):
    name = "multihop"
    description = "Follow a chain of variable assignments to the queried variable's digit."
    axes = {"hops": "assignments followed from the query to its digit",
            "distractors": "assignments unrelated to the query",
            "order": "forward (dependency order) or reversed"}
    cells = (
        Cell("hops=1", {"hops": 1, "distractors": (0, 2), "order": "forward"}, "base"),
        Cell("hops=2", {"hops": 2, "distractors": (0, 2), "order": "forward"}, "base"),
        Cell("hops=3", {"hops": 3, "distractors": (0, 2), "order": "forward"}, "base"),
        Cell("hops=8", {"hops": 8, "distractors": (0, 2), "order": "forward"}, "depth"),
        Cell("hops=12", {"hops": 12, "distractors": (0, 2), "order": "forward"}, "depth"),
        Cell("distractors=6", {"hops": 2, "distractors": (6, 6), "order": "forward"}, "distraction",
             "a 2-hop chain among six unrelated assignments"),
        Cell("order=reversed", {"hops": 2, "distractors": (0, 2), "order": "reversed"}, "systematicity",
             "a 2-hop chain written query-first: seen statements in an unseen order"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        hops = cell.axes["hops"]
        n_distract = rng.randint(*cell.axes["distractors"])
        names = rng.sample(LETTERS, hops + n_distract)
        chain, others = names[:hops], names[hops:]
        value = str(rng.randrange(10))
        statements = [(chain[0], value)] + [(chain[i], chain[i - 1]) for i in range(1, hops)]
        if cell.axes["order"] == "reversed":
            statements.reverse()
        defined: list[str] = []
        for var in others:  # each distractor: a digit, or a copy of an earlier distractor
            rhs = rng.choice(defined) if defined and rng.random() < 0.5 else str(rng.randrange(10))
            defined.append(var)
            statements.insert(rng.randint(0, len(statements)), (var, rhs))
        if cell.axes["order"] == "forward":
            statements = self._dependency_order(statements)
        query = chain[-1]
        prompt = render(statements, query)
        axes = {"hops": hops, "distractors": n_distract, "order": cell.axes["order"]}
        meta = {"chain": chain, "bridge_values": [value] * hops, "statements": [list(s) for s in statements]}
        return prompt, value, axes, meta

    @staticmethod
    def _dependency_order(statements: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Stable reorder so every variable is defined before it is used."""
        placed: list[tuple[str, str]] = []
        known: set[str] = set()
        pending = list(statements)
        while pending:
            for k, (lhs, rhs) in enumerate(pending):
                if rhs.isdigit() or rhs in known:
                    placed.append(pending.pop(k))
                    known.add(lhs)
                    break
        return placed

    def components(self, item: Item) -> list[Item]:
        """One item per hop: the hop's statement with its input already resolved."""
        chain, value = item.meta["chain"], item.target
        parts = [([(chain[0], value)], chain[0])]
        parts += [([(chain[i - 1], value), (chain[i], chain[i - 1])], chain[i]) for i in range(1, len(chain))]
        return [Item(id=f"{item.id}.{k}", family=self.name, cell=f"{item.cell}/component", axes={"hops": 1},
                     prompt=render(statements, query), target=value, meta={"parent": item.id, "step": k})
                for k, (statements, query) in enumerate(parts)]
