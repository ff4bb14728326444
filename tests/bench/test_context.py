"""A model whose context cannot hold every item: the run skips the families and variant cells that
do not fit (decided from token counts before any evaluation), names them, and every tool that
reads the folder (verify, --resume, compare, lomo, the report) goes on from what it ran."""
import json
import shutil

import pytest

from bench.cli import main
from bench.model.load import load_model
from bench.protocol.spec import RunSpec
from bench.protocol.stages import generate, too_long
from bench.protocol.verify import check_run_folder, check_skipped, run_families, verify
from bench.runs.lomo import leave_one_model_out
from tasks import resolve_families
from tests.conftest import save_tiny

# With --n 2 --shots 0 and the zoo's char tokenizer, the longest item of each cell needs (prompt,
# target and 2): addition 9-16 tokens in every cell; parity 19 in its base region, 24 at length 12,
# 28 at length 16; recall 32 in its base region. A context of 26 holds addition, parity but its
# length-16 cell, and no part of recall.
CONTEXT = 26
SKIPPED = {"parity/length=16": "needs 28 tokens; the model's context is 26",
           "recall": "its base region needs 32 tokens; the model's context is 26"}
ARGS = ["--n", "2", "--shots", "0", "--predictors", "random,confidence,prompt_length,tests.bench.test_lomo:CountSpy"]


def _run(model, out, tasks="addition,parity,recall", *more):
    return main(["run", "--model", str(model), "--tasks", tasks, *ARGS, "--out", str(out), *more])


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("short") / "model", context=CONTEXT)


