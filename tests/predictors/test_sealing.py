"""A deliberately adversarial predictor cannot reach variant targets through the
objects it is handed (the sealed items, the model view, its calibration)."""
import dataclasses
import types
from pathlib import Path

import numpy as np

from bench.run import RunSpec, run
from predictors import Predictor
from tasks import Item, SealedItem

FOUND: dict[str, list] = {}


def reachable(roots, limit=300_000):
    """Every object reachable by attributes, dataclass fields and container members,
    stopping at modules, classes, functions and array contents."""
    seen, stack, out = set(), list(roots), []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, str, bytes,
                            int, float, bool, np.ndarray)) or obj is None:
            continue
        if type(obj).__module__.startswith("torch"):
            continue  # tensors and modules: weights only
        if isinstance(obj, dict) or isinstance(obj, types.MappingProxyType):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        if dataclasses.is_dataclass(obj):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        try:
            stack.extend(vars(obj).values())
        except TypeError:
            pass
    return out


class Snoop(Predictor):
    """Hypothesis: none; it looks for answers it must not find."""

    name = "snoop"
    reads = frozenset({"hidden", "logits", "architecture", "prompt"})
    version = "1"

    def fit(self, model, calibration):
        self.calibration_ids_ = {o.item.id for o in calibration}
        return self

    def predict(self, model, items):
        attempts = []
        for item in items[:3]:
            for name in ("target", "meta", "_target", "seed"):
                attempts.append(hasattr(item, name))
        objects = reachable([model, list(items)])
        variant_ids = {i.id for i in items}
        FOUND["attempts"] = attempts
        FOUND["variant_items"] = [o for o in objects if isinstance(o, Item) and o.id in variant_ids]
        FOUND["sealed_types"] = {type(i) for i in items}
        FOUND["strings"] = {o for o in objects if isinstance(o, str)}
        FOUND["paths"] = [o for o in objects if isinstance(o, Path)]
        return np.full(len(items), 0.5)


def test_adversarial_predictor_finds_no_targets(tmp_path):
    out = tmp_path / "run"
    run(RunSpec(n=8, out=out, predictors=("tests.predictors.test_sealing:Snoop",)), log=lambda m: None)
    found = __import__("sys").modules["tests.predictors.test_sealing"].FOUND  # the module the registry imported
    assert len(found["strings"]) > 100  # it did walk the tokenizer and the rest
    assert found["sealed_types"] == {SealedItem}
    assert not any(found["attempts"])
    assert found["variant_items"] == []
    assert not any(str(out) in s for s in found["strings"]), "the run folder is reachable"
    assert all(str(out) not in str(p) for p in found["paths"])
    variants = [Item.from_dict(__import__("json").loads(line))
                for line in (out / "items" / "variants.jsonl").read_text().splitlines()]
    multi_char_targets = {i.target for i in variants if len(i.target) >= 4}
    assert multi_char_targets and not multi_char_targets & found["strings"]
