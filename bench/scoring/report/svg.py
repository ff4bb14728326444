"""The page's building blocks: a section, and hand-written SVG charts (a frame, dots, whiskers, colours)."""
from __future__ import annotations

import hashlib
import html

esc = html.escape


def section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}" data-section="{key}"><h2>{esc(title)}</h2>{body}</section>'


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

    def axes(self, xlabel: str, ylabel: str, xticks=None) -> str:
        """The frame, gridlines and tick labels; ticks are (value, label) pairs, quarters of 0..1 by default."""
        quarters = [(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]
        x0, x1, y0, y1 = self.x(self.xs[0]), self.x(self.xs[1]), self.y(self.ys[0]), self.y(self.ys[1])
        parts = [f'<rect class="frame" x="{x0:.1f}" y="{y1:.1f}" width="{x1 - x0:.1f}" height="{y0 - y1:.1f}"/>']
        for v, label in quarters:
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

    def dot(self, x: float, y: float, r: float, colour: str, tip: str, hollow: bool = False) -> str:
        """A data point with its numbers as a tooltip."""
        return (f'<circle class="mark" cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="{r:.1f}" '
                f'fill="{"#fff" if hollow else colour}" stroke="{colour}"><title>{esc(tip)}</title></circle>')

    def whisker(self, x: float, lo: float, hi: float, colour: str) -> str:
        return (f'<line class="whisker" x1="{self.x(x):.1f}" x2="{self.x(x):.1f}" y1="{self.y(lo):.1f}" '
                f'y2="{self.y(hi):.1f}" stroke="{colour}"/>')
