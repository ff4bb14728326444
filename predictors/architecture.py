"""Architecture-based predictors: the config and tokenizer, no forward pass."""
from __future__ import annotations

import re

import numpy as np

from .base import NotApplicable, Predictor

#: Axes that count sequential composition steps, in the built-in families.
DEPTH_AXES = ("hops", "depth", "carry", "operands", "conjunctions")

#: How strongly positions past the trained range hurt, by positional encoding. Learned
#: absolute embeddings have nothing trained there; rotary extrapolates poorly but
#: degrades gradually; ALiBi was designed to extrapolate (Press et al. 2022).
PE_WEIGHT = {"learned": 4.0, "rotary": 1.5, "alibi": 0.5, "none": 1.0, "unknown": 1.0}


def composition_depth(axes) -> float:
    values = [float(axes[a]) for a in DEPTH_AXES if a in axes and isinstance(axes[a], (int, float))
              and not isinstance(axes[a], bool)]
    return max(values) if values else 0.0


class DepthBudgetPredictor(Predictor):
    """Hypothesis: a transformer composes about one step per layer at best, and only as
    far as its training showed (Sanford et al. 2024; Biran et al. 2024 "Hopping Too
    Late"). Score: 1 - exp(-excess), where excess counts the steps an item needs (its
    hops, functions, carry chain, operands or conjunctions) beyond the base region's
    deepest item and beyond the model's layers, plus a small ramp in depth per layer
    that orders items the excess ties. Not applicable where fewer than half of the items
    have a depth axis: it would give the others one value and rank nothing there."""

    name = "depth_budget"
    reads = frozenset({"architecture", "prompt"})
    version = "2"

    def fit(self, model, calibration):
        depths = [composition_depth(o.item.axes) for o in calibration]
        self.base_depth_ = max(depths) if depths else 0.0
        return self

    def predict(self, model, items):
        layers = model.card.n_layers
        need = np.array([composition_depth(i.axes) for i in items])
        if not len(need) or np.ptp(need) == 0:
            raise NotApplicable(f"every item needs the same composition depth ({need[0] if len(need) else 0:g}; "
                                f"depth axes: {', '.join(DEPTH_AXES)}): nothing to rank")
        counted = sum(any(a in i.axes for a in DEPTH_AXES) for i in items)
        if counted < len(items) / 2:
            raise NotApplicable(f"only {counted} of {len(items)} items count composition steps (depth axes: "
                                f"{', '.join(DEPTH_AXES)}): the rest would all score alike")
        excess = np.maximum(0, need - self.base_depth_) + np.maximum(0, need - layers)
        return 1.0 - np.exp(-(excess + 0.1 * need / layers))


class LengthExtrapolationPredictor(Predictor):
    """Hypothesis: prompts longer (in tokens) than any in the base region fail, and how
    badly depends on the positional encoding: learned absolute positions have no
    trained embedding past the base range, rotary degrades, ALiBi extrapolates (Press
    et al. 2022; Kazemnejad et al. 2023). Score: 1 - exp(-w_PE * relative excess),
    plus a small ramp so lengths inside the base range are ordered too."""

    name = "length_extrapolation"
    reads = frozenset({"architecture", "prompt"})
    version = "1"

    def fit(self, model, calibration):
        lengths = [len(t) for t in model.tokenize([o.item.prompt for o in calibration])]
        self.base_max_ = max(lengths) if lengths else 1
        return self

    def predict(self, model, items):
        weight = PE_WEIGHT.get(model.card.positional_encoding, 1.0)
        lengths = np.array([len(t) for t in model.tokenize([i.prompt for i in items])], dtype=float)
        excess = np.maximum(0.0, lengths - self.base_max_) / self.base_max_
        return 1.0 - np.exp(-(weight * 5 * excess + 0.05 * lengths / self.base_max_))


_NUMBER = re.compile(r"\d+")


class TokenizationPredictor(Predictor):
    """Hypothesis: arithmetic and copying break where the tokenizer cuts numbers into
    pieces the model has not seen composed (Singh & Strouse 2024, tokenization counts).
    Score: the share of the prompt's numbers whose split into tokens (the lengths of
    the pieces) never occurred in the base region, averaged with the share cut into
    unequal pieces (e.g. 123|45). Not applicable to a tokenizer that writes one digit per
    token: there a split says nothing that the number's length does not."""

    name = "tokenization"
    reads = frozenset({"architecture", "prompt"})
    version = "2"

    def _patterns(self, model, prompts):
        """Per prompt, the piece lengths of each number it contains, e.g. [(3, 2), (1,)]."""
        numbers = [_NUMBER.findall(p) for p in prompts]
        pieces = iter(model.tokenize([n for ns in numbers for n in ns]))
        return [[tuple(len(piece) for piece in next(pieces)) for _ in ns] for ns in numbers]

    def fit(self, model, calibration):
        facts = model.card.tokenizer
        if facts.get("digits_per_token", 1.0) <= 1.0:
            pieces = facts.get("number_pieces")
            raise NotApplicable("the tokenizer writes one digit per token"
                                + (f" ({'|'.join(pieces)})" if pieces else "")
                                + ": a number's split follows from its length alone, none is uneven")
        self.seen_ = {p for ps in self._patterns(model, [o.item.prompt for o in calibration]) for p in ps}
        return self

    def predict(self, model, items):
        scores = []
        found = self._patterns(model, [i.prompt for i in items])
        if not any(found):
            raise NotApplicable("no prompt contains a number: nothing to tokenize")
        for patterns in found:
            if not patterns:
                scores.append(0.0)
                continue
            unseen = np.mean([p not in self.seen_ for p in patterns])
            uneven = np.mean([len(set(p)) > 1 for p in patterns])
            scores.append(0.5 * unseen + 0.5 * uneven)
        return np.array(scores, dtype=np.float64)
