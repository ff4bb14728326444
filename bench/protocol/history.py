"""A model's training history for the predict stage: its checkpoints, each evaluated and traced on
the base region (and, for the trace track, traced on the variants after the blind predictions).

Sources, in this order of precedence:
  --revisions step1000,step2000   revisions of the same HF model (each in the local HF cache)
  --checkpoints DIR               a folder of saved checkpoints (subfolders with config.json)
  MODEL/checkpoints/step-N        what a zoo model (the bundled default included) saved along training
A checkpoint's step is its `checkpoint.json` "step", else the last number in its name; the evaluated
model closes the history as "final".

What a checkpoint costs is bounded (`RunSpec.history_n`, `RunSpec.history_traces`): each checkpoint
is evaluated on the first `history_n` base items of every cell (the points of the learning curves),
and only the latest `history_traces` are traced, on those base items and, in the trace track, on
every variant. The evaluated model itself is evaluated and traced on everything, as always.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from predictors import Trace
from tasks import Item, SealedItem, TaskFamily

from ..errors import UserError
from ..model.evaluate import OutcomeCache, evaluate
from ..model.load import ModelHandle, ModelSpec, load_model
from ..model.trace import TraceCache, TracedModel
from .spec import RunSpec


@dataclass(frozen=True)
class Source:
    name: str
    step: int | None
    spec: ModelSpec


@dataclass
class Point:
    """One checkpoint as the worker is handed it: base outcomes (of the items evaluated there) and
    the trace of some items (None: not traced in this run)."""

    name: str
    step: int | None
    fingerprint: str
    correct: dict[str, bool]
    trace: Trace | None = None


def curve_items(base: Sequence[Item | SealedItem], per_cell: int | None) -> list:
    """The base items every checkpoint is evaluated on: the first `per_cell` of each cell (all with
    None), in the base region's order. Items are generated from the seed, so this is too."""
    if per_cell is None:
        return list(base)
    taken: dict[tuple[str, str], int] = {}
    chosen = []
    for item in base:
        key = (item.family, item.cell)
        if taken.get(key, 0) < per_cell:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(item)
    return chosen


def _step_of(name: str, folder: Path | None = None) -> int | None:
    if folder is not None and (folder / "checkpoint.json").is_file():
        step = json.loads((folder / "checkpoint.json").read_text()).get("step")
        if isinstance(step, int):
            return step
    numbers = re.findall(r"\d+", name)
    return int(numbers[-1]) if numbers else None


def _folders(root: Path, model: ModelSpec) -> list[Source]:
    """The checkpoints saved under `root` (subfolders with config.json) as `model` loads them, oldest first."""
    steps = {p: _step_of(p.name, p) for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()}
    return [Source(p.name, steps[p], replace(model, name_or_path=str(p), revision=None))
            for p in sorted(steps, key=lambda p: (steps[p] is None, steps[p] or 0, p.name))]


def sources(spec: RunSpec, handle: ModelHandle) -> list[Source]:
    """The checkpoints before the evaluated model, oldest first (see the module docstring)."""
    model = spec.model
    if spec.revisions:
        return [Source(r, _step_of(r), replace(model, revision=r)) for r in spec.revisions]
    if spec.checkpoints is not None:
        root = Path(spec.checkpoints)
        if not root.is_dir():
            raise UserError(f"--checkpoints {root} is not a folder: pass a folder of saved checkpoints")
        found = _folders(root, model)
        if not found:
            raise UserError(f"--checkpoints {root} holds no checkpoint (subfolders with config.json)")
        return found
    saved = Path(handle.source) / "checkpoints"
    return _folders(saved, model) if saved.is_dir() else []


def final_step(handle: ModelHandle, found: Sequence[Source]) -> int | None:
    """The evaluated model's step: its zoo card's (`history_final_step`, else the recipe's steps),
    else one more checkpoint interval after the last checkpoint."""
    folder = Path(handle.source)
    if (folder / "checkpoint.json").is_file() or re.fullmatch(r"step-?\d+", folder.name):
        return _step_of(folder.name, folder)  # the evaluated model is itself a checkpoint
    card = folder / "zoo.json"
    if card.is_file():
        data = json.loads(card.read_text())
        if isinstance(data.get("history_final_step"), int):
            return data["history_final_step"]
        steps = data.get("recipe", {}).get("steps")
        if isinstance(steps, int) and (not found or found[-1].step is None or steps > found[-1].step):
            return steps
    known = [s.step for s in found if s.step is not None]
    if len(known) >= 2:
        return known[-1] + (known[-1] - known[-2])
    return known[-1] + 1 if known else None


