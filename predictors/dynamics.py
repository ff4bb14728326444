"""Training-dynamics predictors: they read `model.history`, the checkpoints along training.

Four are blind (the base region's learning curves and traces only); checkpoint agreement reads
the variants' traces at late checkpoints (trace track). Without a history (fewer than two
checkpoints) each says it does not apply (`NotApplicable`): the run lists it with that reason
and leaves it out of the ranking.

A variant is tied to its family's base cells through its axes: its *nearest* base cell (closest
mean axis values) gives the cell-level signal, and its *distance* beyond the base region (how
far its numeric axes exceed the base range, relative to that range) scales it up, so that items
further out score higher within a family.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import NotApplicable, Predictor
from .history import base_curves

NO_HISTORY = "no training history (fewer than two checkpoints: pass --checkpoints or --revisions)"


def _numeric(axes) -> dict[str, float]:
    return {k: float(v) for k, v in axes.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class _Geometry:
    """Each family's base cells by their mean numeric axes, and the range of each axis there."""

    def __init__(self, base_items: Sequence):
        self.cells: dict[str, dict[str, dict[str, float]]] = {}  # family -> cell -> axis -> mean
        values: dict[str, dict[str, list[float]]] = {}
        grouped: dict[tuple[str, str], list[dict[str, float]]] = {}
        for item in base_items:
            axes = _numeric(item.axes)
            grouped.setdefault((item.family, item.cell), []).append(axes)
            for k, v in axes.items():
                values.setdefault(item.family, {}).setdefault(k, []).append(v)
        for (family, cell), rows in grouped.items():
            keys = set.intersection(*(set(r) for r in rows)) if rows else set()
            self.cells.setdefault(family, {})[cell] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        self.ranges = {f: {k: (min(v), max(v)) for k, v in axes.items()} for f, axes in values.items()}

    def place(self, item) -> tuple[str | None, float]:
        """(nearest base cell, distance beyond the base region) of a variant item."""
        cells = self.cells.get(item.family, {})
        if not cells:
            return None, 0.0
        axes = _numeric(item.axes)
        ranges = self.ranges.get(item.family, {})
        scale = {k: max(hi - lo, abs(hi), 1.0) for k, (lo, hi) in ranges.items()}
        beyond = sum(max(0.0, axes[k] - hi) / scale[k] + max(0.0, lo - axes[k]) / scale[k]
                     for k, (lo, hi) in ranges.items() if k in axes)

        def gap(cell: str) -> float:
            means = cells[cell]
            return sum(abs(axes[k] - means[k]) / scale[k] for k in means if k in axes)

        return min(cells, key=lambda c: (gap(c), c)), beyond


def _scaled(signal: float, distance: float) -> float:
    """A cell-level failure signal in [0, 1], raised for items further beyond the base region."""
    signal = float(np.clip(signal, 0.0, 0.999))
    return 1.0 - (1.0 - signal) ** (1.0 + distance)


class _CellSignal(Predictor):
    """A blind history predictor: a signal per base cell, carried to each variant by its axes."""

    reads = frozenset({"prompt", "history"})
    version = "1"

    def fit(self, model, calibration):
        history = tuple(getattr(model, "history", ()))
        self.geometry_ = _Geometry([o.item for o in calibration])
        self.signal_: dict[tuple[str, str], float] = {}
        if len(history) < 2:
            raise NotApplicable(NO_HISTORY)
        base = [o.item for o in calibration]
        cells, steps, accuracy = base_curves(history, base)
        signals = self.cell_signals(model, history, base, cells, steps, accuracy)
        self.signal_ = {tuple(cell.split("/", 1)): float(v) for cell, v in zip(cells, signals)}
        return self

    def cell_signals(self, model, history, base, cells, steps, accuracy) -> np.ndarray:
        raise NotImplementedError

    def predict(self, model, items):
        if not self.signal_:
            return np.full(len(items), 0.5)
        out = []
        for item in items:
            cell, distance = self.geometry_.place(item)
            family = [v for (f, _), v in self.signal_.items() if f == item.family]
            signal = self.signal_.get((item.family, cell), float(np.mean(family)) if family else 0.5)
            out.append(_scaled(signal, distance))
        return np.array(out)


