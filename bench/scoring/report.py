"""A self-contained HTML report of a run folder (plots embedded as PNG data URIs).

Built from the folder's own files (results.json, items, outcomes, predictions), so
`brittlebench report RUN` can rebuild it at any time.
"""
from __future__ import annotations

import base64
import html
import io as _io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .metrics import RANKING, REFERENCE, format_interval

BASELINE_STYLE = {"random": ":", "prompt_length": "--", "confidence": "--"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def load_run(run: Path, results: dict | None = None) -> dict[str, Any]:
    run = Path(run)
    results = results if results is not None else json.loads((run / "results.json").read_text())
    items = {r["id"]: r for r in io.read_jsonl(run / "items" / "variants.jsonl")}
    outcomes = {r["item_id"]: r for r in io.read_jsonl(run / "outcomes.jsonl") if r["split"] == "variant"}
    base_items = {r["id"]: r for r in io.read_jsonl(run / "items" / "base.jsonl")}
    base_outcomes = {r["item_id"]: r for r in io.read_jsonl(run / "outcomes.jsonl") if r["split"] == "base"}
    predictions = io.read_jsonl(run / "predictions.jsonl")
    ids = [p["item_id"] for p in predictions]
    names = [n for n, p in results["predictors"].items() if p["status"] == "ok"]
    scores = {n: np.array([p["scores"][n] for p in predictions]) for n in names}
    failed = np.array([not outcomes[i]["correct"] for i in ids])
    return {"results": results, "ids": ids, "items": items, "failed": failed, "scores": scores,
            "base": [(base_items[i], not o["correct"]) for i, o in base_outcomes.items()]}


def _ranked(results, track: str | None = None) -> list[str]:
    """Scored predictors (of `track`, or all), best ranking figure first."""
    ok = [(n, p) for n, p in results["predictors"].items() if p["status"] == "ok"
          and p.get("auroc", {}).get("value") is not None and track in (None, p.get("track"))]
    return [n for n, _ in sorted(ok, key=lambda kv: -((kv[1].get(RANKING) or {}).get("value") or -1))]


def _roc_plot(data) -> str:
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 5))
    colors = plt.get_cmap("tab20").colors  # distinct colours for up to 20 predictors
    for k, name in enumerate(_ranked(data["results"])):
        fpr, tpr, _ = roc_curve(data["failed"], data["scores"][name])
        auc = data["results"]["predictors"][name].get(RANKING, {}).get("value") or 0.0
        ax.plot(fpr, tpr, BASELINE_STYLE.get(name, "-"), lw=1.4, color=colors[k % len(colors)], label=f"{name} (family AUROC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8)
    ax.set_xlabel("false positive rate (passing items flagged)")
    ax.set_ylabel("true positive rate (failures caught)")
    ax.set_title("ROC: predicting failure on variant items", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def _grid(n: int):
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    plt = _plt()
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


PANELS_PER_TRACK = 4  # the per-predictor panels: each track's best few and its baselines


def _panel_names(results) -> list[str]:
    """Whom the per-predictor panels show: each track's best PANELS_PER_TRACK and its baselines."""
    chosen = []
    for track in ("blind", "trace"):
        baselines = set(results.get("tracks", {}).get(track, {}).get("baselines", ()))
        ranked = _ranked(results, track)
        chosen += [n for n in ranked if n not in chosen and (n in baselines or ranked.index(n) < PANELS_PER_TRACK)]
    return chosen or _ranked(results)


def _reliability_plot(data) -> str:
    from sklearn.calibration import calibration_curve

    names = _panel_names(data["results"])
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names):
        observed, predicted = calibration_curve(data["failed"], data["scores"][name], n_bins=10) \
            if len(set(data["failed"])) > 1 else ([], [])
        ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8)
        ax.plot(predicted, observed, "o-", ms=3)
        ece = data["results"]["predictors"][name]["ece"]["value"]
        ax.set_title(f"{name} (ECE {ece:.2f})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    fig.supxlabel("predicted P(failure)", fontsize=9)
    fig.supylabel("observed failure rate", fontsize=9)
    return _png(fig)


def _cell_plot(data) -> str:
    names = _panel_names(data["results"])
    cells = [c for c in data["results"]["cells"] if c["split"] == "variant"]
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names):
        x = [c["mean_predicted"][name] for c in cells]
        y = [c["failure_rate"] for c in cells]
        ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8)
        ax.scatter(x, y, s=14)  # cells are named in the table below (labels on 26 points per panel only smeared)
        rho = data["results"]["predictors"][name].get("spearman", {}).get("value")
        ax.set_title(f"{name} (ρ {rho:.2f})" if rho is not None else name, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.03, 1.03)
        ax.tick_params(labelsize=7)
    fig.supxlabel("mean predicted P(failure) in the cell", fontsize=9)
    fig.supylabel("observed failure rate", fontsize=9)
    return _png(fig)


