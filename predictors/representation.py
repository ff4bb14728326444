"""Representation-based predictors: the model's internal states on the prompt.

Those that pick a layer do it by cross-validation on base items only: where the
base region has enough failures (`min_class` of each outcome), the layer whose
held-out scores best separate base failures from successes; otherwise the layer
where held-out base items sit closest to the rest (the most stable geometry),
which is noted in the results.
"""
from __future__ import annotations

import numpy as np

from .base import Predictor
from .scaling import BaseRelative

MIN_CLASS = 5
#: What the representation predictors read of a trace's hidden states, bounded whatever the model:
#: at most MAX_LAYERS candidate layers (evenly spaced, the last always among them) and, where the
#: model is wider than MAX_DIM, a fixed Gaussian projection to MAX_DIM dimensions (distances kept up
#: to a small factor, Johnson-Lindenstrauss), so fitting costs the same on a 7B model as on a small one.
MAX_LAYERS = 6
MAX_DIM = 256


def candidate_layers(n_states: int, max_layers: int = MAX_LAYERS) -> list[int]:
    """Layers 1..n_states-1 (after each block), at most `max_layers` of them, the last included."""
    layers = list(range(1, n_states))
    if len(layers) <= max_layers:
        return layers
    picks = np.linspace(0, len(layers) - 1, max_layers).round().astype(int)
    return [layers[i] for i in sorted(set(picks.tolist()))]


def bounded(states: np.ndarray, max_dim: int = MAX_DIM) -> np.ndarray:
    """`states` (..., d_model) as float64, projected to `max_dim` dimensions where wider (a seeded
    projection: the same for every call on one model width)."""
    states = np.asarray(states, dtype=np.float64)
    d = states.shape[-1]
    if d <= max_dim:
        return states
    projection = np.random.default_rng(d).standard_normal((d, max_dim)) / np.sqrt(max_dim)
    return states @ projection


def _labels(calibration) -> np.ndarray:
    return np.array([not o.correct for o in calibration], dtype=bool)


def _enough(failed: np.ndarray, min_class: int) -> bool:
    return int(failed.sum()) >= min_class and int((~failed).sum()) >= min_class


def _folds(n: int, k: int = 5):
    from sklearn.model_selection import KFold

    return list(KFold(n_splits=min(k, n), shuffle=True, random_state=0).split(np.arange(n)))


class _DistanceModel:
    """A distance of a state from the base states, fit per layer."""

    def __init__(self, kind: str, k: int, max_reference: int | None = None):
        self.kind, self.k, self.max_reference = kind, k, max_reference

    def fit(self, states: np.ndarray) -> "_DistanceModel":
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(states)
        z = self.scaler.transform(states)
        if self.kind == "mahalanobis":
            from sklearn.covariance import LedoitWolf

            self.cov = LedoitWolf().fit(z)
        else:
            from sklearn.neighbors import NearestNeighbors

            if self.max_reference is not None and len(z) > self.max_reference:
                # A fixed random subset of the base states as the reference (Sun et al. 2022 sample
                # the training set too): the cost stays linear in the items scored.
                z = z[np.sort(np.random.default_rng(0).choice(len(z), self.max_reference, replace=False))]
            # Brute force: exact, and in d_model dimensions far faster than a tree.
            self.nn = NearestNeighbors(n_neighbors=min(self.k, len(z)), algorithm="brute").fit(z)
        return self

    def distance(self, states: np.ndarray) -> np.ndarray:
        z = self.scaler.transform(states)
        if self.kind == "mahalanobis":
            return np.sqrt(np.maximum(self.cov.mahalanobis(z), 0.0))
        return self.nn.kneighbors(z)[0].mean(axis=1)


def _held_out(states: np.ndarray, fit_score) -> np.ndarray:
    """Scores of each base item from a model fit on the other folds."""
    out = np.zeros(len(states))
    for train, test in _folds(len(states)):
        out[test] = fit_score(states[train], states[test])
    return out


