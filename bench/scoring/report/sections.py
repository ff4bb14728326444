"""The page's sections other than charts: the header, the predictor and claim tables, per family
and per cell, the item browser and the run's metadata."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import RANKING, REFERENCE, SANITY, Interval, format_interval, wilson
from ..results import Results, Row
from .rows import num, own, power, ranked, saturated, scored, track_tables
from .svg import esc, section


def _fmt(m: Interval | None, signed: bool = False) -> str:
    """A table's figure with its interval on a line of its own."""
    return format_interval(m, signed, around=lambda text: f"<br><small>{text}</small>")


# -- the header ------------------------------------------------------------------------------


def summary(results: Results) -> str:
    """The model and run at a glance, with what the model's context could not hold and the families it
    cannot do at all, which the reader must see before the tables."""
    prov = results.provenance
    model, spec = prov["model"], results.spec
    card = model.get("card") or {}
    name = model["spec"]["name_or_path"]
    shape = esc(", ".join((str(card.get("model_type", "?")), f"{card.get('n_layers', '?')} layers",
                           f"d_model {card.get('d_model', '?')}", f"{card.get('n_heads', '?')} heads",
                           f"{card.get('positional_encoding', '?')} positions")))
    suite = f", suite <code>{esc(spec['suite'])}</code>" if spec.get("suite") else ""
    base, variant = num(results.base_failure_rate), num(results.variant_failure_rate)
    stats = "".join(f'<div class="stat"><span>{label}</span><b>{value}</b></div>' for label, value in (
        ("base failure rate", base), ("variant failure rate", variant),
        ("base items", results.n_base), ("variant items", results.n_variant)))
    notes = ""
    if results.skipped:
        named = "; ".join(f"<code>{esc(n)}</code> ({esc(why)})" for n, why in results.skipped.items())
        notes += f"<p class=\"skipped\"><b>Skipped</b>, longer than the model's context: {named}.</p>"
    competence = results.competence
    if competence.note:
        rates = ", ".join(f"{esc(n)} {rate:.2f}" for n, rate in competence.base_failure.items())
        notes += (f'<p class="warning"><b>Warning:</b> {esc(competence.note)}. Base-region failure per family: '
                  f"{rates}.</p>")
    return (f'<header id="summary" data-section="summary"><h1>brittlebench report: {esc(Path(name).name or name)}</h1>'
            f'<div class="stats">{stats}</div>'
            f"<p>Model <code>{esc(name)}</code> (fingerprint <code>{esc(model['fingerprint'])}</code>): {shape}. "
            f"Protocol <code>{esc(prov['protocol'])}</code>, seed {esc(str(prov['seed']))}, "
            f"{esc(str(prov.get('shots', 0)))}-shot prompts{suite}; {results.n_base} base and "
            f"{results.n_variant} variant items (base failure rate {base}, variant failure rate {variant}). "
            f"Predictions were sealed (SHA-256 <code>{esc(results.predictions_sha256[:16])}…</code>) before any "
            f"variant was evaluated.</p>{notes}</header>")


# -- the predictor tables --------------------------------------------------------------------

TRACK_NOTES = {
    "blind": "Blind track: no forward pass of the model on any variant item reached these predictors (the "
             "variants' text and axes, the architecture, the base region's traces and outcomes).",
    "trace": "Trace track: these also read the variants' prompt-only traces, which hold the model's next-token "
             "prediction at the answer position; the reference row shows how well reading that answer predicts "
             "failure (computed by the runner after sealing, from the targets no predictor holds).",
}


def flags(p: Row, own: bool = True) -> list[str]:
    """What a reader must not miss about a row: a ranking figure whose whole interval lies below chance
    (the predictor ranks failures backwards), or, for a track's own predictor, a difference from the
    best baseline whose whole interval lies below zero."""
    out = []
    ranking = p.figures.get(RANKING)
    if ranking and ranking.hi is not None and ranking.hi < 0.5:
        out.append("below chance (reversed signal)")
    difference = p.vs_best_baseline.difference if p.vs_best_baseline else None
    if own and difference and difference.hi is not None and difference.hi < 0:
        out.append("worse than baseline")
    if p.same_ranking_as:
        out.append(f"same ranking as {p.same_ranking_as}")
    if saturated(p):
        out.append(f"saturated: one value on {p.saturation:.0%} of items")
    return out


