"""The scoring of one run: results.json's figures from its items, outcomes and sealed predictions.

The run's score stage, `verify` (which scores the stored files again) and the CLI's tables call
these; items, outcomes and families are taken as they come (anything with their fields).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from predictors import TRACKS

from .claims import claims_summary, judge_claims
from .metrics import (BASELINES, INFORMATIVE_MIN, RANKING, REFERENCE, SANITY, SCORING_VERSION, cell_table,
                      minimum_detectable_effect, no_signal_band, same_rankings, score_predictors)

RESULTS_SCHEMA_VERSION = 1
BASE_FAILURE_LIMIT = 0.2  # a family failing more of its base region than this is flagged


def score(suite, base_outcomes: list, variant_outcomes: list, scores: dict[str, np.ndarray],
          status: dict[str, dict], seed: int, reference: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics per predictor (over the variants of the families `base_competence` keeps), per family,
    and per cell; per track, the baselines and (trace track) the answer-visible reference; each claim
    (a predictor's `claims` in `status`) tested against its cells' observed failure. `suite` holds
    the run's `families`, `base` and `variants`."""
    families, base, variants = suite.families, suite.base, suite.variants
    shifts = {(name, c.name): c.shift for name, family in families.items() for c in family.cells}
    rows = [{"family": it.family, "cell": it.cell, "shift": shifts[it.family, it.cell], "split": "base",
             "failed": not o.correct} for it, o in zip(base, base_outcomes)]
    rows += [{"family": it.family, "cell": it.cell, "shift": shifts[it.family, it.cell], "split": "variant",
              "failed": not o.correct, "pred_index": i} for i, (it, o) in enumerate(zip(variants, variant_outcomes))]
    failed = np.array([not o.correct for o in variant_outcomes], dtype=bool)
    cells = np.array([f"{it.family}/{it.cell}" for it in variants])
    tracks = {name: info["track"] for name, info in status.items() if name in scores}
    competence = base_competence(families, base, base_outcomes)
    kept = np.array([it.family in competence["scored_families"] for it in variants], dtype=bool)
    # each family scored alone (its own draws), then the run's figures over the kept families, reusing its rows
    per_family, alone = {}, {}
    for name in families:
        mask = np.array([it.family == name for it in variants], dtype=bool)
        if not mask.any():
            continue
        metrics = score_predictors(failed[mask], cells[mask], {k: v[mask] for k, v in scores.items()}, seed,
                                   tracks=tracks, reference=None if reference is None else reference[mask],
                                   families=alone)
        n_failed = int(failed[mask].sum())
        n_passed = int(mask.sum()) - n_failed
        per_family[name] = {"n": int(mask.sum()), "n_failed": n_failed, "n_passed": n_passed,
                            "informative": min(n_failed, n_passed) >= INFORMATIVE_MIN,
                            "failure_rate": float(failed[mask].mean()),
                            "base_failure_rate": competence["base_failure"].get(name),
                            "flagged": name in competence["flagged"],
                            "predictors": {k: v for k, v in metrics.items() if k != REFERENCE},
                            **({"reference": metrics[REFERENCE]} if REFERENCE in metrics else {})}
    overall = score_predictors(failed[kept], cells[kept], {k: v[kept] for k, v in scores.items()}, seed, tracks=tracks,
                               reference=None if reference is None else reference[kept],
                               families=alone) if kept.any() else {}
    repeats = same_rankings({k: v[kept] for k, v in scores.items()}, first=BASELINES["trace"] + (SANITY,))
    for name, other in repeats.items():
        overall.setdefault(name, {})["same_ranking_as"] = other
    made = {name: info["claims"] for name, info in status.items() if name in scores and info.get("claims")}
    claims = judge_claims(made, cells, failed, competence["flagged"])
    for name, judged in claims.items():
        overall.setdefault(name, {})["claims_summary"] = claims_summary(judged)
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "scoring_version": SCORING_VERSION,
        "n_base": len(base),
        "n_variant": len(variants),
        "base_failure_rate": float(np.mean([not o.correct for o in base_outcomes])) if base_outcomes else None,
        "variant_failure_rate": float(failed.mean()) if len(failed) else None,
        "predictors": {name: {k: v for k, v in info.items() if k != "claims"} | overall.get(name, {})
                       for name, info in status.items()},  # the claims are sealed in their own file
        "tracks": track_summary(status, overall, int(kept.sum())),
        "no_signal": no_signal_band(failed[kept], cells[kept], seed),
        "families": per_family,
        "competence": competence,
        "cells": cell_table(rows, scores),
        **({"claims": claims} if claims else {}),  # only where some predictor claimed: older results hold none
        "protocols": {},
        "targets": {},
    }