class BoundedLayers:
    """A (item, layer, d_model) array read one layer at a time, each layer `bounded` once."""

    def __init__(self, hidden: np.ndarray):
        self.hidden, self.shape, self._layers = hidden, hidden.shape, {}

    def __getitem__(self, key):
        rows, layer = key
        if layer not in self._layers:
            self._layers[layer] = bounded(self.hidden[:, layer])
        return self._layers[layer][rows]


def _choose_layer(hidden: np.ndarray, failed: np.ndarray, fit_score, min_class: int, owner: Predictor) -> tuple[int, np.ndarray]:
    """(layer, held-out base scores at that layer) chosen on base items only."""
    from sklearn.metrics import roc_auc_score

    layers = candidate_layers(hidden.shape[1])  # after each block; the embedding layer is not a representation of the item
    held = {layer: _held_out(hidden[:, layer], fit_score) for layer in layers}
    if _enough(failed, min_class):
        best = max(layers, key=lambda layer: (roc_auc_score(failed, held[layer]), -layer))
    else:
        owner.note(f"fewer than {min_class} base failures: layer chosen by held-out fit, not by separating failures")
        best = min(layers, key=lambda layer: (np.median(held[layer]) / (np.median(np.concatenate(
            [held[m] for m in layers])) + 1e-12), layer))
    return best, held[best]


class _DistancePredictor(Predictor):
    kind = "mahalanobis"

    def __init__(self, layer: int | None = None, min_class: int = MIN_CLASS, k: int = 5):
        self.layer = layer
        self.min_class = min_class
        self.k = k

    def _distance_model(self) -> _DistanceModel:
        return _DistanceModel(self.kind, self.k)

    def fit(self, model, calibration):
        hidden = model.trace([o.item for o in calibration]).hidden  # (item, layer+1, d_model)
        failed = _labels(calibration)

        def fit_score(train, test):
            return self._distance_model().fit(train).distance(test)

        if self.layer is None:
            self.layer_, held = _choose_layer(BoundedLayers(hidden), failed, fit_score, self.min_class, self)
        else:
            self.layer_ = self.layer % hidden.shape[1]
            held = _held_out(bounded(hidden[:, self.layer_]), fit_score)
        self.distance_ = self._distance_model().fit(bounded(hidden[:, self.layer_]))
        self.scale_ = BaseRelative(distances=True).fit(held)
        return self

    def predict(self, model, items):
        states = bounded(model.trace(items).hidden[:, self.layer_])
        return self.scale_.transform(self.distance_.distance(states))


class MahalanobisPredictor(_DistancePredictor):
    """Hypothesis: items whose last-token state lies far from the base states are out of
    the distribution the model learned, and fail (Lee et al. 2018; Kamath et al. 2020
    for selective prediction in NLP). Score: Mahalanobis distance under a Ledoit-Wolf
    covariance of standardized base states, relative to held-out base distances."""

    name = "mahalanobis"
    reads = frozenset({"hidden"})
    version = "2"  # 2: bounded layers and width; distances scaled in log space (no saturation)
    kind = "mahalanobis"


class KNNDistancePredictor(_DistancePredictor):
    """Hypothesis: as `mahalanobis`, without assuming one Gaussian: the mean distance to
    the k nearest base states (Sun et al. 2022, deep nearest neighbours for OOD)."""

    name = "knn_distance"
    reads = frozenset({"hidden"})
    version = "4"  # 4: bounded layers and width, log-space scaling; 3: at most max_reference base states
    kind = "knn"

    def __init__(self, layer: int | None = None, min_class: int = MIN_CLASS, k: int = 5, max_reference: int = 4096):
        super().__init__(layer, min_class, k)
        self.max_reference = max_reference

    def _distance_model(self) -> _DistanceModel:
        return _DistanceModel(self.kind, self.k, self.max_reference)


