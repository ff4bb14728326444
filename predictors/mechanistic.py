"""Mechanistic predictors: each measures a circuit on the base region through `model.mechanistic`
(the runner's hooks and interventions, base items only), extrapolates what it measured to the
variants, and states its claim: which cells it predicts brittle and which robust, with the evidence.
They read no variant's forward pass: the blind track.

Every measurement here is a small probe or an attention read on at most `per_cell` base items per
cell (the first ones: deterministic), so their cost is a few forward passes per base cell.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .architecture import DEPTH_AXES
from .base import NotApplicable, Observation, Predictor


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def _base_rates(calibration: Sequence[Observation]) -> dict[str, float]:
    """Each family's base failure rate: the score of an item whose family has no measurement (a
    constant within the family, so it ranks nothing there)."""
    rates: dict[str, list[bool]] = {}
    for o in calibration:
        rates.setdefault(o.item.family, []).append(not o.correct)
    return {f: float(np.clip(np.mean(v), 0.01, 0.99)) for f, v in rates.items()}


def _base_by_family(observations: Sequence[Observation], per_cell: int, keep=lambda o: True
                    ) -> dict[str, list[Observation]]:
    """The first `per_cell` observations of each base cell that `keep` accepts, by family."""
    out: dict[str, list[Observation]] = {}
    for o in _first_per_cell(observations, per_cell):
        if keep(o):
            out.setdefault(o.item.family, []).append(o)
    return out


def _first_per_cell(observations: Sequence[Observation], per_cell: int) -> list[Observation]:
    kept, seen = [], {}
    for o in observations:
        key = (o.item.family, o.item.cell)
        if seen.get(key, 0) < per_cell:
            seen[key] = seen.get(key, 0) + 1
            kept.append(o)
    return kept


def _probe_rows(y: np.ndarray) -> np.ndarray | None:
    """The rows a probe of `y` can cross-validate on (classes of 3 items or more), or None where
    fewer than two such classes are left."""
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2:
        return None
    keep = np.isin(y, np.unique(y)[counts >= 3])  # classes too rare to cross-validate are left out
    return keep if len(np.unique(y[keep])) >= 2 else None


def _probe_predictions(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """Cross-validated predictions of a standardized logistic probe of `y` from `x` (None where `y`
    has one class or too few items per class to cross-validate)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    keep = _probe_rows(y)
    if keep is None:
        return None
    out = np.full(len(y), None, dtype=object)
    y = y.astype(str)  # one label type for scikit-learn, whatever the caller's
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    out[keep] = cross_val_predict(probe, x[keep], y[keep], cv=folds)
    return out


