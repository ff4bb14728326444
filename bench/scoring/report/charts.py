"""The charts over predictors (ROC curves, reliability, predicted against observed failure per cell)
and the base learning curves."""
from __future__ import annotations

import math

import numpy as np

from ..metrics import ECE_BINS, wilson
from ..results import Cell, Checkpoint, Results, Row
from .rows import TRACKS, num, ranked, scored, track_tables
from .svg import Frame, colours, esc, section


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


BASELINE_DASH = {"random": "2 3", "prompt_length": "7 4", "confidence": "7 3 2 3"}


def _roc(data, palette: dict[str, str]) -> str:
    """Every scored predictor's ROC curve over the run-level items, best last (on top), baselines dashed,
    with a legend whose names isolate their curve; curves that coincide exactly are noted there."""
    results, kept = data["results"], data["scored"]
    names = ranked(results.predictors)
    curves = {n: roc_curve(data["failed"][kept], data["scores"][n][kept]) for n in names}
    first: dict[bytes, str] = {}  # each distinct curve's best-ranked predictor
    twin = {n: first.setdefault(curves[n][0].tobytes() + curves[n][1].tobytes(), n) for n in names}
    baselines = {b for info in results.tracks.values() for b in info.baselines}
    dash = {n: f' stroke-dasharray="{BASELINE_DASH.get(n, "6 4")}"' if n in baselines else "" for n in names}
    auc = {n: results.predictors[n].figure("auroc") for n in names}
    frame = Frame(460, 440, bottom=50)
    lines = "".join(f'<path class="mark curve" data-name="{esc(n)}" d="{frame.path(*_thin(*curves[n]))}" '
                    f'stroke="{palette[n]}"{dash[n]}><title>{esc(n)}: pooled AUROC {auc[n]:.3f}</title>'
                    "</path>" for n in reversed(names))
    axes = frame.axes("false positive rate (passing items flagged)", "true positive rate (failures caught)")
    chart = frame.svg("ROC curves: predicting failure on variant items", axes + frame.diagonal() + lines)
    legend = "".join(
        f'<li><button type="button" data-name="{esc(n)}" aria-pressed="false"><svg class="swatch" viewBox="0 0 28 10" '
        f'aria-hidden="true"><line x1="1" x2="27" y1="5" y2="5" stroke="{palette[n]}"{dash[n]}/></svg>{esc(n)}</button>'
        f' <small>{auc[n]:.3f}' + (" baseline" if n in baselines else "")
        + (f' <span class="twin">= {esc(twin[n])}</span>' if twin[n] != n else "") + "</small></li>" for n in names)
    scored_families = results.competence.scored_families
    left_out = [f for f in results.families if scored_families is not None and f not in scored_families]
    note = f" Families left out of the run-level figures: {esc(', '.join(left_out))}." if left_out else ""
    return section("roc", "ROC curves", (
        "<p>Each predictor's scores against the variant items' outcomes, pooled over the families (the legend's "
        "figure is the curve's area, the pooled AUROC; the tables rank by pair AUROC). Click a name to show only "
        "its curve, click it again to show all; hover a curve for its name. Baselines are dashed; “= name” marks a "
        f"curve identical to that predictor's (drawn under it).{note}</p>"
        f'<div class="roc">{chart}<div class="legend"><p><small>predictor, pooled AUROC</small></p>'
        f"<ol>{legend}</ol></div></div>"))


PANELS_PER_TRACK = 4  # the reliability panels: each track's best few and its baselines
FEW = 10  # a reliability bin with fewer items than this is drawn hollow: its rate is barely evidence


def _panel_names(results: Results) -> list[str]:
    """Whom the reliability panels show: each track's best PANELS_PER_TRACK and its baselines."""
    chosen = []
    for track in TRACKS:
        baselines = set(results.tracks[track].baselines) if track in results.tracks else set()
        mine = ranked(results.predictors, track)
        chosen += [n for n in mine if n not in chosen and (n in baselines or mine.index(n) < PANELS_PER_TRACK)]
    return chosen or ranked(results.predictors)


def _reliability(data, palette: dict[str, str]) -> str:
    kept = data["scored"]
    panels = []
    for name in _panel_names(data["results"]):
        bins = reliability_bins(data["failed"][kept], data["scores"][name][kept])
        frame = Frame(300, 290)
        total = sum(n for n, _, _ in bins)
        marks = [f'<path class="link" d="{frame.path([m for _, m, _ in bins], [k / n for n, _, k in bins])}" '
                 f'stroke="{palette[name]}"/>']
        for n, mean, k in bins:
            lo, hi = wilson(k, n)
            tip = (f"{name}: {n} items, mean predicted {mean:.3f}, observed failure {k / n:.3f} "
                   f"(95% {lo:.2f}–{hi:.2f})")
            marks.append(frame.whisker(mean, lo, hi, palette[name])
                         + frame.dot(mean, k / n, 2.5 + 7 * math.sqrt(n / total), palette[name], tip, hollow=n < FEW))
        ece = data["results"].predictors[name].figure("ece")
        axes = frame.axes("predicted P(failure)", "observed failure rate") + frame.diagonal()
        panels.append(frame.svg(f"reliability of {name}", axes + "".join(marks), heading=f"{name} (ECE {num(ece)})"))
    return section("reliability", "Reliability", (
        f"<p>Each track's best {PANELS_PER_TRACK} predictors and its baselines, over the run-level items, in the "
        f"ECE's {ECE_BINS} equal-width bins: a point's area grows with its share of the items, its bar is the 95% "
        f"Wilson interval of the observed rate, and a bin of fewer than {FEW} items is hollow. Hover a point for its "
        f'numbers.</p><div class="panels">{"".join(panels)}</div>'))