def _axes_plots(data) -> list[tuple[str, str]]:
    """Per family: observed failure rate against each numeric axis, base and variant items together."""
    plt = _plt()
    rows: dict[str, list[tuple[dict, bool]]] = {}
    for item, failed in data["base"]:
        rows.setdefault(item["family"], []).append((item["axes"], failed))
    for i, item_id in enumerate(data["ids"]):
        item = data["items"][item_id]
        rows.setdefault(item["family"], []).append((item["axes"], bool(data["failed"][i])))
    out = []
    for family, entries in rows.items():
        numeric = sorted({k for axes, _ in entries for k, v in axes.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if not numeric:
            continue
        fig, axes_list = plt.subplots(1, len(numeric), figsize=(3.2 * len(numeric), 2.6), squeeze=False)
        for ax, axis in zip(axes_list[0], numeric):
            groups: dict[float, list[bool]] = {}
            for axes, failed in entries:
                if axis in axes:
                    groups.setdefault(axes[axis], []).append(failed)
            xs = sorted(groups)
            ax.plot(xs, [np.mean(groups[x]) for x in xs], "o-", ms=4)
            for x in xs:
                ax.annotate(str(len(groups[x])), (x, np.mean(groups[x])), fontsize=6, xytext=(2, -8),
                            textcoords="offset points", color="#777")
            ax.set_xlabel(axis, fontsize=8)
            ax.set_ylim(-0.03, 1.03)
            ax.tick_params(labelsize=7)
        axes_list[0][0].set_ylabel("observed failure rate", fontsize=8)
        fig.suptitle(f"{family}: failure along its axes (numbers: items)", fontsize=9)
        out.append((family, _png(fig)))
    return out


def _prediction_plots(data) -> str:
    if not _ranked(data["results"]):
        return ("<p><b>No predictor can be scored</b>: every variant item had the same outcome "
                f"(variant failure rate {data['results']['variant_failure_rate']:.3f}), so there is nothing to rank.</p>")
    return (f'<h2>ROC curves</h2><img alt="ROC curves" src="{_roc_plot(data)}">'
            f'<h2>Reliability</h2><p>Each track\'s best {PANELS_PER_TRACK} predictors and its baselines.</p>'
            f'<img alt="reliability diagrams" src="{_reliability_plot(data)}">'
            f'<h2>Predicted against observed failure, per cell</h2>'
            f'<img alt="predicted vs observed per cell" src="{_cell_plot(data)}">')


def _rate(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _competence(results: dict) -> str:
    """The families the model cannot do at all, in a warning the reader sees before the tables."""
    competence = results.get("competence") or {}
    if not competence.get("note"):
        return ""
    rates = ", ".join(f"{html.escape(name)} {rate:.2f}" for name, rate in competence["base_failure"].items())
    return (f'</p><p style="background:#fff3cd;border:1px solid #e0c36a;padding:6px 10px"><b>Warning:</b> '
            f"{html.escape(competence['note'])}. Base-region failure per family: {rates}.")


def _learning_curves(results: dict) -> str:
    """The base region's learning curves (accuracy per base cell at each checkpoint), where the run
    read the model's training history; '' otherwise."""
    history = results.get("history") or []
    if len(history) < 2 or any(h["step"] is None for h in history):
        return ""
    steps = [h["step"] for h in history]
    families = sorted({cell.split("/", 1)[0] for cell in history[-1]["base_accuracy"]})
    fig, axes = _grid(len(families))
    for ax, family in zip(axes, families):
        for cell in sorted(c for c in history[-1]["base_accuracy"] if c.startswith(family + "/")):
            ax.plot(steps, [h["base_accuracy"][cell] for h in history], "o-", ms=3, label=cell.split("/", 1)[1])
        ax.set_title(family, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.supxlabel("training step", fontsize=9)
    fig.supylabel("base accuracy", fontsize=9)
    names = ", ".join(f"{h['name']} ({h['step']})" for h in history)
    return (f"<h2>Base learning curves</h2><p>The base region at each checkpoint the history predictors read: {html.escape(names)}.</p>"
            f"<img alt='base accuracy per cell against the training step' src='{_png(fig)}'>")


def _fmt(m: dict | None, signed: bool = False) -> str:
    return format_interval(m, signed, around=lambda text: f"<small>{text}</small>")


TRACK_NOTES = {
    "blind": "Blind track: no forward pass of the model on any variant item reached these predictors (the "
             "variants' text and axes, the architecture, the base region's traces and outcomes).",
    "trace": "Trace track: these also read the variants' prompt-only traces, which hold the model's next-token "
             "prediction at the answer position; the reference row shows how well reading that answer predicts "
             "failure (computed by the runner after sealing, from the targets no predictor holds).",
}


def _track_table(results: dict, track: str) -> str:
    esc = html.escape
    info = results.get("tracks", {}).get(track)
    names = _ranked(results, track) if info else []
    if not names:
        return ""
    baselines = set(info.get("baselines", ()))
    names = [n for n in _ranked(results) if n in names or n in baselines]  # a track's baselines are shown in it
    reference = info.get("reference")
    rows = []
    for name in names + ([REFERENCE] if reference else []):
        p = reference if name == REFERENCE else results["predictors"][name]
        own = name != REFERENCE and p.get("track") == track  # a blind baseline in the trace table: figures only
        vs = p.get("vs_best_baseline", {}) if own else {}
        role = "reference" if name == REFERENCE else f"{p.get('track')} baseline" if name in baselines else ""
        diff = "" if not own else "best baseline" if name == vs.get("baseline") else _fmt(vs.get("difference"), signed=True)
        ref = _fmt((p.get("vs_reference") or {}).get("difference"), signed=True) if reference and own else ""
        rows.append(f"<tr><td>{esc(name)}</td><td>{role}</td><td>{_fmt(p.get(RANKING))}</td><td>{diff}</td>"
                    f"<td>{'✔' if vs.get('beats') else ''}</td>" + (f"<td>{ref}</td>" if reference else "") +
                    f"<td>{_fmt(p.get('auroc'))}</td><td>{_fmt(p.get('family_spearman'))}</td>"
                    f"<td>{_fmt(p.get('spearman'))}</td><td>{_fmt(p.get('brier'))}</td><td>{_fmt(p.get('ece'))}</td></tr>")
    head = ("<tr><th>predictor</th><th></th><th>family AUROC</th><th>Δ best baseline</th><th>beats</th>"
            + ("<th>Δ reference</th>" if reference else "")
            + "<th>pooled AUROC</th><th>cell ρ within families</th><th>cell ρ</th><th>Brier</th><th>ECE</th></tr>")
    return f"<h3>{track} track</h3><p>{esc(TRACK_NOTES[track])}</p><table>{head}{''.join(rows)}</table>"


def render(data: dict[str, Any]) -> str:
    esc = html.escape
    results = data["results"]
    model = results["provenance"]["model"]
    tables = "".join(_track_table(results, track) for track in ("blind", "trace"))
    failed = [n for n, p in results["predictors"].items() if p["status"] != "ok"]
    if failed:
        tables += "<p>Failed: " + "; ".join(f"<code>{esc(n)}</code>: {esc(results['predictors'][n].get('reason', ''))}"
                                           for n in failed) + "</p>"
    cells = "".join(
        f"<tr><td>{esc(c['family'])}</td><td>{esc(c['cell'])}</td><td>{esc(c['shift'])}</td><td>{c['n']}</td>"
        f"<td>{c['failure_rate']:.3f}</td></tr>" for c in results["cells"])
    family_plots = "".join(f"<img alt='failure along the axes of {esc(f)}' src='{src}'>" for f, src in _axes_plots(data))
    card = model["card"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>brittlebench report: {esc(model['spec']['name_or_path'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0;font-size:14px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
th{{background:#f2f2f2}}code{{background:#f5f5f5;padding:1px 4px}}img{{max-width:100%;display:block;margin:1em 0}}
small{{color:#666}}</style></head><body>
<h1>brittlebench report</h1>
<p>Model <code>{esc(model['spec']['name_or_path'])}</code> (fingerprint <code>{esc(model['fingerprint'])}</code>):
{esc(card['model_type'])}, {card['n_layers']} layers, d_model {card['d_model']}, {card['n_heads']} heads,
{esc(card['positional_encoding'])} positions. Protocol <code>{esc(results['provenance']['protocol'])}</code>,
seed {results['provenance']['seed']}, {results['provenance'].get('shots', 0)}-shot prompts,
{results['n_base']} base and {results['n_variant']} variant items (base failure rate {_rate(results.get('base_failure_rate'))},
variant failure rate {results['variant_failure_rate']:.3f}).{_competence(results)}
Predictions were sealed (SHA-256 <code>{esc(results['predictions_sha256'][:16])}…</code>) before any variant was evaluated.</p>
<h2>Predictors</h2>
<p>Ranked by family AUROC: each family's AUROC (where both outcomes occur), averaged over families, so that
knowing which family is hard earns nothing; 95% bootstrap intervals (items resampled within families).
Δ is the family AUROC minus the best baseline's of the same track, paired; ✔ where its interval excludes
zero: only there does a predictor beat the baselines.</p>
{tables}
{_prediction_plots(data)}
{_learning_curves(results)}
<h2>Observed failure along each family's axes</h2>{family_plots}
<h2>Cells</h2>
<table><tr><th>family</th><th>cell</th><th>shift</th><th>n</th><th>failure rate</th></tr>{cells}</table>
</body></html>
"""


def write_report(run: Path, path: Path | None = None, results: dict | None = None) -> Path:
    """Write the report of run folder `run` (its results.json, unless `results` are given)."""
    path = Path(path) if path else Path(run) / "report.html"
    io.write_bytes(path, render(load_run(run, results)).encode())
    return path