def emergence_steps(steps: np.ndarray, accuracy: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Per cell, the step at which accuracy first reaches `level`, interpolated between checkpoints
    (accuracy 0 before training); 1.5x the last step where it never does."""
    out = np.full(accuracy.shape[0], 1.5 * steps[-1])
    for c, curve in enumerate(accuracy):
        xs, ys = np.r_[0.0, steps], np.r_[0.0, curve]
        above = np.flatnonzero(ys >= level)
        if len(above):
            k = above[0]
            out[c] = xs[k] if k == 0 or ys[k] == ys[k - 1] else \
                xs[k - 1] + (level - ys[k - 1]) / (ys[k] - ys[k - 1]) * (xs[k] - xs[k - 1])
    return out


class EmergenceTimePredictor(_CellSignal):
    """Hypothesis: skills that formed late in training are fragile beyond their base region
    (a late, barely-finished circuit has had no time to become general; Power et al. 2022 on
    delayed generalization, Nanda et al. 2023 on progress measures). Signal per base cell: the
    step at which its accuracy first reached 0.5, as a fraction of training (1 where it never did);
    a variant takes its nearest base cell's, raised with its distance beyond the base region."""

    name = "emergence_time"
    reads = frozenset({"prompt", "history"})
    version = "1"

    def cell_signals(self, model, history, base, cells, steps, accuracy):
        return np.minimum(emergence_steps(steps, accuracy) / steps[-1], 1.0)


class CurveExtrapolationPredictor(_CellSignal):
    """Hypothesis: along a numeric axis, harder cells are learned later, at a rate one can
    extrapolate: fit each family's emergence step (accuracy 0.5) against the axis value of its
    base cells, extrapolate it to the variant's value, and predict failure where that step lies
    beyond the end of training (a learning-curve extrapolation in the sense of Domhan et al.
    2015, along a task axis instead of along steps). Score: a logistic in (predicted emergence -
    last step) / last step; families without a numeric axis that varies across base cells take
    their nearest base cell's emergence time, as emergence_time does."""

    name = "curve_extrapolation"
    reads = frozenset({"prompt", "history"})
    version = "1"

    def fit(self, model, calibration):
        super().fit(model, calibration)
        self.trend_: dict[str, tuple[str, float, float, float]] = {}  # family -> (axis, slope, intercept, last step)
        if not self.signal_:
            return self
        base = [o.item for o in calibration]
        cells, steps, accuracy = base_curves(tuple(model.history), base)
        emergence = dict(zip(cells, emergence_steps(steps, accuracy)))
        for family, by_cell in self.geometry_.cells.items():
            for axis in sorted({k for means in by_cell.values() for k in means}):
                xs = [(means[axis], emergence[f"{family}/{cell}"]) for cell, means in by_cell.items() if axis in means]
                if len({x for x, _ in xs}) < 2:
                    continue
                slope, intercept = np.polyfit([x for x, _ in xs], [e for _, e in xs], 1)
                if slope > 0 and (family not in self.trend_ or slope > self.trend_[family][1]):
                    self.trend_[family] = (axis, float(slope), float(intercept), float(steps[-1]))
        return self

    def cell_signals(self, model, history, base, cells, steps, accuracy):
        return np.minimum(emergence_steps(steps, accuracy) / steps[-1], 1.0)

    def predict(self, model, items):
        fallback = super().predict(model, items)
        out = []
        for item, score in zip(items, fallback):
            trend = self.trend_.get(item.family)
            value = _numeric(item.axes).get(trend[0]) if trend else None
            if value is None:
                out.append(score)
                continue
            _, slope, intercept, last = trend
            predicted = slope * value + intercept
            out.append(float(1.0 / (1.0 + np.exp(-4.0 * (predicted - last) / last))))
        return np.array(out)


class RepresentationDriftPredictor(_CellSignal):
    """Hypothesis: where the base region's representations were still moving between the last
    checkpoints, the skill had not settled, and what has not settled does not extend (the
    lazy-to-rich transition of Kumar et al. 2024 and the slow late phase of grokking). Signal per
    base cell: mean cosine distance of its items' last-layer states between the last two
    checkpoints, relative to the most-moving cell; raised with distance beyond the base region.
    Blind: it reads base items' traces only."""

    name = "representation_drift"
    reads = frozenset({"prompt", "history", "hidden"})
    version = "2"
    track = "blind"  # it reads the base items' hidden states only

    def cell_signals(self, model, history, base, cells, steps, accuracy):
        if not history[-2].traced:
            raise NotApplicable(f"the last checkpoint before the final model ({history[-2].name}) was not traced "
                                "in this run (--history-traces 0)")
        items = history[-2].evaluated(base)  # the base items traced there
        before = np.asarray(history[-2].trace(items).hidden[:, -1, :], dtype=np.float64)
        after = np.asarray(history[-1].trace(items).hidden[:, -1, :], dtype=np.float64)
        norms = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
        drift = 1.0 - np.einsum("ij,ij->i", before, after) / np.maximum(norms, 1e-12)
        labels = np.array([f"{item.family}/{item.cell}" for item in items])
        per_cell = np.array([drift[labels == cell].mean() if (labels == cell).any() else 0.0 for cell in cells])
        return per_cell / max(per_cell.max(), 1e-12) * 0.9


class PhaseChangePredictor(_CellSignal):
    """Hypothesis: a base cell learned in one sharp jump formed a circuit (Olsson et al. 2022 on
    induction heads; Nanda et al. 2023), and a circuit extends beyond the cases it was trained on;
    one learned gradually was fitted case by case and does not. Signal per base cell: 1 - the
    largest single jump in accuracy between checkpoints as a share of its whole rise (1 where it
    never rose); raised with distance beyond the base region."""

    name = "phase_change"
    reads = frozenset({"prompt", "history"})
    version = "1"

    def cell_signals(self, model, history, base, cells, steps, accuracy):
        curves = np.c_[np.zeros(len(cells)), accuracy]
        rise = curves[:, -1] - curves[:, 0]
        jump = np.diff(curves, axis=1).max(axis=1)
        return np.where(rise > 0.05, 1.0 - jump / np.maximum(rise, 1e-12), 1.0) * 0.9


class CheckpointAgreementPredictor(Predictor):
    """Hypothesis: where the late checkpoints disagree about a variant's next token, the model's
    answer there is unstable and likely wrong: disagreement between models estimates their test
    error (Jiang et al. 2022, "Assessing generalization of SGD via disagreement"). Score: the share
    of the later half of the checkpoints whose top next token differs from the final model's, with
    the final model's 1 - top probability breaking ties (a tenth of the weight). Trace track: it
    reads the variants' traces at the late checkpoints the run traced (`--history-traces`: the
    latest one by default, so the share is 0 or 1 and the probability ranks within)."""

    name = "checkpoint_agreement"
    reads = frozenset({"history", "logits"})
    version = "2"

    def fit(self, model, calibration):
        history = tuple(getattr(model, "history", ()))
        if len(history) < 2:
            raise NotApplicable(NO_HISTORY)
        if not any(c.traced for c in history[:-1]):
            raise NotApplicable("no checkpoint before the final model was traced in this run (--history-traces 0)")
        return self

    def predict(self, model, items):
        history = tuple(getattr(model, "history", ()))
        if len(history) < 2:
            return np.full(len(items), 0.5)
        late = history[len(history) // 2:]
        final = history[-1].trace(items)
        top = np.asarray(final.top_ids[:, 0])
        others = [np.asarray(c.trace(items).top_ids[:, 0]) for c in late[:-1] if c.traced] or [top]
        disagree = np.mean([t != top for t in others], axis=0)
        return 0.9 * disagree + 0.1 * (1.0 - np.asarray(final.top_probs[:, 0], dtype=np.float64))
