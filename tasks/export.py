"""Write items where other tools can read them: JSONL, HF `datasets`, lm-evaluation-harness."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Sequence

from .errors import TaskError
from .records import Item

FORMATS = ("jsonl", "hf", "lm-eval")


def _row(item: Item, shifts: dict[tuple[str, str], str]) -> dict:
    shift = shifts.get((item.family, item.cell), "productivity")
    return item.to_dict() | {"split": "base" if shift == "base" else "variant", "shift": shift}


def export(items: Sequence[Item], shifts: dict[tuple[str, str], str], fmt: str, out: Path,
           name: str = "brittlebench", count_tokens: Callable[[str], int] | None = None) -> list[Path]:
    """Write `items` to folder `out`; `shifts` maps (family, cell) to its shift kind. Returns the files
    (for lm-eval: the group's YAML first; `count_tokens` sizes each cell's generation budget)."""
    if fmt not in FORMATS:
        raise TaskError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TaskError(f"export target {out} is a file: pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    rows = [_row(item, shifts) for item in items]
    if fmt == "jsonl":
        path = out / "items.jsonl"
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        return [path]
    if fmt == "hf":
        import datasets

        flat = [r | {"axes": json.dumps(r["axes"], sort_keys=True), "meta": json.dumps(r["meta"], sort_keys=True)}
                for r in rows]
        datasets.Dataset.from_list(flat).save_to_disk(str(out / "dataset"))
        return [out / "dataset"]
    return _lm_eval(items, rows, out, name, count_tokens)


def _lm_eval(items: Sequence[Item], rows: list[dict], out: Path, name: str,
             count_tokens: Callable[[str], int] | None) -> list[Path]:
    """One lm-evaluation-harness task per cell, under one group `name`: lm-eval gives a task a single
    generation budget, so each cell gets its own (its longest target, in tokens where `count_tokens`
    is given, else in characters, an upper bound for these ASCII targets, plus 2), as brittlebench's
    evaluation decides each answer within its own target's length."""
    length = count_tokens or len
    cells: dict[tuple[str, str], list[dict]] = {}
    for item, row in zip(items, rows):
        cells.setdefault((item.family, item.cell), []).append(row)
    (out / name).mkdir(exist_ok=True)
    tasks, paths = [], []
    for (family, cell), cell_rows in cells.items():
        task = re.sub(r"[^A-Za-z0-9_]", "_", f"{name}_{family}_{cell}")
        if task in tasks:
            raise TaskError(f"cells {family}/{cell} and another share the lm-eval task name {task}")
        tasks.append(task)
        part = out / name / f"{task}.jsonl"
        part.write_text("".join(json.dumps({k: r[k] for k in ("id", "family", "cell", "split", "prompt", "target")},
                                           sort_keys=True) + "\n" for r in cell_rows))
        budget = max(length(r["target"]) for r in cell_rows) + 2
        yaml = out / name / f"{task}.yaml"
        yaml.write_text(
            f"task: {task}\n"
            f"dataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(part.resolve()))}\n"
            f"test_split: test\n"
            f"output_type: generate_until\n"
            f"doc_to_text: \"{{{{prompt}}}}\"\n"
            f"doc_to_target: \"{{{{target | trim}}}}\"\n"
            f"target_delimiter: \"\"\n"
            f"generation_kwargs:\n  until: [\"\\n\"]\n  do_sample: false\n  max_gen_toks: {budget}\n"
            f"# exact match as brittlebench scores it: the answer up to its newline, stripped, equals the\n"
            f"# stripped target (pretrained-suite targets start with the space written after 'Answer:')\n"
            f"filter_list:\n  - name: strip\n    filter:\n      - function: remove_whitespace\n"
            f"      - function: take_first\n"
            f"metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
            f"metadata:\n  version: 1.0\n")
        paths.append(yaml)
    group = out / f"{name}.yaml"
    group.write_text(
        f"# lm-evaluation-harness group written by `brittlebench tasks export --format lm-eval`: one task per\n"
        f"# cell (its data and YAML in {name}/), each with its own generation budget.\n"
        f"# Run: lm_eval --model hf --model_args pretrained=MODEL --include_path {out} --tasks {name}\n"
        f"group: {name}\n"
        f"task:\n" + "".join(f"  - {t}\n" for t in tasks) +
        f"aggregate_metric_list:\n  - metric: exact_match\n    aggregation: mean\n    weight_by_size: true\n"
        f"    filter_list: strip\n"
        f"metadata:\n  version: 1.0\n")
    return [group] + paths


def load_items(path: str | Path) -> list[Item]:
    """Read back items exported as JSONL (`items.jsonl`) or HF (`dataset/`), meta included."""
    path = Path(path)
    if path.is_dir():
        import datasets

        rows = [dict(r) | {"axes": json.loads(r["axes"]), "meta": json.loads(r["meta"])}
                for r in datasets.load_from_disk(str(path))]
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Item.from_dict(r) for r in rows]