class HopResolution(Predictor):
    """Hypothesis ("Hopping Too Late", Biran et al. 2024): a model resolves each composition step
    (a hop, a function, a carry, an operand) at a later layer than the one before, so a chain needs
    layers in proportion to its length, and a chain whose last step would resolve past the final
    layer fails. Measured on base items: at which layer a linear probe of the last position's
    residual stream first decodes the answer's first token, for each composition depth the base
    region holds; the layers per step are the slope across depths (with one depth, that depth's
    layer divided by it). Score: sigmoid of the layers a variant's depth would need beyond the
    model's. Replaces `depth_budget`'s assumed one step per layer with a measured rate."""

    name = "hop_resolution"
    reads = frozenset({"prompt", "architecture", "mechanistic"})
    track = "blind"
    version = "1"

    def __init__(self, per_cell: int = 60, level: float = 0.5):
        self.per_cell = per_cell
        self.level = level

    def fit(self, model, calibration):
        self.rates_ = _base_rates(calibration)
        n_layers = int(model.card.n_layers)
        self.n_layers_ = n_layers
        self.families_: dict[str, dict[str, Any]] = {}
        for family, group in _base_by_family(calibration, self.per_cell).items():
            axis = next((a for a in DEPTH_AXES if all(isinstance(o.item.axes.get(a), int)
                                                      and not isinstance(o.item.axes.get(a), bool) for o in group)), None)
            if axis is None:
                continue
            fitted = self._measure(model, group, axis, n_layers)
            if fitted is not None:
                self.families_[family] = fitted
                self.note(f"{family}: answer decodable from layer " + ", ".join(
                    f"{fitted['axis']}={k}: {v:g}" for k, v in fitted["layers"].items())
                    + f"; {fitted['slope']:.2f} layers per step")
        if not self.families_:
            raise NotApplicable("no family with a composition-depth axis whose answer a probe decodes on base items")
        return self

    def _measure(self, model, group: list[Observation], axis: str, n_layers: int) -> dict[str, Any] | None:
        answers = np.array([(model.tokenize([o.item.target])[0] or [""])[0] for o in group], dtype=object)
        if _probe_rows(answers) is None:
            return None  # no probe to fit on these answers: nothing to read
        reads = model.mechanistic.read([o.item for o in group], ["resid_post"], list(range(n_layers)), positions=[-1])
        depth = np.array([o.item.axes[axis] for o in group])
        layer_of: dict[int, float] = {}
        curves = {}
        for layer in range(n_layers):
            x = np.stack([r[f"resid_post.{layer}"][-1] for r in reads]).astype(np.float64)
            guessed = _probe_predictions(x, answers)
            if guessed is None:
                return None
            for k in np.unique(depth):
                at = (depth == k) & np.array([g is not None for g in guessed])
                curves.setdefault(int(k), []).append(float(np.mean(guessed[at] == answers[at])) if at.any() else 0.0)
        chance = 1.0 / max(2, len(set(answers)))
        for k, curve in curves.items():
            best = max(curve)
            if best <= chance:
                continue
            bar = chance + self.level * (best - chance)
            layer_of[k] = float(next(i for i, a in enumerate(curve) if a >= bar) + 1)  # blocks run, 1-based
        if not layer_of:
            return None
        ks = np.array(sorted(layer_of), dtype=float)
        ls = np.array([layer_of[int(k)] for k in ks])
        if len(ks) >= 2:
            slope, intercept = np.polyfit(ks, ls, 1)
            slope = max(float(slope), 0.0)
            intercept = float(np.mean(ls - slope * ks))
        else:
            slope, intercept = float(ls[0] / max(ks[0], 1.0)), 0.0
        return {"axis": axis, "slope": slope, "intercept": intercept, "layers": {int(k): layer_of[int(k)] for k in ks},
                "curves": {k: [round(a, 3) for a in c] for k, c in curves.items()}}

    def _need(self, family: str, item) -> float | None:
        fit = self.families_.get(family)
        if fit is None or not isinstance(item.axes.get(fit["axis"]), int):
            return None
        return fit["intercept"] + fit["slope"] * item.axes[fit["axis"]]

    def predict(self, model, items):
        scale = max(0.5, 0.15 * self.n_layers_)
        needs = [self._need(i.family, i) for i in items]
        if all(n is None for n in needs):
            raise NotApplicable("none of these items' families has a measured layers-per-step rate")
        scores = np.array([self.rates_.get(i.family, 0.5) if n is None else float(_sigmoid((n - self.n_layers_) / scale))
                           for i, n in zip(items, needs)])
        for family, cells in _family_cells(items).items():
            fit = self.families_.get(family)
            if fit is None:
                continue
            deepest = max(fit["layers"])  # claims speak of depths past the base region's, where it extrapolates
            need = {cell: self._need(family, members[0]) for cell, members in cells.items()
                    if all(isinstance(i.axes.get(fit["axis"]), int) and i.axes[fit["axis"]] > deepest for i in members)}
            brittle = [c for c, v in need.items() if v is not None and v > self.n_layers_ + 0.5]
            robust = [c for c, v in need.items() if v is not None and v <= self.n_layers_ - 0.5]
            seen = ", ".join(f"{fit['axis']}={k}: layer {v:g}" for k, v in fit["layers"].items())
            _claim(self, "hop resolution",
                   f"{family}'s answer resolves {fit['slope']:.2f} layers later per {fit['axis']} step (base: {seen}); "
                   f"a cell needing more than the model's {self.n_layers_} layers fails",
                   brittle, robust, {"layers_per_step": round(fit["slope"], 3),
                                     "intercept": round(fit["intercept"], 3), "n_layers": self.n_layers_,
                                     **{f"needed_layers[{c}]": round(v, 2) for c, v in need.items() if v is not None}})
        return scores


