"""Observed failure along each family's axes, within comparable cells."""
from __future__ import annotations

import itertools
import json
from collections import Counter

from ..metrics import wilson
from .svg import Frame, esc, section


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


def _family_entries(data) -> dict[str, list[dict]]:
    """Every item (base, then variant) of each family, as comparable_axis_rates reads it."""
    rows: dict[str, list[dict]] = {}
    variants = [(data["items"][i], bool(failed)) for i, failed in zip(data["ids"], data["failed"])]
    for pairs, base in ((data["base"], True), (variants, False)):
        for item, failed in pairs:
            rows.setdefault(item["family"], []).append(
                {"axes": item["axes"], "failed": failed, "base": base, "cell": item["cell"]})
    return rows


AXIS_COLOUR = "#d62728"


def _values(values: list) -> str:
    """'1–12' for a run of consecutive integers, else the values listed."""
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if whole and len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(map(_show, values))


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
        marks.append(frame.whisker(i, lo, hi, AXIS_COLOUR)
                     + frame.dot(i, k / n, 4.5, AXIS_COLOUR, tip, hollow=n_base == n))
    held = "; ".join(f"{a} {_values(vs)}" for a, vs in rates["held"].items())
    label = f"{family}: failure rate along {axis}" + (f" ({description})" if description else "")
    chart = frame.svg(label, frame.axes(axis, "failure rate", xticks=ticks) + "".join(marks), heading=axis)
    caption = esc(description) + (f"<br>held at: {esc(held)}" if held else "")
    return f'<figure style="width:{frame.width}px">{chart}<figcaption>{caption}</figcaption></figure>'


def axes_section(data) -> str:
    """Per family, failure along each of its axes within comparable cells (comparable_axis_rates)."""
    tasks = data["results"].provenance.get("tasks") or {}
    competence = data["results"].competence
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
        flagged = (f' <span class="flag">flagged: fails {competence.base_failure[family]:.0%} of its base '
                   "region</span>" if family in competence.flagged else "")
        blocks.append(f'<h3>{esc(family)}{flagged}</h3><div class="panels">{panels}</div>{note}')
    return section("axes", "Observed failure along each family's axes", (
        "<p>For one axis, only the items (base and variant) whose other axes all sit at the base region's values "
        "(the most common base value, or for an axis that varies inside a base cell its base range), so that a "
        "shift along another axis does not show up here; 'held at' says which. Bars: 95% Wilson intervals; hollow "
        "points are base items only; n under each value. Values are evenly spaced, not to scale.</p>"
        + "".join(blocks)))
