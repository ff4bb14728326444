"""The `Predictor` protocol: scikit-learn style, over sealed items.

A predictor's constructor only stores keyword arguments; `fit` learns
attributes ending in `_` from calibration observations (base items with their
targets and observed outcomes) and returns self; `predict` returns one
probability of failure in [0, 1] per sealed item.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Protocol, Sequence

import numpy as np

from tasks import Item, SealedItem

from .claims import Claim

#: What a predictor may declare it reads:
#:   prompt        the sealed items' text and axes, and `model.tokenize`
#:   architecture  `model.card`
#:   hidden        trace site `hidden` (last-token residual stream, every layer)
#:   logits        trace sites `top_ids`, `top_probs`, `entropy`, `lens_top_ids`, `lens_final_prob`
#:   attention     trace sites `attn_*`
#:   history       `model.history`: the checkpoints along training, their base outcomes and traces
#:                 (`predictors.history`); which traces follows from the track
#:   mechanistic   `model.mechanistic`: per-position residual stream, per-head patterns and outputs,
#:                 head ablation, activation patching and composition scores, on the base items
#:                 (every item of the run in the trace track); it leaves a predictor in the blind track
READS = frozenset({"prompt", "architecture", "hidden", "logits", "attention", "history", "mechanistic"})
#: The reads that come from a forward pass of the model (trace sites).
TRACE_READS = frozenset({"hidden", "logits", "attention"})

#: Where a predictor competes (its table, its baselines):
#:   blind  no forward pass of the model on any variant item reaches it: the variants' text and
#:          axes, the architecture card and tokenizer, and the base region's traces and outcomes.
#:          Predictions made "in advance". `model.trace` refuses variant items.
#:   trace  also the prompt-only traces of the variant items (P(IK)-style). The trace holds the
#:          model's next-token prediction at the answer position, so its table also shows how
#:          well reading that answer predicts failure (the answer-visible reference row).
TRACKS = ("blind", "trace")


@dataclass(frozen=True)
class Observation:
    """A calibration item: the item with its target, the model's output, and whether it was right."""

    item: Item
    output: str
    correct: bool


class ModelView(Protocol):
    """What a predictor is handed: the architecture card, the tokenizer, and shared
    prompt-only traces (`predictors.Trace`). Never targets, never the run folder."""

    @property
    def card(self) -> Any: ...

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]: ...

    def trace(self, items: Sequence[SealedItem | Item]) -> Any: ...

    @property
    def history(self) -> Sequence[Any]: ...  # `predictors.history.Checkpoint`s, oldest first; () without one

    @property
    def mechanistic(self) -> Any: ...  # reads and interventions (`bench.protocol.worker.MechanisticClient`)


def track_of(predictor: "Predictor | type[Predictor]") -> str:
    """A predictor's track: the one it declares, else "trace" when it reads trace sites, else "blind".
    A predictor that reads the base region's traces but never a variant's declares `track = "blind"`."""
    declared = getattr(predictor, "track", None)
    if declared is not None:
        if declared not in TRACKS:
            raise ValueError(f"{getattr(predictor, 'name', predictor)!r} declares track {declared!r}; "
                             f"tracks are {', '.join(TRACKS)}")
        return declared
    return "trace" if set(predictor.reads) & TRACE_READS else "blind"


class NotApplicable(Exception):
    """Raised from `fit` or `predict` when the predictor's hypothesis has nothing to read on these
    items (no depth axis, no number in any prompt, no training history...), with the reason. The
    run lists it as not applicable and leaves it out of the ranking, rather than scoring a
    constant as if it were chance."""


class Predictor:
    name: ClassVar[str] = ""
    reads: ClassVar[frozenset[str]] = frozenset()
    version: ClassVar[str] = "0"
    track: ClassVar[str | None] = None  # None: follows from `reads` (see `track_of`)

    def get_params(self) -> dict[str, Any]:
        if type(self).__init__ is object.__init__:
            return {}
        params = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {n: getattr(self, n) for n in names}

    def set_params(self, **params: Any) -> "Predictor":
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}; it has {sorted(valid)}")
            setattr(self, key, value)
        return self

    def clone(self) -> "Predictor":
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def note(self, message: str) -> None:
        """Record something the run should report (a fallback taken, say) in `notes_`."""
        if not hasattr(self, "notes_"):
            self.notes_: list[str] = []
        if message not in self.notes_:
            self.notes_.append(message)

    def claim(self, mechanism: str, statement: str, brittle: Sequence[str] = (), robust: Sequence[str] = (),
              threshold: float = 0.5, evidence: Mapping[str, float | int | str] | None = None) -> Claim:
        """Claim, beside the scores, that `mechanism` makes the `brittle` cells fail at or above
        `threshold` and leaves the `robust` ones below it ("family/cell", as results.json names
        cells), with the `evidence` measured. Made in `fit` or `predict`; kept in `claims_`, sealed
        with the predictions and tested after the evaluation (held, falsified or untestable)."""
        made = Claim(mechanism, statement, tuple(brittle), tuple(robust), threshold, evidence or {})
        if not hasattr(self, "claims_"):
            self.claims_: list[Claim] = []
        self.claims_.append(made)
        return made

    def fit(self, model: ModelView, calibration: Sequence[Observation]) -> "Predictor":
        return self

    def predict(self, model: ModelView, items: Sequence[SealedItem]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
