"""Render a run's report.html in headless Chromium and save a full-page screenshot.

    python scripts/render_report.py RUN_FOLDER [--out report.png] [--height 6000]

Needs Debian's chromium (apt-get install chromium). Prints the PNG's path and size.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--out", default=None)
    parser.add_argument("--height", type=int, default=6000)
    args = parser.parse_args()
    report = Path(args.run) / "report.html"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    if not report.is_file():
        print(f"no report at {report}", file=sys.stderr)
        return 2
    out = Path(args.out or Path(args.run) / "report.png").resolve()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--window-size=1200,{args.height}", f"--screenshot={out}",
                        report.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
