"""Test helpers for predictor authors: a fake model with scripted internals, a guard
that records what a predictor reads, and the conformance checks.

    from predictors.testing import check_predictor
    assert check_predictor(MyPredictor) == []

or, one pytest case per check:

    @pytest.mark.parametrize("check", predictor_checks(MyPredictor), ids=lambda c: c.__name__)
    def test_conformance(check): check()
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from tasks import Item, SealedItem, get_family

from .base import READS, TRACKS, NotApplicable, Observation, Predictor, track_of
from .history import Checkpoint

_SITE_READS = {
    "hidden": "hidden",
    "top_ids": "logits", "top_probs": "logits", "entropy": "logits",
    "lens_top_ids": "logits", "lens_final_prob": "logits",
    "attn_entropy": "attention", "attn_prev": "attention", "attn_first": "attention", "attn_induction": "attention",
    "prompt_tokens": "prompt",
}


@dataclass(frozen=True)
class FakeCard:
    model_type: str = "fake"
    n_layers: int = 4
    d_model: int = 16
    n_heads: int = 2
    context_length: int | None = 128
    positional_encoding: str = "learned"
    vocab_size: int = 101
    n_parameters: int = 0
    tokenizer: dict[str, Any] = field(default_factory=lambda: {
        "number_pieces": list("1234567"), "digits_per_token": 1.0, "single_digit_tokens": True,
        "space_merges_into_word": False, "adds_bos": True, "vocab_size": 101})


class FakeMechanistic:
    """`model.mechanistic` with scripted internals, no torch: one token per character plus a first
    token, each array a deterministic function of the item's id. `script(item, key)` may return the
    array for a key ("resid_post.L", "pattern.L", "z.L", or "next_token") to build a case where a
    predictor's hypothesis must hold; None keeps the drawn one."""

    def __init__(self, card: FakeCard | None = None,
                 script: Callable[[Any, str], np.ndarray | None] | None = None):
        self.card = card or FakeCard()
        self.script = script

    def _rng(self, item, key: str) -> np.random.Generator:
        return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{item.id}/{key}".encode()).digest()[:8], "big"))

    def _array(self, item, key: str) -> np.ndarray:
        scripted = self.script(item, key) if self.script else None
        if scripted is not None:
            return np.asarray(scripted)
        card, rng, pos = self.card, self._rng(item, key), len(item.prompt) + 1
        site = key.split(".")[0]
        if site == "resid_post":
            return rng.normal(size=(pos, card.d_model)).astype(np.float32)
        if site == "z":
            return rng.normal(size=(pos, card.n_heads, card.d_model // card.n_heads)).astype(np.float32)
        if site == "pattern":
            weights = np.tril(rng.random((card.n_heads, pos, pos)) + 1e-3)
            return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)
        logits = rng.normal(size=card.vocab_size) * 2
        return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()

    def read(self, items, sites, layers=None, positions=None):
        layers = range(self.card.n_layers) if layers is None else [x % self.card.n_layers for x in layers]

        def at(site, array):  # the rows (of a pattern, the query rows) at `positions`
            if positions is None:
                return array
            return array[:, list(positions)] if site == "pattern" else array[list(positions)]
        return [{f"{s}.{x}": at(s, self._array(item, f"{s}.{x}")) for s in sites for x in layers} for item in items]

    def next_token(self, items):
        return [self._array(item, "next_token") for item in items]

    def ablate(self, items, heads=None, how="zero", mlps=()):
        tag = "/".join([f"{x}.{h}" for x, hs in sorted((heads or {}).items()) for h in hs] + [f"{x}.mlp" for x in mlps])
        return [self._array(item, f"next_token.ablate={tag},{how}") for item in items]

    def patch(self, source, target, layer, positions):
        return self._array(target, f"next_token.patch={source.id},{layer},{list(positions)}")

    def composition(self, kind="k"):
        n, h = self.card.n_layers, self.card.n_heads
        scores = np.random.default_rng(ord(kind)).random((n, h, n, h))
        return scores * np.triu(np.ones((n, n)), 1)[:, None, :, None]


class FakeModel:
    """A model handle with scripted internals, no torch.

    Each item's internals are a deterministic function of its id; `script(item)`
    may return overrides (e.g. `{"hidden": array}`) to build a case where a
    predictor's hypothesis must hold; `mechanistic` answers `model.mechanistic`
    (a `FakeMechanistic` of the card by default)."""

    def __init__(self, card: FakeCard | None = None, script: Callable[[SealedItem], dict] | None = None,
                 history: Sequence[Any] = (), mechanistic: Any = None):
        self.card = card or FakeCard()
        self.script = script
        self.history = tuple(history)
        self.mechanistic = mechanistic if mechanistic is not None else FakeMechanistic(self.card)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        return [list(text) for text in texts]  # one token per character

    def trace(self, items: Sequence[SealedItem | Item]):
        from .trace import Trace

        card = self.card
        rows = []
        for item in items:
            seed = int.from_bytes(hashlib.sha256(item.id.encode()).digest()[:8], "big")
            rng = np.random.default_rng(seed)
            logits = rng.normal(size=card.vocab_size) * 2
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            order = np.argsort(-probs)[:8]
            attn = rng.dirichlet(np.ones(4), size=(card.n_layers, card.n_heads))
            row = {
                "hidden": rng.normal(size=(card.n_layers + 1, card.d_model)).astype(np.float32),
                "top_ids": order, "top_probs": probs[order].astype(np.float32),
                "entropy": np.float32(-(probs * np.log(probs)).sum()),
                "prompt_tokens": len(item.prompt) + 1,
                "lens_top_ids": np.append(rng.integers(0, card.vocab_size, card.n_layers), order[0]),
                "lens_final_prob": np.append(rng.random(card.n_layers), probs[order[0]]).astype(np.float32),
                "attn_entropy": (-(attn * np.log(attn)).sum(-1)).astype(np.float32),
                "attn_prev": attn[..., 0].astype(np.float32), "attn_first": attn[..., 1].astype(np.float32),
                "attn_induction": attn[..., 2].astype(np.float32),
            }
            if self.script:
                row.update(self.script(item))
            rows.append(row)
        names = list(rows[0]) if rows else []
        return Trace(tuple(i.id for i in items), **{n: np.stack([np.asarray(r[n]) for r in rows]) for n in names})


def fake_history(items: Sequence[Item], correct: Callable[[Item, int], bool], steps: Sequence[int],
                 card: FakeCard | None = None,
                 script: Callable[[SealedItem, int], dict] | None = None) -> tuple[Checkpoint, ...]:
    """A scripted training history: at each of `steps`, `correct(item, step)` says whether the model
    answered base item `item` correctly, and `script(item, step)` may override its trace there (as
    FakeModel's `script` does). The last step is the evaluated model, named "final"."""
    out = []
    for k, step in enumerate(steps):
        name = "final" if k == len(steps) - 1 else f"step-{step}"
        there = FakeModel(card, (lambda item, s=step: script(item, s)) if script else None)
        out.append(Checkpoint(name, step, {item.id: bool(correct(item, step)) for item in items}, there.trace))
    return tuple(out)


class _GuardedTrace:
    def __init__(self, trace, reads: set[str]):
        self._trace, self._reads = trace, reads

    def __getattr__(self, name: str):
        if name in _SITE_READS:
            self._reads.add(_SITE_READS[name])
        return getattr(self._trace, name)

    def __len__(self) -> int:
        return len(self._trace)


class GuardedModel:
    """Wraps a model view and records which kinds of internals were read."""

    def __init__(self, model):
        self._model = model
        self.reads: set[str] = set()

    @property
    def card(self):
        self.reads.add("architecture")
        return self._model.card

    def tokenize(self, texts):
        self.reads.add("prompt")
        return self._model.tokenize(texts)

    def trace(self, items):
        return _GuardedTrace(self._model.trace(items), self.reads)

    @property
    def history(self):
        self.reads.add("history")
        return tuple(_WrappedCheckpoint(c, lambda trace: _GuardedTrace(trace, self.reads))
                     for c in getattr(self._model, "history", ()))

    @property
    def mechanistic(self):
        self.reads.add("mechanistic")
        return self._model.mechanistic


class _WrappedCheckpoint:
    """A checkpoint whose traces pass through `wrap` (which may refuse items or record reads)."""

    def __init__(self, checkpoint, wrap: Callable, refuse: Callable = lambda items: None):
        self._checkpoint, self._wrap, self._refuse = checkpoint, wrap, refuse
        self.name, self.step = checkpoint.name, checkpoint.step

    @property
    def traced(self) -> bool:
        return self._checkpoint.traced

    def evaluated(self, items):
        return self._checkpoint.evaluated(items)

    def outcomes(self, items):
        return self._checkpoint.outcomes(items)

    def trace(self, items):
        self._refuse(items)
        return self._wrap(self._checkpoint.trace(items))


class BlindView:
    """A model view as the blind track gives it: `trace` refuses the items in `withheld` (the
    sealed variants), as the worker does for a blind predictor."""

    def __init__(self, model, withheld: Sequence[SealedItem]):
        self._model = model
        self._withheld = {item.id for item in withheld}

    @property
    def card(self):
        return self._model.card

    def tokenize(self, texts):
        return self._model.tokenize(texts)

    def trace(self, items):
        self._refuse(items)
        return self._model.trace(items)

    @property
    def history(self):
        return tuple(_WrappedCheckpoint(c, lambda trace: trace, self._refuse) for c in getattr(self._model, "history", ()))

    @property
    def mechanistic(self):
        return _RefusingMechanistic(self._model.mechanistic, self._withheld)

    def _refuse(self, items):
        asked = [item.id for item in items if item.id in self._withheld]
        if asked:
            raise PermissionError(f"the blind track has no trace of variant items (asked for {asked[0]!r}): "
                                  "declare track = 'trace' to read them")


class _RefusingMechanistic:
    """Mechanistic access that refuses the withheld items, as the run's process does for the blind track."""

    def __init__(self, inner, withheld: set[str]):
        self._inner, self._withheld = inner, withheld

    def __getattr__(self, name: str):
        method = getattr(self._inner, name)

        def guarded(*args, **kwargs):
            for value in list(args) + list(kwargs.values()):
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    if getattr(item, "id", None) in self._withheld:
                        raise PermissionError(f"mechanistic access is for the run's base items only; {item.id!r} "
                                              "is not one")
            return method(*args, **kwargs)
        return guarded


#: The families conformance checks try, in order, until the predictor applies to one.
EXAMPLE_FAMILIES = ("addition", "recall", "multihop", "parity")


def example_data(n: int = 24, seed: int = 0, all_correct: bool = False, family: str = "addition"
                 ) -> tuple[list[Observation], list[SealedItem]]:
    """Calibration observations (base items of `family`, about a third marked failed) and sealed variants."""
    family = get_family(family)
    base = [i for c in family.base_cells for i in family.generate(c.name, n // 3, seed)]
    calibration = [Observation(item, item.target, all_correct or k % 3 != 0) for k, item in enumerate(base)]
    variants = [i.sealed() for c in family.variant_cells for i in family.generate(c.name, max(1, n // 6), seed)]
    return calibration, variants


def example_history(calibration: Sequence[Observation], steps: Sequence[int] = (250, 500, 1000, 2000)):
    """A history for `example_data`'s calibration: each base item learned at a step of its own
    (drawn from its id), so every cell's accuracy rises along training."""
    def learned_at(item) -> float:
        return int.from_bytes(hashlib.sha256(item.id.encode()).digest()[:4], "big") / 2**32 * 1.2 * steps[-1]

    return fake_history([o.item for o in calibration], lambda item, step: learned_at(item) <= step, steps)


def _fitted_attributes(p: Predictor) -> list[str]:
    return [k for k in vars(p) if k.endswith("_") and not k.startswith("_")]


def predictor_checks(cls: type[Predictor], model: Any = None) -> list[Callable[[], None]]:
    """The conformance checks as zero-argument callables that raise AssertionError, on the data of the
    first of EXAMPLE_FAMILIES the predictor applies to (it may say `NotApplicable` to the others)."""
    for name in EXAMPLE_FAMILIES:
        calibration, variants = example_data(family=name)
        there = model or FakeModel(history=example_history(calibration))
        try:
            cls().fit(there, calibration).predict(there, variants)
        except NotApplicable:
            continue
        except Exception:  # a check below reports it
            pass
        break
    model = there
    family = name

    def constructs_with_defaults():
        p = cls()
        assert isinstance(p, Predictor), "not a Predictor subclass"
        assert p.name and isinstance(p.name, str), "no name"
        assert isinstance(p.version, str) and p.version, "no version string"
        assert set(p.reads) <= READS, f"unknown reads {sorted(set(p.reads) - READS)}"
        assert not _fitted_attributes(p), "the constructor sets fitted (trailing _) attributes"

    def clone_round_trips():
        p = cls()
        c = p.clone()
        assert c is not p and type(c) is type(p) and c.get_params() == p.get_params()
        fitted = p.clone().fit(model, calibration)
        assert not _fitted_attributes(fitted.clone()), "clone() copied fitted state"

    def fit_returns_self():
        p = cls()
        assert p.fit(model, calibration) is p

    def output_shape_range_and_finite():
        scores = np.asarray(cls().fit(model, calibration).predict(model, variants), dtype=float)
        assert scores.shape == (len(variants),), f"shape {scores.shape}, expected ({len(variants)},)"
        assert np.isfinite(scores).all(), "NaN or infinite scores"
        assert ((scores >= 0) & (scores <= 1)).all(), "scores outside [0, 1]"

    def deterministic():
        a = cls().fit(model, calibration).predict(model, variants)
        b = cls().fit(model, calibration).predict(model, variants)
        np.testing.assert_array_equal(a, b)

    def copes_without_base_failures():
        calm, _ = example_data(all_correct=True, family=family)
        scores = np.asarray(cls().fit(model, calm).predict(model, variants), dtype=float)
        assert scores.shape == (len(variants),) and np.isfinite(scores).all()
        assert ((scores >= 0) & (scores <= 1)).all()

    def declares_a_known_track():
        assert track_of(cls) in TRACKS

    def blind_never_traces_a_variant():
        if track_of(cls) != "blind":
            return
        view = BlindView(model, variants)
        scores = np.asarray(cls().fit(view, calibration).predict(view, variants), dtype=float)
        assert scores.shape == (len(variants),)

    def reads_only_what_it_declares():
        guard = GuardedModel(model)
        p = cls()
        p.fit(guard, calibration).predict(guard, variants)
        extra = guard.reads - set(p.reads)
        assert not extra, f"read {sorted(extra)} without declaring it in `reads`"

    return [constructs_with_defaults, clone_round_trips, fit_returns_self, output_shape_range_and_finite,
            deterministic, copes_without_base_failures, declares_a_known_track, blind_never_traces_a_variant,
            reads_only_what_it_declares]


def check_predictor(cls: type[Predictor], model: Any = None) -> list[str]:
    """Run every check; return what failed (empty when the predictor conforms)."""
    problems = []
    for check in predictor_checks(cls, model):
        try:
            check()
        except Exception as e:  # a check failing, or the predictor raising inside it
            problems.append(f"{check.__name__}: {type(e).__name__}: {e}")
    return problems
