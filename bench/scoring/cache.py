"""The run's scoring on disk, keyed by everything it is computed from: the cells, the outcomes, the
sealed scores and statuses, the seed and the source of the scoring modules (so a change to the
scoring code is a miss even where SCORING_VERSION was not bumped). An entry is stamped with its key:
one that cannot be read, or holds another key, is removed and recomputed (`bench.io.read_keyed`);
`verify` never reads the cache (it recomputes every figure).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .. import io

#: What a predictor's status holds that scoring does not read: they vary from run to run (its time,
#: its mechanistic requests' times, whether its answers came from the prediction cache), so they are
#: kept out of the key and taken from the run at hand on a hit.
VOLATILE = ("seconds", "mechanistic", "cached")


class ScoreCache:
    """Scored results as JSON files under `folder` (beside the model's traces and outcomes), named by
    the SHA-256 of the scoring code and the parts given."""

    def __init__(self, folder: str | Path, modules: Iterable[str]):
        self.folder = Path(folder)
        self._code = hashlib.sha256()
        for name in modules:  # the modules the scoring runs, by their source
            self._code.update(Path(inspect.getsourcefile(importlib.import_module(name))).read_bytes())

    def path(self, parts: Iterable[Any]) -> Path:
        key = self._code.copy()
        for part in parts:
            if isinstance(part, np.ndarray):
                data = f"{part.dtype}{part.shape}".encode() + np.ascontiguousarray(part).tobytes()
            else:
                data = json.dumps(part, sort_keys=True, default=str).encode()
            key.update(f"{len(data)}:".encode() + data)
        return self.folder / f"scores-{key.hexdigest()[:24]}.json"

    def get(self, path: Path) -> dict | None:
        entry = io.read_keyed(path, _check)
        return entry["results"] if entry is not None else None

    def put(self, path: Path, results: dict) -> None:
        io.write_keyed(path, {"results": results})


def _check(entry: dict) -> None:
    """A KeyError or TypeError where `entry` holds no scored results."""
    results = entry["results"]
    if not all(isinstance(results[part], dict) for part in ("predictors", "tracks")) or \
            not isinstance(results["cells"], list):
        raise TypeError("not a run's scored results")


def stable_status(status: dict[str, dict]) -> dict[str, dict]:
    """Each predictor's status without what varies from run to run (`VOLATILE`)."""
    return {name: {k: v for k, v in info.items() if k not in VOLATILE} for name, info in status.items()}


def restore_volatile(results: dict, status: dict[str, dict]) -> dict:
    """Cached `results` with this run's own seconds (and mechanistic request timings) per predictor,
    each in its place (results.json keeps its key order)."""
    for name, entry in results.get("predictors", {}).items():
        now = status.get(name, {})
        kept = {k: now[k] if k in VOLATILE else v for k, v in entry.items() if k not in VOLATILE or k in now}
        entry.clear()
        entry.update(kept | {k: now[k] for k in VOLATILE if k in now})
    return results