def _family_cells(items: Sequence[Any]) -> dict[str, dict[str, list[Any]]]:
    """The sealed items by family, then by "family/cell"."""
    out: dict[str, dict[str, list[Any]]] = {}
    for item in items:
        out.setdefault(item.family, {}).setdefault(f"{item.family}/{item.cell}", []).append(item)
    return out


def _claim(predictor: Predictor, mechanism: str, statement: str, brittle: Sequence[str], robust: Sequence[str],
           evidence: dict[str, Any]) -> None:
    """A claim where it names a cell (`Predictor.claim`, sealed with the predictions)."""
    if brittle or robust:
        predictor.claim(mechanism, statement, brittle=tuple(brittle), robust=tuple(robust), evidence=evidence)


def _token_spans(model, prompt: str, positions: int) -> tuple[list[str], int]:
    """The prompt's tokens (as text) and the offset of the first in a read of `positions` rows
    (the special tokens the model adds in front, such as BOS)."""
    pieces = model.tokenize([prompt])[0]
    return pieces, positions - len(pieces)


def _answer_position(pieces: list[str], offset: int, prompt: str, answer: str) -> int | None:
    """The row (in a read with `offset` tokens in front) of the token where the answer's text last
    occurs in the prompt before its final token: where a lookup would find the value."""
    text = answer.strip()
    at = prompt.rfind(text) if text else -1
    covered = 0
    for k, piece in enumerate(pieces[:-1]):
        covered += len(piece)
        if at >= 0 and covered > at:
            return offset + k
    return None


#: Axes that count entries a lookup must search among, in the built-in families.
SIZE_AXES = ("pairs", "facts", "distractors", "words")


