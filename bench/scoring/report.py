"""A self-contained, offline HTML report of a run folder: hand-written inline SVG charts and a little
inline JavaScript (legend isolation, predictor selectors, the item browser); no external file, no CDN.

Built from the folder's own files (results.json, items, outcomes, predictions), so
`brittlebench report RUN` can rebuild it at any time. Every section is a `<section data-section>`;
the page records any script error on `<html data-js-errors>` and sets `<html data-ready>` once its
script has run, which scripts/render_report.py checks in headless Chromium.
"""
from __future__ import annotations

import hashlib
import html
import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .metrics import ECE_BINS, RANKING, REFERENCE, SANITY, SATURATED_SHARE, format_interval, wilson

esc = html.escape

# -- loading ---------------------------------------------------------------------------------


def load_run(run: Path, results: dict | None = None) -> dict[str, Any]:
    """What the report draws on: the results, the variant items in prediction order with their outcomes
    and every scored predictor's scores, and the base items with theirs."""
    run = Path(run)
    results = results if results is not None else json.loads((run / "results.json").read_text())
    items = {r["id"]: r for r in io.read_jsonl(run / "items" / "variants.jsonl")}
    outcomes = {r["item_id"]: r for r in io.read_jsonl(run / "outcomes.jsonl")}
    base_items = io.read_jsonl(run / "items" / "base.jsonl")
    predictions = io.read_jsonl(run / "predictions.jsonl")
    ids = [p["item_id"] for p in predictions]
    names = [n for n, p in results["predictors"].items() if p["status"] == "ok"]
    scores = {n: np.array([p["scores"][n] for p in predictions], dtype=np.float64) for n in names}
    failed = np.array([not outcomes[i]["correct"] for i in ids], dtype=bool)
    scored = set((results.get("competence") or {}).get("scored_families") or {items[i]["family"] for i in ids})
    return {"results": results, "ids": ids, "items": items, "failed": failed, "scores": scores,
            "outcomes": outcomes, "scored": np.array([items[i]["family"] in scored for i in ids], dtype=bool),
            "base": [(item, not outcomes[item["id"]]["correct"]) for item in base_items if item["id"] in outcomes]}


def _ranked(results, track: str | None = None) -> list[str]:
    """Scored predictors (of `track`, or all), best ranking figure first."""
    ok = [(n, p) for n, p in results["predictors"].items() if p["status"] == "ok"
          and (p.get("auroc") or {}).get("value") is not None and track in (None, p.get("track"))]
    return [n for n, _ in sorted(ok, key=lambda kv: -((kv[1].get(RANKING) or {}).get("value") or -1))]


def _track_names(results, track: str) -> list[str]:
    """A track's rows: its scored predictors and its baselines (a blind baseline is shown in the trace
    track too), best ranking figure first."""
    info = (results.get("tracks") or {}).get(track)
    own = _ranked(results, track) if info else []
    if not own:
        return []
    baselines = set(info.get("baselines", ()))
    return [n for n in _ranked(results) if n in own or n in baselines]


# -- numbers ---------------------------------------------------------------------------------