def _track_table(results: Results, track: str, names: list[str]) -> str:
    info = results.tracks[track]
    baselines = set(info.baselines)
    reference = info.reference
    rows = []
    for name in names + ([REFERENCE] if reference else []):
        p = reference if name == REFERENCE else results.predictors[name]
        mine = own(name, p, track)
        vs = p.vs_best_baseline if mine else None
        role = ("reference" if name == REFERENCE else f"{p.track} baseline" if name in baselines
                else "sanity row" if name == SANITY else "")
        beats = ' <b class="beats">✔ beats</b>' if vs and vs.beats else ""
        diff = ("" if not mine else "best baseline" if vs and name == vs.baseline
                else _fmt(vs.difference if vs else None, signed=True) + beats)
        ref = _fmt(p.vs_reference.difference if p.vs_reference else None, signed=True) if reference and mine else ""
        tags = (f' <span class="role">{role}</span>' if role else "") + "".join(
            f' <span class="flag">{esc(f)}</span>' for f in flags(p, mine and name not in baselines and name != SANITY))
        css = "reference" if name == REFERENCE else "baseline" if name in baselines else ""
        figures = [_fmt(p.figures.get(RANKING)), diff] + ([ref] if reference else []) + [
            _fmt(p.figures.get(m)) for m in ("family_auroc", "auroc", "family_spearman", "spearman", "brier", "ece")]
        rows.append(f'<tr class="{css}"><td><b>{esc(name)}</b>{tags}</td>'
                    + "".join(f"<td>{f}</td>" for f in figures) + "</tr>")
    head = ("<tr><th>predictor</th><th>pair AUROC</th><th>Δ best baseline</th>"
            + ("<th>Δ reference</th>" if reference else "") + "<th>mean family AUROC</th><th>pooled AUROC</th>"
            "<th>cell ρ within families</th><th>cell ρ</th><th>Brier</th><th>ECE</th></tr>")
    chance, mde = results.no_signal.pair_auroc if results.no_signal else None, info.mde
    bars = ((f" No signal: a score with none lands in [{chance.lo:.3f}, {chance.hi:.3f}] (95% of within-family "
             "permutations).") if chance else "") + (f" Power: {power(mde)}." if mde else "")
    return (f"<h3>{track} track</h3><p>{esc(TRACK_NOTES.get(track, '') + bars)}</p>"
            f'<div class="scroll"><table class="metrics">{head}{"".join(rows)}</table></div>')


def _unscored(results: Results) -> str:
    """The predictors that did not run to a score, with their reasons: failures, and (separately, never
    ranked) those that declared themselves not applicable to this model or run."""
    out = ""
    for title, keep in (("Failed", lambda s: s not in ("ok", "not_applicable")),
                        ("Not applicable", lambda s: s == "not_applicable")):
        rows = [(n, p) for n, p in results.predictors.items() if keep(p.status)]
        if rows:
            items = "".join(f"<li><code>{esc(n)}</code>"
                            + ("" if p.status in ("failed", "not_applicable") else f" ({esc(p.status)})")
                            + f": {esc(p.reason)}</li>" for n, p in rows)
            out += f'<div class="unscored"><h3>{title}</h3><ul>{items}</ul></div>'
    return out


def predictors(results: Results) -> str:
    tables = "".join(_track_table(results, track, names)
                     for track, names in track_tables(results.predictors, results.tracks, scored).items())
    return section("predictors", "Predictors", (
        "<p>Ranked by pair AUROC: every (failed, passed) pair of items of one family counted once (ties half), so that "
        "knowing which family is hard earns nothing and a family weighs by its pairs; 95% bootstrap intervals (items "
        "resampled within families). Δ is the pair AUROC minus the best baseline's of the same track, paired; "
        "“✔ beats” where its interval lies above zero: only there does a predictor beat the baselines. "
        f"<code>{SANITY}</code> is a sanity row (its figure should sit inside the no-signal band), never the bar. "
        "Shaded rows are the baselines (blue) and the reference (yellow, italic), which compete with no one. "
        '<span class="flag">Flags</span> mark a pair AUROC interval entirely below 0.5 (the predictor ranks '
        "failures backwards), a Δ interval entirely below 0, a ranking identical to another predictor's, or a "
        "saturated output.</p>" + tables + _unscored(results)))


