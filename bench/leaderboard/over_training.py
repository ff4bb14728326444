"""Predictability over training: the sealed protocol at every checkpoint of a model.

`brittlebench run --model M --at-each-checkpoint --out DIR` runs one ordinary run per checkpoint
(DIR/step-N/, each with the checkpoints before it as its history, and DIR/final/), then writes
DIR/over_training.json and DIR/over_training.html: per track, each predictor's family AUROC
against the training step, beside the model's variant failure rate. Does a failure become
predictable before it appears?
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from .. import io
from ..errors import UserError
from ..model.load import load_model
from ..protocol.history import sources
from ..protocol.spec import RunSpec
from ..protocol.stages import run, zoo_card


def at_each_checkpoint(spec: RunSpec, log: Callable[[str], None] = print) -> dict[str, Any]:
    if spec.out is None:
        raise UserError("--at-each-checkpoint needs --out: the folder that will hold one run per checkpoint")
    out = Path(spec.out)
    handle = load_model(spec.model)
    found = sources(spec, handle)
    if not found:
        raise UserError(f"{spec.model.name_or_path} has no checkpoints: pass --checkpoints DIR or --revisions, or a "
                        "zoo model trained with checkpoints")
    card = zoo_card(handle)
    tasks = spec.tasks or (tuple(card["recipe"]["tasks"]) if card else None)
    shots = spec.shots if spec.shots is not None else (0 if card else None)
    links = out / ".history"
    rows = []
    points = [(s.name, s.step, s.spec) for s in found] + [("final", None, spec.model)]
    for k, (name, step, model) in enumerate(points):
        earlier = links / name
        earlier.mkdir(parents=True, exist_ok=True)
        for previous in found[:k]:
            link = earlier / previous.name
            if not link.exists():
                os.symlink(Path(previous.spec.name_or_path).resolve(), link)
        run_spec = replace(spec, model=model, tasks=tasks, shots=shots, out=out / name,
                           checkpoints=earlier if k else None, revisions=None,
                           resume=(out / name / "run.json").is_file())
        if (out / name / "results.json").is_file():
            results = json.loads((out / name / "results.json").read_text())
            log(f"{name}: already run, kept")
        else:
            if run_spec.resume is False and (out / name).exists():
                raise UserError(f"{out / name} exists without a run in it: remove it or pass another --out")
            results = run(run_spec, log=log)
        rows.append(_row(name, step if name != "final" else (results.get("history") or [{}])[-1].get("step"), results))
    summary = {"schema_version": 1, "model": spec.model.name_or_path, "points": rows}
    io.write_json(out / "over_training.json", summary)
    io.write_bytes(out / "over_training.html", page(summary).encode())
    return summary


def _row(name: str, step: int | None, results: dict) -> dict:
    predictors = {n: {"track": p.get("track"), "family_auroc": (p.get("family_auroc") or {}).get("value"),
                      "beats": bool((p.get("vs_best_baseline") or {}).get("beats"))}
                  for n, p in results["predictors"].items() if p.get("status") == "ok"}
    reference = results.get("tracks", {}).get("trace", {}).get("reference", {})
    return {"name": name, "step": step, "base_failure_rate": results["base_failure_rate"],
            "variant_failure_rate": results["variant_failure_rate"], "predictors": predictors,
            "reference": (reference.get("family_auroc") or {}).get("value"), "run": name}


def plot(summary: dict) -> str:
    """Per track, family AUROC against step per predictor, beside the variant failure rate (PNG, data URI)."""
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
            values = [p["predictors"].get(name, {}).get("family_auroc") for p in points]
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
    axes[0].set_ylabel("family AUROC")
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
it as its history: family AUROC per predictor (* beats the best baseline of its track) against the step, beside
the model's failure rates.</p>
<img alt="family AUROC per predictor and failure rate against the training step" src="{plot(summary)}">
<table><tr>{head}</tr>{rows}</table></body></html>
"""


def _auc(p: dict | None) -> str:
    if not p or p["family_auroc"] is None:
        return "–"
    return f"{p['family_auroc']:.3f}{'*' if p['beats'] else ''}"
