"""`brittlebench compare NEW --baseline BASE`: the CI regression gate.

A metric regressed when it moved the wrong way by more than its tolerance AND the
baseline's value lies outside the new run's 95% interval (so noise is not called a
regression). Exit 0: nothing regressed; 1: something did; 2: unusable input.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .metrics import HIGHER_IS_BETTER

DEFAULT_MAX_DROP = {"family_auroc": 0.02}  # the ranking figure


def parse_max_drop(text: str | None) -> dict[str, float]:
    if not text:
        return dict(DEFAULT_MAX_DROP)
    out = {}
    for part in text.split(","):
        metric, sep, value = part.partition("=")
        metric = metric.strip()
        if not sep or metric not in HIGHER_IS_BETTER:
            raise UserError(f"--max-drop takes METRIC=TOLERANCE pairs with metrics from {', '.join(HIGHER_IS_BETTER)}; "
                            f"got {part!r}")
        try:
            out[metric] = float(value)
        except ValueError:
            raise UserError(f"--max-drop {metric}: {value!r} is not a number") from None
        if out[metric] < 0:
            raise UserError(f"--max-drop {metric}: the tolerance must be >= 0")
    return out


def load_results(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise UserError(f"no results at {path}: pass a results.json or a run folder")
    try:
        results = json.loads(path.read_text())
        results["predictors"], results["cells"], results["provenance"]["seed"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise UserError(f"{path} is corrupted: it is not a brittlebench results file") from None
    return results


def _suite(results: dict) -> list[tuple]:
    return sorted((c["family"], c["cell"], c["n"]) for c in results["cells"])


def compare(new: dict, base: dict, max_drop: dict[str, float]) -> tuple[bool, list[str]]:
    """(regressed, lines to print)."""
    if _suite(new) != _suite(base) or new["provenance"]["seed"] != base["provenance"]["seed"]:
        raise UserError("the two runs are on different suites (tasks, cells, n or seed differ): "
                        "compare runs made with the same --tasks, --n and --seed")
    if new["provenance"].get("private_seed") != base["provenance"].get("private_seed"):
        raise UserError("the two runs used different private seeds (different held-out items): "
                        "compare runs made with the same --private-seed-file")
    lines, regressed = [], False
    order = {"blind": 0, "trace": 1}
    for name, old in sorted(base["predictors"].items(), key=lambda kv: order.get(kv[1].get("track"), 2)):
        now = new["predictors"].get(name)
        name = f"{name} ({old.get('track', 'trace')})"
        if old.get("status") != "ok":
            continue
        if now is None or now.get("status") != "ok":
            status = "missing" if now is None else f"{now.get('status', 'failed').replace('_', ' ')}: {now.get('reason', '')}"
            lines.append(f"REGRESSED {name}: {status}")
            regressed = True
            continue
        for metric, tolerance in max_drop.items():
            a, b = old.get(metric, {}), now.get(metric, {})
            if a.get("value") is None or b.get("value") is None:
                continue
            sign = 1 if HIGHER_IS_BETTER[metric] else -1
            drop = sign * (a["value"] - b["value"])  # > 0: worse
            outside = b.get("lo") is not None and (b["hi"] < a["value"] if sign > 0 else b["lo"] > a["value"])
            moved = f"{metric} {a['value']:.3f} -> {b['value']:.3f} [{b.get('lo') or 0:.3f}, {b.get('hi') or 0:.3f}]"
            if drop > tolerance and outside:
                lines.append(f"REGRESSED {name}: {moved}, worse by {drop:.3f} > {tolerance}")
                regressed = True
            elif drop > tolerance:
                lines.append(f"noise     {name}: {moved}, worse by {drop:.3f} but the baseline is inside the interval")
            elif abs(drop) > 1e-12:
                lines.append(f"ok        {name}: {moved}")
    lines.append(("regression found" if regressed else "no regression") +
                 f" ({len(base['predictors'])} predictors; tolerances {max_drop})")
    return regressed, lines
