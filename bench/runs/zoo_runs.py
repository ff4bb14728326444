"""`brittlebench leaderboard run-zoo`: every built-in predictor on the bundled default model and
every zoo member, one ordinary run each, keeping the files that `verify` needs."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import UserError
from ..model.load import DEFAULT_MODEL, ModelSpec
from ..protocol.spec import RunSpec
from ..protocol.stages import run

KEEP = ("results.json", "predictions.jsonl", "predictions.sha256", "predictions.claims.json", "outcomes.jsonl",
        "reference.jsonl")  # enough to verify


def keep(run: Path, target: Path, also: Iterable[str] = ()) -> None:
    """Copy KEEP and `also`, those run folder `run` holds, into a new folder `target`."""
    target.mkdir(parents=True)
    for name in sorted(set(KEEP) | set(also)):
        if (run / name).is_file():  # reference.jsonl, claims: only where a trace predictor ran, one claimed
            shutil.copy2(run / name, target / name)


def run_zoo(zoo: Path, out: Path, n: int, seed: int, log: Callable[[str], None] = print,
            members: Sequence[str] | None = None) -> list[Path]:
    """Run every built-in predictor on the bundled default model ("default", trained on every family)
    and on every zoo member (or the named ones); keep the verifiable files."""
    folders = []
    found = {DEFAULT_MODEL: DEFAULT_MODEL} | {p.name: str(p) for p in sorted(Path(zoo).iterdir())
                                               if (p / "zoo.json").is_file()}
    unknown = set(members or ()) - set(found)
    if unknown:
        raise UserError(f"no zoo member {', '.join(sorted(unknown))} in {zoo}: train it with 'brittlebench zoo build'")
    for name, model in found.items():
        if members and name not in members:
            continue
        target, scratch = Path(out) / name, Path(out) / f".{name}.tmp"
        for folder in (target, scratch):
            if folder.exists():
                shutil.rmtree(folder)
        run(RunSpec(model=ModelSpec(model), n=n, seed=seed, out=scratch), log=log)
        keep(scratch, target)
        shutil.rmtree(scratch)
        folders.append(target)
        log(f"leaderboard run: {target}")
    return folders