def _cell_panel(p: Row, name: str, cells: list[Cell], family_colour: dict[str, str], flagged: set[str]) -> str:
    frame = Frame(420, 400)
    marks = []
    for c in cells:
        predicted = c.mean_predicted.get(name)
        if predicted is None:
            continue
        note = " (family left out of the run-level figures)" if c.family in flagged else ""
        tip = (f"{c.family}/{c.cell} ({c.shift}): n {c.n}, predicted mean {predicted:.3f}, "
               f"observed failure {c.failure_rate:.3f}{note}")
        marks.append(frame.dot(min(max(predicted, 0.0), 1.0), c.failure_rate, 5, family_colour[c.family],
                               tip, hollow=c.family in flagged))
    axes = frame.axes("mean predicted P(failure) in the cell", "observed failure rate") + frame.diagonal()
    heading = f"cell ρ {num(p.figure('spearman'), 2)}, within families {num(p.figure('family_spearman'), 2)}"
    return (f'<div data-panel="{esc(name)}">'
            + frame.svg(f"predicted against observed failure per cell: {name}", axes + "".join(marks), heading=heading)
            + "</div>")


def _cells_chart(data) -> str:
    """Per track, one panel (the best predictor first; a selector shows any of the track's predictors):
    each variant cell's mean predicted failure against its observed failure rate, coloured by family."""
    results = data["results"]
    cells = [c for c in results.cells if c.split == "variant"]
    family_colour = colours({c.family for c in cells})
    flagged = set(results.competence.flagged)
    blocks = []
    for track, names in track_tables(results.predictors, results.tracks, scored).items():
        options = "".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in names)
        panels = "".join(_cell_panel(results.predictors[n], n, cells, family_colour, flagged) for n in names)
        blocks.append(f'<div class="cellbox"><label>{track} track: <select data-panels="cells-{track}">{options}'
                      f'</select></label><div id="cells-{track}">{panels}</div></div>')
    key = "".join(f'<li><span class="dot" style="background:{family_colour[f]}"></span>{esc(f)}'
                  + (" (flagged: hollow)" if f in flagged else "") + "</li>" for f in sorted(family_colour))
    return section("cells-predicted", "Predicted against observed failure, per cell", (
        "<p>Each variant cell: the mean of a predictor's scores over its items against the share of them the model "
        "failed; on the diagonal a predictor is calibrated cell by cell. Hover a point for its cell and numbers.</p>"
        f'<div class="panels">{"".join(blocks)}</div><ul class="key">{key}</ul>'))


def prediction_sections(data) -> str:
    """The charts over predictors, or why there are none."""
    results = data["results"]
    if not ranked(results.predictors):
        return section("unscorable", "Predictions", (
            "<p><b>No predictor can be scored</b>: every variant item had the same outcome "
            f"(variant failure rate {num(results.variant_failure_rate)}), so there is nothing to rank.</p>"))
    palette = colours(results.predictors)
    return _roc(data, palette) + _reliability(data, palette) + _cells_chart(data)


def learning_curves(results: Results) -> str:
    """The base region's learning curves (accuracy per base cell at each checkpoint), where the run
    read the model's training history; '' otherwise."""
    history = results.history
    if len(history) < 2 or any(h.step is None for h in history):
        return ""
    steps = [h.step for h in history]
    cells = history[-1].base_accuracy
    panels = []
    for family in sorted({cell.split("/", 1)[0] for cell in cells}):
        mine = sorted(c for c in cells if c.startswith(family + "/"))
        palette = colours(mine)
        frame = Frame(300, 260, xs=(min(steps), max(steps)))
        ticks = [(s, f"{s:g}") for s in sorted({min(steps), max(steps)})]
        lines = []
        for cell in mine:
            points = [(h.step, h.base_accuracy[cell]) for h in history if h.base_accuracy.get(cell) is not None]
            tip = f"{cell}: " + ", ".join(f"step {s:g} {a:.2f}" for s, a in points)
            lines.append(f'<path class="mark link" d="{frame.path(*zip(*points))}" stroke="{palette[cell]}">'
                         f"<title>{esc(tip)}</title></path>"
                         + "".join(frame.dot(s, a, 3, palette[cell], tip) for s, a in points))
        axes = frame.axes("training step", "base accuracy", xticks=ticks)
        chart = frame.svg(f"base accuracy of {family} against the training step", axes + "".join(lines), heading=family)
        key = "".join(f'<li><span class="dot" style="background:{palette[c]}"></span>{esc(c.split("/", 1)[1])}</li>'
                      for c in mine)
        panels.append(f'<figure>{chart}<ul class="key">{key}</ul></figure>')

    def counted(h: Checkpoint) -> str:
        sizes = sorted(set(h.base_n.values()))
        size = f", {sizes[0]} items a cell" if len(sizes) == 1 else ""
        return f"{h.name} ({h.step}{size}{', traced' if h.traced and h.name != 'final' else ''})"

    names = ", ".join(map(counted, history))
    return section("learning-curves", "Base learning curves", (
        f"<p>The base region at each checkpoint the history predictors read: {esc(names)}.</p>"
        f'<div class="panels">{"".join(panels)}</div>'))
