"""A self-contained, offline HTML report of a run folder: hand-written inline SVG charts and a little
inline JavaScript (legend isolation, predictor selectors, the item browser); no external file, no CDN.

Built from the folder's own files (results.json, items, outcomes, predictions), so
`brittlebench report RUN` can rebuild it at any time. Every section is a `<section data-section>`;
the page records any script error on `<html data-js-errors>` and sets `<html data-ready>` once its
script has run, which scripts/render_report.py checks in headless Chromium. The page's style and
script are page.css and page.js beside this file; `text` prints the same tables in the terminal.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ... import io
from ..results import Results
from . import sections
from .axes import axes_section, comparable_axis_rates
from .charts import learning_curves, prediction_sections
from .sections import flags
from .svg import colours, esc

__all__ = ["colours", "comparable_axis_rates", "flags", "load_run", "render", "write_report"]


def load_run(run: Path, results: dict | None = None) -> dict[str, Any]:
    """What the report draws on: the results (`Results`), the variant items in prediction order with
    their outcomes and every scored predictor's scores, and the base items with theirs."""
    run = Path(run)
    results = Results.of(results) if results is not None else Results.read(run / "results.json")
    items = {r["id"]: r for r in io.read_jsonl(run / "items" / "variants.jsonl")}
    outcomes = {r["item_id"]: r for r in io.read_jsonl(run / "outcomes.jsonl")}
    base_items = io.read_jsonl(run / "items" / "base.jsonl")
    predictions = io.read_jsonl(run / "predictions.jsonl")
    ids = [p["item_id"] for p in predictions]
    names = [n for n, p in results.predictors.items() if p.status == "ok"]
    scores = {n: np.array([p["scores"][n] for p in predictions], dtype=np.float64) for n in names}
    failed = np.array([not outcomes[i]["correct"] for i in ids], dtype=bool)
    scored = set(results.competence.scored_families or {items[i]["family"] for i in ids})
    return {"results": results, "ids": ids, "items": items, "failed": failed, "scores": scores,
            "outcomes": outcomes, "scored": np.array([items[i]["family"] in scored for i in ids], dtype=bool),
            "base": [(item, not outcomes[item["id"]]["correct"]) for item in base_items if item["id"] in outcomes]}


ERRORS = ("window.onerror=function(m,s,l){var r=document.documentElement;"
          "r.setAttribute('data-js-errors',(r.getAttribute('data-js-errors')||'')+m+' (line '+l+')\\n');};")

SECTIONS = (("summary", "Summary"), ("predictors", "Predictors"), ("claims", "Claims"), ("unscorable", "Predictions"),
            ("roc", "ROC"), ("reliability", "Reliability"), ("cells-predicted", "Cells: predicted"),
            ("families", "Per family"), ("axes", "Axes"), ("learning-curves", "Learning curves"), ("cells", "Cells"),
            ("items", "Items"), ("metadata", "Metadata"))


def render(data: dict[str, Any]) -> str:
    results = data["results"]
    name = results.provenance["model"]["spec"]["name_or_path"]
    body = "".join((sections.summary(results), sections.predictors(results), sections.claims(results),
                    prediction_sections(data), sections.families(results), axes_section(data),
                    learning_curves(results), sections.cells(results), sections.items(data),
                    sections.metadata(results)))
    present = [(key, title) for key, title in SECTIONS if f'data-section="{key}"' in body]
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in present)
    static = resources.files(__package__)
    css, script = (static.joinpath(f"page.{ext}").read_text(encoding="utf-8") for ext in ("css", "js"))
    return f"""<!doctype html>
<html lang="en" data-sections="{' '.join(key for key, _ in present)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>brittlebench report: {esc(name)}</title><script>{ERRORS}</script><style>
{css}</style></head><body>
<nav>{nav}</nav>
{body}
<script>
{script}</script>
</body></html>
"""


def write_report(run: Path, path: Path | None = None, results: dict | None = None) -> Path:
    """Write the report of run folder `run` (its results.json, unless `results` are given)."""
    path = Path(path) if path else Path(run) / "report.html"
    io.write_bytes(path, render(load_run(run, results)).encode())
    return path
