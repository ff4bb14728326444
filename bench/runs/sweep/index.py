"""sweep.json: what a sweep is made of and where each run stands, rewritten (atomically) as each
run finishes, so that a sweep killed at any moment leaves an index that says how far it got."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ... import io

SCHEMA_VERSION = 1
INDEX = "sweep.json"


@dataclass(frozen=True)
class RunRecord:
    """One run of the sweep. `status`: pending, finished or failed; `action`: what this invocation
    did with it: run (a fresh run), resume (continued an interrupted one) or skip (finished before)."""

    id: str
    model: str
    point: str | None  # checkpoint or revision name; None: the model as given
    step: int | None
    seed: int
    suite: str | None
    folder: str  # the run folder, relative to the sweep's
    log: str  # the run's output, relative to the sweep's folder
    status: str = "pending"
    action: str = "run"
    reason: str | None = None  # why it failed
    wall_s: float | None = None  # seconds its process took (a skipped run keeps the time it took then)
    finished_at: str | None = None  # UTC


@dataclass(frozen=True)
class SummaryRecord:
    """A table built from finished runs: a leaderboard, leave-one-model-out, predictability over training."""

    kind: str  # "leaderboard", "leave-one-model-out" or "over-training"
    name: str
    runs: tuple[str, ...]  # the ids of the runs it reads
    path: str | None  # what it wrote, relative to the sweep's folder
    status: str  # "ok" or "failed"
    reason: str | None = None


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class SweepIndex:
    """The index of the sweep in `out`: its grid, executor, runs and summaries."""

    def __init__(self, out: Path, grid: dict[str, Any], executor: dict[str, Any], runs: Sequence[RunRecord]):
        self.out = Path(out)
        self.grid = grid
        self.executor = executor
        self.runs = {r.id: r for r in runs}
        self.summaries: list[SummaryRecord] = []
        self.started = now()

    @staticmethod
    def earlier(out: Path) -> dict[str, dict]:
        """The records of the last invocation in `out`, by run id (empty if none, or unreadable)."""
        try:
            return {r["id"]: r for r in json.loads((Path(out) / INDEX).read_text())["runs"]}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def update(self, run_id: str, **changes: Any) -> RunRecord:
        self.runs[run_id] = replace(self.runs[run_id], **changes)
        return self.runs[run_id]

    def counts(self) -> dict[str, int]:
        out = {"runs": len(self.runs), "finished": 0, "failed": 0, "pending": 0}
        for r in self.runs.values():
            out[r.status] += 1
        return out

    def write(self) -> Path:
        path = self.out / INDEX
        io.write_json(path, {"schema_version": SCHEMA_VERSION, "started": self.started, "updated": now(),
                             "grid": self.grid, "executor": self.executor, "counts": self.counts(),
                             "runs": [asdict(r) for r in self.runs.values()],
                             "summaries": [asdict(s) | {"runs": list(s.runs)} for s in self.summaries]})
        return path
