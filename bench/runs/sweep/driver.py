"""The sweep: plan the grid, skip the runs already finished, resume the interrupted ones, run the
rest on the executor, record each in sweep.json as it ends, then build the summaries.

Rerunning the same command finishes a sweep: a run folder whose results.json exists (for the same
settings) is skipped, one with a run.json but no results continues with --resume, a failed run is
tried again. A run folder holding a run of other settings is a user mistake (exit 2), found before
anything runs. sweep.json is rewritten (atomically) as each run ends, so that a sweep killed at any
moment leaves an index that says how far it got.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ... import io
from ...errors import UserError
from .child import RunTask
from .executors import make_executor
from .grid import Grid, PlannedRun, SweepOptions, plan
from .summaries import SummaryRecord, build_summaries

Log = Callable[[str], None]
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
class SweepResult:
    index: Path
    runs: tuple[RunRecord, ...]
    summaries: tuple[SummaryRecord, ...]

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status != "finished"]

    @property
    def failed_summaries(self) -> list[SummaryRecord]:
        return [s for s in self.summaries if s.status != "ok"]

    @property
    def exit_code(self) -> int:
        """0 when every run finished (and every summary was built), else 1."""
        return 1 if self.failed or self.failed_summaries else 0


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_index(out: Path, head: dict[str, Any], runs: dict[str, RunRecord], summaries: list[SummaryRecord]) -> None:
    """sweep.json: `head` (its "updated" set to now), the counts, the runs and the summaries."""
    counts = {"runs": len(runs)} | {status: sum(r.status == status for r in runs.values())
                                    for status in ("finished", "failed", "pending")}
    io.write_json(out / INDEX, head | {"updated": now(), "counts": counts, "runs": [asdict(r) for r in runs.values()],
                                       "summaries": [asdict(s) | {"runs": list(s.runs)} for s in summaries]})


def run_sweep(options: SweepOptions, log: Log = print) -> SweepResult:
    out = options.out
    planned = plan(options.grid, out)
    executor = make_executor(options.execution)  # Ray missing: a UserError before anything runs
    try:  # the records of the last invocation, by run id
        earlier = {r["id"]: r for r in json.loads((out / INDEX).read_text())["runs"]}
    except (OSError, ValueError, KeyError, TypeError):  # none, or unreadable
        earlier = {}
    runs: dict[str, RunRecord] = {}
    tasks = []
    for run in planned:
        state = stored_state(run)
        record = RunRecord(run.id, run.model, run.point, run.step, run.seed, run.suite,
                           folder=os.path.relpath(run.folder, out), log=f"logs/{run.id}.log")
        if state == "skip":
            before = earlier.get(run.id, {})
            record = replace(record, status="finished", action="skip", wall_s=before.get("wall_s"),
                             finished_at=before.get("finished_at"))
        else:
            record = replace(record, action=state)
            tasks.append(RunTask(run.id, run.spec, out / record.log,  # the run's process decides --resume
                                 out / "logs" / f"{run.id}.outcome.json", os.getcwd()))
        runs[run.id] = record
    head = {"schema_version": 1, "started": now(), "updated": None, "grid": describe(options.grid),
            "executor": executor.describe()}
    summaries: list[SummaryRecord] = []
    write_index(out, head, runs, summaries)
    log(f"sweep {out}: {len(planned)} runs, {len(planned) - len(tasks)} finished before, {len(tasks)} to run "
        f"({', '.join(f'{k} {v}' for k, v in executor.describe().items() if v is not None)})")
    outcomes = executor.map(tasks)
    try:
        for k, outcome in enumerate(outcomes, 1):
            record = runs[outcome.id] = replace(
                runs[outcome.id], status=outcome.status, reason=outcome.reason, wall_s=outcome.wall_s,
                action=outcome.action or runs[outcome.id].action,  # None: its process died without a word
                finished_at=now() if outcome.status == "finished" else None)
            write_index(out, head, runs, summaries)
            log(f"[{k}/{len(tasks)}] {outcome.id}: {record.status} in {outcome.wall_s:.1f} s"
                + (f": {outcome.reason}" if outcome.reason else ""))
    finally:
        outcomes.close()
        write_index(out, head, runs, summaries)
    if options.summaries:
        summaries = build_summaries(out, options.grid, planned, log)
        write_index(out, head, runs, summaries)
    return SweepResult(out / INDEX, tuple(runs.values()), tuple(summaries))


def stored_state(run: PlannedRun) -> str:
    """What the run's folder holds: "skip" (finished), "resume" (started), or "run" (nothing yet).
    A run of other settings there, or files that are no run, is a UserError."""
    folder = run.folder
    stored = folder / "run.json"
    if stored.is_file():
        try:
            identity = json.loads(stored.read_text())["identity"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{stored} is corrupted: remove {folder} and rerun the sweep") from None
        wanted = run.spec.identity()
        if identity != wanted:
            moved = sorted(k for k in set(identity) | set(wanted) if identity.get(k) != wanted.get(k))
            raise UserError(f"{folder} holds a run with other settings ({', '.join(moved)}): rerun the sweep with "
                            "the options it was made with, or pass another --out")
        return "skip" if (folder / "results.json").is_file() else "resume"
    if folder.is_dir():
        leftovers = [p for p in folder.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
        if leftovers:
            raise UserError(f"{folder} holds files but no run.json: remove it, or pass another --out")
        for partial in folder.glob(".*.tmp"):  # a write cut short before the run's first file landed
            partial.unlink()
    return "run"


def describe(grid: Grid) -> dict:
    """The grid as the index records it: its axes, and the options every run shares."""
    run = grid.base.to_dict()
    for per_run in ("out", "resume", "seed", "suite", "private_seed", "checkpoints", "revisions"):
        run.pop(per_run, None)
    run["model"] = {k: v for k, v in asdict(grid.base.model).items() if k not in ("name_or_path", "revision")}
    return {"models": list(grid.models), "revisions": list(grid.revisions), "at_each_checkpoint": grid.at_each_checkpoint,
            "seeds": list(grid.seeds), "suites": list(grid.suites), "run": run}
