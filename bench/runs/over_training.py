"""Predictability over training: the sealed protocol at every checkpoint of a model.

`brittlebench run --model M --at-each-checkpoint --out DIR` runs one ordinary run per checkpoint
(DIR/step-N/, each with the checkpoints before it as its history, and DIR/final/), then writes
DIR/over_training.json and DIR/over_training.html: per track, each predictor's pair AUROC
against the training step, beside the model's variant failure rate. Does a failure become
predictable before it appears?
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

from .. import io
from ..errors import UserError
from ..model.load import resolve
from ..protocol.history import final_step, sources
from ..protocol.spec import RunSpec
from ..protocol.stages import run


@dataclass(frozen=True)
class CheckpointRun:
    """One point of a model's training: the run of that checkpoint (or of the final model)."""

    name: str | None  # the checkpoint's or revision's name, "final"; None: a model without points
    step: int | None
    spec: RunSpec


def checkpoint_runs(spec: RunSpec, out: Path) -> list[CheckpointRun]:
    """The runs of `spec`'s model at every checkpoint and at the end, each into `out`/NAME with the
    checkpoints before it as its history (links under `out`/.history, made here); [] where the model
    has no checkpoints. Planned without loading the model: a zoo card and checkpoints are files."""
    source = resolve(spec.model.name_or_path)[0]
    located = SimpleNamespace(source=source)  # all `sources` and `final_step` read of a handle
    found = sources(spec, located)
    if not found:
        return []
    card_path = Path(source) / "zoo.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    tasks = spec.tasks or (tuple(card["recipe"]["tasks"]) if card and spec.suite is None else None)
    shots = spec.shots if spec.shots is not None else (0 if card else None)  # checkpoints carry no zoo card
    links = Path(out) / ".history"
    planned = []
    points = [(s.name, s.step, s.spec) for s in found] + [("final", final_step(located, found), spec.model)]
    for k, (name, step, model) in enumerate(points):
        if spec.revisions:  # revisions of one HF model: the earlier revisions are the history, as they are
            history = dict(checkpoints=None, revisions=tuple(spec.revisions[:k]) or None)
        else:
            earlier = links / name
            earlier.mkdir(parents=True, exist_ok=True)
            for previous in found[:k]:
                link = earlier / previous.name
                if not link.exists():
                    os.symlink(Path(previous.spec.name_or_path).resolve(), link)
            history = dict(checkpoints=earlier if k else None, revisions=None)
        planned.append(CheckpointRun(name, step, replace(
            spec, model=model, tasks=tasks, shots=shots, out=Path(out) / name,
            resume=(Path(out) / name / "run.json").is_file(), **history)))
    return planned


def at_each_checkpoint(spec: RunSpec, log: Callable[[str], None] = print) -> dict[str, Any]:
    if spec.out is None:
        raise UserError("--at-each-checkpoint needs --out: the folder that will hold one run per checkpoint")
    out = Path(spec.out)
    planned = checkpoint_runs(spec, out)
    if not planned:
        raise UserError(f"{spec.model.name_or_path} has no checkpoints: pass --checkpoints DIR or --revisions, or a "
                        "zoo model trained with checkpoints")
    rows = []
    for point in planned:
        folder = out / point.name
        if (folder / "results.json").is_file():
            results = json.loads((folder / "results.json").read_text())
            log(f"{point.name}: already run, kept")
        else:
            if point.spec.resume is False and folder.exists():
                raise UserError(f"{folder} exists without a run in it: remove it or pass another --out")
            results = run(point.spec, log=log)
        rows.append(row(point, results, point.name))
    return write_summary(out, spec.model.name_or_path, rows)


def write_summary(out: Path, model: str, rows: Sequence[dict]) -> dict[str, Any]:
    """over_training.json and over_training.html in `out`, from the points' `row`s; returns the summary."""
    summary = {"schema_version": 1, "model": model, "points": list(rows)}
    io.write_json(Path(out) / "over_training.json", summary)
    io.write_bytes(Path(out) / "over_training.html", page(summary).encode())
    return summary


