"""Check a run's report.html in headless Chromium, then save full-page screenshots of it.

    python scripts/render_report.py RUN_FOLDER [--out report.png] [--widths 1200,800]

For each window width (1200 and 800 px by default) it loads the report with its scripts running
(`chromium --headless --dump-dom --virtual-time-budget`) and checks the DOM the scripts leave:
no JavaScript error recorded on <html data-js-errors> (the page installs window.onerror), the page's
script ran to its end (<html data-ready>), every section the page lists in <html data-sections>
present and non-empty, every chart with drawn marks, and the item browser with rows. The first
failure exits 1 with one line saying why. Then it screenshots the whole page at each width (its
height is read from the DOM, <html data-height>): report.png, report-800.png, ... in the run
folder unless --out names the first. Prints each PNG's path and size.

Needs Debian's chromium (apt-get install chromium); exit 2 without it or without a report.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

ALWAYS = ("summary", "predictors", "cells", "items", "metadata")  # sections every report has
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Dom(HTMLParser):
    """What the checks read from the dumped DOM: <html>'s attributes, each section's text and marks,
    each chart's marks, and the item browser's rows."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.root: dict[str, str] = {}
        self.sections: dict[str, dict] = {}
        self.charts: list[dict] = []
        self.item_rows = 0
        self.stack: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.root = attrs
        if tag in self.VOID:
            return
        classes = attrs.get("class", "").split()
        for _, info in self.stack:
            if "marks" in info and "mark" in classes:
                info["marks"] += 1
        if tag == "tr" and any(t == "tbody" and i.get("id") == "item-rows" for t, i in self.stack):
            self.item_rows += 1
        info: dict = {}
        if tag in ("section", "header") and "data-section" in attrs:
            info = {"marks": 0, "text": 0, "charts": 0}
            self.sections[attrs["data-section"]] = info
        elif tag == "svg" and "chart" in classes:
            info = {"marks": 0, "label": attrs.get("aria-label", "?")}
            self.charts.append(info)
            for _, outer in self.stack:
                if "charts" in outer:
                    outer["charts"] += 1
        elif tag == "tbody":
            info = {"id": attrs.get("id", "")}
        self.stack.append((tag, info))

    def handle_endtag(self, tag):
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                del self.stack[k:]
                return

    def handle_data(self, data):
        if any(t in ("script", "style") for t, _ in self.stack):
            return
        for _, info in self.stack:
            if "text" in info:
                info["text"] += len(data.strip())


def problems(dom: Dom) -> list[str]:
    """Why the rendered report is broken, most basic first; [] when it is fine."""
    errors = dom.root.get("data-js-errors", "").strip()
    if errors:
        return ["JavaScript error: " + errors.splitlines()[0]]
    if dom.root.get("data-ready") != "1":
        return ["the page's script did not run to its end (no data-ready on <html>)"]
    out = []
    for name in dict.fromkeys([*ALWAYS, *dom.root.get("data-sections", "").split(), *dom.sections]):
        info = dom.sections.get(name)
        if info is None:
            out.append(f"section {name} is missing")
        elif info["text"] < 40 and not info["charts"]:
            out.append(f"section {name} is empty")
    out += [f"chart '{c['label']}' has nothing drawn" for c in dom.charts if not c["marks"]]
    if "items" in dom.sections and not dom.item_rows:
        out.append("the item browser shows no rows")
    return out


def chromium(browser: str, profile: str, width: int, height: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", *args],
                          check=True, capture_output=True, text=True, timeout=180)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder holding report.html (or the report itself)")
    parser.add_argument("--out", default=None, help="the first screenshot's path (default RUN/report.png)")
    parser.add_argument("--widths", default="1200,800", help="window widths, comma-separated (default 1200,800)")
    args = parser.parse_args()
    report = Path(args.run) if args.run.endswith(".html") else Path(args.run) / "report.html"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    if not report.is_file():
        print(f"no report at {report}", file=sys.stderr)
        return 2
    first = Path(args.out or report.with_name("report.png")).resolve()
    widths = [int(w) for w in args.widths.split(",")]
    try:
        return check_and_shoot(browser, report, first, widths)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"{report}: chromium failed: {e}", file=sys.stderr)
        return 1


def check_and_shoot(browser: str, report: Path, first: Path, widths: list[int]) -> int:
    """At each width, the DOM checks and then the screenshot; 1 at the first problem, 0 when all pass."""
    with tempfile.TemporaryDirectory() as profile:
        for k, width in enumerate(widths):
            dom = Dom()
            dom.feed(chromium(browser, profile, width, 1000, "--virtual-time-budget=10000", "--dump-dom",
                              report.resolve().as_uri()).stdout)
            found = problems(dom)
            if found:
                more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
                print(f"{report} at {width} px: {found[0]}{more}", file=sys.stderr)
                return 1
            out = first if k == 0 else first.with_name(f"{first.stem}-{width}{first.suffix}")
            height = int(dom.root.get("data-height") or 8000) + 40
            chromium(browser, profile, width, height, "--virtual-time-budget=10000", f"--screenshot={out}",
                     report.resolve().as_uri())
            print(f"{out} ({out.stat().st_size} bytes, {width}×{height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
