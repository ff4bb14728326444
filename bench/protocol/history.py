"""A model's training history for the predict stage: its checkpoints, each evaluated and traced on
the base region (and, for the trace track, traced on the variants after the blind predictions).

Sources, in this order of precedence:
  --revisions step1000,step2000   revisions of the same HF model (each in the local HF cache)
  --checkpoints DIR               a folder of saved checkpoints (subfolders with config.json)
  MODEL/checkpoints/step-N        what a zoo model (the bundled default included) saved along training
A checkpoint's step is its `checkpoint.json` "step", else the last number in its name; the evaluated
model closes the history as "final".
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
from ..model.evaluate import evaluate
from ..model.load import ModelHandle, ModelSpec, load_model
from ..model.trace import TraceCache, TracedModel, default_cache_dir
from .spec import RunSpec


@dataclass(frozen=True)
class Source:
    name: str
    step: int | None
    spec: ModelSpec


@dataclass
class Point:
    """One checkpoint as the worker is handed it: base outcomes and the trace of some items."""

    name: str
    step: int | None
    fingerprint: str
    correct: dict[str, bool]
    trace: Trace | None = None


def _step_of(name: str, folder: Path | None = None) -> int | None:
    if folder is not None and (folder / "checkpoint.json").is_file():
        step = json.loads((folder / "checkpoint.json").read_text()).get("step")
        if isinstance(step, int):
            return step
    numbers = re.findall(r"\d+", name)
    return int(numbers[-1]) if numbers else None


def _folders(root: Path) -> list[Source]:
    found = [p for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    ordered = sorted(found, key=lambda p: (_step_of(p.name, p) is None, _step_of(p.name, p) or 0, p.name))
    return [Source(p.name, _step_of(p.name, p), ModelSpec(str(p))) for p in ordered]


def sources(spec: RunSpec, handle: ModelHandle) -> list[Source]:
    """The checkpoints before the evaluated model, oldest first (see the module docstring)."""
    model = spec.model
    if spec.revisions:
        return [Source(r, _step_of(r), replace(model, revision=r)) for r in spec.revisions]
    if spec.checkpoints is not None:
        root = Path(spec.checkpoints)
        if not root.is_dir():
            raise UserError(f"--checkpoints {root} is not a folder: pass a folder of saved checkpoints")
        found = _folders(root)
        if not found:
            raise UserError(f"--checkpoints {root} holds no checkpoint (subfolders with config.json)")
        return [Source(s.name, s.step, replace(model, name_or_path=s.spec.name_or_path, revision=None)) for s in found]
    saved = Path(handle.source) / "checkpoints"
    if saved.is_dir():
        return [Source(s.name, s.step, replace(model, name_or_path=s.spec.name_or_path, revision=None))
                for s in _folders(saved)]
    return []


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
    """The checkpoints of one run, loaded once; `base` evaluates and traces the base region at each,
    `variants` traces the variants there too (after the blind predictions)."""

    def __init__(self, spec: RunSpec, handle: ModelHandle, families: dict[str, TaskFamily], attention: bool,
                 log: Callable[[str], None]):
        self.sources = sources(spec, handle)
        self.final_step = final_step(handle, self.sources)
        self._families = families
        self._batch_size = 64
        self._attention = attention
        self._cache_root = (spec.cache_dir or default_cache_dir()) if spec.use_cache else None
        self._views: list[TracedModel] = []
        self.points: list[Point] = []
        self._log = log

    def __len__(self) -> int:
        return len(self.sources)

    def base(self, base: Sequence[Item], batch_size: int) -> list[Point]:
        """Each checkpoint's base outcomes and base-region trace."""
        self._batch_size = batch_size
        sealed = [item.sealed() for item in base]
        for source in self.sources:
            handle = load_model(source.spec)
            cache = TraceCache(self._cache_root, handle.fingerprint) if self._cache_root else None
            view = TracedModel(handle, self._batch_size, attention=self._attention, cache=cache)
            outcomes = evaluate(handle, list(base), self._batch_size, self._families)
            self._views.append(view)
            self.points.append(Point(source.name, source.step, handle.fingerprint,
                                     {o.item_id: o.correct for o in outcomes}, view.trace(sealed)))
        if self.sources:
            self._log(f"history: {len(self.sources)} checkpoints ({', '.join(s.name for s in self.sources)}) "
                      "evaluated and traced on the base region")
        return self.points

    def variants(self, base: Sequence[SealedItem], sealed: Sequence[SealedItem]) -> list[Point]:
        """The same checkpoints, their traces now of the base items and the variants."""
        items = list(base) + list(sealed)
        return [replace(point, trace=view.trace(items)) for point, view in zip(self.points, self._views)]

    def summary(self, base: Sequence[Item], final_correct: dict[str, bool], fingerprint: str) -> list[dict]:
        """What results.json records: each checkpoint's base accuracy per cell (the learning curves),
        the evaluated model ("final") last."""
        rows = []
        for point in self.points + [Point("final", self.final_step, fingerprint, final_correct)]:
            cells: dict[str, list[bool]] = {}
            for item in base:
                cells.setdefault(f"{item.family}/{item.cell}", []).append(point.correct[item.id])
            rows.append({"name": point.name, "step": point.step, "fingerprint": point.fingerprint,
                         "base_accuracy": {c: sum(v) / len(v) for c, v in cells.items()}})
        return rows
