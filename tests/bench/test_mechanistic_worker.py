"""Mechanistic access through the worker: a blind predictor's requests are answered by the run's
process on base items, and refused (the predictor fails, the run goes on) on a variant, on text
that is not one of the run's items, and without `mechanistic` in its reads."""
import textwrap

import pytest

from bench.protocol.spec import RunSpec
from bench.protocol.stages import run

PLUGIN = textwrap.dedent('''
    import numpy as np
    from predictors import Predictor

    class Reader(Predictor):
        """Hypothesis (test): the base items' last residual norm orders nothing."""
        name = "reader"
        reads = frozenset({"prompt", "mechanistic"})

        def fit(self, model, calibration):
            reads = model.mechanistic.read([o.item for o in calibration[:3]], ["resid_post", "pattern"], [0, -1])
            self.shapes_ = [tuple(r["resid_post.0"].shape) for r in reads]
            probs = model.mechanistic.ablate([calibration[0].item], {0: [0]}, how="mean")[0]
            self.note(f"read {len(reads)} items; ablated sum {probs.sum():.3f}; keys {sorted(reads[0])}")
            return self

        def predict(self, model, items):
            return np.full(len(items), 0.5)

    class Peeker(Predictor):
        """Hypothesis (test): reading a variant's states would help; it must be refused."""
        name = "peeker"
        reads = frozenset({"prompt", "mechanistic"})

        def predict(self, model, items):
            model.mechanistic.read([items[0]], ["resid_post"], [0])
            return np.full(len(items), 0.5)

    class Forger(Predictor):
        """Hypothesis (test): a base item's id with other text would run that text; it must be refused."""
        name = "forger"
        reads = frozenset({"prompt", "mechanistic"})

        def fit(self, model, calibration):
            item = calibration[0].item
            forged = type("Forged", (), {"id": item.id, "prompt": items_text(item)})()
            model.mechanistic.next_token([forged])
            return self

        def predict(self, model, items):
            return np.full(len(items), 0.5)

    def items_text(item):
        return item.prompt + "1;"

    class Undeclared(Predictor):
        """Hypothesis (test): reading without declaring it must be refused."""
        name = "undeclared"
        reads = frozenset({"prompt"})

        def fit(self, model, calibration):
            model.mechanistic.next_token([calibration[0].item])
            return self

        def predict(self, model, items):
            return np.full(len(items), 0.5)
''')


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mech")
    plugin = folder / "mech_plugin.py"
    plugin.write_text(PLUGIN)
    names = tuple(f"{plugin}:{cls}" for cls in ("Reader", "Peeker", "Forger", "Undeclared")) + ("prompt_length",)
    return run(RunSpec(n=4, tasks=("multihop",), predictors=names, out=folder / "run", use_cache=False),
               log=lambda m: None)


def test_a_blind_predictor_reads_and_intervenes_on_base_items(results):
    reader = results["predictors"]["reader"]
    assert reader["status"] == "ok" and reader["track"] == "blind"
    assert "read 3 items" in reader["notes"][0] and "'pattern.3'" in reader["notes"][0]
    assert "ablated sum 1.000" in reader["notes"][0]
    seen = reader["mechanistic"]  # what it looked at, recorded
    assert seen["read"].pop("seconds") > 0
    assert seen["read"] == {"requests": 1, "items": 3, "sites": ["pattern", "resid_post"], "layers": [0, 3]}
    assert seen["ablate"]["heads"] == ["0.0"] and seen["ablate"]["items"] == 1


@pytest.mark.parametrize("name, says", [
    ("peeker", "PermissionError: mechanistic access is for the run's base items only"),
    ("forger", "PermissionError: mechanistic access is for the run's base items only"),
    ("undeclared", "PermissionError: mechanistic access needs 'mechanistic' in the predictor's reads"),
])
def test_requests_outside_the_base_region_are_refused(results, name, says):
    info = results["predictors"][name]
    assert info["status"] == "failed" and info["reason"].startswith(says), info
    assert results["predictors"]["prompt_length"]["status"] == "ok"  # the run goes on
