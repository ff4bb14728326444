"""The predictors' claims (`predictors.Claim`) tested against what the model did, after evaluation.

Each cell a claim names is judged by its observed variant failure and the 95% Wilson interval of it:
the cell **agrees** where the whole interval lies on the predicted side of the claim's threshold
(brittle: lower end at or above it; robust: upper end below it), **disagrees** where it lies wholly
on the other side, and is **undecided** where it straddles the threshold. A cell the run does not
hold as a variant cell, or one of a family flagged for failing its own base region (its failures
are not evidence of brittleness), is **absent**. A claim is **held** when every cell it names
agrees, **falsified** when any disagrees, and **untestable** otherwise, with the reason.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from predictors.claims import Claim

from .metrics import wilson

AGREES, DISAGREES, UNDECIDED, ABSENT = "agrees", "disagrees", "undecided", "absent"
HELD, FALSIFIED, UNTESTABLE = "held", "falsified", "untestable"
VERDICTS = (HELD, FALSIFIED, UNTESTABLE)


def judge_cell(cell: str, predicted: str, threshold: float, observed: dict[str, tuple[int, int]],
               flagged: set[str]) -> dict[str, Any]:
    """One named cell: its observed failure, Wilson interval and verdict (`predicted`: "brittle" or
    "robust")."""
    n, k = observed.get(cell, (0, 0))
    row: dict[str, Any] = {"cell": cell, "predicted": predicted, "n": n, "n_failed": k,
                           "rate": k / n if n else None, "wilson": list(wilson(k, n)) if n else None}
    if not n or cell.partition("/")[0] in flagged:
        return row | {"verdict": ABSENT}
    lo, hi = row["wilson"]
    above, below = lo >= threshold, hi < threshold
    agrees, disagrees = (above, below) if predicted == "brittle" else (below, above)
    return row | {"verdict": AGREES if agrees else DISAGREES if disagrees else UNDECIDED}


def judge_claim(claim: dict[str, Any], observed: dict[str, tuple[int, int]], flagged: set[str]) -> dict[str, Any]:
    """One claim (as `Claim.to_json` writes it) with each named cell judged, its verdict and why."""
    made = Claim.from_json(claim)
    cells = [judge_cell(c, side, made.threshold, observed, flagged)
             for side, named in (("brittle", made.brittle), ("robust", made.robust)) for c in named]
    verdicts = [c["verdict"] for c in cells]
    verdict = FALSIFIED if DISAGREES in verdicts else HELD if all(v == AGREES for v in verdicts) else UNTESTABLE
    return {"mechanism": made.mechanism, "statement": made.statement, "threshold": made.threshold,
            "evidence": dict(made.evidence), "verdict": verdict,
            "reason": _reason(verdict, cells, made.threshold), "cells": cells}


def _reason(verdict: str, cells: list[dict], threshold: float) -> str:
    """Why a claim got its verdict, naming the cells that decided it."""
    def seen(c: dict) -> str:
        lo, hi = c["wilson"]
        return f"{c['cell']} predicted {c['predicted']}, observed {c['rate']:.3f} [{lo:.3f}, {hi:.3f}]"

    if verdict == HELD:
        return f"every named cell's interval lies on its predicted side of {threshold:g}"
    if verdict == FALSIFIED:
        return "; ".join(f"{seen(c)}: wholly on the other side of {threshold:g}"
                         for c in cells if c["verdict"] == DISAGREES)
    why = []
    for c in cells:
        if c["verdict"] == UNDECIDED:
            why.append(f"{seen(c)}: the interval straddles {threshold:g}")
        elif c["verdict"] == ABSENT:  # observed, yet absent: its family is flagged
            why.append(f"{c['cell']}: its family fails its own base region (flagged)" if c["n"]
                       else f"{c['cell']}: not a variant cell of this run")
    return "; ".join(why)


def judge_claims(claims: dict[str, list[dict]], cells: Sequence[str], failed: np.ndarray | Sequence[bool],
                 flagged: Iterable[str]) -> dict[str, list[dict]]:
    """Every predictor's claims judged against the variants' outcomes (`cells`: each variant's
    "family/cell"; `failed`: its outcome); `flagged`: the families failing their own base region."""
    observed: dict[str, tuple[int, int]] = {}  # (n, n_failed) of each variant cell
    for cell, fail in zip(cells, failed):
        n, k = observed.get(str(cell), (0, 0))
        observed[str(cell)] = (n + 1, k + bool(fail))
    flagged = set(flagged)
    return {name: [judge_claim(claim, observed, flagged) for claim in made] for name, made in claims.items() if made}


def claims_summary(judged: list[dict]) -> dict[str, int]:
    """How many of one predictor's claims held, were falsified and were untestable."""
    return {verdict: sum(c["verdict"] == verdict for c in judged) for verdict in VERDICTS}