class ProbePredictor(Predictor):
    """Hypothesis: the model's states already encode whether it will get an item right
    (P(IK), Kadavath et al. 2022). A logistic-regression probe on standardized base
    states predicts observed failure; the layer is chosen by cross-validated AUROC.

    Fallback: with fewer than `min_class` failures or successes in the base region a
    probe cannot be fit; it then scores distance from the base states like
    `mahalanobis` (noted in the results)."""

    name = "probe"
    reads = frozenset({"hidden"})
    version = "2"  # 2: bounded layers and width

    def __init__(self, C: float = 0.1, min_class: int = MIN_CLASS):
        self.C = C
        self.min_class = min_class

    def _probe(self, train, labels):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(train, labels)

    def fit(self, model, calibration):
        hidden = BoundedLayers(model.trace([o.item for o in calibration]).hidden)
        failed = _labels(calibration)
        if not _enough(failed, self.min_class):
            self.note(f"fewer than {self.min_class} base failures or successes: scoring Mahalanobis distance instead")
            self.fallback_ = MahalanobisPredictor(min_class=self.min_class).fit(model, calibration)
            return self
        self.fallback_ = None
        from sklearn.metrics import roc_auc_score

        def cv_auroc(layer):
            held = np.zeros(len(failed))
            for train, test in _folds(len(failed)):
                if len(set(failed[train])) < 2:
                    return 0.5
                held[test] = self._probe(hidden[train, layer], failed[train]).predict_proba(hidden[test, layer])[:, 1]
            return roc_auc_score(failed, held)

        self.layer_ = max(candidate_layers(hidden.shape[1]), key=lambda layer: (cv_auroc(layer), -layer))
        self.probe_ = self._probe(hidden[:, self.layer_], failed)
        return self

    def predict(self, model, items):
        if self.fallback_ is not None:
            return self.fallback_.predict(model, items)
        return self.probe_.predict_proba(bounded(model.trace(items).hidden[:, self.layer_]))[:, 1]


class LogitLensSettlingPredictor(Predictor):
    """Hypothesis: when the answer's first token only becomes the top prediction in the
    last layers, the model resolved it late and had few layers left to compose it
    (Biran et al. 2024, "Hopping Too Late"; nostalgebraist 2020, the logit lens).
    Score: the settling layer (the first layer from which the logit-lens top token
    stays the final one) over the number of layers, relative to the base region; items
    that settle at the same layer are ordered by how little of the final top token's
    probability the layers before gave it (less than one layer's step, so the settling
    layer's order stands)."""

    name = "logit_lens_settling"
    reads = frozenset({"logits"})
    version = "2"

    @staticmethod
    def _settling(trace) -> np.ndarray:
        tops = trace.lens_top_ids  # (item, layer + 1)
        agrees = tops == tops[:, -1:]
        # first layer from which every later layer agrees with the last
        suffix = np.flip(np.cumprod(np.flip(agrees, axis=1), axis=1), axis=1).astype(bool)
        first = suffix.argmax(axis=1)
        steps = tops.shape[1] - 1
        prob = np.asarray(trace.lens_final_prob, dtype=np.float64)  # (item, layer + 1), the last is the output's
        reached = np.minimum(1.0, prob[:, :-1] / np.maximum(prob[:, -1:], 1e-12)).mean(axis=1)
        return (first + 0.999 * (1.0 - reached)) / steps

    def fit(self, model, calibration):
        self.scale_ = BaseRelative().fit(self._settling(model.trace([o.item for o in calibration])))
        return self

    def predict(self, model, items):
        return self.scale_.transform(self._settling(model.trace(items)))


class AttentionShiftPredictor(Predictor):
    """Hypothesis: when the last token attends in a way the base region never showed
    (heads suddenly diffuse or focused), the circuit that solves the base items is not
    engaged (cf. attention-entropy collapse and spread under length shift, Zhai et
    al. 2023). Score: mean |z| of each head's attention entropy against base
    statistics, relative to the base region's own values."""

    name = "attention_shift"
    reads = frozenset({"attention"})
    version = "1"

    def _z(self, entropy):
        return np.abs((entropy - self.mean_) / self.std_).mean(axis=(1, 2))

    def fit(self, model, calibration):
        entropy = model.trace([o.item for o in calibration]).attn_entropy.astype(np.float64)  # (item, layer, head)
        self.mean_ = entropy.mean(axis=0)
        self.std_ = entropy.std(axis=0) + 1e-6
        self.scale_ = BaseRelative().fit(self._z(entropy))
        return self

    def predict(self, model, items):
        return self.scale_.transform(self._z(model.trace(items).attn_entropy.astype(np.float64)))