class LookupHeads(Predictor):
    """Hypothesis (induction and lookup heads, Olsson et al. 2022): in-context retrieval runs through
    a few heads whose attention from the query finds the queried entry and copies its value; as
    entries grow their attention to the value spreads over the others, and once it falls below what
    the base items that failed had, the lookup fails. Measured on base items: the two heads that
    attend most from the last position to the value's token (ablating them, the top next token
    changes on a share of base items: their role confirmed), and how their attention to the value
    falls with the prompt's length (a power law fitted across the base items). Score: sigmoid of
    the extrapolated attention's shortfall under that critical level."""

    name = "lookup_heads"
    reads = frozenset({"prompt", "architecture", "mechanistic", "logits"})  # logits: base items' top token
    track = "blind"
    version = "2"

    def __init__(self, per_cell: int = 12, heads: int = 2):
        self.per_cell = per_cell
        self.heads = heads

    def fit(self, model, calibration):
        self.rates_ = _base_rates(calibration)
        self.families_: dict[str, dict[str, Any]] = {}
        sized = _base_by_family(calibration, self.per_cell, lambda o: any(a in o.item.axes for a in SIZE_AXES))
        for family, group in sized.items():
            fitted = self._measure(model, group)
            if fitted is not None:
                self.families_[family] = fitted
                self.note(f"{family}: heads {fitted['heads']} attend {fitted['base_share']:.2f} to the value; "
                          f"length exponent {fitted['slope']:.2f}; ablation changes the top token on "
                          f"{fitted['ablation_changes_top']:.0%}")
        if not self.families_:
            raise NotApplicable("no family whose base prompts hold their answer's token to look up "
                                f"(size axes: {', '.join(SIZE_AXES)})")
        return self

    def _measure(self, model, group: list[Observation]) -> dict[str, Any] | None:
        n_layers = int(model.card.n_layers)
        reads = model.mechanistic.read([o.item for o in group], ["pattern"], list(range(n_layers)), positions=[-1])
        rows, lengths, failed, kept = [], [], [], []
        for o, read in zip(group, reads):
            positions = read["pattern.0"].shape[-1]
            pieces, offset = _token_spans(model, o.item.prompt, positions)
            at = _answer_position(pieces, offset, o.item.prompt, o.item.target)
            if at is None:
                continue
            rows.append(np.stack([read[f"pattern.{x}"][:, -1, at] for x in range(n_layers)]))  # (layer, head)
            lengths.append(len(pieces))
            failed.append(not o.correct)
            kept.append(o.item)
        if len(rows) < 8:
            return None
        attention = np.stack(rows)  # (item, layer, head)
        mean = attention.mean(0)
        order = np.argsort(-mean, axis=None, kind="stable")[:self.heads]
        heads = [tuple(int(v) for v in np.unravel_index(k, mean.shape)) for k in order]
        share = np.clip(np.max([attention[:, x, h] for x, h in heads], axis=0), 1e-4, 1.0)
        log_len, log_share = np.log(np.array(lengths, dtype=float)), np.log(share)
        if np.ptp(log_len) > 0:
            slope, intercept = np.polyfit(log_len, log_share, 1)
        else:
            slope, intercept = -1.0, float(np.mean(log_share) + np.mean(log_len))  # no spread: 1/length assumed
        slope = min(float(slope), 0.0)
        intercept = float(np.mean(log_share - slope * log_len))
        failed = np.array(failed)
        if failed.any() and not failed.all():
            critical = float((log_share[failed].mean() + log_share[~failed].mean()) / 2)
        else:
            critical = float(log_share.min() + np.log(0.5))  # half the least attention a solved base item had
        probe = kept[:6]
        before = model.trace(probe).top_ids[:, 0]  # the unchanged top next token: the trace has it already
        after = model.mechanistic.ablate(probe, {x: [h for y, h in heads if y == x] for x, _ in heads}, how="mean")
        changed = float(np.mean([np.argmax(a) != b for a, b in zip(after, before)]))
        spread = float(np.std(log_share - (intercept + slope * log_len))) or 0.5
        return {"longest": max(lengths), "heads": heads, "slope": slope, "intercept": intercept, "critical": critical,
                "spread": max(spread, 0.1), "ablation_changes_top": changed, "base_share": float(share.mean())}

    def predict(self, model, items):
        lengths = np.array([len(p) for p in model.tokenize([i.prompt for i in items])], dtype=float)
        scores = np.array([self.rates_.get(i.family, 0.5) for i in items])
        if not any(i.family in self.families_ for i in items):
            raise NotApplicable("none of these items' families has measured lookup heads")
        for k, item in enumerate(items):
            fit = self.families_.get(item.family)
            if fit is not None:
                expected = fit["intercept"] + fit["slope"] * np.log(lengths[k])
                scores[k] = float(_sigmoid((fit["critical"] - expected) / fit["spread"]))
        index = {i.id: k for k, i in enumerate(items)}
        for family, cells in _family_cells(items).items():
            fit = self.families_.get(family)
            if fit is None:
                continue
            mean_score = {c: float(np.mean([scores[index[i.id]] for i in m])) for c, m in cells.items()
                          if min(lengths[index[i.id]] for i in m) > fit["longest"]}  # past the base lengths
            heads = ", ".join(f"L{x}.H{h}" for x, h in fit["heads"])
            _claim(self, "lookup heads",
                   f"{family}'s value is found by heads {heads} (mean attention {fit['base_share']:.2f} on base "
                   f"items; ablating them changes the top token on {fit['ablation_changes_top']:.0%}), whose "
                   f"attention falls as length^{fit['slope']:.2f}; below the critical share the lookup fails",
                   [c for c, v in mean_score.items() if v >= 0.75], [c for c, v in mean_score.items() if v <= 0.25],
                   {"heads": heads, "length_exponent": round(fit["slope"], 3),
                    "critical_share": round(float(np.exp(fit["critical"])), 4),
                    "ablation_changes_top": round(fit["ablation_changes_top"], 3)})
        return scores


