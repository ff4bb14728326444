"""A self-contained HTML report (plots embedded as PNG data URIs)."""
from __future__ import annotations

import base64
import html
import io as _io
from pathlib import Path
from typing import Any

from . import io


def _png(fig) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _failure_plot(cells: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 0.55 * len(cells)), 3.2))
    labels = [f"{c['family']}/{c['cell']}" for c in cells]
    colors = ["#7a9cc6" if c["split"] == "base" else "#d9822b" for c in cells]
    ax.bar(range(len(cells)), [c["failure_rate"] for c in cells], color=colors)
    ax.set_xticks(range(len(cells)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("observed failure rate")
    ax.set_ylim(0, 1)
    ax.set_title("Failure rate per cell (blue: base, orange: variant)", fontsize=10)
    data = _png(fig)
    plt.close(fig)
    return data


def render(results: dict[str, Any]) -> str:
    esc = html.escape
    model = results["provenance"]["model"]
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{esc(p['status'])}</td><td>{_fmt(p.get('auroc'))}</td>"
        f"<td>{esc(', '.join(p.get('reads', [])) or '-')}</td></tr>"
        for name, p in results["predictors"].items())
    cells = "".join(
        f"<tr><td>{esc(c['family'])}</td><td>{esc(c['cell'])}</td><td>{esc(c['shift'])}</td><td>{c['n']}</td>"
        f"<td>{c['failure_rate']:.3f}</td></tr>" for c in results["cells"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>brittlebench report: {esc(model['spec']['name_or_path'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}
th{{background:#f2f2f2}}code{{background:#f5f5f5;padding:1px 4px}}</style></head><body>
<h1>brittlebench report</h1>
<p>Model <code>{esc(model['spec']['name_or_path'])}</code>, fingerprint <code>{esc(model['fingerprint'])}</code>,
{model['card']['n_layers']} layers, d_model {model['card']['d_model']}, {esc(model['card']['positional_encoding'])} positions.
Protocol <code>{esc(results['provenance']['protocol'])}</code>, seed {results['provenance']['seed']},
{results['n_base']} base and {results['n_variant']} variant items. Predictions sealed with SHA-256
<code>{esc(results['predictions_sha256'][:16])}…</code> before evaluation.</p>
<h2>Predictors</h2>
<table><tr><th>predictor</th><th>status</th><th>AUROC [95% CI]</th><th>reads</th></tr>{rows}</table>
<h2>Observed failure per cell</h2>
<img alt="failure rate per cell" src="{_failure_plot(results['cells'])}">
<table><tr><th>family</th><th>cell</th><th>shift</th><th>n</th><th>failure rate</th></tr>{cells}</table>
</body></html>
"""


def _fmt(interval: dict | None) -> str:
    if not interval or interval.get("value") is None:
        return "n/a"
    return f"{interval['value']:.3f} [{interval['lo']:.3f}, {interval['hi']:.3f}]"


def write_report(path: Path, results: dict[str, Any]) -> None:
    io.write_bytes(path, render(results).encode())
