import json
from pathlib import Path

import pytest

from bench.cli import main
from tasks import TaskError, get_family, load_task_file
from tasks.export import export, load_items


@pytest.fixture
def items_and_shifts():
    items, shifts = [], {}
    for name in ("addition", "compose", "commands"):
        family = get_family(name)
        for cell in family.cells:
            items += family.generate(cell.name, 4, seed=2)
            shifts[name, cell.name] = cell.shift
    return items, shifts


@pytest.mark.parametrize("fmt", ["jsonl", "hf"])
def test_export_round_trips(fmt, items_and_shifts, tmp_path):
    items, shifts = items_and_shifts
    (path,) = export(items, shifts, fmt, tmp_path)
    assert load_items(path) == items


def test_jsonl_export_loads_as_a_user_task(items_and_shifts, tmp_path):
    items, shifts = items_and_shifts
    (path,) = export(items, shifts, "jsonl", tmp_path)
    family = load_task_file(path, name="mine")
    assert {c.name for c in family.base_cells} == {n for (f, n), s in shifts.items() if s == "base"}
    loaded = [i for c in family.cells for i in family.generate(c.name, 100)]
    assert sorted((i.id, i.prompt, i.target) for i in loaded) == sorted((i.id, i.prompt, i.target) for i in items)


def test_hf_dataset_folder_loads_as_a_user_task(items_and_shifts, tmp_path):
    items, shifts = items_and_shifts
    (path,) = export(items, shifts, "hf", tmp_path)
    family = load_task_file(path, name="mine")
    assert sum(len(family.generate(c.name, 100)) for c in family.cells) == len(items)


def test_lm_eval_export_writes_a_task_per_cell_under_one_group(items_and_shifts, tmp_path):
    items, shifts = items_and_shifts
    group, *tasks = export(items, shifts, "lm-eval", tmp_path, name="bb_test")
    cells = sorted({(i.family, i.cell) for i in items})
    assert "group: bb_test" in group.read_text() and len(tasks) == len(cells)
    rows, budgets = [], {}
    for yaml in tasks:
        text = yaml.read_text()
        assert "output_type: generate_until" in text and f"task: {yaml.stem}" in text
        # exact match as brittlebench scores it: both sides stripped (pretrained targets start with a space)
        assert '"{{target | trim}}"' in text and "function: remove_whitespace" in text
        assert f"  - {yaml.stem}\n" in group.read_text()
        data = Path(json.loads(text.split("test: ")[1].split("\n")[0]))
        part = [json.loads(line) for line in data.read_text().splitlines()]
        assert len({(r["family"], r["cell"]) for r in part}) == 1
        budgets[part[0]["family"], part[0]["cell"]] = int(text.split("max_gen_toks: ")[1].split("\n")[0])
        rows += part
    assert sorted((r["id"], r["prompt"], r["target"]) for r in rows) == sorted((i.id, i.prompt, i.target) for i in items)
    # each cell's own budget: its longest target (characters by default) plus 2
    for cell in cells:
        assert budgets[cell] == max(len(i.target) for i in items if (i.family, i.cell) == cell) + 2
    _, *counted = export(items, shifts, "lm-eval", tmp_path / "tokens", name="bb_test", count_tokens=lambda t: 1)
    assert all("max_gen_toks: 3\n" in yaml.read_text() for yaml in counted)


def good_rows():
    return [{"prompt": "a b =", "target": "ab", "cell": "short", "split": "base"},
            {"prompt": "a b c =", "target": "abc", "cell": "long", "split": "variant", "shift": "productivity",
             "axes": {"length": 3}}]


def test_user_task_file_runs_end_to_end(tmp_path):
    path = tmp_path / "concat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in good_rows() * 3) + "\n")
    family = load_task_file(path)
    assert family.name == "concat" and [c.name for c in family.variant_cells] == ["long"]
    assert main(["run", "--tasks", str(path), "--n", "3", "--out", str(tmp_path / "run"),
                 "--predictors", "random"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["provenance"]["tasks"]["concat"]["source"] == str(path)


@pytest.mark.parametrize("content, message", [
    ("", "has no items"),
    ("not json\n", "line 1: not valid JSON"),
    ('[1, 2]\n', "line 1: is not a JSON object"),
    ('{"prompt": "x", "cell": "c", "split": "base"}\n', "line 1: field 'target' is missing"),
    ('{"prompt": "x", "target": 3, "cell": "c", "split": "base"}\n', "line 1: field 'target' must be a string"),
    ('{"prompt": "x", "target": "y", "cell": "c", "split": "test"}\n', "line 1: field 'split' must be"),
    ('{"prompt": "x", "target": "y", "cell": "c", "split": "base"}\n\n{"prompt": "", "target": "y", "cell": "c", "split": "base"}\n',
     "line 3: field 'prompt' is empty"),
    ('{"prompt": "x", "target": "y", "cell": "c", "split": "base"}\n', "has no variant items"),
    ('{"prompt": "x", "target": "y", "cell": "c", "split": "variant"}\n', "has no base items"),
    ('{"prompt": "x", "target": "y", "cell": "c", "split": "variant", "shift": "bigger"}\n', "field 'shift' must be"),
    ('{"prompt": "x", "target": "y", "cell": "c", "split": "base", "axes": [1]}\n', "field 'axes' must be an object"),
])
def test_malformed_task_files_name_the_line_and_field(content, message, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(TaskError, match=message) as info:
        load_task_file(path)
    assert "\n" not in str(info.value)


def test_non_utf8_and_missing_task_files(tmp_path):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TaskError, match="not UTF-8"):
        load_task_file(path)
    with pytest.raises(TaskError, match="no task file"):
        load_task_file(tmp_path / "missing.jsonl")


def test_predictors_with_nothing_to_read_on_a_user_task_are_not_applicable_and_never_ranked(tmp_path, capsys):
    """No depth axis, and a tokenizer that writes one digit per token: depth_budget and tokenization say so with their
    reason instead of scoring a constant that would rank as chance."""
    path = tmp_path / "concat.jsonl"
    rows = [{"prompt": "a b =", "target": "ab", "cell": "short", "split": "base"},
            {"prompt": "a b c =", "target": "abc", "cell": "long", "split": "variant", "shift": "productivity"},
            {"prompt": "a b c d e =", "target": "abcde", "cell": "longer", "split": "variant", "shift": "productivity"}]
    path.write_text("\n".join(json.dumps(r) for r in rows * 4) + "\n")
    assert main(["run", "--tasks", str(path), "--n", "4", "--out", str(tmp_path / "run"), "--no-cache",
                 "--predictors", "random,prompt_length,depth_budget,tokenization"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for name, why in (("depth_budget", "same composition depth"), ("tokenization", "one digit per token")):
        p = results["predictors"][name]
        assert p["status"] == "not_applicable" and why in p["reason"]
        assert "family_auroc" not in p and "vs_best_baseline" not in p
        assert f"{name}" in printed and "not applicable" in printed
    assert results["predictors"]["prompt_length"]["status"] == "ok"
    sealed = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert all("depth_budget" not in row["scores"] for row in sealed)
