"""The HTML report: built from a small run folder written here by hand (no model, no browser), so each
figure it shows can be checked against numbers worked out on paper. The browser-level check (no
script error, no empty section) is scripts/render_report.py, which needs chromium."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scoring.metrics import wilson
from bench.scoring.report import colours, comparable_axis_rates, flags, load_run, render, write_report
from bench.errors import UserError
from bench.scoring.results import Row


def interval(value, lo=None, hi=None):
    return {"value": value, "lo": value - 0.05 if lo is None else lo, "hi": value + 0.05 if hi is None else hi}


# alpha: hops varies along the base cells (distractors 0 throughout); the 6-distractor variants are all
# 2-hop, so pooled over everything hops=2 would fail half its items, while at 0 distractors it fails none.
# beta: length varies inside its base cell (a range); order is a category.
CELLS = [  # family, cell, shift, split, axes of each item (a list: one per item), failures
    ("alpha", "hops=1", "base", "base", [{"hops": 1, "distractors": 0}] * 10, 0),
    ("alpha", "hops=2", "base", "base", [{"hops": 2, "distractors": 0}] * 10, 0),
    ("alpha", "hops=3", "depth", "variant", [{"hops": 3, "distractors": 0}] * 10, 5),
    ("alpha", "distractors=6", "distraction", "variant", [{"hops": 2, "distractors": 6}] * 10, 10),
    ("beta", "base", "base", "base", [{"order": "forward", "length": 1 + i % 2} for i in range(10)], 0),
    ("beta", "reversed", "systematicity", "variant", [{"order": "reversed", "length": 1 + i % 2} for i in range(10)],
     6),
    ("beta", "long", "productivity", "variant", [{"order": "forward", "length": 5}] * 10, 10),
]
FEW_SHOT = "Example: 1+1=2\n\nExample: 2+2=4\n\n"


def _items():
    """(item, failed, split) for every item of CELLS; prompts share a few-shot prefix, one holds markup."""
    out = []
    for family, cell, _, split, axes, failures in CELLS:
        for i, ax in enumerate(axes):
            item = {"id": f"{family}-{cell}-{i}", "family": family, "cell": cell, "axes": ax,
                    "prompt": FEW_SHOT + f"Q {cell} {i} </script><b>=", "target": str(i)}
            out.append((item, i < failures, split))
    return out


def _scores(item_id: str, failed: bool, k: int) -> dict[str, float]:
    good = (0.7 if failed else 0.2) + 0.01 * (k % 7)
    return {"p_good": good, "p_twin": good, "p_rev": 1 - good, "random": (k * 37 % 100) / 100,
            "prompt_length": 0.5, "confidence": 0.3 + 0.4 * failed}


PREDICTORS = {  # name: (track, family AUROC, pooled AUROC, Δ best baseline)
    "p_good": ("trace", 0.9, 0.92, interval(0.2, 0.1, 0.3)),
    "p_twin": ("trace", 0.88, 0.92, interval(0.18, 0.08, 0.28)),
    "confidence": ("trace", 0.7, 0.75, None),
    "prompt_length": ("blind", 0.55, 0.5, None),
    "random": ("blind", 0.5, 0.49, interval(-0.05, -0.12, 0.02)),
    "p_rev": ("blind", 0.1, 0.08, interval(-0.45, -0.5, -0.4)),
}


def _predictor(name, track, ranking, pooled, difference, best):
    out = {"status": "ok", "track": track, "pair_auroc": interval(ranking), "auroc": interval(pooled),
           "brier": interval(0.2), "ece": interval(0.1), "spearman": interval(0.5), "family_spearman": interval(0.4)}
    if difference is not None or name == best:
        out["vs_best_baseline"] = {"metric": "pair_auroc", "difference": difference or interval(0.0, 0.0, 0.0),
                                   "beats": bool(difference and difference["lo"] > 0), "baseline": best}
    return out


def make_run(folder, ranking=None, note="", history=None, same_outcome=False):
    """Write a run folder; `ranking` overrides predictors' family AUROC; `same_outcome` makes every variant fail."""
    items = _items()
    if same_outcome:
        items = [(item, split == "variant", split) for item, _, split in items]
    variants = [(item, failed) for item, failed, split in items if split == "variant"]
    base = [(item, failed) for item, failed, split in items if split == "base"]
    scores = {item["id"]: _scores(item["id"], failed, k) for k, (item, failed) in enumerate(variants)}
    best = {"blind": "prompt_length", "trace": "confidence"}
    predictors = {name: _predictor(name, track, (ranking or {}).get(name, fam), pooled, diff, best[track])
                  for name, (track, fam, pooled, diff) in PREDICTORS.items()}
    predictors["p_na"] = {"status": "not_applicable", "reason": "needs <checkpoints>", "track": "blind"}
    predictors["p_fail"] = {"status": "failed", "reason": "boom", "track": "trace"}
    cells = []
    for family, cell, shift, split, axes, _ in CELLS:
        mine = [(item, failed) for item, failed, s in items if item["cell"] == cell and item["family"] == family]
        row = {"family": family, "cell": cell, "shift": shift, "split": split, "n": len(mine),
               "failure_rate": sum(f for _, f in mine) / len(mine)}
        if split == "variant":
            row["mean_predicted"] = {n: sum(scores[i["id"]][n] for i, _ in mine) / len(mine) for n in PREDICTORS}
        cells.append(row)
    families = {f: {"n": 20, "failure_rate": 0.5, "base_failure_rate": 0.0, "flagged": False,
                    "predictors": {n: {"auroc": interval(0.6)} for n in PREDICTORS}} for f in ("alpha", "beta")}
    results = {
        "n_base": len(base), "n_variant": len(variants),
        "base_failure_rate": sum(f for _, f in base) / len(base),
        "variant_failure_rate": sum(f for _, f in variants) / len(variants),
        "predictors": predictors,
        "tracks": {"blind": {"baselines": ["random", "prompt_length"], "best_baseline": "prompt_length"},
                   "trace": {"baselines": ["random", "prompt_length", "confidence"], "best_baseline": "confidence",
                             "reference": {"name": "answer_visible", "auroc": interval(0.95),
                                           "pair_auroc": interval(0.96)}}},
        "families": families,
        "competence": {"base_failure": {"alpha": 0.0, "beta": 0.0}, "flagged": [], "scored_families": ["alpha", "beta"],
                       "note": note},
        "cells": cells,
        "provenance": {"protocol": "base", "seed": 0, "shots": 2, "versions": {"python": "3.11"},
                       "model": {"spec": {"name_or_path": "tiny<model>"}, "fingerprint": "f00d",
                                 "card": {"model_type": "llama", "n_layers": 2}},
                       "tasks": {"alpha": {"axes": {"hops": "hops followed", "distractors": "unrelated facts"}}}},
        "predictions_sha256": "ab" * 32,
        "evaluation": {"teacher_forced": 70, "generated": 0},
        "timings": {"load": 1.5, "score": 0.5},
        "history": history or [],
    }
    if same_outcome:
        for p in results["predictors"].values():
            p.pop("auroc", None)
    (folder / "items").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    write = lambda name, rows: (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("items/base.jsonl", [i for i, _ in base])
    write("items/variants.jsonl", [i for i, _ in variants])
    write("outcomes.jsonl", [{"item_id": i["id"], "split": s, "correct": not f, "output": f"out {i['id']}"}
                             for i, f, s in items])
    write("predictions.jsonl", [{"item_id": i["id"], "family": i["family"], "cell": i["cell"],
                                 "scores": scores[i["id"]]} for i, _ in variants])
    return folder


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("report") / "run", note="beta: the model fails a lot")


