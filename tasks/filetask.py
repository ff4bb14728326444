"""Bring your own task: a JSONL file (or a local HF dataset folder) as a family.

Each row needs `prompt`, `target`, `cell` and `split` ("base" or "variant");
optional `shift` (for variant cells), `axes` (an object) and `id`.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any, Iterable

from .errors import TaskError
from .family import TaskFamily
from .records import SHIFTS, Cell, Item

REQUIRED = ("prompt", "target", "cell", "split")


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "is not a JSON object"
    for name in REQUIRED:
        if name not in row:
            return f"field '{name}' is missing"
        if not isinstance(row[name], str):
            return f"field '{name}' must be a string"
        if name != "target" and not row[name]:
            return f"field '{name}' is empty"
    if row["split"] not in ("base", "variant"):
        return f"field 'split' must be 'base' or 'variant', not {row['split']!r}"
    if "axes" in row and not isinstance(row["axes"], dict):
        return "field 'axes' must be an object"
    if "shift" in row:
        allowed = ("base",) if row["split"] == "base" else SHIFTS
        if row["shift"] not in allowed:
            return f"field 'shift' must be one of {', '.join(allowed)} for a {row['split']} item"
    if "id" in row and not isinstance(row["id"], str):
        return "field 'id' must be a string"
    return None


def _rows_from_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TaskError(f"cannot read task file {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TaskError(f"{path} is not UTF-8 text: save the task file as UTF-8 JSONL") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path.name} line {number}", json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise TaskError(f"{path.name} line {number}: not valid JSON") from None


def _rows_from_dataset(path: Path) -> Iterable[tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise TaskError(f"{path} is not a dataset saved with save_to_disk: {type(e).__name__}") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets(list(ds.values()))
    for number, row in enumerate(ds, start=1):
        row = dict(row)
        if isinstance(row.get("axes"), str):
            row["axes"] = json.loads(row["axes"])
        yield f"{path.name} row {number}", {k: v for k, v in row.items() if v is not None}


class FileTask(TaskFamily):
    """A family whose items are read from a file rather than generated."""

    def __init__(self, name: str, items: list[Item], cells: tuple[Cell, ...], source: str):
        self.name = name
        self.description = f"user task from {source}"
        self.source = source
        self.cells = cells
        self.axes = {axis: "from the task file" for item in items for axis in item.axes}
        self._items: dict[str, list[Item]] = {}
        for item in items:
            self._items.setdefault(item.cell, []).append(item)

    def generate(self, cell: str, n: int, seed: int = 0) -> list[Item]:
        """The file's items of `cell`: all of them when n covers them, else a seeded sample in file order."""
        if not isinstance(n, int) or n <= 0:
            raise TaskError(f"n must be a positive integer, got {n!r}")
        self.cell(cell)
        items = self._items[cell]
        if n >= len(items):
            return list(items)
        keep = sorted(random.Random(f"{self.name}:{cell}:{seed}").sample(range(len(items)), n))
        return [items[i] for i in keep]


def load_task_file(path: str | Path, name: str | None = None) -> FileTask:
    path = Path(path)
    if not path.exists():
        raise TaskError(f"no task file at {path}: pass a JSONL file or a folder saved with datasets' save_to_disk")
    rows = _rows_from_dataset(path) if path.is_dir() else _rows_from_jsonl(path)
    name = name or path.stem
    items: list[Item] = []
    cells: dict[str, Cell] = {}
    seen_ids: set[str] = set()
    for where, row in rows:
        problem = _row_problem(row)
        if problem:
            raise TaskError(f"{where}: {problem}")
        shift = "base" if row["split"] == "base" else row.get("shift", "productivity")
        known = cells.get(row["cell"])
        if known is None:
            cells[row["cell"]] = Cell(row["cell"], {}, shift)
        elif known.shift != shift:
            raise TaskError(f"{where}: cell {row['cell']!r} is marked both {known.shift} and {shift}")
        item_id = row.get("id") or hashlib.sha256(json.dumps([name, row["cell"], row["prompt"], len(items)]).encode()).hexdigest()[:16]
        if item_id in seen_ids:
            raise TaskError(f"{where}: id {item_id!r} is used twice")
        seen_ids.add(item_id)
        items.append(Item(id=item_id, family=name, cell=row["cell"], axes=row.get("axes", {}), prompt=row["prompt"],
                          target=row["target"], meta={}))
    if not items:
        raise TaskError(f"{path} has no items: each line needs {', '.join(REQUIRED)}")
    if not any(c.is_base for c in cells.values()):
        raise TaskError(f"{path} has no base items: mark the familiar region with \"split\": \"base\"")
    if all(c.is_base for c in cells.values()):
        raise TaskError(f"{path} has no variant items: mark the items to predict with \"split\": \"variant\"")
    return FileTask(name, items, tuple(cells.values()), str(path))