def roc_curve(failed: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at each distinct threshold, highest score first, from (0, 0) to
    (1, 1); a run of tied scores is one diagonal step."""
    order = np.argsort(-score, kind="mergesort")
    s, y = score[order], failed[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


ROC_POINTS = 400  # points drawn per curve: a step of at most 1/200 of the axes


def _thin(fpr: np.ndarray, tpr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ROC_POINTS points evenly spaced along the curve (its length is fpr + tpr), so a curve of
    thousands of thresholds stays a few kilobytes and keeps its steps at screen resolution."""
    if len(fpr) <= ROC_POINTS:
        return fpr, tpr
    t = np.r_[0.0, np.cumsum(np.diff(fpr) + np.diff(tpr))]
    grid = np.linspace(0.0, t[-1], ROC_POINTS)
    return np.interp(grid, t, fpr), np.interp(grid, t, tpr)


def reliability_bins(failed: np.ndarray, score: np.ndarray) -> list[tuple[int, float, int]]:
    """Per non-empty bin of predicted probability (the ECE's equal-width bins): items, mean predicted
    probability and failures."""
    which = np.searchsorted(np.linspace(0.0, 1.0, ECE_BINS + 1)[1:-1], score)
    return [(int(m.sum()), float(score[m].mean()), int(failed[m].sum()))
            for m in (which == b for b in range(ECE_BINS)) if m.any()]


def _key(value) -> str:
    return json.dumps(value, sort_keys=True)


def _show(value) -> str:
    return value if isinstance(value, str) else _key(value)


def _order(value):
    """Numbers in order, then everything else by its text."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, _show(value))


def _base_values(keys: list[dict[str, str]], entries: list[dict], axis: str) -> list[set[str]]:
    """The candidate base-region settings of `axis` (as value keys): where the axis varies inside a base
    cell (a range such as addition's carry), the set of values the base items take, as one candidate;
    else each of its most common base values (several where they tie)."""
    base = [(k[axis], e["cell"]) for k, e in zip(keys, entries) if e["base"]]
    if not base:  # no base region to hold the axis at: any value
        return [{k[axis] for k in keys}]
    per_cell: dict[str, set[str]] = {}
    for value, cell in base:
        per_cell.setdefault(cell, set()).add(value)
    if any(len(values) > 1 for values in per_cell.values()):
        return [set().union(*per_cell.values())]
    counts = Counter(value for value, _ in base)
    top = max(counts.values(), default=0)
    return [{value} for value, c in sorted(counts.items()) if c == top]


def comparable_axis_rates(entries: list[dict], axes: list[str]) -> dict[str, dict]:
    """Failure along each axis of one family, within comparable cells: for `axis`, only the items (base
    and variant; each {"axes", "failed", "base", "cell"}) whose other axes all sit at the base region's
    values, so that a shift along another axis cannot masquerade as this one's (pooled, multihop's
    hops=2 would carry every 6-distractor variant). Where the base region's most common values tie,
    the setting that shows the most values of `axis` (then the most items) is used.

    Per axis: {"held": {other axis: [values]}, "points": [(value, n, failures, n_base)]}, values in order."""
    keys = [{a: _key(e["axes"].get(a)) for a in axes} for e in entries]
    candidates = {a: _base_values(keys, entries, a) for a in axes}
    out = {}
    for axis in axes:
        others = [a for a in axes if a != axis]
        best = None
        for setting in itertools.product(*(candidates[a] for a in others)):
            groups: dict[str, list[dict]] = {}
            for k, e in zip(keys, entries):
                if all(k[a] in allowed for a, allowed in zip(others, setting)):
                    groups.setdefault(k[axis], []).append(e)
            rank = (len(groups), sum(map(len, groups.values())))
            if best is None or rank > best[0]:
                best = rank, setting, groups
        _, setting, groups = best
        values = sorted((json.loads(k) for k in groups), key=_order)
        held = {a: sorted((json.loads(v) for v in allowed), key=_order) for a, allowed in zip(others, setting)}
        out[axis] = {"held": held, "points": [(v, len(g), sum(e["failed"] for e in g), sum(e["base"] for e in g))
                                              for v in values for g in [groups[_key(v)]]]}
    return out


# -- colours ---------------------------------------------------------------------------------

#: A qualitative palette of well-separated colours, all dark enough for a thin line on white.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#b8860b", "#00441b", "#67000d", "#3f007d", "#ff1493",
           "#000000", "#005f73", "#66a61e", "#fa8072", "#c49c94", "#6b6ecf")


def colours(names) -> dict[str, str]:
    """A colour per name from a hash of the name, never from its rank, so a predictor keeps its colour
    whatever its score and from run to run. A name whose colour is taken moves to the next free one
    (names taken alphabetically), so colours are distinct and depend only on the set of names."""
    chosen: dict[str, str] = {}
    for name in sorted(set(names)):
        k = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(PALETTE)
        for step in range(len(PALETTE)):
            if PALETTE[(k + step) % len(PALETTE)] not in chosen.values():
                k = (k + step) % len(PALETTE)
                break
        chosen[name] = PALETTE[k]
    return chosen


# -- SVG -------------------------------------------------------------------------------------


class Frame:
    """A chart: data ranges mapped onto a `width` × `height` SVG inside margins that hold the axes'
    labels. Its SVG scales with the page (viewBox) and is never wider than `width` pixels."""

    def __init__(self, width: int, height: int, xs=(0.0, 1.0), ys=(0.0, 1.0), left=52, right=14, top=30,
                 bottom=46):
        self.width, self.height, self.xs, self.ys = width, height, xs, ys
        self.left, self.right, self.top, self.bottom = left, right, top, bottom

    def x(self, v: float) -> float:
        share = (v - self.xs[0]) / ((self.xs[1] - self.xs[0]) or 1)
        return self.left + share * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        share = (v - self.ys[0]) / ((self.ys[1] - self.ys[0]) or 1)
        return self.height - self.bottom - share * (self.height - self.top - self.bottom)

    def path(self, xs, ys) -> str:
        return "M" + " L".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in zip(xs, ys))

    def axes(self, xlabel: str, ylabel: str, xticks=None, yticks=None) -> str:
        """The frame, gridlines and tick labels; ticks are (value, label) pairs, quarters of 0..1 by default."""
        quarters = [(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]
        x0, x1, y0, y1 = self.x(self.xs[0]), self.x(self.xs[1]), self.y(self.ys[0]), self.y(self.ys[1])
        parts = [f'<rect class="frame" x="{x0:.1f}" y="{y1:.1f}" width="{x1 - x0:.1f}" height="{y0 - y1:.1f}"/>']
        for v, label in yticks if yticks is not None else quarters:
            parts.append(f'<line class="grid" x1="{x0:.1f}" x2="{x1:.1f}" y1="{self.y(v):.1f}" y2="{self.y(v):.1f}"/>'
                         f'<text x="{x0 - 5:.1f}" y="{self.y(v) + 4:.1f}" text-anchor="end">{esc(label)}</text>')
        for v, label in xticks if xticks is not None else quarters:
            lines = "".join(f'<tspan x="{self.x(v):.1f}" dy="{0 if i == 0 else 14}">{esc(t)}</tspan>'
                            for i, t in enumerate(label.split("\n")))
            parts.append(f'<text x="{self.x(v):.1f}" y="{y0 + 16:.1f}" text-anchor="middle">{lines}</text>')
        parts.append(f'<text class="label" x="{(x0 + x1) / 2:.1f}" y="{self.height - 6}" text-anchor="middle">'
                     f'{esc(xlabel)}</text><text class="label" transform="rotate(-90)" x="{-(y0 + y1) / 2:.1f}" '
                     f'y="14" text-anchor="middle">{esc(ylabel)}</text>')
        return "".join(parts)

    def diagonal(self) -> str:
        return f'<path class="diagonal" d="{self.path((0, 1), (0, 1))}"/>'

    def svg(self, label: str, body: str, heading: str = "") -> str:
        """The chart: `label` is its accessible name and tooltip; `heading` is drawn above the frame."""
        top = f'<text class="heading" x="{self.left}" y="18">{esc(heading)}</text>' if heading else ""
        return (f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" style="max-width:{self.width}px" '
                f'role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>{top}{body}</svg>')


def _dot(frame: Frame, x: float, y: float, r: float, colour: str, tip: str, hollow: bool = False) -> str:
    """A data point with its numbers as a tooltip."""
    return (f'<circle class="mark" cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="{r:.1f}" '
            f'fill="{"#fff" if hollow else colour}" stroke="{colour}"><title>{esc(tip)}</title></circle>')


def _whisker(frame: Frame, x: float, lo: float, hi: float, colour: str) -> str:
    return (f'<line class="whisker" x1="{frame.x(x):.1f}" x2="{frame.x(x):.1f}" y1="{frame.y(lo):.1f}" '
            f'y2="{frame.y(hi):.1f}" stroke="{colour}"/>')


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}" data-section="{key}"><h2>{esc(title)}</h2>{body}</section>'


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt(m: dict | None, signed: bool = False) -> str:
    """A table's figure with its interval on a line of its own."""
    return format_interval(m, signed, around=lambda text: f"<br><small>{text}</small>")


# -- the header ------------------------------------------------------------------------------


def _competence(results: dict) -> str:
    """The families the model cannot do at all, in a warning the reader sees before the tables."""
    competence = results.get("competence") or {}
    if not competence.get("note"):
        return ""
    rates = ", ".join(f"{esc(name)} {rate:.2f}" for name, rate in competence["base_failure"].items())
    return (f'<p class="warning"><b>Warning:</b> {esc(competence["note"])}. '
            f"Base-region failure per family: {rates}.</p>")


def _skipped(results: dict) -> str:
    """The families and cells the model's context could not hold (left out before any evaluation), in
    one line, where there are any."""
    skipped = results.get("skipped") or {}
    if not skipped:
        return ""
    named = "; ".join(f"<code>{esc(name)}</code> ({esc(why)})" for name, why in skipped.items())
    return f'<p class="skipped"><b>Skipped</b>, longer than the model\'s context: {named}.</p>'


def _summary(results: dict) -> str:
    prov = results["provenance"]
    model, spec = prov["model"], results.get("spec") or {}
    card = model.get("card") or {}
    name = model["spec"]["name_or_path"]
    shape = esc(", ".join((str(card.get("model_type", "?")), f"{card.get('n_layers', '?')} layers",
                           f"d_model {card.get('d_model', '?')}", f"{card.get('n_heads', '?')} heads",
                           f"{card.get('positional_encoding', '?')} positions")))
    suite = f", suite <code>{esc(spec['suite'])}</code>" if spec.get("suite") else ""
    base, variant = _num(results.get("base_failure_rate")), _num(results.get("variant_failure_rate"))
    stats = "".join(f'<div class="stat"><span>{label}</span><b>{value}</b></div>' for label, value in (
        ("base failure rate", base), ("variant failure rate", variant),
        ("base items", results["n_base"]), ("variant items", results["n_variant"])))
    return (f'<header id="summary" data-section="summary"><h1>brittlebench report: {esc(Path(name).name or name)}</h1>'
            f'<div class="stats">{stats}</div>'
            f"<p>Model <code>{esc(name)}</code> (fingerprint <code>{esc(model['fingerprint'])}</code>): {shape}. "
            f"Protocol <code>{esc(prov['protocol'])}</code>, seed {esc(str(prov['seed']))}, "
            f"{esc(str(prov.get('shots', 0)))}-shot prompts{suite}; {results['n_base']} base and "
            f"{results['n_variant']} variant items (base failure rate {base}, variant failure rate {variant}). "
            f"Predictions were sealed (SHA-256 <code>{esc(results['predictions_sha256'][:16])}…</code>) before any "
            f"variant was evaluated.</p>{_skipped(results)}{_competence(results)}</header>")


# -- the predictor tables --------------------------------------------------------------------

TRACK_NOTES = {
    "blind": "Blind track: no forward pass of the model on any variant item reached these predictors (the "
             "variants' text and axes, the architecture, the base region's traces and outcomes).",
    "trace": "Trace track: these also read the variants' prompt-only traces, which hold the model's next-token "
             "prediction at the answer position; the reference row shows how well reading that answer predicts "
             "failure (computed by the runner after sealing, from the targets no predictor holds).",
}


def flags(p: dict, own: bool = True) -> list[str]:
    """What a reader must not miss about a row: a ranking figure whose whole interval lies below chance
    (the predictor ranks failures backwards), or, for a track's own predictor, a difference from the
    best baseline whose whole interval lies below zero."""
    out = []
    ranking = p.get(RANKING) or {}
    if ranking.get("hi") is not None and ranking["hi"] < 0.5:
        out.append("below chance (reversed signal)")
    difference = (p.get("vs_best_baseline") or {}).get("difference") or {}
    if own and difference.get("hi") is not None and difference["hi"] < 0:
        out.append("worse than baseline")
    if p.get("same_ranking_as"):
        out.append(f"same ranking as {p['same_ranking_as']}")
    if (p.get("saturation") or 0) >= SATURATED_SHARE:
        out.append(f"saturated: one value on {p['saturation']:.0%} of items")
    return out


def _track_table(results: dict, track: str) -> str:
    names = _track_names(results, track)
    if not names:
        return ""
    info = results["tracks"][track]
    baselines = set(info.get("baselines", ()))
    reference = info.get("reference")
    rows = []
    for name in names + ([REFERENCE] if reference else []):
        p = reference if name == REFERENCE else results["predictors"][name]
        own = name != REFERENCE and p.get("track") == track  # a blind baseline in the trace table: figures only
        vs = p.get("vs_best_baseline", {}) if own else {}
        role = ("reference" if name == REFERENCE else f"{p.get('track')} baseline" if name in baselines
                else "sanity row" if name == SANITY else "")
        beats = ' <b class="beats">✔ beats</b>' if vs.get("beats") else ""
        diff = ("" if not own else "best baseline" if name == vs.get("baseline")
                else _fmt(vs.get("difference"), signed=True) + beats)
        ref = _fmt((p.get("vs_reference") or {}).get("difference"), signed=True) if reference and own else ""
        tags = (f' <span class="role">{role}</span>' if role else "") + "".join(
            f' <span class="flag">{esc(f)}</span>' for f in flags(p, own and name not in baselines and name != SANITY))
        css = "reference" if name == REFERENCE else "baseline" if name in baselines else ""
        figures = [_fmt(p.get(RANKING)), diff] + ([ref] if reference else []) + [
            _fmt(p.get(m)) for m in ("family_auroc", "auroc", "family_spearman", "spearman", "brier", "ece")]
        rows.append(f'<tr class="{css}"><td><b>{esc(name)}</b>{tags}</td>'
                    + "".join(f"<td>{f}</td>" for f in figures) + "</tr>")
    head = ("<tr><th>predictor</th><th>pair AUROC</th><th>Δ best baseline</th>"
            + ("<th>Δ reference</th>" if reference else "")
            + "<th>mean family AUROC</th><th>pooled AUROC</th><th>cell ρ within families</th><th>cell ρ</th><th>Brier</th><th>ECE</th></tr>")
    chance, mde = (results.get("no_signal") or {}).get("pair_auroc"), info.get("mde")
    power = ((f" No signal: a score with none lands in [{chance['lo']:.3f}, {chance['hi']:.3f}] (95% of within-family "
              "permutations).") if chance else "") + (f" Power: {mde['note']}." if mde else "")
    return (f"<h3>{track} track</h3><p>{esc(TRACK_NOTES.get(track, '') + power)}</p>"
            f'<div class="scroll"><table class="metrics">{head}{"".join(rows)}</table></div>')


def _unscored(results: dict) -> str:
    """The predictors that did not run to a score, with their reasons: failures, and (separately, never
    ranked) those that declared themselves not applicable to this model or run."""
    out = ""
    for title, keep in (("Failed", lambda s: s not in ("ok", "not_applicable")),
                        ("Not applicable", lambda s: s == "not_applicable")):
        rows = [(n, p) for n, p in results["predictors"].items() if keep(p["status"])]
        if rows:
            items = "".join(f"<li><code>{esc(n)}</code>"
                            + ("" if p["status"] in ("failed", "not_applicable") else f" ({esc(p['status'])})")
                            + f": {esc(p.get('reason', ''))}</li>" for n, p in rows)
            out += f'<div class="unscored"><h3>{title}</h3><ul>{items}</ul></div>'
    return out


def _predictors(results: dict) -> str:
    tables = "".join(_track_table(results, track) for track in ("blind", "trace"))
    return _section("predictors", "Predictors", (
        "<p>Ranked by pair AUROC: every (failed, passed) pair of items of one family counted once (ties half), so that "
        "knowing which family is hard earns nothing and a family weighs by its pairs; 95% bootstrap intervals (items "
        "resampled within families). Δ is the pair AUROC minus the best baseline's of the same track, paired; "
        "“✔ beats” where its interval lies above zero: only there does a predictor beat the baselines. "
        f"<code>{SANITY}</code> is a sanity row (its figure should sit inside the no-signal band), never the bar. "
        "Shaded rows are the baselines (blue) and the reference (yellow, italic), which compete with no one. "
        '<span class="flag">Flags</span> mark a pair AUROC interval entirely below 0.5 (the predictor ranks '
        "failures backwards), a Δ interval entirely below 0, a ranking identical to another predictor's, or a "
        "saturated output.</p>" + tables + _unscored(results)))


def _claims(results: dict) -> str:
    """Each predictor's claims with their verdicts, and each named cell's observed failure; only
    where some predictor made claims."""
    claims = results.get("claims")
    if not claims:
        return ""
    rows = []
    for name, made in claims.items():
        for claim in made:
            cells = "<br>".join(
                f"<code>{esc(c['cell'])}</code> {esc(c['predicted'])}: "
                + (f"{c['rate']:.3f} <small>[{c['wilson'][0]:.3f}, {c['wilson'][1]:.3f}], n={c['n']}</small>"
                   if c["n"] else "not in this run")
                + f" <i>{esc(c['verdict'])}{' (family flagged)' if c['verdict'] == 'absent' and c['n'] else ''}</i>"
                for c in claim["cells"])
            evidence = ", ".join(f"{esc(k)} = {esc(str(v))}" for k, v in claim["evidence"].items())
            verdict = claim["verdict"] if claim["verdict"] != "falsified" else '<span class="flag">falsified</span>'
            rows.append(f"<tr><td><b>{esc(name)}</b></td><td><b>{esc(claim['mechanism'])}</b><br>"
                        f"{esc(claim['statement'])}" + (f"<br><small>evidence: {evidence}</small>" if evidence else "")
                        + f"</td><td>{verdict}</td>"
                        f"<td>{claim['threshold']:g}</td><td>{cells}</td></tr>")
    return _section("claims", "Claims", (
        "<p>What the predictors claimed beside their scores, sealed with them and tested after the evaluation: each "
        "named cell's observed variant failure with its 95% Wilson interval. A cell agrees where the whole interval "
        "lies on its predicted side of the claim's threshold (brittle: at or above; robust: below) and disagrees "
        "where it lies wholly on the other; a cell this run does not hold, or of a flagged family, is absent. A "
        "claim <b>held</b> where every cell agrees, is <b>falsified</b> where one disagrees, else untestable.</p>"
        '<div class="scroll"><table class="metrics"><tr><th>predictor</th><th>claim</th><th>verdict</th>'
        f"<th>threshold</th><th>cells</th></tr>{''.join(rows)}</table></div>"))


# -- charts over predictors ------------------------------------------------------------------

BASELINE_DASH = {"random": "2 3", "prompt_length": "7 4", "confidence": "7 3 2 3"}


def _dash(name: str, baselines: set[str]) -> str:
    return f' stroke-dasharray="{BASELINE_DASH.get(name, "6 4")}"' if name in baselines else ""


def _baselines(results: dict) -> set[str]:
    return {b for info in (results.get("tracks") or {}).values() for b in info.get("baselines", ())}


def _roc(data, palette: dict[str, str]) -> str:
    """Every scored predictor's ROC curve over the run-level items, best last (on top), baselines dashed,
    with a legend whose names isolate their curve; curves that coincide exactly are noted there."""
    results, kept = data["results"], data["scored"]
    names = _ranked(results)
    y = data["failed"][kept]
    curves = {n: roc_curve(y, data["scores"][n][kept]) for n in names}
    first: dict[bytes, str] = {}  # each distinct curve's best-ranked predictor
    twin = {n: first.setdefault(curves[n][0].tobytes() + curves[n][1].tobytes(), n) for n in names}
    baselines = _baselines(results)
    auc = {n: results["predictors"][n]["auroc"]["value"] for n in names}
    frame = Frame(460, 440, bottom=50)
    lines = "".join(f'<path class="mark curve" data-name="{esc(n)}" d="{frame.path(*_thin(*curves[n]))}" '
                    f'stroke="{palette[n]}"{_dash(n, baselines)}><title>{esc(n)}: pooled AUROC {auc[n]:.3f}</title>'
                    "</path>" for n in reversed(names))
    axes = frame.axes("false positive rate (passing items flagged)", "true positive rate (failures caught)")
    chart = frame.svg("ROC curves: predicting failure on variant items", axes + frame.diagonal() + lines)
    legend = []
    for n in names:
        swatch = (f'<svg class="swatch" viewBox="0 0 28 10" aria-hidden="true"><line x1="1" x2="27" y1="5" y2="5" '
                  f'stroke="{palette[n]}"{_dash(n, baselines)}/></svg>')
        legend.append(f'<li><button type="button" data-name="{esc(n)}" aria-pressed="false">{swatch}{esc(n)}</button>'
                      f' <small>{auc[n]:.3f}' + (" baseline" if n in baselines else "")
                      + (f' <span class="twin">= {esc(twin[n])}</span>' if twin[n] != n else "") + "</small></li>")
    scored = (results.get("competence") or {}).get("scored_families")
    left_out = [f for f in results.get("families", {}) if scored is not None and f not in scored]
    note = f" Families left out of the run-level figures: {esc(', '.join(left_out))}." if left_out else ""
    return _section("roc", "ROC curves", (
        "<p>Each predictor's scores against the variant items' outcomes, pooled over the families (the legend's "
        "figure is the curve's area, the pooled AUROC; the tables rank by pair AUROC). Click a name to show only "
        "its curve, click it again to show all; hover a curve for its name. Baselines are dashed; “= name” marks a "
        f"curve identical to that predictor's (drawn under it).{note}</p>"
        f'<div class="roc">{chart}<div class="legend"><p><small>predictor, pooled AUROC</small></p>'
        f'<ol>{"".join(legend)}</ol></div></div>'))


PANELS_PER_TRACK = 4  # the reliability panels: each track's best few and its baselines


def _panel_names(results) -> list[str]:
    """Whom the reliability panels show: each track's best PANELS_PER_TRACK and its baselines."""
    chosen = []
    for track in ("blind", "trace"):
        baselines = set((results.get("tracks") or {}).get(track, {}).get("baselines", ()))
        ranked = _ranked(results, track)
        chosen += [n for n in ranked if n not in chosen and (n in baselines or ranked.index(n) < PANELS_PER_TRACK)]
    return chosen or _ranked(results)


FEW = 10  # a reliability bin with fewer items than this is drawn hollow: its rate is barely evidence


def _reliability(data, palette: dict[str, str]) -> str:
    kept = data["scored"]
    y = data["failed"][kept]
    panels = []
    for name in _panel_names(data["results"]):
        bins = reliability_bins(y, data["scores"][name][kept])
        frame = Frame(300, 290)
        total = sum(n for n, _, _ in bins)
        marks = [f'<path class="link" d="{frame.path([m for _, m, _ in bins], [k / n for n, _, k in bins])}" '
                 f'stroke="{palette[name]}"/>']
        for n, mean, k in bins:
            lo, hi = wilson(k, n)
            tip = (f"{name}: {n} items, mean predicted {mean:.3f}, observed failure {k / n:.3f} "
                   f"(95% {lo:.2f}–{hi:.2f})")
            size = 2.5 + 7 * math.sqrt(n / total)
            marks.append(_whisker(frame, mean, lo, hi, palette[name])
                         + _dot(frame, mean, k / n, size, palette[name], tip, hollow=n < FEW))
        ece = (data["results"]["predictors"][name].get("ece") or {}).get("value")
        axes = frame.axes("predicted P(failure)", "observed failure rate") + frame.diagonal()
        panels.append(frame.svg(f"reliability of {name}", axes + "".join(marks), heading=f"{name} (ECE {_num(ece)})"))
    return _section("reliability", "Reliability", (
        f"<p>Each track's best {PANELS_PER_TRACK} predictors and its baselines, over the run-level items, in the "
        f"ECE's {ECE_BINS} equal-width bins: a point's area grows with its share of the items, its bar is the 95% "
        f"Wilson interval of the observed rate, and a bin of fewer than {FEW} items is hollow. Hover a point for its "
        f'numbers.</p><div class="panels">{"".join(panels)}</div>'))


def _cell_panel(results: dict, name: str, cells: list[dict], family_colour: dict[str, str], flagged: set[str]) -> str:
    frame = Frame(420, 400)
    marks = []
    for c in cells:
        predicted = (c.get("mean_predicted") or {}).get(name)
        if predicted is None:
            continue
        note = " (family left out of the run-level figures)" if c["family"] in flagged else ""
        tip = (f"{c['family']}/{c['cell']} ({c['shift']}): n {c['n']}, predicted mean {predicted:.3f}, "
               f"observed failure {c['failure_rate']:.3f}{note}")
        marks.append(_dot(frame, min(max(predicted, 0.0), 1.0), c["failure_rate"], 5, family_colour[c["family"]],
                          tip, hollow=c["family"] in flagged))
    p = results["predictors"][name]
    rho, within = ((p.get(m) or {}).get("value") for m in ("spearman", "family_spearman"))
    axes = frame.axes("mean predicted P(failure) in the cell", "observed failure rate") + frame.diagonal()
    return (f'<div data-panel="{esc(name)}">'
            + frame.svg(f"predicted against observed failure per cell: {name}", axes + "".join(marks),
                        heading=f"cell ρ {_num(rho, 2)}, within families {_num(within, 2)}") + "</div>")


def _cells_chart(data) -> str:
    """Per track, one panel (the best predictor first; a selector shows any of the track's predictors):
    each variant cell's mean predicted failure against its observed failure rate, coloured by family."""
    results = data["results"]
    cells = [c for c in results["cells"] if c["split"] == "variant"]
    family_colour = colours({c["family"] for c in cells})
    flagged = set((results.get("competence") or {}).get("flagged", ()))
    blocks = []
    for track in ("blind", "trace"):
        names = _track_names(results, track)
        if not names:
            continue
        options = "".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in names)
        panels = "".join(_cell_panel(results, n, cells, family_colour, flagged) for n in names)
        blocks.append(f'<div class="cellbox"><label>{track} track: <select data-panels="cells-{track}">{options}'
                      f'</select></label><div id="cells-{track}">{panels}</div></div>')
    key = "".join(f'<li><span class="dot" style="background:{family_colour[f]}"></span>{esc(f)}'
                  + (" (flagged: hollow)" if f in flagged else "") + "</li>" for f in sorted(family_colour))
    return _section("cells-predicted", "Predicted against observed failure, per cell", (
        "<p>Each variant cell: the mean of a predictor's scores over its items against the share of them the model "
        "failed; on the diagonal a predictor is calibrated cell by cell. Hover a point for its cell and numbers.</p>"
        f'<div class="panels">{"".join(blocks)}</div><ul class="key">{key}</ul>'))


