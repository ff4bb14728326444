import json

import numpy as np
import pytest

import bench.protocol.stages as run_module
from bench.model.evaluate import Outcome
from bench.model.load import ModelSpec
from bench.protocol.spec import RunSpec
from bench.protocol.stages import compositional_labels, run
from bench.protocol.verify import verify
from predictors import Predictor
from tasks import get_family

class FamilySpy(Predictor):
    """Hypothesis: none; records which families' variant outcomes it was fit on."""

    name = "family_spy"
    reads = frozenset()
    version = "1"

    def fit(self, model, calibration):
        self.fit_on_ = {o.item.family for o in calibration if "=" not in o.item.cell or o.item.cell not in
                        {c.name for c in get_family(o.item.family).base_cells}}
        return self

    def predict(self, model, items):  # it runs in the worker process: it reports through a note
        self.note(json.dumps([sorted(self.fit_on_), sorted({i.family for i in items})]))
        return np.full(len(items), 0.5)


def test_leave_one_family_out_never_shows_a_family_its_own_outcomes(tiny_gpt2, tmp_path):
    results = run(RunSpec(model=ModelSpec(str(tiny_gpt2)), tasks=("addition", "multihop"), n=3, shots=0,
                          protocol="leave-one-family-out", out=tmp_path / "r",
                          predictors=("random", "tests.bench.test_protocols:FamilySpy")), log=lambda m: None)
    [sealed] = [json.loads(n) for n in results["predictors"]["family_spy"]["notes"]]
    assert sealed[0] == []  # base protocol: no variant outcome at all
    lofo = results["protocols"]["leave-one-family-out"]["predictors"]["family_spy"]["notes"]
    folds = [[set(x) for x in json.loads(n.split(": ", 1)[1])] for n in lofo]
    assert {frozenset(predicted) for _, predicted in folds} == {frozenset({"addition"}), frozenset({"multihop"})}
    for fit_on, predicted in folds:
        assert not fit_on & predicted, (fit_on, predicted)
        assert fit_on  # it did see the other family's variant outcomes
    assert "leave-one-family-out" in results["protocols"]
    assert (tmp_path / "r" / "predictions.leave-one-family-out.sha256").is_file()
    assert verify(tmp_path / "r")[0]


def test_compositional_labels(monkeypatch):
    family = get_family("multihop")
    variants = family.generate("hops=8", 6, seed=0)
    # Components of items 0-2 all solved; items 3-5 have one unsolved component.
    unsolved = {f"{variants[k].id}.1" for k in (3, 4, 5)}
    monkeypatch.setattr(run_module, "evaluate",
                        lambda handle, items, batch_size, families: [Outcome(i.id, "", i.id not in unsolved) for i in items])
    outcomes = [Outcome(v.id, "", correct) for v, correct in zip(variants, [True, False, False, True, False, True])]
    eligible, failed, rows = compositional_labels({"multihop": family}, None, variants, outcomes, 8)
    assert eligible.tolist() == [True, True, True, False, False, False]
    assert failed[eligible].tolist() == [False, True, True]  # compositional failures: items 1 and 2
    assert len(rows) == 6 * 8


def test_compositional_target_end_to_end_and_verified(tiny_gpt2, tmp_path):
    results = run(RunSpec(model=ModelSpec(str(tiny_gpt2)), tasks=("multihop",), n=3, shots=0, target="compositional",
                          out=tmp_path / "r", predictors=("random",)), log=lambda m: None)
    view = results["targets"]["compositional"]
    assert view["n_with_components"] == results["n_variant"]
    assert (tmp_path / "r" / "components.jsonl").is_file()
    assert verify(tmp_path / "r")[0]


@pytest.mark.parametrize("field, value, message", [("protocol", "leave-one-out", "unknown protocol"),
                                                   ("target", "nope", "unknown target")])
def test_unknown_protocol_and_target(field, value, message, tmp_path):
    from bench.errors import UserError

    with pytest.raises(UserError, match=message):
        run(RunSpec(n=2, out=tmp_path / "r", **{field: value}), log=lambda m: None)


def test_verify_detects_edited_outcomes(tmp_path):
    run(RunSpec(n=4, out=tmp_path / "r", predictors=("random", "confidence")), log=lambda m: None)
    path = tmp_path / "r" / "outcomes.jsonl"
    lines = path.read_text().splitlines()
    k = next(i for i, l in enumerate(lines) if '"split":"variant"' in l)
    lines[k] = lines[k].replace('"correct":false', '"correct":true') if '"correct":false' in lines[k] else \
        lines[k].replace('"correct":true', '"correct":false')
    path.write_text("\n".join(lines) + "\n")
    ok, said = verify(tmp_path / "r")
    assert not ok and any("MISMATCH" in l for l in said)
