"""What a sweep's finished runs add up to, where its grid makes it meaningful:

  leave-one-model-out   over the models of one seed, suite (and revision) that ran on the same items
  leaderboard           over the models of one seed, suite (and revision): OUT/leaderboard/GROUP/
  over-training         over the checkpoints or revisions of one model, seed and suite:
                        over_training.html beside its runs, as `run --at-each-checkpoint` writes it

Leave-one-model-out goes first: it adds its view to each run's results.json, which the leaderboard's
copies then carry. Each is rebuilt whenever the sweep is run again; leave-one-model-out only where
its models changed. A summary that fails is recorded with its reason; the others are still built.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ... import io
from ...errors import UserError
from ...leaderboard.board import build
from ..over_training import CheckpointRun, row, write_summary
from ..zoo_runs import keep
from .grid import Grid, PlannedRun

Log = Callable[[str], None]
LOMO = "leave-one-model-out"


@dataclass(frozen=True)
class SummaryRecord:
    kind: str  # "leaderboard", "leave-one-model-out" or "over-training"
    name: str
    runs: tuple[str, ...]  # the ids of the runs it reads
    path: str | None  # what it wrote, relative to the sweep's folder
    status: str  # "ok" or "failed"
    reason: str | None = None


def build_summaries(out: Path, grid: Grid, runs: Sequence[PlannedRun], log: Log) -> list[SummaryRecord]:
    """Every summary the finished runs among `runs` allow."""
    finished = [r for r in runs if (r.folder / "results.json").is_file()]
    records: list[SummaryRecord] = []
    boards = model_groups(grid, finished)
    for name, group in boards.items():
        for lomo_name, members in same_items(name, group).items():
            records.append(_attempt(LOMO, lomo_name, members, log, lambda m=members, n=lomo_name:
                                    leave_one_model_out(out, n, m, log)))
    for name, group in boards.items():
        records.append(_attempt("leaderboard", name, group, log, lambda g=group, n=name: leaderboard(out, n, g)))
    for name, group in point_groups(grid, finished).items():
        records.append(_attempt("over-training", name, group, log, lambda g=group: over_training(out, g)))
    return records


def model_groups(grid: Grid, runs: Sequence[PlannedRun]) -> dict[str, list[PlannedRun]]:
    """Runs of two or more models that differ in nothing else: per seed and suite, and per revision
    where revisions are runs of their own (with --at-each-checkpoint, the final models)."""
    per_revision = bool(grid.revisions) and not grid.at_each_checkpoint
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        if run.point not in (None, "final") and not per_revision:
            continue
        parts = ([run.point] if per_revision else []) + [f"seed{run.seed}"] + ([run.suite] if run.suite else [])
        groups.setdefault("-".join(parts), []).append(run)
    return {name: group for name, group in groups.items() if len({r.model for r in group}) >= 2}


def point_groups(grid: Grid, runs: Sequence[PlannedRun]) -> dict[str, list[PlannedRun]]:
    """Two or more points (checkpoints or revisions) of one model, seed and suite."""
    groups: dict[str, list[PlannedRun]] = {}
    for run in runs:
        if run.point is not None:
            groups.setdefault(run.folder.parent.name, []).append(run)
    return {name: group for name, group in groups.items() if len(group) >= 2}


def same_items(name: str, group: Sequence[PlannedRun]) -> dict[str, list[PlannedRun]]:
    """The group's runs by the variant items they ran (zoo models run their own families by
    default), one run per model fingerprint; those of two or more models."""
    by_items: dict[str, dict[str, PlannedRun]] = {}
    tasks: dict[str, str] = {}
    for run in group:
        items = io.read_jsonl(run.folder / "items" / "variants.sealed.jsonl")
        ids = io.sha256("\n".join(item["id"] for item in items).encode())
        results = _results(run.folder)
        by_items.setdefault(ids, {}).setdefault(results["provenance"]["model"]["fingerprint"], run)
        tasks[ids] = "+".join(results["provenance"]["tasks"])
    kept = {ids: list(runs.values()) for ids, runs in by_items.items() if len(runs) >= 2}
    if len(kept) == 1:
        return {name: next(iter(kept.values()))}
    return {f"{name}-{tasks[ids]}": runs for ids, runs in kept.items()}


def leave_one_model_out(out: Path, name: str, runs: Sequence[PlannedRun], log: Log) -> str:
    """`brittlebench lomo` over the runs (again only where its models changed); its tables in
    OUT/leave-one-model-out/NAME.json."""
    from ..lomo import PROTOCOL, leave_one_model_out as lomo

    folders = [r.folder for r in runs]
    target = Path(out) / LOMO / f"{name}.json"
    others = [_results(f).get("protocols", {}).get(PROTOCOL, {}).get("other_models") for f in folders]
    if target.is_file() and others == [[str(o) for o in folders if o != f] for f in folders]:
        log(f"{LOMO} {name}: its models are the same as before, kept")
    else:
        io.write_json(target, lomo(folders, log=log))
    return str(target.relative_to(out))


def leaderboard(out: Path, name: str, runs: Sequence[PlannedRun]) -> str:
    """OUT/leaderboard/NAME: the runs' verifiable files under runs/MODEL (as `leaderboard run-zoo`
    keeps them) and the leaderboard built from them."""
    root = Path(out) / "leaderboard" / name
    shutil.rmtree(root / "runs", ignore_errors=True)
    for run in runs:
        also = {"components.jsonl"} | {p.name for p in run.folder.glob("predictions.*")}
        keep(run.folder, root / "runs" / run.label, also)
    build(root)
    return str((root / "leaderboard.html").relative_to(out))


def over_training(out: Path, runs: Sequence[PlannedRun]) -> str:
    """over_training.json and .html beside the runs of one model's points."""
    folder = runs[0].folder.parent
    rows = [row(CheckpointRun(r.point, r.step, r.spec), _results(r.folder), os.path.relpath(r.folder, folder))
            for r in runs]
    write_summary(folder, runs[0].model, rows)
    return str((folder / "over_training.html").relative_to(out))


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _attempt(kind: str, name: str, runs: Sequence[PlannedRun], log: Log, make: Callable[[], str]) -> SummaryRecord:
    ids = tuple(r.id for r in runs)
    try:
        path = make()
    except Exception as e:  # noqa: BLE001 - one summary's failure is recorded; the others are still built
        first = (str(e).strip().splitlines() or [""])[0]
        reason = first if isinstance(e, UserError) else f"{type(e).__name__}: {first}"
        log(f"{kind} {name}: failed: {reason}")
        return SummaryRecord(kind, name, ids, None, "failed", reason)
    log(f"{kind} {name}: {path}")
    return SummaryRecord(kind, name, ids, path, "ok")