def claims(results: Results) -> str:
    """Each predictor's claims with their verdicts, and each named cell's observed failure; only
    where some predictor made claims."""
    if not results.claims:
        return ""
    rows = []
    for name, made in results.claims.items():
        for claim in made:
            cells = "<br>".join(
                f"<code>{esc(c.cell)}</code> {esc(c.predicted)}: "
                + (f"{c.rate:.3f} <small>[{c.wilson[0]:.3f}, {c.wilson[1]:.3f}], n={c.n}</small>"
                   if c.n else "not in this run")
                + f" <i>{esc(c.verdict)}{' (family flagged)' if c.verdict == 'absent' and c.n else ''}</i>"
                for c in claim.cells)
            evidence = ", ".join(f"{esc(k)} = {esc(str(v))}" for k, v in claim.evidence.items())
            verdict = claim.verdict if claim.verdict != "falsified" else '<span class="flag">falsified</span>'
            rows.append(f"<tr><td><b>{esc(name)}</b></td><td><b>{esc(claim.mechanism)}</b><br>"
                        f"{esc(claim.statement)}" + (f"<br><small>evidence: {evidence}</small>" if evidence else "")
                        + f"</td><td>{verdict}</td><td>{claim.threshold:g}</td><td>{cells}</td></tr>")
    return section("claims", "Claims", (
        "<p>What the predictors claimed beside their scores, sealed with them and tested after the evaluation: each "
        "named cell's observed variant failure with its 95% Wilson interval. A cell agrees where the whole interval "
        "lies on its predicted side of the claim's threshold (brittle: at or above; robust: below) and disagrees "
        "where it lies wholly on the other; a cell this run does not hold, or of a flagged family, is absent. A "
        "claim <b>held</b> where every cell agrees, is <b>falsified</b> where one disagrees, else untestable.</p>"
        '<div class="scroll"><table class="metrics"><tr><th>predictor</th><th>claim</th><th>verdict</th>'
        f"<th>threshold</th><th>cells</th></tr>{''.join(rows)}</table></div>"))


# -- per family, per cell --------------------------------------------------------------------


def _auroc_cell(row: Row | None) -> str:
    m = row.figures.get("auroc") if row else None
    if m is None or m.value is None:
        return '<td class="na">n/a</td>'
    if m.lo is None:
        return f"<td>{m.value:.3f}</td>"
    css = "below" if m.hi < 0.5 else "above" if m.lo > 0.5 else ""
    return f'<td class="{css}">{m.value:.3f}<br><small>[{m.lo:.2f}, {m.hi:.2f}]</small></td>'


def families(results: Results) -> str:
    """Per track, a table of its predictors' AUROC in each family, with the family's numbers on top."""
    per_family = results.families
    if not per_family or not ranked(results.predictors):
        return ""
    head = "<tr><th>family</th>" + "".join(f"<th>{esc(f)}</th>" for f in per_family) + "</tr>"
    for label, shown in (("variant items", (str(fam.n) for fam in per_family.values())),
                         ("variant failure", (num(fam.failure_rate) for fam in per_family.values())),
                         ("base failure", (num(fam.base_failure_rate) for fam in per_family.values()))):
        head += f"<tr><th>{label}</th>" + "".join(f"<td>{v}</td>" for v in shown) + "</tr>"
    if any(fam.flagged for fam in per_family.values()):
        head += "<tr><th>flagged</th>" + "".join(
            f"<td>{'⚠ flagged' if fam.flagged else ''}</td>" for fam in per_family.values()) + "</tr>"
    blocks = []
    for track, names in track_tables(results.predictors, results.tracks, scored).items():
        rows = "".join(f"<tr><th>{esc(n)}</th>" + "".join(_auroc_cell(fam.predictors.get(n))
                                                          for fam in per_family.values()) + "</tr>" for n in names)
        if results.tracks[track].reference:
            rows += f'<tr class="reference"><th>{REFERENCE} (reference)</th>' + "".join(
                _auroc_cell(fam.reference) for fam in per_family.values()) + "</tr>"
        blocks.append(f'<details open><summary>{track} track: AUROC per family</summary><div class="scroll">'
                      f'<table class="families">{head}{rows}</table></div></details>')
    return section("families", "Per family", (
        "<p>Each predictor's AUROC within each family (95% bootstrap interval below it; n/a where the family's "
        "variant items all had the same outcome). Green: the interval lies above 0.5; red: below. Flagged families "
        "fail too much of their base region to count as evidence of brittleness.</p>" + "".join(blocks)))