@pytest.fixture(scope="module")
def page(run_folder):
    return write_report(run_folder).read_text()


def _section(page, key):
    return re.search(f'<section id="{key}".*?</section>', page, re.S).group(0)


def test_the_page_is_offline_accessible_svg(page):
    assert page.startswith("<!doctype html>\n<html lang=\"en\"")
    assert '<meta name="viewport"' in page
    assert "<img" not in page and "src=" not in page and "href=\"http" not in page  # nothing fetched
    for key in ("summary", "predictors", "roc", "reliability", "cells-predicted", "families", "axes", "cells",
                "items", "metadata"):
        assert f'data-section="{key}"' in page, key
    charts = re.findall(r'<svg class="chart"[^>]*>(.*?)</svg>', page, re.S)
    assert len(charts) > 10
    assert all(chart.startswith("<title>") and 'class="mark' in chart for chart in charts)
    assert all('aria-label="' in tag for tag in re.findall(r'<svg class="chart"[^>]*>', page))


def test_header_has_both_failure_rates_and_the_warning(page):
    header = re.search(r'<header id="summary".*?</header>', page, re.S).group(0)
    assert "base failure rate 0.000" in header and "variant failure rate 0.775" in header
    assert "<b>Warning:</b> beta: the model fails a lot" in header
    assert "tiny&lt;model&gt;" in header and "tiny<model>" not in page


