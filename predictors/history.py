"""A model's training history, as predictors read it (`model.history`): its checkpoints, oldest
first, ending with the evaluated model itself (named "final").

Each `Checkpoint` gives the observed outcomes at that point of training of the base items it was
evaluated on (`evaluated`: the first `--history-n` of every base cell; every base item at "final")
and, where the run traced it (`traced`: the latest `--history-traces` checkpoints and "final"), the
prompt-only traces of the run's items there: of those base items in every track, and of the
variants too in the trace track (a blind predictor asking for a variant's is refused, as with
`model.trace`). A model without a history (no checkpoints, revisions or checkpoint folder given)
has `model.history == ()`: a predictor that needs one says so in a note and falls back.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from .trace import Trace


class Checkpoint:
    """One point of training: `name` ("step-2000", a revision, "final"), `step` (None where unknown),
    `outcomes(items)` (whether the model there answered each *base* item correctly) and `trace(items)`."""

    def __init__(self, name: str, step: int | None, correct: Mapping[str, bool],
                 tracer: Callable[[Sequence], Trace] | None):
        self.name = name
        self.step = step
        self._correct = dict(correct)
        self._tracer = tracer

    @property
    def traced(self) -> bool:
        """Whether this checkpoint's traces can be read (`trace`)."""
        return self._tracer is not None

    def evaluated(self, items: Sequence) -> list:
        """Those of `items` whose outcome at this checkpoint is known, in order."""
        return [item for item in items if item.id in self._correct]

    def outcomes(self, items: Sequence) -> np.ndarray:
        """(item,) True where the model at this checkpoint answered correctly. Base items evaluated
        there only (`evaluated`): no variant was evaluated at any checkpoint before sealing."""
        missing = [item.id for item in items if item.id not in self._correct]
        if missing:
            raise PermissionError(f"checkpoint {self.name}: no outcome for item {missing[0]!r} (outcomes along "
                                  "training are known for the base items evaluated there: `evaluated(items)`)")
        return np.array([self._correct[item.id] for item in items], dtype=bool)

    def trace(self, items: Sequence) -> Trace:
        if self._tracer is None:
            raise PermissionError(f"checkpoint {self.name}: not traced in this run (the runner traces the latest "
                                  "--history-traces checkpoints; `traced` says which)")
        return self._tracer(items)

    def __repr__(self) -> str:
        return f"Checkpoint({self.name!r}, step={self.step})"


def base_curves(history: Sequence[Checkpoint], base_items: Sequence) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Learning curves of the base cells: (cells as 'family/cell', steps (checkpoint,), accuracy
    (cell, checkpoint), each over the cell's items evaluated at that checkpoint; NaN where none
    was). Steps that are unknown count checkpoints instead."""
    cells = sorted({f"{item.family}/{item.cell}" for item in base_items})
    steps = np.array([c.step if c.step is not None else k for k, c in enumerate(history)], dtype=np.float64)
    accuracy = np.zeros((len(cells), len(history)))
    labels = np.array([f"{item.family}/{item.cell}" for item in base_items])
    for k, checkpoint in enumerate(history):
        evaluated = checkpoint.evaluated(base_items)
        ids = {item.id for item in evaluated}
        known = np.array([item.id in ids for item in base_items], dtype=bool)
        correct = np.zeros(len(base_items), dtype=bool)
        correct[known] = checkpoint.outcomes(evaluated)
        for c, cell in enumerate(cells):
            seen = known & (labels == cell)
            accuracy[c, k] = correct[seen].mean() if seen.any() else np.nan
    return cells, steps, accuracy
