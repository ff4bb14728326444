"""Multi-digit addition: `123+45=` -> `168`.

Axes: how many digits the longer operand has, the longest chain of carries,
and how many operands are summed. The base region is 1-3 digit operands, two
operands, carry chains of at most two positions; variants push the width or the
carry chain out (a three-operand cell, which the bundled model fails whole, is
not in the ladder; the generator keeps the axis for task files).
"""
from __future__ import annotations

import random
from typing import Any

from .family import TaskFamily
from .records import Cell

BASE_MAX_CARRY = 2


def carries(operands: list[int]) -> list[int]:
    """Carry out of each digit position, least significant first."""
    out, carry, position = [], 0, 0
    width = max(len(str(x)) for x in operands)
    while position < width:
        column = sum((x // 10**position) % 10 for x in operands) + carry
        carry = column // 10
        out.append(carry)
        position += 1
    return out


def longest_chain(carry_out: list[int]) -> int:
    best = run = 0
    for c in carry_out:
        run = run + 1 if c else 0
        best = max(best, run)
    return best


def _random_digits(rng: random.Random, length: int) -> list[int]:
    """`length` digits, least significant first, with a non-zero leading digit."""
    digits = [rng.randrange(10) for _ in range(length - 1)]
    digits.append(rng.randrange(1, 10) if length > 1 else rng.randrange(10))
    return digits


def _to_int(digits: list[int]) -> int:
    return sum(d * 10**i for i, d in enumerate(digits))


class Addition(TaskFamily):
    name = "addition"
    description = "Sum of integers written in decimal; the answer is the decimal sum."
    axes = {
        "digits": "digits of the longest operand",
        "carry": "longest chain of consecutive carries",
        "operands": "number of operands summed",
    }
    cells = (
        Cell("digits=1", {"digits": 1, "carry": (0, BASE_MAX_CARRY), "operands": 2}, "base"),
        Cell("digits=2", {"digits": 2, "carry": (0, BASE_MAX_CARRY), "operands": 2}, "base"),
        Cell("digits=3", {"digits": 3, "carry": (0, BASE_MAX_CARRY), "operands": 2}, "base"),
        Cell("carry=3", {"digits": 3, "carry": (3, 3), "operands": 2}, "depth",
             "a carry chain one longer than any in the base region"),
        Cell("carry=3,short", {"digits": 3, "short_digits": 2, "carry": (3, 3), "operands": 2}, "depth",
             "a chain of three carries that runs on past the shorter operand (968+34)"),
        Cell("digits=4", {"digits": 4, "carry": (0, BASE_MAX_CARRY), "operands": 2}, "productivity"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        digits = cell.axes["digits"]
        lo, hi = cell.axes["carry"]
        count = cell.axes["operands"]
        while True:
            operands = self._operands(rng, digits, cell.axes.get("short_digits"), count, lo)
            carry_out = carries(operands)
            chain = longest_chain(carry_out)
            if lo <= chain <= hi:
                break
        prompt = "+".join(str(x) for x in operands) + "="
        target = str(sum(operands))
        axes = {"digits": max(len(str(x)) for x in operands), "carry": chain, "operands": count}
        meta = {"operands": operands, "carries": carry_out}
        return prompt, target, axes, meta

    @staticmethod
    def _operands(rng: random.Random, digits: int, short: int | None, count: int, min_chain: int) -> list[int]:
        shortest = max(1, min_chain if count == 2 else 1)
        lengths = [digits] + [short or rng.randint(shortest, digits) for _ in range(count - 1)]
        numbers = [_random_digits(rng, n) for n in lengths]
        if min_chain and count == 2:
            # Plant a chain of `min_chain` carries (as much of it as fits) inside the shorter
            # operand's span so that rejection sampling accepts quickly; the caller still
            # checks the exact length.
            a, b = numbers
            span = min(len(a), len(b))
            links = min(min_chain, span)
            start = rng.randint(0, span - links)
            for k, pos in enumerate(range(start, start + links)):
                need = 10 if k == 0 else 9  # the first link has no carry in
                a[pos] = rng.randint(max(need - 9, 1 if pos == len(a) - 1 else 0), 9)
                b[pos] = rng.randint(max(need - a[pos], 1 if pos == len(b) - 1 else 0), 9)
        values = [_to_int(n) for n in numbers]
        rng.shuffle(values)
        return values
