"""`check_family`: the conformance checks every family passes, built-in or third party.

    from tasks.check import check_family
    assert not check_family(MyFamily())   # [] when it conforms; else what is wrong
"""
from __future__ import annotations

import json

from .family import TaskFamily
from .records import SHIFTS, SealedItem


def _axes_key(axes) -> str:
    return json.dumps(dict(axes), sort_keys=True, default=str)


def check_family(family: TaskFamily, n: int = 40, seed: int = 0) -> list[str]:
    problems: list[str] = []
    if not getattr(family, "name", ""):
        problems.append("family has no name")
    if not family.axes:
        problems.append("family declares no axes")
    names = [c.name for c in family.cells]
    if len(set(names)) != len(names):
        problems.append("cell names repeat")
    if not family.base_cells:
        problems.append("no base cell")
    if not family.variant_cells:
        problems.append("no variant cell")
    for cell in family.cells:
        if cell.shift != "base" and cell.shift not in SHIFTS:
            problems.append(f"cell {cell.name}: unknown shift {cell.shift!r}")
    if problems:
        return problems

    ids: set[str] = set()
    base_axes, base_prompts = set(), set()
    generated = {}
    for cell in family.cells:
        items = family.generate(cell.name, n, seed)
        generated[cell.name] = items
        if items != family.generate(cell.name, n, seed):
            problems.append(f"cell {cell.name}: the same seed gave different items")
        if len(items) != n and not hasattr(family, "source"):
            problems.append(f"cell {cell.name}: asked for {n} items, got {len(items)}")
        for item in items:
            where = f"cell {cell.name} item {item.id}"
            if item.id in ids:
                problems.append(f"{where}: id repeats")
            ids.add(item.id)
            if item.family != family.name or item.cell != cell.name:
                problems.append(f"{where}: wrong family or cell on the item")
            if not isinstance(item.prompt, str) or not item.prompt or not isinstance(item.target, str):
                problems.append(f"{where}: prompt and target must be strings, prompt non-empty")
                continue
            if not family.check(item.target, item):
                problems.append(f"{where}: check() rejects the item's own target")
            if family.check(item.target + "#", item):
                problems.append(f"{where}: check() accepts a wrong answer")
            unknown = set(item.axes) - set(family.axes)
            if unknown:
                problems.append(f"{where}: axes {sorted(unknown)} are not declared by the family")
            sealed = item.sealed()
            if not isinstance(sealed, SealedItem) or hasattr(sealed, "target") or hasattr(sealed, "meta"):
                problems.append(f"{where}: the sealed item carries target or meta")
            try:
                json.dumps(item.to_dict())
            except (TypeError, ValueError):
                problems.append(f"{where}: not JSON-serializable")
            for part in family.components(item):
                if not family.check(part.target, part):
                    problems.append(f"{where}: a component rejects its own target")
            if cell.is_base:
                base_axes.add(_axes_key(item.axes))
                base_prompts.add(item.prompt)
    if family.axes and not hasattr(family, "source"):
        for cell in family.variant_cells:
            for item in generated[cell.name]:
                if item.prompt in base_prompts:
                    problems.append(f"cell {cell.name}: prompt {item.prompt!r} also occurs in the base region")
                if _axes_key(item.axes) in base_axes:
                    problems.append(f"cell {cell.name}: item {item.id} has axis values found in the base region")
                    break
    return problems