#: The scores of a prompt longer than the base's but within the range, and past it; the most a
#: ramp in how far past the base it reaches adds within either step.
INSIDE_RANGE, PAST_RANGE, RAMP = 0.3, 0.9, 0.05

#: How far past the positions its circuits were seen to use a positional scheme carries them.
REACH = {"learned": 1.0, "none": 1.0, "rotary": 1.25, "alibi": 2.0, "unknown": 1.25}


class PositionalRange(Predictor):
    """Hypothesis (Press et al. 2022; Kazemnejad et al. 2023): a circuit extends only over the
    positions and query-key distances it was trained on, more or less far past them by positional
    scheme (learned absolute positions not at all, rotary a little, ALiBi further); a variant whose
    prompt reaches past that range fails, one inside it does not fail for length. Measured on base
    items: the longest base prompt per family (positions used) and the farthest distance back from
    the last position (where the answer is read out) to which any head of the upper half of the
    layers gives at least `tau` attention, the first token left out: a head parks its attention
    there (the attention sink, Xiao et al. 2023), which says nothing of distance (distances used). Score: a step: the family's base failure rate up to the longest base prompt, 0.3 past it
    but within the range, 0.9 past the range, 1 past the model's context; within a step past the
    base, a ramp of less than 0.05 in how far past the longest base prompt the item reaches (the
    farther past the positions used, the worse; it never crosses a step)."""

    name = "positional_range"
    reads = frozenset({"prompt", "architecture", "mechanistic"})
    track = "blind"
    version = "2"

    def __init__(self, per_cell: int = 4, tau: float = 0.1):
        self.per_cell = per_cell
        self.tau = tau

    def fit(self, model, calibration):
        self.rates_ = _base_rates(calibration)
        card = model.card
        n_layers = int(card.n_layers)
        self.scheme_ = str(getattr(card, "positional_encoding", "unknown") or "unknown")
        self.context_ = getattr(card, "context_length", None)
        self.families_: dict[str, dict[str, float]] = {}
        upper = list(range(n_layers // 2, n_layers))
        lengths: dict[str, int] = {}  # the longest base prompt of each family, in tokens
        for o, pieces in zip(calibration, model.tokenize([o.item.prompt for o in calibration])):
            lengths[o.item.family] = max(lengths.get(o.item.family, 0), len(pieces))
        for family, group in _base_by_family(calibration, self.per_cell).items():
            longest = lengths[family]
            # the last position's attention (where the answer is read out), every layer: the read
            # lookup_heads makes too, so a run makes it once
            reads = model.mechanistic.read([o.item for o in group], ["pattern"], list(range(n_layers)), positions=[-1])
            distance = 0
            for read in reads:
                for layer in upper:
                    pattern = read[f"pattern.{layer}"][:, -1, 1:]  # (head, key): the first token left out
                    far = np.where(pattern >= self.tau, pattern.shape[-1] - 1 - np.arange(pattern.shape[-1]), 0)
                    distance = max(distance, int(far.max()) if far.size else 0)
            reach = REACH.get(self.scheme_, REACH["unknown"])
            self.families_[family] = {"longest": float(longest), "distance": float(distance),
                                      "range": reach * max(float(longest), float(distance))}
            self.note(f"{family}: positions used {longest}, distance used {distance}, range "
                      f"{self.families_[family]['range']:.0f} ({self.scheme_})")
        return self

    def predict(self, model, items):
        lengths = np.array([len(p) for p in model.tokenize([i.prompt for i in items])], dtype=float)
        scores = np.array([self.rates_.get(i.family, 0.5) for i in items])
        for k, item in enumerate(items):
            fit = self.families_.get(item.family)
            if fit is None or lengths[k] <= fit["longest"]:
                continue  # inside the positions used: not a length failure (the base rate)
            if self.context_ and lengths[k] > self.context_:
                scores[k] = 1.0
                continue
            past = (lengths[k] - fit["longest"]) / lengths[k]  # in [0, 1): how far past the positions used
            scores[k] = (INSIDE_RANGE if lengths[k] <= fit["range"] else PAST_RANGE) + RAMP * past
        if not any(i.family in self.families_ for i in items):
            raise NotApplicable("no family of these items has base items to measure the positions used")
        index = {i.id: k for k, i in enumerate(items)}
        for family, cells in _family_cells(items).items():
            fit = self.families_.get(family)
            if fit is None:
                continue
            shortest = {c: float(min(lengths[index[i.id]] for i in m)) for c, m in cells.items()}
            longest = {c: float(max(lengths[index[i.id]] for i in m)) for c, m in cells.items()}
            _claim(self, "positional range",
                   f"{family}'s base circuits use positions up to {fit['longest']:g} and query-key distances up to "
                   f"{fit['distance']:g}; with {self.scheme_} positions they carry to {fit['range']:.0f} tokens: "
                   "cells entirely past that fail; cells longer than the base but within it do not",
                   [c for c, v in shortest.items() if v > fit["range"] * 1.2],
                   [c for c, v in longest.items() if shortest[c] > fit["longest"] and v < fit["range"] * 0.8],
                   {"positions_used": fit["longest"], "distance_used": fit["distance"], "range": round(fit["range"], 1),
                    "scheme": self.scheme_})
        return scores


class CarriedState(Predictor):
    """Hypothesis (e.g. Quirke & Barez 2024 on addition; Hahn 2020 on parity): a chained computation
    holds its intermediate quantities (carry bits, a running parity) in the residual stream, and a
    chain longer than the state the model represents fails. Measured on base items with a probe per
    layer: for addition, which carry bits are linearly decodable at the `=` (the answer's first digit
    needs them all); for parity, at each bit's position, whether the running parity is. The chain
    the model holds is the longest run of decodable quantities (balanced accuracy at least
    `level`) at its best layer. Score: sigmoid of the chain an item needs (its carry chain, or its
    length) beyond that."""

    name = "carried_state"
    reads = frozenset({"prompt", "architecture", "mechanistic"})
    track = "blind"
    version = "1"

    def __init__(self, per_cell: int = 80, level: float = 0.75):
        self.per_cell = per_cell
        self.level = level

    def fit(self, model, calibration):
        self.rates_ = _base_rates(calibration)
        self.families_: dict[str, dict[str, Any]] = {}
        n_layers = int(model.card.n_layers)
        group = _first_per_cell(calibration, self.per_cell)
        adds = [o for o in group if "carries" in o.item.meta]
        bits = [o for o in group if "prefix_parity" in o.item.meta]
        if adds:
            reads = model.mechanistic.read([o.item for o in adds], ["resid_post"], list(range(n_layers)), positions=[-1])
            width = max(len(o.item.meta["carries"]) for o in adds)
            states = [np.stack([r[f"resid_post.{x}"][-1] for r in reads]).astype(np.float64) for x in range(n_layers)]
            held = self._held([(states, np.array([(list(o.item.meta["carries"]) + [0] * width)[j] for o in adds]))
                               for j in range(width)])
            self.families_[adds[0].item.family] = {"axis": "carry", "held": held, "kind": "carry bits at '='",
                                                   "base_max": max(o.item.axes.get("carry", 0) for o in adds)}
        if bits:
            reads = model.mechanistic.read([o.item for o in bits], ["resid_post"], list(range(n_layers)))
            width = max(len(o.item.meta["prefix_parity"]) for o in bits)
            quantities = []  # per bit j: (the state at bit j's position, per layer; the running parity there)
            for j in range(width):
                rows = [(r, self._bit_row(model, o.item, r, j), o.item.meta["prefix_parity"][j])
                        for r, o in zip(reads, bits) if len(o.item.meta["prefix_parity"]) > j]
                quantities.append(([np.stack([r[f"resid_post.{x}"][row] for r, row, _ in rows]).astype(np.float64)
                                    for x in range(n_layers)], np.array([y for _, _, y in rows])))
            held = self._held(quantities)
            self.families_[bits[0].item.family] = {"axis": "length", "held": held, "kind": "running parity per bit",
                                                   "base_max": max(o.item.axes.get("length", 0) for o in bits)}
        for family, fit in self.families_.items():
            self.note(f"{family}: {fit['kind']} decodable for a chain of {fit['held']}")
        if not self.families_:
            raise NotApplicable("no family records the intermediate quantities of its chain (carries, prefix parity)")
        return self

    def _held(self, quantities: list[tuple[list[np.ndarray], np.ndarray]]) -> int:
        """How many of the chain's quantities, in order, a probe decodes (at its best layer) before
        the first it does not: each given as (the states per layer, the quantity's values)."""
        held = 0
        for j, (states, y) in enumerate(quantities):
            best = max(_balanced(x, y) for x in states)
            if best < self.level:
                break
            held = j + 1
        return held

    @staticmethod
    def _bit_row(model, item, read, j: int) -> int:
        """The row of bit `j` of a parity prompt (`parity:BITS=`) in a read of that item."""
        positions = next(iter(read.values())).shape[0]
        pieces, offset = _token_spans(model, item.prompt, positions)
        start = item.prompt.index(":") + 1 + j
        covered = 0
        for k, piece in enumerate(pieces):
            covered += len(piece)
            if covered > start:
                return offset + k
        return positions - 1

    def predict(self, model, items):
        if not any(i.family in self.families_ for i in items):
            raise NotApplicable("none of these items' families has a measured carried state")
        scores = np.array([self.rates_.get(i.family, 0.5) for i in items])
        for k, item in enumerate(items):
            fit = self.families_.get(item.family)
            need = item.axes.get(fit["axis"]) if fit else None
            if isinstance(need, int):
                scores[k] = float(_sigmoid((need - fit["held"] - 0.5) / 0.5))
        for family, cells in _family_cells(items).items():
            fit = self.families_.get(family)
            if fit is None:
                continue
            need = {c: [i.axes.get(fit["axis"]) for i in m] for c, m in cells.items()}
            need = {c: v for c, v in need.items() if all(isinstance(x, int) for x in v) and min(v) > fit["base_max"]}
            _claim(self, "carried state",
                   f"{family}: {fit['kind']} decodable for a chain of {fit['held']}; a longer chain fails",
                   [c for c, v in need.items() if min(v) > fit["held"]], [c for c, v in need.items() if max(v) <= fit["held"]],
                   {"chain_held": fit["held"], "axis": fit["axis"], "quantity": fit["kind"]})
        return scores


def _balanced(x: np.ndarray, y: np.ndarray) -> float:
    """Cross-validated balanced accuracy of a logistic probe of binary `y` (0.5 where one class)."""
    guessed = _probe_predictions(x, y.astype(int))
    if guessed is None:
        return 0.5 if len(np.unique(y)) < 2 else 0.0
    ok = np.array([g is not None for g in guessed])
    y, g = y[ok].astype(str), guessed[ok].astype(str)
    return float(np.mean([np.mean(g[y == c] == c) for c in np.unique(y)]))