def _prediction_sections(data) -> str:
    if not _ranked(data["results"]):
        rate = data["results"].get("variant_failure_rate")
        return _section("unscorable", "Predictions", (
            "<p><b>No predictor can be scored</b>: every variant item had the same outcome "
            f"(variant failure rate {_num(rate)}), so there is nothing to rank.</p>"))
    palette = colours(data["results"]["predictors"])
    return _roc(data, palette) + _reliability(data, palette) + _cells_chart(data)


# -- per family ------------------------------------------------------------------------------


def _auroc_cell(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return '<td class="na">n/a</td>'
    if m.get("lo") is None:
        return f"<td>{m['value']:.3f}</td>"
    css = "below" if m["hi"] < 0.5 else "above" if m["lo"] > 0.5 else ""
    return f'<td class="{css}">{m["value"]:.3f}<br><small>[{m["lo"]:.2f}, {m["hi"]:.2f}]</small></td>'


def _families(results: dict) -> str:
    """Per track, a table of its predictors' AUROC in each family, with the family's numbers on top."""
    families = results.get("families") or {}
    if not families or not _ranked(results):
        return ""
    head = "<tr><th>family</th>" + "".join(f"<th>{esc(f)}</th>" for f in families) + "</tr>"
    for label, key in (("variant items", "n"), ("variant failure", "failure_rate"),
                       ("base failure", "base_failure_rate")):
        shown = (str(fam.get(key)) if key == "n" else _num(fam.get(key)) for fam in families.values())
        head += f"<tr><th>{label}</th>" + "".join(f"<td>{v}</td>" for v in shown) + "</tr>"
    if any(fam.get("flagged") for fam in families.values()):
        head += "<tr><th>flagged</th>" + "".join(
            f"<td>{'⚠ flagged' if fam.get('flagged') else ''}</td>" for fam in families.values()) + "</tr>"
    blocks = []
    for track in ("blind", "trace"):
        names = _track_names(results, track)
        if not names:
            continue
        rows = "".join(f"<tr><th>{esc(n)}</th>" + "".join(
            _auroc_cell(((fam.get("predictors") or {}).get(n) or {}).get("auroc")) for fam in families.values())
            + "</tr>" for n in names)
        if results["tracks"][track].get("reference"):
            rows += f'<tr class="reference"><th>{REFERENCE} (reference)</th>' + "".join(
                _auroc_cell((fam.get("reference") or {}).get("auroc")) for fam in families.values()) + "</tr>"
        blocks.append(f'<details open><summary>{track} track: AUROC per family</summary><div class="scroll">'
                      f'<table class="families">{head}{rows}</table></div></details>')
    return _section("families", "Per family", (
        "<p>Each predictor's AUROC within each family (95% bootstrap interval below it; n/a where the family's "
        "variant items all had the same outcome). Green: the interval lies above 0.5; red: below. Flagged families "
        "fail too much of their base region to count as evidence of brittleness.</p>" + "".join(blocks)))


def _family_entries(data) -> dict[str, list[dict]]:
    """Every item (base, then variant) of each family, as comparable_axis_rates reads it."""
    rows: dict[str, list[dict]] = {}
    for item, failed in data["base"]:
        rows.setdefault(item["family"], []).append(
            {"axes": item["axes"], "failed": failed, "base": True, "cell": item["cell"]})
    for item_id, failed in zip(data["ids"], data["failed"]):
        item = data["items"][item_id]
        rows.setdefault(item["family"], []).append(
            {"axes": item["axes"], "failed": bool(failed), "base": False, "cell": item["cell"]})
    return rows


AXIS_COLOUR = "#d62728"


def _axis_panel(family: str, axis: str, rates: dict, description: str) -> str:
    """One axis: each value's failure rate with its Wilson interval and n, values evenly spaced and, for
    numbers, joined by a line; hollow where every item is a base item."""
    points = rates["points"]
    frame = Frame(max(230, 70 + 46 * len(points)), 250, xs=(-0.6, len(points) - 0.4), bottom=62)
    ticks = [(i, f"{_show(v)}\nn={n}") for i, (v, n, _, _) in enumerate(points)]
    marks = []
    if all(_order(v)[0] == 0 for v, *_ in points):
        line = frame.path(range(len(points)), [k / n for _, n, k, _ in points])
        marks.append(f'<path class="link" d="{line}" stroke="{AXIS_COLOUR}"/>')
    for i, (v, n, k, n_base) in enumerate(points):
        lo, hi = wilson(k, n)
        tip = (f"{family}, {axis}={_show(v)}: {n} items ({n_base} base, {n - n_base} variant), "
               f"failure {k / n:.3f}, 95% Wilson {lo:.3f}–{hi:.3f}")
        marks.append(_whisker(frame, i, lo, hi, AXIS_COLOUR)
                     + _dot(frame, i, k / n, 4.5, AXIS_COLOUR, tip, hollow=n_base == n))
    held = "; ".join(f"{a} {_values(vs)}" for a, vs in rates["held"].items())
    label = f"{family}: failure rate along {axis}" + (f" ({description})" if description else "")
    chart = frame.svg(label, frame.axes(axis, "failure rate", xticks=ticks) + "".join(marks), heading=axis)
    caption = esc(description) + (f"<br>held at: {esc(held)}" if held else "")
    return f'<figure style="width:{frame.width}px">{chart}<figcaption>{caption}</figcaption></figure>'


def _values(values: list) -> str:
    """'1–12' for a run of consecutive integers, else the values listed."""
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if whole and len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(map(_show, values))


def _axes_section(data) -> str:
    """Per family, failure along each of its axes within comparable cells (comparable_axis_rates)."""
    tasks = data["results"]["provenance"].get("tasks") or {}
    competence = data["results"].get("competence") or {}
    blocks = []
    for family, entries in _family_entries(data).items():
        described = (tasks.get(family) or {}).get("axes") or {}
        axes = [a for a in described if any(a in e["axes"] for e in entries)]
        axes += sorted({a for e in entries for a in e["axes"]} - set(axes))
        rates = comparable_axis_rates(entries, axes)
        panels = "".join(_axis_panel(family, a, r, described.get(a, "")) for a, r in rates.items()
                         if len(r["points"]) > 1)
        single = [f"{a} (only {', '.join(_show(v) for v, *_ in r['points'])})" for a, r in rates.items()
                  if len(r["points"]) == 1]
        note = (f"<p><small>Not comparable with the other axes at their base values: {esc('; '.join(single))}."
                "</small></p>" if single else "")
        flagged = (f' <span class="flag">flagged: fails {competence["base_failure"][family]:.0%} of its base '
                   "region</span>" if family in competence.get("flagged", ()) else "")
        blocks.append(f'<h3>{esc(family)}{flagged}</h3><div class="panels">{panels}</div>{note}')
    return _section("axes", "Observed failure along each family's axes", (
        "<p>For one axis, only the items (base and variant) whose other axes all sit at the base region's values "
        "(the most common base value, or for an axis that varies inside a base cell its base range), so that a "
        "shift along another axis does not show up here; 'held at' says which. Bars: 95% Wilson intervals; hollow "
        "points are base items only; n under each value. Values are evenly spaced, not to scale.</p>"
        + "".join(blocks)))


# -- learning curves, cells ------------------------------------------------------------------


def _learning_curves(results: dict) -> str:
    """The base region's learning curves (accuracy per base cell at each checkpoint), where the run
    read the model's training history; '' otherwise."""
    history = results.get("history") or []
    if len(history) < 2 or any(h.get("step") is None for h in history):
        return ""
    steps = [h["step"] for h in history]
    cells = history[-1]["base_accuracy"]
    panels = []
    for family in sorted({cell.split("/", 1)[0] for cell in cells}):
        mine = sorted(c for c in cells if c.startswith(family + "/"))
        palette = colours(mine)
        frame = Frame(300, 260, xs=(min(steps), max(steps)))
        ticks = [(s, f"{s:g}") for s in sorted({min(steps), max(steps)})]
        lines = []
        for cell in mine:
            points = [(h["step"], h["base_accuracy"][cell]) for h in history
                      if h["base_accuracy"].get(cell) is not None]
            tip = f"{cell}: " + ", ".join(f"step {s:g} {a:.2f}" for s, a in points)
            lines.append(f'<path class="mark link" d="{frame.path(*zip(*points))}" stroke="{palette[cell]}">'
                         f"<title>{esc(tip)}</title></path>"
                         + "".join(_dot(frame, s, a, 3, palette[cell], tip) for s, a in points))
        axes = frame.axes("training step", "base accuracy", xticks=ticks)
        chart = frame.svg(f"base accuracy of {family} against the training step", axes + "".join(lines), heading=family)
        key = "".join(f'<li><span class="dot" style="background:{palette[c]}"></span>{esc(c.split("/", 1)[1])}</li>'
                      for c in mine)
        panels.append(f'<figure>{chart}<ul class="key">{key}</ul></figure>')
    def counted(h: dict) -> str:
        sizes = sorted(set((h.get("base_n") or {}).values()))
        size = f", {sizes[0]} items a cell" if len(sizes) == 1 else ""
        return f"{h['name']} ({h['step']}{size}{', traced' if h.get('traced') and h['name'] != 'final' else ''})"

    names = ", ".join(counted(h) for h in history)
    return _section("learning-curves", "Base learning curves", (
        f"<p>The base region at each checkpoint the history predictors read: {esc(names)}.</p>"
        f'<div class="panels">{"".join(panels)}</div>'))


def _cells_table(results: dict) -> str:
    rows = []
    for c in results["cells"]:
        lo, hi = wilson(round(c["failure_rate"] * c["n"]), c["n"])
        rows.append(f"<tr><td>{esc(c['family'])}</td><td>{esc(c['cell'])}</td><td>{esc(c['shift'])}</td>"
                    f"<td>{c['n']}</td><td>{c['failure_rate']:.3f} <small>[{lo:.3f}, {hi:.3f}]</small></td></tr>")
    return _section("cells", "Cells", (
        "<p>Every cell's failure rate with its 95% Wilson interval.</p><div class=\"scroll\"><table>"
        "<tr><th>family</th><th>cell</th><th>shift</th><th>n</th><th>failure rate</th></tr>"
        f"{''.join(rows)}</table></div>"))


# -- the item browser ------------------------------------------------------------------------

OUTPUT_CHARS = 400  # a longer model output is cut there (the rest is in outcomes.jsonl)


def item_rows(data) -> dict[str, Any]:
    """Every variant then base item for the browser, compactly: cells and few-shot prefixes (the prompt
    up to its last blank line, repeated by every item of a family) stored once and referred to by index,
    scores in thousandths in the order of `predictors` (best ranked first), null for base items (which
    no predictor scores)."""
    ranked = [n for n in _ranked(data["results"]) if n in data["scores"]]
    names = ranked + sorted(set(data["scores"]) - set(ranked))
    cells: dict[tuple[str, str], int] = {}
    prefixes: dict[str, int] = {}
    rows = []

    def row(item, split, failed, scores):
        prefix, sep, tail = item["prompt"].rpartition("\n\n")
        at = prefixes.setdefault(prefix + sep, len(prefixes)) if sep else -1
        output = data["outcomes"][item["id"]].get("output", "")
        output = output if len(output) <= OUTPUT_CHARS else output[:OUTPUT_CHARS] + "…"
        cell = cells.setdefault((item["family"], item["cell"]), len(cells))
        rows.append([item["id"], cell, split, int(failed), at, tail, item["target"], output, scores])

    matrix = np.rint(np.column_stack([data["scores"][n] for n in names]) * 1000).astype(int).tolist() if names else []
    for i, item_id in enumerate(data["ids"]):
        row(data["items"][item_id], "variant", data["failed"][i], matrix[i] if matrix else [])
    for item, failed in data["base"]:
        row(item, "base", failed, None)
    return {"predictors": names, "cells": [list(c) for c in cells], "prefixes": list(prefixes), "items": rows}


def _script_json(value) -> str:
    """JSON safe inside a <script> element (no '<', '>' or '&' that could end it)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _select(name: str, options: tuple[tuple[str, str], ...]) -> str:
    choices = "".join(f'<option value="{value}">{text}</option>' for value, text in options)
    return f'<label>{name} <select data-filter="{name}">{choices}</select></label>'


def _items_section(data) -> str:
    controls = "".join((
        _select("family", (("", "all"),)), _select("cell", (("", "all"),)),
        _select("split", (("", "all"), ("base", "base"), ("variant", "variant"))),
        _select("outcome", (("", "all"), ("1", "failed"), ("0", "passed"))), _select("score", ()),
        _select("sort", (("", "file order"), ("desc", "score, highest first"), ("asc", "score, lowest first")))))
    head = "".join(f"<th>{h}</th>" for h in ("id, split", "family/cell", "outcome", "prompt", "target", "output"))
    return _section("items", "Items", (
        "<p>Every item with the model's output and, for variant items, each predictor's score (base items have no "
        "predictions). Filter, choose whose score to show and sort by, and click a row for the whole prompt and "
        "every score. A prompt's few-shot prefix (stored once) is shown as “⋯” in the table.</p>"
        f'<div class="controls">{controls}</div><div class="pager"><button type="button" data-page="-1">‹ previous'
        '</button> <span id="item-count"></span> <button type="button" data-page="1">next ›</button></div>'
        f'<div class="scroll"><table class="items"><thead><tr>{head}<th id="score-head">score</th></tr></thead>'
        '<tbody id="item-rows"></tbody></table></div>'
        f'<script type="application/json" id="item-data">{_script_json(item_rows(data))}</script>'))


# -- metadata --------------------------------------------------------------------------------


def _value(value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "—", True: "yes", False: "no"}[value]
    if isinstance(value, dict):
        return ", ".join(f"{esc(str(k))} {_value(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(map(_value, value)) or "—"
    return f"<code>{esc(str(value))}</code>"


def _kv(title: str, mapping: dict) -> str:
    rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in mapping.items())
    return f'<h3>{esc(title)}</h3><table class="kv">{rows}</table>' if rows else ""


def _timings(timings: dict[str, float]) -> str:
    """Each stage's seconds, with a bar of its share of the whole."""
    if not timings:
        return ""
    total = sum(timings.values()) or 1.0
    rows = "".join(f'<tr><th>{esc(k)}</th><td>{v:.2f} s</td><td><span class="bar" style="width:{100 * v / total:.1f}%">'
                   "</span></td></tr>" for k, v in timings.items())
    return (f'<h3>Timings</h3><table class="kv timings">{rows}<tr><th>total</th><td>{sum(timings.values()):.2f} s'
            "</td><td></td></tr></table>")


def _metadata(results: dict) -> str:
    prov = results["provenance"]
    model = prov["model"]
    run = {k: v for k, v in prov.items() if k not in ("model", "tasks", "versions")}
    run |= {k: results[k] for k in ("created", "resumed") if k in results}
    run |= {k.replace("_", " "): v for k, v in (results.get("spec") or {}).items()
            if k in ("suite", "shot_mode", "chat", "batch_size")}
    about = {"spec": model["spec"], "source": model.get("source"), "fingerprint": model["fingerprint"]}
    return _section("metadata", "Run metadata", (
        _kv("Model", about | (model.get("card") or {})) + _kv("Run", run) + _kv("Versions", prov.get("versions") or {})
        + _kv("Evaluation", results.get("evaluation") or {}) + _kv("Trace", results.get("trace") or {})
        + _timings(results.get("timings") or {})
        + _kv("Sealed predictions", {"SHA-256": results["predictions_sha256"]})))


# -- the page --------------------------------------------------------------------------------

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:0 auto;
  padding:0 16px 40px;color:#1d1d1d}
h1{font-size:24px;margin:18px 0 8px}h2{font-size:20px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:34px}
h3{font-size:16px;margin:20px 0 6px}small,.key,figcaption{font-size:13px;color:#555}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #e3e3e3;padding:6px 0;font-size:13px;z-index:2}
nav a{margin-right:12px;color:#1f5fa8;text-decoration:none;white-space:nowrap}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px;font-size:13px;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
td,th{border:1px solid #d6d6d6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}.scroll{overflow-x:auto;max-width:100%}
table.metrics small{white-space:nowrap}table.metrics tr{background:#fff}table tr.baseline{background:#f3f6fa}
table tr.reference,tr.reference th{background:#fbf6e9;font-style:italic}
table.metrics td:first-child{min-width:150px;position:sticky;left:0;background:inherit}
.role,.flag{display:inline-block;font-size:12px;border-radius:9px;padding:0 7px;margin-left:4px}
.role{color:#555;border:1px solid #bbb}.flag{background:#fde2e1;color:#8a1c17;border:1px solid #f2b8b5;font-weight:600}
.beats{color:#17612b;white-space:nowrap}
.warning{background:#fff3cd;border:1px solid #e0c36a;padding:8px 12px;border-radius:4px}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.stat{border:1px solid #ddd;border-radius:6px;padding:6px 14px;min-width:120px}
.stat span{display:block;font-size:13px;color:#555}.stat b{font-size:22px}
.panels{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}figure{margin:0;max-width:100%}
svg.chart{width:100%;height:auto;display:block;font-size:12px;overflow:visible}svg.chart text{fill:#333}
svg.chart .label{font-size:13px}svg.chart .heading{font-size:13px;font-weight:600}
.frame{fill:none;stroke:#999}.grid{stroke:#eee}.diagonal{fill:none;stroke:#bbb;stroke-dasharray:3 3}
.curve,.link{fill:none;stroke-width:1.8}.whisker{stroke-width:1.5;opacity:.6}.curve:hover{stroke-width:3.5}
circle.mark{stroke-width:1.5}.dim{opacity:.1}button.dim{opacity:.35}
.roc{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.roc>svg{flex:1 1 420px}
.legend{flex:1 1 300px}.legend ol{list-style:none;padding:0;margin:0}.legend li{margin:1px 0}
.legend button{font:inherit;font-size:13px;border:0;background:none;padding:1px 2px;cursor:pointer;text-align:left}
.legend button[aria-pressed=true]{font-weight:700;background:#eef3fb}
.swatch{width:28px;height:10px;margin-right:4px;vertical-align:middle}.twin{color:#8a5a00}
.key{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 14px}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px;vertical-align:middle}
.cellbox{flex:1 1 420px;max-width:460px}.cellbox select{font:inherit;margin-bottom:6px}
td.below{color:#a4161a;background:#fdf0f0}td.above{color:#17612b;background:#eef8f0}td.na{color:#999}
table.families td{text-align:right;white-space:nowrap}table.families th:first-child{position:sticky;left:0}
details summary{cursor:pointer;font-weight:600;margin:10px 0 4px}.unscored ul{margin:4px 0}
.controls{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:14px}.controls select{font:inherit;max-width:260px}
.pager{margin:8px 0;font-size:14px}.pager button{font:inherit}
table.items{font-size:13px;width:100%}table.items td{font-family:ui-monospace,Menlo,Consolas,monospace}
table.items td.nw{white-space:nowrap}table.items td.prompt{min-width:180px}
table.items td.text{white-space:pre-wrap;overflow-wrap:anywhere;min-width:90px}
table.items tr.item{cursor:pointer}table.items tr.item:hover td{background:#f7f9fc}
.prefix{color:#1f5fa8;font-weight:700}
td.failed{color:#a4161a;font-weight:600}td.passed{color:#17612b}tr.detail td{background:#fafafa}
.detail pre{white-space:pre-wrap;margin:4px 0;font-size:13px}.scores{display:flex;flex-wrap:wrap;gap:2px 14px}
table.kv th{width:200px}.bar{display:inline-block;height:10px;background:#8fb3de;min-width:1px}
table.timings td:last-child{width:300px}
"""

ERRORS = ("window.onerror=function(m,s,l){var r=document.documentElement;"
          "r.setAttribute('data-js-errors',(r.getAttribute('data-js-errors')||'')+m+' (line '+l+')\\n');};")

SCRIPT = r"""
"use strict";
function isolateCurves(box){
  var only=null;
  box.querySelectorAll("button[data-name]").forEach(function(button){
    button.addEventListener("click",function(){
      only=only===button.dataset.name?null:button.dataset.name;
      box.querySelectorAll("[data-name]").forEach(function(el){
        el.classList.toggle("dim",only!==null&&el.dataset.name!==only);});
      box.querySelectorAll("button[data-name]").forEach(function(b){
        b.setAttribute("aria-pressed",String(b.dataset.name===only));});
    });
  });
}
function panelSelector(select){
  var box=document.getElementById(select.dataset.panels);
  function show(){box.querySelectorAll("[data-panel]").forEach(function(p){p.hidden=p.dataset.panel!==select.value;});}
  select.addEventListener("change",show);show();
}
function itemBrowser(section){
  var data=JSON.parse(document.getElementById("item-data").textContent);
  var PAGE=50,page=0,open={},controls={};
  section.querySelectorAll("[data-filter]").forEach(function(s){controls[s.dataset.filter]=s;});
  function option(select,value,text){
    var o=document.createElement("option");o.value=value;o.textContent=text;select.appendChild(o);}
  var families=[];data.cells.forEach(function(c){if(families.indexOf(c[0])<0)families.push(c[0]);});
  families.forEach(function(f){option(controls.family,f,f);});
  data.predictors.forEach(function(p,i){option(controls.score,String(i),p);});
  function fillCells(){
    var keep=controls.cell.value,family=controls.family.value;controls.cell.length=1;
    data.cells.forEach(function(c,i){
      if(!family||c[0]===family)option(controls.cell,String(i),family?c[1]:c[0]+"/"+c[1]);});
    controls.cell.value=Array.prototype.some.call(controls.cell.options,function(o){return o.value===keep;})?keep:"";
  }
  function cellName(r){var c=data.cells[r[1]];return c[0]+"/"+c[1];}
  function score(r,i){return r[8]&&i>=0?r[8][i]/1000:null;}
  function chosen(){return controls.score.value===""?-1:Number(controls.score.value);}
  function selected(){
    var f=controls.family.value,c=controls.cell.value,s=controls.split.value,o=controls.outcome.value;
    var list=data.items.filter(function(r){
      return(!f||data.cells[r[1]][0]===f)&&(!c||String(r[1])===c)&&(!s||r[2]===s)&&(!o||String(r[3])===o);});
    var i=chosen(),sign={desc:-1,asc:1}[controls.sort.value];
    if(sign&&i>=0){
      list=list.slice().sort(function(a,b){var x=score(a,i),y=score(b,i);
        if(x===null||y===null)return(x===null)-(y===null);return sign*(x-y);});
    }
    return list;
  }
  function cell(tr,text,cls){
    var td=document.createElement("td");td.textContent=text;td.className=cls;tr.appendChild(td);return td;}
  function detail(r){
    var tr=document.createElement("tr"),td=document.createElement("td"),pre=document.createElement("pre");
    var box=document.createElement("div");tr.className="detail";td.colSpan=7;box.className="scores";
    pre.textContent=(r[4]>=0?data.prefixes[r[4]]:"")+r[5];
    if(r[8]){data.predictors.forEach(function(p,i){
      var s=document.createElement("span");s.textContent=p+" "+(r[8][i]/1000).toFixed(3);box.appendChild(s);});}
    else{box.textContent="base item: no predictions";}
    td.appendChild(pre);td.appendChild(box);tr.appendChild(td);return tr;
  }
  function row(r,i){
    var tr=document.createElement("tr"),id=cell(tr,r[0],"nw"),split=document.createElement("small");
    tr.className="item";split.textContent=r[2];id.appendChild(document.createElement("br"));id.appendChild(split);
    cell(tr,cellName(r),"nw");cell(tr,r[3]?"failed":"passed",r[3]?"nw failed":"nw passed");
    var prompt=cell(tr,r[5],"text prompt");
    if(r[4]>=0){
      var more=document.createElement("span");more.className="prefix";more.textContent="⋯ ";
      more.title="few-shot prefix: click the row for the whole prompt";prompt.insertBefore(more,prompt.firstChild);}
    cell(tr,r[6],"text");cell(tr,r[7],"text");var s=score(r,i);cell(tr,s===null?"—":s.toFixed(3),"nw");
    tr.addEventListener("click",function(){open[r[0]]=!open[r[0]];render();});
    return tr;
  }
  function render(){
    var list=selected(),pages=Math.max(1,Math.ceil(list.length/PAGE)),i=chosen();
    var body=document.getElementById("item-rows");
    page=Math.min(Math.max(page,0),pages-1);body.textContent="";
    document.getElementById("score-head").textContent=i>=0?data.predictors[i]:"score";
    list.slice(page*PAGE,(page+1)*PAGE).forEach(function(r){
      body.appendChild(row(r,i));if(open[r[0]])body.appendChild(detail(r));});
    document.getElementById("item-count").textContent=list.length?
      "items "+(page*PAGE+1)+"–"+Math.min(list.length,(page+1)*PAGE)+" of "+list.length:"no item matches";
    section.setAttribute("data-rendered",String(body.children.length));
  }
  controls.family.addEventListener("change",function(){fillCells();page=0;render();});
  ["cell","split","outcome","score","sort"].forEach(function(k){
    controls[k].addEventListener("change",function(){page=0;render();});});
  section.querySelectorAll("[data-page]").forEach(function(b){
    b.addEventListener("click",function(){page+=Number(b.dataset.page);render();});});
  fillCells();render();
}
document.querySelectorAll(".roc").forEach(isolateCurves);
document.querySelectorAll("select[data-panels]").forEach(panelSelector);
itemBrowser(document.getElementById("items"));
document.documentElement.setAttribute("data-height",String(document.documentElement.scrollHeight));
document.documentElement.setAttribute("data-ready","1");
"""

SECTIONS = (("summary", "Summary"), ("predictors", "Predictors"), ("claims", "Claims"), ("unscorable", "Predictions"),
            ("roc", "ROC"), ("reliability", "Reliability"), ("cells-predicted", "Cells: predicted"),
            ("families", "Per family"), ("axes", "Axes"), ("learning-curves", "Learning curves"), ("cells", "Cells"),
            ("items", "Items"), ("metadata", "Metadata"))


def render(data: dict[str, Any]) -> str:
    results = data["results"]
    name = results["provenance"]["model"]["spec"]["name_or_path"]
    body = "".join((_summary(results), _predictors(results), _claims(results), _prediction_sections(data), _families(results),
                    _axes_section(data), _learning_curves(results), _cells_table(results), _items_section(data),
                    _metadata(results)))
    present = [(key, title) for key, title in SECTIONS if f'data-section="{key}"' in body]
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in present)
    return f"""<!doctype html>
<html lang="en" data-sections="{' '.join(key for key, _ in present)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>brittlebench report: {esc(name)}</title><script>{ERRORS}</script><style>{CSS}</style></head><body>
<nav>{nav}</nav>
{body}
<script>{SCRIPT}</script>
</body></html>
"""


def write_report(run: Path, path: Path | None = None, results: dict | None = None) -> Path:
    """Write the report of run folder `run` (its results.json, unless `results` are given)."""
    path = Path(path) if path else Path(run) / "report.html"
    io.write_bytes(path, render(load_run(run, results)).encode())
    return path
