import json

import numpy as np
import pytest

from bench.cli import main
from bench.errors import UserError
from bench.runs.lomo import leave_one_model_out
from bench.model.load import ModelSpec
from bench.protocol.spec import RunSpec
from bench.protocol.stages import run
from bench.protocol.verify import verify
from predictors import Predictor
from tests.conftest import save_tiny

class CountSpy(Predictor):
    """Hypothesis: none; records how many variant observations it was fit on."""

    name = "count_spy"
    version = "1"

    def fit(self, model, calibration):  # it runs in the worker process: it reports through a note
        self.note(str(sum(o.item.cell not in ("digits=1", "digits=2", "digits=3") for o in calibration)))
        return self

    def predict(self, model, items):
        return np.full(len(items), 0.5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lomo")
    folders = []
    for seed in (1, 2, 3):
        model = save_tiny("gpt2", root / f"m{seed}", seed=seed)
        out = root / f"run{seed}"
        run(RunSpec(model=ModelSpec(str(model)), tasks=("addition",), n=4, shots=0, out=out,
                    predictors=("random", "confidence", "tests.bench.test_lomo:CountSpy")), log=lambda m: None)
        folders.append(out)
    return folders


def test_each_model_is_fit_on_the_other_models_variant_outcomes_only(runs):
    summary = leave_one_model_out(runs, log=lambda m: None)
    n_variants = len(json.loads((runs[0] / "results.json").read_text())["cells"]) - 3
    for folder in runs:
        results = json.loads((folder / "results.json").read_text())
        assert results["predictors"]["count_spy"]["notes"] == ["0"]  # the base protocol: no variant outcome
        seen = results["protocols"]["leave-one-model-out"]["predictors"]["count_spy"]["notes"]
        assert seen == [str(2 * 4 * n_variants)]  # the two other models' variants, never its own
        assert "leave-one-model-out" in results["protocols"]
        assert (folder / "predictions.leave-one-model-out.sha256").is_file()
        assert verify(folder)[0]
    assert len(summary) == 3


def test_lomo_refuses_a_single_run_and_mismatched_suites(runs, tmp_path):
    with pytest.raises(UserError, match="at least two"):
        leave_one_model_out(runs[:1])
    other = tmp_path / "other"
    run(RunSpec(model=ModelSpec(str(save_tiny("gpt2", tmp_path / "m", seed=9))), tasks=("addition",), n=5, shots=0,
                out=other, predictors=("random",)), log=lambda m: None)
    with pytest.raises(UserError, match="other items"):
        leave_one_model_out([runs[0], other])
    assert main(["lomo", str(runs[0])]) == 2


def test_the_lomo_command_prints_a_table_per_run(runs, capsys):
    assert main(["lomo", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    assert out.count("(protocol leave-one-model-out):") == len(runs) and "pair AUROC" in out