def base_competence(families: dict, base: list, base_outcomes: list) -> dict[str, Any]:
    """Which families the model can do at all. Where a model fails more than BASE_FAILURE_LIMIT of a
    family's base region, that family's variant failures are mostly general incompetence, not
    compositional brittleness: the family is flagged and left out of the run-level figures (its own
    per-family figures stay). If every family is flagged, none is left out and the run says so."""
    failures: dict[str, list[bool]] = {}
    for item, outcome in zip(base, base_outcomes):
        failures.setdefault(item.family, []).append(not outcome.correct)
    rate = {name: float(np.mean(failures[name])) for name in families if name in failures}
    flagged = [name for name in families if rate.get(name, 0.0) > BASE_FAILURE_LIMIT]
    scored = [name for name in families if name not in flagged] or list(families)
    if not flagged:
        note = ""
    elif len(scored) == len(families):
        note = (f"the model fails more than {BASE_FAILURE_LIMIT:.0%} of the base region of every family: "
                "its variant failures are not evidence of compositional brittleness")
    else:
        note = (f"{', '.join(flagged)}: the model fails more than {BASE_FAILURE_LIMIT:.0%} of the base region, so "
                "variant failures there are not evidence of compositional brittleness; left out of the "
                "run-level figures")
    return {"limit": BASE_FAILURE_LIMIT, "base_failure": rate, "flagged": flagged, "scored_families": scored,
            "note": note}


def track_summary(status: dict[str, dict], metrics: dict[str, dict], n_items: int) -> dict[str, dict]:
    """Per track, blind first: its predictors, the baselines it is judged against, the best of them,
    the smallest difference from it that the run's items could detect, and (trace track) the
    answer-visible reference row."""
    out = {}
    for track in TRACKS:
        names = [n for n, info in status.items() if info.get("track") == track]
        best = next((m["vs_best_baseline"]["baseline"] for n, m in metrics.items()
                     if n in names and "vs_best_baseline" in m), None)
        baselines = [b for b in BASELINES[track] if b in metrics]  # a blind baseline is one of the trace track's too
        differences = [metrics[n]["vs_best_baseline"]["difference"] for n in names
                       if n in metrics and "vs_best_baseline" in metrics[n] and n not in BASELINES[track] + (SANITY,)]
        out[track] = {"predictors": names, "baselines": baselines, "sanity": SANITY, "best_baseline": best,
                      "ranked_by": RANKING, "mde": minimum_detectable_effect(differences, n_items)}
        if track == "trace" and REFERENCE in metrics:
            out[track]["reference"] = {"name": REFERENCE, **metrics[REFERENCE]}
    return out


def score_view(failed: np.ndarray, cells: np.ndarray, scores: dict[str, np.ndarray], status: dict[str, dict],
               seed: int, keep: np.ndarray | None = None) -> dict[str, dict]:
    """A protocol's or target's figures: each of `scores` judged in its track (as `status` says) over
    the items `keep` marks (all where None); {} where it marks none."""
    keep = np.ones(len(failed), dtype=bool) if keep is None else keep
    if not keep.any():
        return {}
    tracks = {n: info["track"] for n, info in status.items() if n in scores}
    return score_predictors(failed[keep], cells[keep], {n: v[keep] for n, v in scores.items()}, seed, tracks=tracks)


def solved_components(rows: list[dict], item_ids: list[str]) -> np.ndarray:
    """Per item, whether it has components and the model solves them all (`rows`: the components'
    outcomes, each naming its `parent` item): the items the compositional target scores."""
    solved: dict[str, bool] = {}
    for row in rows:
        solved[row["parent"]] = solved.get(row["parent"], True) and bool(row["correct"])
    return np.array([solved.get(item_id, False) for item_id in item_ids], dtype=bool)
