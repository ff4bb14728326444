"""`brittlebench verify RUN`: were the predictions sealed as recorded, and do the stored
outcomes give the recorded scores?"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import io
from ..errors import UserError

RUN_FILES = ("results.json", "predictions.jsonl", "predictions.sha256", "outcomes.jsonl")  # what verify reads


def check_run_folder(run: Path) -> dict:
    """The run's results, or a one-line UserError saying what is wrong with the folder."""
    if not run.is_dir():
        raise UserError(f"no run folder at {run}: pass the folder that 'brittlebench run' wrote")
    for name in RUN_FILES:
        if not (run / name).is_file():
            raise UserError(f"{run} has no {name}: it is not a finished brittlebench run")
    try:
        results = json.loads((run / "results.json").read_text())
        results["predictions_sha256"], results["predictors"], results["schema_version"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise UserError(f"{run / 'results.json'} is corrupted: it is not a brittlebench results file") from None
    return results


def recompute_scores(run: Path, results: dict, name: str = "predictions", view: dict | None = None,
                     eligible_only: bool = False, with_reference: bool = False) -> dict[str, dict]:
    """Every predictor's metrics again, from `name`.jsonl, outcomes.jsonl (and components.jsonl, and
    with `with_reference` the answer-visible reference from reference.jsonl)."""
    from ..scoring.metrics import REFERENCE, score_predictors

    view = view or results
    try:
        predictions = io.read_jsonl(run / f"{name}.jsonl")
        outcomes = {r["item_id"]: r for r in io.read_jsonl(run / "outcomes.jsonl") if r["split"] == "variant"}
        failed = np.array([not outcomes[p["item_id"]]["correct"] for p in predictions], dtype=bool)
        cells = np.array([f"{p['family']}/{p['cell']}" for p in predictions])
        names = [n for n, p in view["predictors"].items() if p.get("status", "ok") == "ok"]
        scores = {n: np.array([p["scores"][n] for p in predictions], dtype=float) for n in names}
        tracks = {n: (view["predictors"][n].get("track") or results["predictors"][n]["track"]) for n in names}
        reference = None
        if with_reference:
            by_id = {r["item_id"]: r[REFERENCE] for r in io.read_jsonl(run / "reference.jsonl")}
            reference = np.array([by_id[p["item_id"]] for p in predictions], dtype=float)
        keep = np.ones(len(predictions), dtype=bool)
        flagged = set((results.get("competence") or {}).get("flagged") or ())
        scored = set((results.get("competence") or {}).get("scored_families") or ())
        if view is results and flagged and scored:  # the run-level figures leave the flagged families out
            keep = np.array([p["family"] in scored for p in predictions], dtype=bool)
        if eligible_only:
            solved: dict[str, bool] = {}
            for row in io.read_jsonl(run / "components.jsonl"):
                solved[row["parent"]] = solved.get(row["parent"], True) and bool(row["correct"])
            keep = np.array([solved.get(p["item_id"], False) for p in predictions], dtype=bool)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UserError(f"{run}: {name}.jsonl, outcomes.jsonl or components.jsonl is corrupted or does not match "
                        "the results") from None
    return score_predictors(failed[keep], cells[keep], {n: v[keep] for n, v in scores.items()},
                            results["provenance"]["seed"], tracks=tracks,
                            reference=None if reference is None else reference[keep])


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return a == b


def _screen(run: Path) -> tuple[bool, str]:
    """A run that began as a predict-only screen: its sealed blind predictions must be intact and be
    the blind columns of the final predictions, which shows they were made before any variant was
    evaluated."""
    stages = run / "stages"
    try:
        data = (stages / "screen.jsonl").read_bytes()
        digest = (stages / "screen.sha256").read_text().split()[0]
        when = json.loads((stages / "screen.json").read_text())["sealed"]
        screened = [json.loads(line) for line in data.decode().splitlines()]
        final = {r["item_id"]: r["scores"] for r in io.read_jsonl(run / "predictions.jsonl")}
    except (OSError, IndexError, KeyError, ValueError):
        return False, "screen: stages/screen.* is incomplete or corrupted"
    if io.sha256(data) != digest:
        return False, f"screen: stages/screen.jsonl does not match its sha256 {digest}: MISMATCH"
    same = all(r["item_id"] in final and all(final[r["item_id"]].get(n) == v for n, v in r["scores"].items())
               for r in screened)
    names = sorted(screened[0]["scores"]) if screened else []
    return same, (f"screen: {len(names)} blind predictors sealed {when} (sha256 {digest[:16]}...) before any variant "
                  f"was evaluated; the final predictions {'hold them unchanged: ok' if same else 'differ: MISMATCH'}")


def verify(run: Path) -> tuple[bool, list[str]]:
    run = Path(run)
    results = check_run_folder(run)
    actual = io.sha256((run / "predictions.jsonl").read_bytes())
    sealed = (run / "predictions.sha256").read_text().split()[0] if (run / "predictions.sha256").read_text().split() else ""
    recorded = results["predictions_sha256"]
    lines = [f"predictions.jsonl sha256 {actual}",
             f"predictions.sha256       {sealed} {'ok' if sealed == actual else 'MISMATCH'}",
             f"results.json records     {recorded} {'ok' if recorded == actual else 'MISMATCH'}"]
    ok = sealed == actual == recorded
    if (run / "stages" / "screen.jsonl").is_file():
        screen_ok, line = _screen(run)
        ok &= screen_ok
        lines.append(line)
    from ..scoring.metrics import SCORING_VERSION

    if results.get("scoring_version", 1) != SCORING_VERSION:
        lines.append(f"scores: made by scoring version {results.get('scoring_version', 1)}, this is version "
                     f"{SCORING_VERSION}: rerun the run to recompute them (the digests above still hold)")
        return False, lines
    from ..scoring.metrics import REFERENCE

    reference = results.get("tracks", {}).get("trace", {}).get("reference")
    views = [("base protocol", "predictions", results, False)]
    for protocol, view in results.get("protocols", {}).items():
        name = f"predictions.{protocol}"
        path = run / f"{name}.jsonl"
        actual = io.sha256(path.read_bytes()) if path.is_file() else "missing"
        sealed = (run / f"{name}.sha256").read_text().split()[0] if (run / f"{name}.sha256").is_file() else "missing"
        same = actual == sealed == view.get("predictions_sha256")
        ok &= same
        lines.append(f"{name}.jsonl sha256 {'ok' if same else 'MISMATCH'}")
        if same:
            views.append((f"protocol {protocol}", name, view, False))
    for target, view in results.get("targets", {}).items():
        views.append((f"target {target}", "predictions", view, True))
    for label, name, view, eligible_only in views:
        main = view is results and reference is not None
        recomputed = recompute_scores(run, results, name, view, eligible_only, with_reference=main)
        count = 0
        for predictor, metrics in recomputed.items():
            kept = reference if predictor == REFERENCE and main else view["predictors"][predictor]
            stored = {k: v for k, v in kept.items() if k in metrics}
            same = _close(stored, metrics)
            ok &= same
            count += 1
            if not same:
                moved = [k for k in metrics if not _close(stored.get(k), metrics[k])]
                lines.append(f"{label}: scores of {predictor}: MISMATCH in {', '.join(moved)} (outcomes or predictions edited?)")
        by_track = {}
        for predictor in recomputed:
            track = "reference" if predictor == REFERENCE else (view["predictors"][predictor].get("track")
                                                              or results["predictors"][predictor]["track"])
            by_track.setdefault(track, []).append(predictor)
        tally = ", ".join(f"{track} {len(by_track[track])}" for track in ("blind", "trace", "reference") if track in by_track)
        lines.append(f"{label}: scores recomputed from the stored files for {count} ({tally})")
    lines.append("verified" if ok else "MISMATCH: this run folder was edited after it was written")
    return ok, lines