class History:
    """The checkpoints of one run: `base` evaluates each on the curve items and traces the latest
    `traced` there; `variants` traces those on the variants too (asked only after the blind
    predictions). Each is computed once, in this process; traces come from the trace cache where
    it holds them."""

    def __init__(self, spec: RunSpec, handle: ModelHandle, families: dict[str, TaskFamily], attention: bool,
                 base: Sequence[Item], log: Callable[[str], None]):
        self.sources = sources(spec, handle)
        self.final_step = final_step(handle, self.sources)
        self.traced = min(spec.history_traces, len(self.sources))  # the latest this many are traced
        self.points: list[Point] = []
        self._families = families
        self._attention = attention
        self._cache_root = spec.cache_root
        self._log = log
        self._batch_size = spec.batch_size
        self._base = list(base)
        self._items = curve_items(base, spec.history_n)
        self._views: dict[int, TracedModel] = {}  # traced checkpoint index -> its loaded view
        self._variant_points: list[Point] | None = None

    def is_traced(self, k: int) -> bool:
        return k >= len(self.sources) - self.traced

    def base(self) -> list[Point]:
        """Each checkpoint's outcomes on the curve items, and their trace at the traced ones (one
        prompt pass there: the evaluation goes on from it)."""
        if self.points or not self.sources:
            return self.points
        self.points = [self._point(k) for k in range(len(self.sources))]
        traced = ", ".join(s.name for k, s in enumerate(self.sources) if self.is_traced(k)) or "none"
        self._log(f"history: {len(self.sources)} checkpoints ({', '.join(s.name for s in self.sources)}) "
                  f"evaluated on {len(self._items)} base items; traced: {traced}")
        return self.points

    def _point(self, k: int) -> Point:
        """Checkpoint `k` evaluated on the curve items (and traced there, if it is traced)."""
        source, items = self.sources[k], self._items
        handle = load_model(source.spec)
        cache = OutcomeCache(self._cache_root, handle.cache_name) if self._cache_root is not None else None
        stored = cache.get(items) if cache is not None else None
        correct = {o.item_id: o.correct for o in stored} if stored is not None else None
        view, trace = None, None
        if self.is_traced(k):
            traces = TraceCache(self._cache_root, handle.cache_name) if self._cache_root else None
            view = self._views[k] = TracedModel(handle, self._batch_size, attention=self._attention, cache=traces)
            if correct is None:
                view.keep_continuations([item.id for item in items])
            trace = view.trace([item.sealed() for item in items])
        if correct is None:
            outcomes = evaluate(handle, items, self._batch_size, self._families,
                                continuations=view.continuations if view is not None else None)
            correct = {o.item_id: o.correct for o in outcomes}
            if cache is not None:
                cache.put(items, outcomes)
        if view is not None:
            view.continuations = None  # evaluated: the kept prompt passes are not needed again
        return Point(source.name, source.step, handle.fingerprint, correct, trace)

    def variants(self, sealed: Sequence[SealedItem]) -> list[Point]:
        """The same checkpoints, the traced ones' traces now of their curve items and the variants `sealed`."""
        if self._variant_points is None:
            self.base()
            items = [item.sealed() for item in self._items] + list(sealed)
            self._variant_points = [replace(point, trace=self._views[k].trace(items)) if self.is_traced(k) else point
                                    for k, point in enumerate(self.points)]
        return self._variant_points

    def summary(self, final_correct: dict[str, bool], fingerprint: str) -> list[dict]:
        """What results.json records: each checkpoint's base accuracy per cell (the learning curves),
        the evaluated model ("final") last."""
        rows = []
        for point in self.base() + [Point("final", self.final_step, fingerprint, final_correct)]:
            cells: dict[str, list[bool]] = {}
            for item in self._base:
                if item.id in point.correct:
                    cells.setdefault(f"{item.family}/{item.cell}", []).append(point.correct[item.id])
            rows.append({"name": point.name, "step": point.step, "fingerprint": point.fingerprint,
                         "traced": point.trace is not None or point.name == "final",
                         "base_n": {c: len(v) for c, v in cells.items()},
                         "base_accuracy": {c: sum(v) / len(v) for c, v in cells.items()}})
        return rows
