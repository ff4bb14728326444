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
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from predictors import Trace
from tasks import Item, SealedItem, TaskFamily

from ..background import Claims, Staged
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


def _torch():
    import torch

    return torch


class History:
    """The checkpoints of one run; `start` begins their work (beside the evaluated model's own, where
    it can), `base` returns each evaluated and traced on the base region, `variants` the traced ones
    on the variants too (asked only after the blind predictions)."""

    def __init__(self, spec: RunSpec, handle: ModelHandle, families: dict[str, TaskFamily], attention: bool,
                 log: Callable[[str], None]):
        self.sources = sources(spec, handle)
        self.final_step = final_step(handle, self.sources)
        self._families = families
        self._batch_size = 64
        self._attention = attention
        self._cache_root = (spec.cache_dir or default_cache_dir()) if spec.use_cache else None
        self.per_cell = spec.history_n
        self.traced = min(spec.history_traces, len(self.sources))  # the latest this many are traced
        self._views: dict[int, TracedModel] = {}  # traced checkpoint index -> its loaded view
        self._mine: set[int] = set()  # the checkpoints this process computed
        self._items: list[Item] = []
        self._claims: Claims | None = None
        self.points: list[Point] = []
        self._variant_points: list[Point] | None = None
        self._variant_traces: dict[int, Trace] | None = None  # the child's variant stage, once taken
        self._log = log
        self._work: Staged | None = None
        self._threads: int | None = None  # this process's torch threads while a child works beside it
        self.beside = False  # whether the work ran in a child process

    def __len__(self) -> int:
        return len(self.sources)

    def is_traced(self, k: int) -> bool:
        return k >= len(self.sources) - self.traced

    def start(self, base: Sequence[Item], batch_size: int, sealed: Sequence[SealedItem] | None = None,
              beside: bool = False) -> None:
        """Begin the work: the curve items (`curve_items`) evaluated at every checkpoint and traced at
        the latest `traced`; then, if `sealed` variants are given and `variants` asks for them, the
        traced checkpoints on those. With `beside`, in a forked child holding one thread, while this
        process holds one thread fewer for the evaluated model's own work until the child is done;
        once that work is done, this process takes the checkpoints the child has not begun (`base`).
        The same items, the same outcomes and traces either way (rows are thread-invariant,
        `bench.model.trace`; evaluation decides the same at any batch, `bench.model.evaluate`)."""
        self.close()
        self._batch_size = batch_size
        self._items = curve_items(base, self.per_cell)
        self._mine, self._views, self._variant_points, self._variant_traces = set(), {}, None, None
        stages = 1 + (sealed is not None and self.traced > 0)
        fork = beside and bool(self.sources)
        self._claims = Claims(self._order()) if fork else None
        if fork:
            self._threads = _torch().get_num_threads()
        self._work = Staged(self._stages, list(sealed or ()), os.getpid(), stages=stages, fork=fork)
        self.beside = self._work.forked
        if self._work.forked:
            _torch().set_num_threads(max(1, self._threads - 1))
        else:
            if self._claims is not None:
                self._claims.close()
            self._threads, self._claims = None, None

    def _order(self) -> list[int]:
        """The order checkpoints are taken in: the traced first (the child takes them, and traces
        their variants later from the same loaded model), then the others, oldest first."""
        ks = range(len(self.sources))
        return [k for k in ks if self.is_traced(k)] + [k for k in ks if not self.is_traced(k)]

    def _stages(self, sealed: list[SealedItem], parent: int):
        """What `start` runs: the base stage's points {checkpoint index: Point} (in the child, those
        it claimed; here, all that this process has not computed itself), then the variant stage's
        traces {traced checkpoint index: Trace}."""
        here = os.getpid() == parent
        if not here:
            from ..model import evaluate as evaluate_module

            evaluate_module.QUIET = True  # the evaluated model's bars are the ones shown
        todo = [k for k in self._order() if k not in self._mine] if here or self._claims is None \
            else self._claims.taken()
        yield {k: self._point(k) for k in todo}
        base = [item.sealed() for item in self._items]
        yield {k: self._view_of(k).trace(base + list(sealed)) for k in range(len(self.sources)) if self.is_traced(k)}

    def _point(self, k: int) -> Point:
        """Checkpoint `k` evaluated on the curve items (and traced there, if it is traced)."""
        source, items = self.sources[k], self._items
        handle = load_model(source.spec)
        view, trace = None, None
        if self.is_traced(k):
            view = self._views[k] = self._view(handle)
            view.keep_continuations([item.id for item in items])
            trace = view.trace([item.sealed() for item in items])
        outcomes = evaluate(handle, items, self._batch_size, self._families,
                            continuations=view.continuations if view is not None else None)
        if view is not None:
            view.continuations = None  # evaluated: the kept prompt passes are not needed again
        self._mine.add(k)
        return Point(source.name, source.step, handle.fingerprint, {o.item_id: o.correct for o in outcomes}, trace)

    def _view(self, handle: ModelHandle) -> TracedModel:
        cache = TraceCache(self._cache_root, handle.cache_name) if self._cache_root else None
        return TracedModel(handle, self._batch_size, attention=self._attention, cache=cache)

    def _view_of(self, k: int) -> TracedModel:
        """Checkpoint `k`'s traced view: the one its base stage loaded, else loaded now (its base
        stage ran in the other process)."""
        if self._views.get(k) is None:
            self._views[k] = self._view(load_model(self.sources[k].spec))
        return self._views[k]

    @property
    def has_base(self) -> bool:
        """Whether `base` has its points already (else it waits for them, or computes them)."""
        return self._work is not None and self._work.received > 0

    def base(self, base: Sequence[Item] | None = None, batch_size: int | None = None) -> list[Point]:
        """Each checkpoint's outcomes on the curve items, and their trace at the latest `traced`
        checkpoints (one prompt pass there: the evaluation goes on from it). Where a child works
        beside, this process first takes the checkpoints it has not begun, then waits for the rest
        (starting the work here, on `base`, where nothing did); computed once."""
        if self.has_base:
            return self.points
        if self._work is None:
            if base is None:
                raise RuntimeError("the history was not started: History.start(base items, batch size) first")
            self.start(base, batch_size or self._batch_size)
        ours: dict[int, Point] = {}
        if self._claims is not None and self._work.forked:
            ours = {k: self._point(k) for k in self._claims.taken()}  # the other core is free: help
        theirs = self._work.next_stage()
        self._release()
        points = ours | theirs
        self.points = [points[k] for k in range(len(self.sources))]
        if self.sources:
            traced = ", ".join(s.name for k, s in enumerate(self.sources) if self.is_traced(k)) or "none"
            self._log(f"history: {len(self.sources)} checkpoints ({', '.join(s.name for s in self.sources)}) "
                      f"evaluated on {len(self._items)} base items; traced: {traced}"
                      + (" (beside the model, in a second process)" if self.beside else ""))
        return self.points

    def begin_variants(self) -> None:
        """Let the child begin the variant stage now, beside the caller's own trace of the variants
        (after the blind predictions: the caller's order)."""
        if self._work is not None:
            self._work.ask()

    def settle(self) -> None:
        """Between the caller's own batches: once the child has traced the checkpoints' variants,
        take them, and this process's threads back for the rest of its own work."""
        if self._work is not None and self._work.ready():
            self._take_variant_stage()

    def _take_variant_stage(self) -> None:
        """The variant stage `start` was given (waiting for it where the child is not done), once."""
        if self._variant_traces is None and self._work is not None and self._work.received < self._work.stages:
            self._variant_traces = self._work.next_stage()
            self._release()

    def variants(self, base: Sequence[SealedItem], sealed: Sequence[SealedItem]) -> list[Point]:
        """The same checkpoints, the traced ones' traces now of their curve items and the variants
        `sealed` (computed once; here where `start` was not given these variants)."""
        if self._variant_points is None:
            self._take_variant_stage()
            traces = self._variant_traces
            if traces is None:
                items = [item.sealed() for item in self._items] + list(sealed)
                traces = {k: self._view_of(k).trace(items) for k in range(len(self.sources)) if self.is_traced(k)}
            self._variant_points = [replace(point, trace=traces[k]) if k in traces else point
                                    for k, point in enumerate(self.points)]
        return self._variant_points

    def _release(self) -> None:
        """This process's threads back once the child is done."""
        if self._threads is not None and (self._work is None or not self._work.forked):
            _torch().set_num_threads(self._threads)
            self._threads = None

    def close(self, kill: bool = False) -> None:
        """End the work in progress (a run that stops early, or never asks for the variants)."""
        if self._work is not None:
            self._work.close(kill=kill)
        if self._claims is not None:
            self._claims.close()
            self._claims = None
        self._release()

    def summary(self, base: Sequence[Item], final_correct: dict[str, bool], fingerprint: str) -> list[dict]:
        """What results.json records: each checkpoint's base accuracy per cell (the learning curves),
        the evaluated model ("final") last."""
        rows = []
        for point in self.points + [Point("final", self.final_step, fingerprint, final_correct)]:
            cells: dict[str, list[bool]] = {}
            for item in base:
                if item.id in point.correct:
                    cells.setdefault(f"{item.family}/{item.cell}", []).append(point.correct[item.id])
            rows.append({"name": point.name, "step": point.step, "fingerprint": point.fingerprint,
                         "traced": point.trace is not None or point.name == "final",
                         "base_n": {c: len(v) for c, v in cells.items()},
                         "base_accuracy": {c: sum(v) / len(v) for c, v in cells.items()}})
        return rows
