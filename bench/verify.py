"""`brittlebench verify RUN`: were the predictions sealed as recorded?"""
from __future__ import annotations

import json
from pathlib import Path

from . import io
from .errors import UserError


def verify(run: Path) -> tuple[bool, list[str]]:
    if not run.is_dir():
        raise UserError(f"no run folder at {run}: pass the folder that 'brittlebench run' wrote")
    paths = {name: run / name for name in ("predictions.jsonl", "predictions.sha256", "results.json")}
    for name, path in paths.items():
        if not path.is_file():
            raise UserError(f"{run} has no {name}: it is not a finished brittlebench run")
    actual = io.sha256(paths["predictions.jsonl"].read_bytes())
    sealed = paths["predictions.sha256"].read_text().split()[0]
    try:
        recorded = json.loads(paths["results.json"].read_text())["predictions_sha256"]
    except (json.JSONDecodeError, KeyError):
        raise UserError(f"{paths['results.json']} is corrupted: it is not a brittlebench results file") from None
    lines = [f"predictions.jsonl sha256 {actual}",
             f"predictions.sha256       {sealed} {'ok' if sealed == actual else 'MISMATCH'}",
             f"results.json records     {recorded} {'ok' if recorded == actual else 'MISMATCH'}"]
    return sealed == actual == recorded, lines
