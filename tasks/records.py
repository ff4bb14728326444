"""The records every stage passes around: cells, items, and sealed items.

An `Item` carries its answer (`target`) and intermediate values (`meta`).
A `SealedItem` is what a predictor may see: a separate type built from an
item's public fields only, so there is nothing hidden on it to reach.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

SCHEMA_VERSION = 1

#: The kinds of compositional shift a variant cell can make (plus "base").
SHIFTS = ("productivity", "depth", "systematicity", "substitutivity", "distraction")


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Cell:
    """A named region of a family's axes: the base region, or one variant."""

    name: str
    axes: Mapping[str, Any]
    shift: str  # "base" or one of SHIFTS
    description: str = ""

    def __post_init__(self) -> None:
        if self.shift != "base" and self.shift not in SHIFTS:
            raise ValueError(f"cell {self.name!r}: unknown shift {self.shift!r}; use 'base' or one of {SHIFTS}")
        object.__setattr__(self, "axes", _frozen(self.axes))

    @property
    def is_base(self) -> bool:
        return self.shift == "base"


def item_id(family: str, cell: str, seed: int, index: int) -> str:
    """Stable id: a hash of where the item came from (DESIGN.md), 16 hex chars."""
    key = json.dumps([family, cell, seed, index], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Item:
    id: str
    family: str
    cell: str
    axes: Mapping[str, Any]
    prompt: str
    target: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", _frozen(self.axes))
        object.__setattr__(self, "meta", _frozen(self.meta))

    def sealed(self) -> "SealedItem":
        return SealedItem(id=self.id, family=self.family, cell=self.cell, axes=dict(self.axes), prompt=self.prompt)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "id": self.id,
            "family": self.family,
            "cell": self.cell,
            "axes": dict(self.axes),
            "prompt": self.prompt,
            "target": self.target,
            "meta": dict(self.meta),
        }

    def __reduce__(self):  # pickles as its dict (the frozen mappings do not pickle themselves)
        return (Item.from_dict, (self.to_dict(),))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Item":
        return cls(
            id=d["id"], family=d["family"], cell=d["cell"], axes=d["axes"], prompt=d["prompt"],
            target=d["target"], meta=d.get("meta", {}), schema_version=d.get("schema_version", SCHEMA_VERSION),
        )


@dataclass(frozen=True)
class SealedItem:
    """What a user could know before evaluation: no target, no intermediate values."""

    id: str
    family: str
    cell: str
    axes: Mapping[str, Any]
    prompt: str
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", _frozen(self.axes))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "id": self.id, "family": self.family,
                "cell": self.cell, "axes": dict(self.axes), "prompt": self.prompt}

    def __reduce__(self):
        return (SealedItem.from_dict, (self.to_dict(),))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SealedItem":
        return cls(id=d["id"], family=d["family"], cell=d["cell"], axes=d["axes"], prompt=d["prompt"],
                   schema_version=d.get("schema_version", SCHEMA_VERSION))