def test_the_report_does_not_import_matplotlib(run_folder, tmp_path):
    code = ("import sys; from pathlib import Path; from bench.scoring.report import write_report; "
            f"write_report(Path({str(run_folder)!r}), Path({str(tmp_path / 'r.html')!r})); "
            "sys.exit('matplotlib' in sys.modules or 'sklearn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_colour_comes_from_the_name_not_the_rank(tmp_path):
    assert colours(["b", "a", "c"]) == colours(["c", "b", "a"])
    assert len(set(colours([f"p{i}" for i in range(20)]).values())) == 20  # distinct while the palette lasts

    def stroke(page, name):
        return re.search(f'<path class="mark curve" data-name="{name}"[^>]*stroke="(#[0-9a-f]+)"', page).group(1)

    first = render(load_run(make_run(tmp_path / "a")))
    last = render(load_run(make_run(tmp_path / "b", ranking={"p_good": 0.01, "p_rev": 0.99})))
    legend = lambda page: re.findall(r'<button type="button" data-name="([^"]+)"', page)  # noqa: E731
    assert legend(first)[0] == "p_good" and legend(last)[-1] == "p_good"  # the rank changed ...
    assert stroke(first, "p_good") == stroke(last, "p_good")  # ... the colour did not
    assert 'stroke-dasharray' in re.search(r'<path class="mark curve" data-name="random"[^>]*>', first).group(0)


def test_identical_curves_are_noted_in_the_legend(page):
    entry = re.search(r'<li><button type="button" data-name="p_twin".*?</li>', page, re.S).group(0)
    assert '<span class="twin">= p_good</span>' in entry


def test_axis_rates_hold_the_other_axes_at_the_base_region():
    entries = [{"axes": ax, "failed": False, "base": True, "cell": cell} for cell, n, ax in (
        ("hops=1", 10, {"hops": 1, "distractors": 0}), ("hops=2", 10, {"hops": 2, "distractors": 0})) for _ in range(n)]
    entries += [{"axes": {"hops": 3, "distractors": 0}, "failed": i < 5, "base": False, "cell": "hops=3"}
                for i in range(10)]
    entries += [{"axes": {"hops": 2, "distractors": 6}, "failed": True, "base": False, "cell": "d=6"}
                for _ in range(10)]
    rates = comparable_axis_rates(entries, ["hops", "distractors"])
    # Pooled, hops=2 would be 10 failures in 20; at the base region's 0 distractors it is 0 in 10.
    assert rates["hops"] == {"held": {"distractors": [0]}, "points": [(1, 10, 0, 10), (2, 10, 0, 10), (3, 10, 5, 0)]}
    # The base hops tie (1 and 2); the tie goes to the one that shows the distractors axis varying.
    assert rates["distractors"] == {"held": {"hops": [2]}, "points": [(0, 10, 0, 10), (6, 10, 10, 0)]}


def test_an_axis_that_varies_inside_a_base_cell_is_held_at_its_range_and_categories_are_kept():
    entries = [{"axes": {"order": "forward", "length": 1 + i % 2}, "failed": False, "base": True, "cell": "base"}
               for i in range(10)]
    entries += [{"axes": {"order": "reversed", "length": 1 + i % 2}, "failed": i < 6, "base": False, "cell": "rev"}
                for i in range(10)]
    entries += [{"axes": {"order": "forward", "length": 5}, "failed": True, "base": False, "cell": "long"}
                for _ in range(10)]
    rates = comparable_axis_rates(entries, ["order", "length"])
    assert rates["order"] == {"held": {"length": [1, 2]}, "points": [("forward", 10, 0, 10), ("reversed", 10, 6, 0)]}
    assert rates["length"]["points"] == [(1, 5, 0, 5), (2, 5, 0, 5), (5, 10, 10, 0)]


def test_the_axes_section_shows_comparable_rates_with_wilson_intervals(page):
    axes = _section(page, "axes")
    assert "held at: distractors 0" in axes
    assert "alpha, hops=2: 10 items (10 base, 0 variant), failure 0.000, 95% Wilson 0.000–0.278" in axes
    assert "beta, order=reversed: 10 items (0 base, 10 variant), failure 0.600" in axes  # a category, drawn


def test_wilson_interval():
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson(5, 10) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(1, 1) == (pytest.approx(0.2065, abs=1e-4), 1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_flags_below_chance_and_worse_than_baseline(page):
    assert flags(Row.of({"pair_auroc": interval(0.4, 0.35, 0.45)})) == ["below chance (reversed signal)"]
    assert flags(Row.of({"pair_auroc": interval(0.45, 0.4, 0.5)})) == []  # touches chance: not flagged
    worse = {"pair_auroc": interval(0.6), "vs_best_baseline": {"difference": interval(-0.1, -0.2, -0.01)}}
    assert flags(Row.of(worse)) == ["worse than baseline"]
    row = re.search(r"<tr[^>]*><td><b>p_rev</b>.*?</tr>", page).group(0)
    assert "below chance (reversed signal)" in row and "worse than baseline" in row
    assert "flag" not in re.search(r"<tr[^>]*><td><b>p_good</b>.*?</tr>", page).group(0)
    assert '<tr class="baseline"><td><b>random</b> <span class="role">blind baseline</span></td>' in page
    assert '<tr class="reference"><td><b>answer_visible</b> <span class="role">reference</span>' in page


def test_unscored_predictors_are_listed_apart_and_never_ranked(page):
    predictors = _section(page, "predictors")
    failed, not_applicable = predictors.split("<h3>Failed</h3>")[1].split("<h3>Not applicable</h3>")
    assert "<code>p_fail</code>: boom" in failed and "p_na" not in failed
    assert "<code>p_na</code>: needs &lt;checkpoints&gt;" in not_applicable
    assert "p_na" not in _section(page, "roc") and "p_na" not in _section(page, "families")
    assert "<b>p_na</b>" not in page


def test_the_item_browser_holds_every_item_and_its_scores(page, run_folder):
    raw = re.search(r'<script type="application/json" id="item-data">(.*?)</script>', page, re.S).group(1)
    assert "</" not in raw  # a prompt's "</script>" cannot end the block
    data = json.loads(raw)
    predictions = [json.loads(line) for line in (run_folder / "predictions.jsonl").read_text().splitlines()]
    rows = {r[0]: r for r in data["items"]}
    assert len(rows) == 70 and data["prefixes"] == [FEW_SHOT]  # the shared few-shot prefix stored once
    assert data["predictors"][0] == "p_good"  # best ranked first: the browser's default score
    for p in predictions:
        row = rows[p["item_id"]]
        assert row[2] == "variant" and data["prefixes"][row[4]] + row[5] == FEW_SHOT + row[5]
        assert row[8] == [round(p["scores"][n] * 1000) for n in data["predictors"]]
    base = [r for r in data["items"] if r[2] == "base"]
    assert len(base) == 30 and all(r[8] is None for r in base)
    assert {r[7] for r in base} >= {"out alpha-hops=1-0"}


def test_metadata_lists_provenance_timings_and_the_seal(page):
    meta = _section(page, "metadata")
    for text in ("f00d", "ab" * 32, "teacher_forced", "<th>load</th><td>1.50 s</td>", "<th>python</th><td><code>3.11"):
        assert text in meta, text


def test_a_run_without_claims_has_no_claims_section(page):
    assert 'data-section="claims"' not in page and 'data-section="predictors"' in page


def test_nothing_scorable_says_so(tmp_path):
    page = render(load_run(make_run(tmp_path / "r", same_outcome=True)))
    assert "<b>No predictor can be scored</b>" in page
    assert 'data-section="roc"' not in page and 'data-section="items"' in page


def test_learning_curves_appear_with_two_checkpoints(tmp_path, page):
    assert "learning-curves" not in page
    history = [{"name": name, "step": step, "base_accuracy": {"alpha/hops=1": acc, "alpha/hops=2": acc / 2}}
               for name, step, acc in (("early", 100, 0.4), ("final", 200, 0.9))]
    curves = _section(render(load_run(make_run(tmp_path / "r", history=history))), "learning-curves")
    assert "early (100), final (200)" in curves and curves.count('class="mark link"') == 2


def test_results_are_read_once_into_records_older_files_included(run_folder, tmp_path):
    """The report and the tables read `Results`, made in one place from results.json: a committed
    leaderboard run's figures come through as records, a file without the fields later scoring
    versions added gets their defaults, and a file that is not a results.json is a UserError (one line, exit 2)."""
    from bench.scoring.results import Results

    committed = Path(__file__).parents[2] / "leaderboard" / "runs" / "default" / "results.json"
    board, raw = Results.read(committed), json.loads(committed.read_text())
    name, row = next((n, p) for n, p in raw["predictors"].items() if p["status"] == "ok")
    assert board.predictors[name].figure("pair_auroc") == row["pair_auroc"]["value"]
    assert board.predictors[name].figures["auroc"].lo == row["auroc"]["lo"]
    assert board.tracks["trace"].baselines == tuple(raw["tracks"]["trace"]["baselines"])
    assert board.run_level_items() == sum(raw["families"][f]["n"] for f in raw["competence"]["scored_families"])
    old = {k: v for k, v in json.loads((run_folder / "results.json").read_text()).items()
           if k not in ("competence", "families", "tracks", "claims", "no_signal", "history")}
    typed = Results.of(old)
    assert typed.competence.flagged == () and typed.competence.scored_families is None and typed.claims == {}
    assert typed.run_level_items() == old["n_variant"] and typed.no_signal is None
    bad = tmp_path / "bad"
    shutil.copytree(run_folder, bad)
    (bad / "results.json").write_text(json.dumps(old | {"predictors": {"p": {"status": "ok", "auroc": 5}}}))
    with pytest.raises(UserError, match="is not a results.json brittlebench can read"):
        load_run(bad)
    for broken in ({k: v for k, v in old.items() if k != "cells"}, old | {"predictors": {"p": {"track": "blind"}}}):
        (bad / "results.json").write_text(json.dumps(broken))  # no cells; a predictor without its status
        with pytest.raises(UserError, match="KeyError"):
            load_run(bad)