def row(point: CheckpointRun, results: dict, run_folder: str) -> dict:
    """One point of the summary: its failure rates and each predictor's pair AUROC. The final
    model's step is the one its run's history ends with, else the one planned; `run_folder`: the
    run's folder, relative to the summary's."""
    step = point.step
    if point.name == "final":
        step = (results.get("history") or [{}])[-1].get("step", step)
    predictors = {n: {"track": p.get("track"), "pair_auroc": (p.get("pair_auroc") or {}).get("value"),
                      "beats": bool((p.get("vs_best_baseline") or {}).get("beats"))}
                  for n, p in results["predictors"].items() if p.get("status") == "ok"}
    reference = results.get("tracks", {}).get("trace", {}).get("reference", {})
    return {"name": point.name, "step": step, "base_failure_rate": results["base_failure_rate"],
            "variant_failure_rate": results["variant_failure_rate"], "predictors": predictors,
            "reference": (reference.get("pair_auroc") or {}).get("value"), "run": run_folder}


def plot(summary: dict) -> str:
    """Per track, pair AUROC against step per predictor, beside the variant failure rate (PNG, data URI)."""
    import base64
    import io as _io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in summary["points"] if p["step"] is not None]
    steps = [p["step"] for p in points]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
    for ax, track in zip(axes, ("blind", "trace")):
        names = sorted({n for p in points for n, v in p["predictors"].items() if v["track"] == track})
        for name in names:
            values = [p["predictors"].get(name, {}).get("pair_auroc") for p in points]
            ax.plot(steps, [v if v is not None else float("nan") for v in values], "o-", ms=3, lw=1.2, label=name)
        if track == "trace":
            ax.plot(steps, [p["reference"] if p["reference"] is not None else float("nan") for p in points], "k:",
                    lw=1.5, label="answer_visible (reference)")
        twin = ax.twinx()
        twin.plot(steps, [p["variant_failure_rate"] for p in points], "--", color="#c00", lw=2, label="variant failure")
        twin.plot(steps, [p["base_failure_rate"] for p in points], "--", color="#888", lw=1.5, label="base failure")
        twin.set_ylim(-0.02, 1.02)
        twin.set_ylabel("failure rate", fontsize=9)
        ax.axhline(0.5, color="#bbb", lw=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("training step")
        ax.set_title(f"{track} track", fontsize=10)
        ax.legend(fontsize=7, loc="lower left", ncol=2)
        twin.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("pair AUROC")
    fig.suptitle(f"predictability over training: {summary['model']}", fontsize=11)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def page(summary: dict) -> str:
    esc = html.escape
    names = sorted({n for p in summary["points"] for n in p["predictors"]})
    head = "".join(f"<th>{esc(h)}</th>" for h in ["checkpoint", "step", "base failure", "variant failure",
                                                   "reference", *names])
    rows = "".join(
        f"<tr><td><a href='{esc(p['run'])}/report.html'>{esc(p['name'])}</a></td><td>{p['step']}</td>"
        f"<td>{p['base_failure_rate']:.3f}</td><td>{p['variant_failure_rate']:.3f}</td>"
        f"<td>{'' if p['reference'] is None else format(p['reference'], '.3f')}</td>"
        + "".join(f"<td>{_auc(p['predictors'].get(n))}</td>" for n in names) + "</tr>" for p in summary["points"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>predictability over training: {esc(summary['model'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}img{{max-width:100%}}</style></head><body>
<h1>Predictability over training</h1>
<p>The sealed protocol at every checkpoint of <code>{esc(summary['model'])}</code>, each with the checkpoints before
it as its history: pair AUROC per predictor (* beats the best baseline of its track) against the step, beside
the model's failure rates.</p>
<img alt="pair AUROC per predictor and failure rate against the training step" src="{plot(summary)}">
<table><tr>{head}</tr>{rows}</table></body></html>
"""


def _auc(p: dict | None) -> str:
    if not p or p["pair_auroc"] is None:
        return "–"
    return f"{p['pair_auroc']:.3f}{'*' if p['beats'] else ''}"