@pytest.fixture(scope="module")
def skipping_run(short, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "short"
    assert _run(short, out) == 0
    return out


def test_what_does_not_fit_is_skipped_and_named(short, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(short, out) == 0
    printed = capsys.readouterr()
    line = ("skipped, longer than the model's context: parity/length=16 (needs 28 tokens; the model's context is "
            "26); recall (its base region needs 32 tokens; the model's context is 26)")
    assert printed.err.count(line) == 1 and printed.out.count(line) == 1
    results = json.loads((out / "results.json").read_text())
    assert results["skipped"] == SKIPPED
    ran = {f"{c['family']}/{c['cell']}" for c in results["cells"]}
    assert "parity/length=12" in ran and "addition/digits=4" in ran
    assert not any(c == "parity/length=16" or c.startswith("recall/") for c in ran)
    assert list(results["families"]) == ["addition", "parity"] and "recall" not in results["competence"]["base_failure"]
    assert list(results["provenance"]["tasks"]) == ["addition", "parity", "recall"]  # what was asked for
    items = [json.loads(line) for name in ("base", "variants") for line in (out / "items" / f"{name}.jsonl").open()]
    assert items and not any(i["family"] == "recall" or i["cell"] == "length=16" for i in items)
    assert results["n_variant"] == len([i for i in items if i["cell"] not in ("digits=1", "digits=2", "digits=3",
                                                                                "length<=8")])
    report = (out / "report.html").read_text()
    assert report.count("<b>Skipped</b>, longer than the model's context") == 1
    assert "<code>parity/length=16</code> (needs 28 tokens; the model&#x27;s context is 26)" in report


def test_a_run_that_fits_records_no_skip(tmp_path, tiny_llama, capsys):
    assert _run(tiny_llama, tmp_path / "run", "addition") == 0
    assert "skipped" not in capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "skipped" not in results and "Skipped" not in (tmp_path / "run" / "report.html").read_text()


def test_verify_skips_the_same_cells_and_resume_finishes_the_same_run(skipping_run, tmp_path, short, capsys):
    ok, lines = verify(skipping_run)
    assert ok, lines
    assert any(line.startswith("skipped: parity/length=16, recall: longer than the model's context") for line in lines)
    ok, lines = verify(skipping_run, reevaluate=4, sample_seed=0)  # the skip decided again with the model
    assert ok, lines
    assert "skipped: parity/length=16, recall, as the items' token counts decide with the run's tokenizer: ok" in lines
    stored = (skipping_run / "predictions.jsonl").read_bytes()
    assert _run(short, skipping_run, "addition,parity,recall", "--resume") == 0
    capsys.readouterr()
    results = json.loads((skipping_run / "results.json").read_text())
    assert "sealed predictions" in results["resumed"] and results["skipped"] == SKIPPED
    assert (skipping_run / "predictions.jsonl").read_bytes() == stored and verify(skipping_run)[0]


def test_verify_names_a_skip_the_folder_does_not_bear_out(skipping_run, short, tmp_path):
    results = check_run_folder(skipping_run)
    families = run_families(results)
    suite = generate(RunSpec(n=2, seed=0), families, 0)
    assert check_skipped(results, families, suite, load_model(str(short)))[0]
    for forged in ({**SKIPPED, "addition/digits=4": "needs 99 tokens; the model's context is 26"},  # it fits
                   {"recall": SKIPPED["recall"]},  # parity/length=16 does not fit, yet was not skipped
                   {**SKIPPED, "parity/nonesuch": "needs 99 tokens"}):  # no such cell
        ok, [line] = check_skipped(results | {"skipped": forged}, families, suite, load_model(str(short)))
        assert not ok and line.startswith("skipped: MISMATCH"), line
    edited = json.loads((skipping_run / "results.json").read_text())
    del edited["skipped"]["parity/length=16"]  # the regenerated items now hold a cell the folder lacks
    copy = tmp_path / "copy"
    shutil.copytree(skipping_run, copy)
    (copy / "results.json").write_text(json.dumps(edited))
    ok, lines = verify(copy)
    assert not ok and any(line.startswith("items: MISMATCH") for line in lines), lines


def test_nothing_fits_is_one_line_exit_2(tmp_path, capsys):
    model = save_tiny("llama", tmp_path / "tiny", context=8)
    assert _run(model, tmp_path / "run", "addition,parity") == 2
    err = capsys.readouterr().err
    assert err.startswith("brittlebench: error: no task family fits the model's context of 8 tokens") and \
        err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_family_none_of_whose_variant_cells_fits_is_skipped_whole():
    families = resolve_families(["addition", "parity"])
    needs = {("addition", c.name): 10 for c in families["addition"].cells}
    needs |= {("parity", "length<=8"): 19, ("parity", "length=10"): 22, ("parity", "length=12"): 24,
              ("parity", "length=16"): 28}
    assert too_long(families, needs, 30) == {}
    assert too_long(families, needs, 26) == {"parity/length=16": "needs 28 tokens; the model's context is 26"}
    assert too_long(families, needs, 21) == {
        "parity": "each of its variant cells needs 22 tokens or more; the model's context is 21"}
    assert too_long(families, needs, 9) == {"addition": "its base region needs 10 tokens; the model's context is 9",
                                            "parity": "its base region needs 19 tokens; the model's context is 9"}


def test_compare_and_lomo_over_runs_that_skipped(skipping_run, tiny_llama, tmp_path, capsys):
    assert main(["compare", str(skipping_run), "--baseline", str(skipping_run)]) == 0
    longer = tmp_path / "longer"  # a context of 64: every cell of addition and parity fits
    assert _run(tiny_llama, longer, "addition,parity") == 0
    assert main(["compare", str(longer), "--baseline", str(skipping_run)]) == 2
    err = capsys.readouterr().err
    assert "skipped different families or cells" in err and "the baseline: parity/length=16, recall" in err
    short_only = tmp_path / "short_only"
    shutil.copytree(skipping_run, short_only)
    leave_one_model_out([short_only, longer], log=lambda m: None)
    # each model is fit on the other's variant outcomes on its own items only: the short model never sees
    # parity/length=16 (its context cannot hold it); its parity base items count too (not addition's)
    for folder, variants in ((short_only, 4 * 2 + 1 * 2), (longer, 4 * 2 + 1 * 2)):
        results = json.loads((folder / "results.json").read_text())
        assert results["protocols"]["leave-one-model-out"]["predictors"]["count_spy"]["notes"] == [str(2 + variants)]
        assert verify(folder)[0]


def test_the_leaderboard_names_each_models_skips():
    from bench.leaderboard.board import markdown, page

    board = {"models": ["short", "long"], "tracks": {}, "built": "now", "skipped": {"short": list(SKIPPED)}}
    line = ("Skipped before evaluation, longer than a model's context (ranked on the rest): "
            "short: parity/length=16, recall.")
    assert line in markdown(board).splitlines()
    assert "short: parity/length=16, recall." in page(board)
    assert "Skipped" not in markdown(board | {"skipped": {}}) and "Skipped" not in page(board | {"skipped": {}})