def cells(results: Results) -> str:
    rows = []
    for c in results.cells:
        lo, hi = wilson(round(c.failure_rate * c.n), c.n)
        rows.append(f"<tr><td>{esc(c.family)}</td><td>{esc(c.cell)}</td><td>{esc(c.shift)}</td>"
                    f"<td>{c.n}</td><td>{c.failure_rate:.3f} <small>[{lo:.3f}, {hi:.3f}]</small></td></tr>")
    return section("cells", "Cells", (
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
    best = [n for n in ranked(data["results"].predictors) if n in data["scores"]]
    names = best + sorted(set(data["scores"]) - set(best))
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


def _select(name: str, options: tuple[tuple[str, str], ...]) -> str:
    choices = "".join(f'<option value="{value}">{text}</option>' for value, text in options)
    return f'<label>{name} <select data-filter="{name}">{choices}</select></label>'


def items(data) -> str:
    controls = "".join((
        _select("family", (("", "all"),)), _select("cell", (("", "all"),)),
        _select("split", (("", "all"), ("base", "base"), ("variant", "variant"))),
        _select("outcome", (("", "all"), ("1", "failed"), ("0", "passed"))), _select("score", ()),
        _select("sort", (("", "file order"), ("desc", "score, highest first"), ("asc", "score, lowest first")))))
    head = "".join(f"<th>{h}</th>" for h in ("id, split", "family/cell", "outcome", "prompt", "target", "output"))
    # JSON safe inside a <script> element: no '<', '>' or '&' that could end it.
    rows = json.dumps(item_rows(data), separators=(",", ":"), ensure_ascii=False)
    rows = rows.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return section("items", "Items", (
        "<p>Every item with the model's output and, for variant items, each predictor's score (base items have no "
        "predictions). Filter, choose whose score to show and sort by, and click a row for the whole prompt and "
        "every score. A prompt's few-shot prefix (stored once) is shown as “⋯” in the table.</p>"
        f'<div class="controls">{controls}</div><div class="pager"><button type="button" data-page="-1">‹ previous'
        '</button> <span id="item-count"></span> <button type="button" data-page="1">next ›</button></div>'
        f'<div class="scroll"><table class="items"><thead><tr>{head}<th id="score-head">score</th></tr></thead>'
        f'<tbody id="item-rows"></tbody></table></div><script type="application/json" id="item-data">{rows}</script>'))


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


def metadata(results: Results) -> str:
    prov = results.provenance
    model = prov["model"]
    run = {k: v for k, v in prov.items() if k not in ("model", "tasks", "versions")}
    run |= {k: v for k, v in (("created", results.created), ("resumed", results.resumed)) if v is not None}
    run |= {k.replace("_", " "): v for k, v in results.spec.items()
            if k in ("suite", "shot_mode", "chat", "batch_size")}
    about = {"spec": model["spec"], "source": model.get("source"), "fingerprint": model["fingerprint"]}
    return section("metadata", "Run metadata", (
        _kv("Model", about | (model.get("card") or {})) + _kv("Run", run) + _kv("Versions", prov.get("versions") or {})
        + _kv("Evaluation", results.evaluation) + _kv("Trace", results.trace) + _timings(results.timings)
        + _kv("Sealed predictions", {"SHA-256": results.predictions_sha256})))
