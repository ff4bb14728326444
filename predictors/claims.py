"""A predictor's claims: beside P(failure) per item, a named mechanism and the cells it says will be
brittle or robust, sealed with the predictions and tested against the observed failures after the
evaluation (`bench/scoring/claims.py`).

A claim names cells as results.json names them, "family/cell" (e.g. "multihop/hops=8"): a brittle
cell is one whose observed failure rate the claim says lies at or above `threshold`, a robust one
below it. `evidence` holds what the predictor measured that led to the claim (numbers or short
strings), so that a reader can check the reasoning as well as the verdict.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

Evidence = Mapping[str, "float | int | str"]


@dataclass(frozen=True)
class Claim:
    """One claim: `mechanism` (a short name), `statement` (one sentence), the cells predicted
    `brittle` (failure at or above `threshold`) and `robust` (below it), and the `evidence` measured.
    Checked on construction: a bad claim raises ValueError with what to fix."""

    mechanism: str
    statement: str
    brittle: tuple[str, ...] = ()
    robust: tuple[str, ...] = ()
    threshold: float = 0.5
    evidence: Evidence = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("mechanism", "statement"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"a claim needs a non-empty {name} (a string), got {value!r}")
        brittle, robust = _cells(self.brittle, "brittle"), _cells(self.robust, "robust")
        if not brittle and not robust:
            raise ValueError(f"claim {self.mechanism!r} names no cell: pass brittle=... or robust=... "
                             "('family/cell', as results.json names them)")
        both = sorted(set(brittle) & set(robust))
        if both:
            raise ValueError(f"claim {self.mechanism!r} names {', '.join(both)} both brittle and robust")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, numbers.Real) \
                or not 0 < self.threshold < 1:
            raise ValueError(f"claim {self.mechanism!r}: threshold must be a number strictly between 0 and 1, "
                             f"got {self.threshold!r}")
        object.__setattr__(self, "brittle", brittle)
        object.__setattr__(self, "robust", robust)
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "evidence", MappingProxyType(_evidence(self.evidence, self.mechanism)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `Claim.from_json` reads it back."""
        return {"mechanism": self.mechanism, "statement": self.statement, "brittle": list(self.brittle),
                "robust": list(self.robust), "threshold": self.threshold, "evidence": dict(self.evidence)}

    @classmethod
    def from_json(cls, data: Any) -> "Claim":
        """The claim `to_json` wrote (checked again: a malformed one raises ValueError)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a claim must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"a claim has no field {', '.join(map(repr, unknown))}")
        if "mechanism" not in data or "statement" not in data:
            raise ValueError("a claim needs a mechanism and a statement")
        return cls(**dict(data))

    def __reduce__(self):  # the evidence's read-only view does not pickle; the claim's JSON does
        return (type(self).from_json, (self.to_json(),))


def _cells(cells: Any, side: str) -> tuple[str, ...]:
    if isinstance(cells, str):
        raise ValueError(f"{side} takes a sequence of cells, got the string {cells!r}: write ({cells!r},)")
    out = tuple(cells)
    for cell in out:
        family, _, name = cell.partition("/") if isinstance(cell, str) else ("", "", "")
        if not family or not name:
            raise ValueError(f"{side} cell {cell!r} is not 'family/cell' (as results.json names cells, e.g. "
                             "'multihop/hops=8')")
    twice = sorted({c for c in out if out.count(c) > 1})
    if twice:
        raise ValueError(f"{side} names {', '.join(twice)} twice")
    return out


def _evidence(evidence: Any, mechanism: str) -> dict[str, float | int | str]:
    """The evidence as plain JSON values: finite numbers (numpy's too, made Python's) and strings."""
    if evidence is None:
        return {}
    if not isinstance(evidence, Mapping):
        raise ValueError(f"claim {mechanism!r}: evidence must be a mapping of names to numbers or strings")
    out: dict[str, float | int | str] = {}
    for key, value in evidence.items():
        if not isinstance(key, str):
            raise ValueError(f"claim {mechanism!r}: evidence names must be strings, got {key!r}")
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
        else:
            raise ValueError(f"claim {mechanism!r}: evidence {key!r} must be a finite number or a string, "
                             f"got {value!r}")
    return out
