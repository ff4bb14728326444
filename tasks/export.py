"""Write items where other tools can read them: JSONL, HF `datasets`, lm-evaluation-harness."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .errors import TaskError
from .records import Item

FORMATS = ("jsonl", "hf", "lm-eval")


def _row(item: Item, shifts: dict[tuple[str, str], str]) -> dict:
    shift = shifts.get((item.family, item.cell), "productivity")
    return item.to_dict() | {"split": "base" if shift == "base" else "variant", "shift": shift}


def export(items: Sequence[Item], shifts: dict[tuple[str, str], str], fmt: str, out: Path,
           name: str = "brittlebench") -> list[Path]:
    """Write `items` to folder `out`; `shifts` maps (family, cell) to its shift kind. Returns the files."""
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
    data = out / f"{name}.jsonl"
    data.write_text("".join(json.dumps({k: r[k] for k in ("id", "family", "cell", "split", "prompt", "target")},
                                       sort_keys=True) + "\n" for r in rows))
    longest = max((len(item.target) for item in items), default=1)
    yaml = out / f"{name}.yaml"
    yaml.write_text(
        f"# lm-evaluation-harness task written by `brittlebench tasks export --format lm-eval`.\n"
        f"# Run: lm_eval --model hf --model_args pretrained=MODEL --include_path {out} --tasks {name}\n"
        f"task: {name}\n"
        f"dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data.resolve()))}\n"
        f"test_split: test\n"
        f"output_type: generate_until\n"
        f"doc_to_text: \"{{{{prompt}}}}\"\n"
        f"doc_to_target: \"{{{{target | trim}}}}\"\n"
        f"target_delimiter: \"\"\n"
        f"generation_kwargs:\n  until: [\"\\n\"]\n  do_sample: false\n  max_gen_toks: {longest + 2}\n"
        f"# exact match as brittlebench scores it: the answer up to its newline, stripped, equals the\n"
        f"# stripped target (pretrained-suite targets start with the space written after 'Answer:')\n"
        f"filter_list:\n  - name: strip\n    filter:\n      - function: remove_whitespace\n"
        f"      - function: take_first\n"
        f"metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        f"metadata:\n  version: 1.0\n")
    return [data, yaml]


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
