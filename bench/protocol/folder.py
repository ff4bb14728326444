"""The run folder: checked before any work, written file by file (atomically), and read back
by `--resume`, which reuses every stage whose output is stored there and intact.

    run.json                       the spec's identity (what --resume must match) and fingerprint
    items/base.jsonl               base items with targets
    items/variants.sealed.jsonl    variant items without targets (written before sealing)
    stages/outcomes.base.jsonl     the calibration stage's outcomes
    stages/screen.jsonl + .sha256  a predict-only run's sealed blind predictions (`--predict-only`),
                                   with stages/screen.json (their status, when, how long)
    stages/predictors.json         each predictor's status, written just before the predictions
    predictions.jsonl + .sha256    the sealed predictions and their digest
    predictions.claims.json        the predictors' claims, where some predictor made any: sealed with
                                   the predictions (the digest covers predictions.jsonl, then this file)
    stages/outcomes.variant.jsonl  the evaluation stage's outcomes (after sealing)
    items/variants.jsonl           variant items with targets (after sealing)
    outcomes.jsonl, results.json, report.html
    run.lock                       while a run writes the folder: its process id and host (`FolderLock`)
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tasks import Item, SealedItem

from .. import io
from ..errors import UserError
from ..model.evaluate import Outcome
from .spec import RunSpec

MIN_FREE_BYTES = 64 * 2**20  # a run folder of the default suite takes a few MiB
LOCK = "run.lock"


class FolderLock:
    """An exclusive lock on a run folder while a run writes it: `run.lock` in the folder, locked with
    flock (the kernel lets go when the process ends, however it ends, so a lock left by a killed run
    never blocks) and holding the holder's pid and host for the message another run gets."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        self._fd: int | None = None
        self._made: Path | None = None  # the folder, where taking the lock made it

    def take(self) -> "FolderLock":
        """Take it at once, or raise a UserError naming the run that holds it."""
        try:
            import fcntl
        except ImportError:  # not on POSIX: no lock
            return self
        folder = self.path.parent
        self._made = None if folder.exists() else folder
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f"{folder} is being written by another run ({self.holder()}): wait for it to end, "
                                "or pass another --out") from None
            try:  # the holder before us removed the file as it let go: lock the one there now
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        held = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(held) + "\n").encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str:
        """Who holds the lock, as its file says (the holder writes it just after locking)."""
        for _ in range(20):
            try:
                held = json.loads(self.path.read_text())
                return f"process {held['pid']} on {held['host']}, since {held['since']}"
            except (OSError, ValueError, KeyError, TypeError):
                time.sleep(0.05)
        return f"it holds {self.path}"

    def release(self) -> None:
        """Let go (removing the file first, so that no run locks a file that is gone), and remove the
        folder where taking the lock made it and nothing was written there since."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        if self._made is not None:
            with contextlib.suppress(OSError):
                self._made.rmdir()  # only if empty


def check_out(spec: RunSpec) -> tuple[Path, FolderLock]:
    """The run folder, checked before any work and locked for this run (`FolderLock`; release it when
    the run ends): it must be new (or empty) and writable, or with `--resume` hold a run of the same
    identity (or be new or empty: the run then starts). What it holds is looked at under the lock."""
    if spec.out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = Path(spec.model.name_or_path).name or "model"
        out = Path("runs") / f"{stamp}-{name}-seed{spec.seed}"
    else:
        out = Path(spec.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} is a file: pass --out a folder path")
    if spec.resume and spec.out is None:
        raise UserError("--resume needs --out: the folder of the run to continue")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output folder {out}: {parent} is not a writable folder")
    lock = FolderLock(out).take()
    try:
        _check_contents(spec, out, parent)
    except BaseException:
        lock.release()
        raise
    return out, lock


def _check_contents(spec: RunSpec, out: Path, parent: Path) -> None:
    held = [p for p in out.iterdir() if p.name != LOCK]
    if spec.resume and held:  # a run killed before its folder was made starts afresh: retry loops just rerun
        stored = out / "run.json"
        if not stored.is_file():
            raise UserError(f"nothing to resume in {out}: it holds files but no run.json (pass another --out)")
        try:
            identity = json.loads(stored.read_text())["identity"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{stored} is corrupted: start the run again in a new --out") from None
        if identity != spec.identity():
            moved = sorted(k for k in identity if identity.get(k) != spec.identity().get(k))
            raise UserError(f"{out} holds a run with other settings ({', '.join(moved)}): resume it with the same "
                            "options, or pass another --out")
        return
    if held:
        raise UserError(f"output folder {out} already holds files: pass another --out, or --resume to continue it")
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise UserError(f"only {free // 2**20} MiB free under {parent}: free some space or pass another --out")


class RunFolder:
    """One run's folder: what each stage writes, and (with `resume`) what it stored before.
    `reused` names, in order, the stages taken from disk."""

    def __init__(self, path: Path, resume: bool):
        self.path = Path(path)
        self.resume = resume
        self.reused: list[str] = []

    def start(self, spec: RunSpec, fingerprint: str, base: Sequence[Item], variants: Sequence[Item]) -> None:
        """run.json (a fresh run only) and the items; variant targets stay out until sealing."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.resume:
            io.write_json(self.path / "run.json", {"identity": spec.identity(), "fingerprint": fingerprint})
        io.write_jsonl(self.path / "items" / "base.jsonl", (item.to_dict() for item in base))
        io.write_jsonl(self.path / "items" / "variants.sealed.jsonl", (item.sealed().to_dict() for item in variants))

    def stored_outcomes(self, split: str, items: Sequence[Item]) -> list[Outcome] | None:
        """The split's outcomes from an earlier attempt (with --resume), if complete and for these items."""
        path = self.path / "stages" / f"outcomes.{split}.jsonl"
        if not self.resume or not path.is_file():
            return None
        try:
            outcomes = [Outcome.from_dict(r) for r in io.read_jsonl(path)]
        except (json.JSONDecodeError, KeyError, TypeError):
            return None
        if [o.item_id for o in outcomes] != [i.id for i in items]:
            return None
        self.reused.append(f"{split} evaluation")
        return outcomes

    def write_outcomes(self, split: str, outcomes: Sequence[Outcome]) -> None:
        io.write_jsonl(self.path / "stages" / f"outcomes.{split}.jsonl", (o.to_dict() for o in outcomes))

    def stored_predictions(self, sealed: Sequence[SealedItem]):
        """(scores, status, digest) sealed by an earlier attempt (with --resume), if complete and intact."""
        if not self.resume:
            return None
        try:
            status = json.loads((self.path / "stages" / "predictors.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        stored = read_sealed(self.path, "predictions", sealed, status)
        if stored is not None:
            self.reused.append("sealed predictions")
        return stored

    def seal_screen(self, sealed: Sequence[SealedItem], scores: dict[str, np.ndarray], status: dict[str, dict],
                    seconds: float) -> str:
        """A predict-only run's blind predictions, sealed before any variant is evaluated (claims are
        not: a screen observes no variant to test them against)."""
        io.write_json(self.path / "stages" / "screen.json", {
            "sealed": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "seconds": round(seconds, 3),
            "predictors": without_claims(status)})
        return write_predictions(self.path / "stages", "screen", sealed, scores)

    def stored_screen(self, sealed: Sequence[SealedItem]):
        """(scores, status, digest) of a predict-only run stored here, if complete and intact."""
        try:
            status = json.loads((self.path / "stages" / "screen.json").read_text())["predictors"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            return None
        return read_sealed(self.path / "stages", "screen", sealed, status)

    def seal(self, sealed: Sequence[SealedItem], scores: dict[str, np.ndarray], status: dict[str, dict]) -> str:
        """The status first, then the claims, the predictions and their digest: a digest on disk means
        all are stored. The claims leave the status for their sealed file."""
        io.write_json(self.path / "stages" / "predictors.json", without_claims(status))
        claims = {name: info["claims"] for name, info in status.items() if info.get("claims")}
        return write_predictions(self.path, "predictions", sealed, scores, claims)

    def write(self, name: str, obj: Any) -> None:
        """A JSON file (`.json`) or JSON lines (`.jsonl`, an iterable of rows) under the folder."""
        path = self.path / name
        io.write_jsonl(path, obj) if name.endswith(".jsonl") else io.write_json(path, obj)


def read_sealed(folder: Path, name: str, sealed: Sequence[SealedItem], status: dict[str, dict]):
    """(scores of the predictors `status` marks ok, status with each predictor's sealed claims, digest)
    from `name`.jsonl (and its claims file) in `folder`, if they match `name`.sha256 and hold exactly
    the `sealed` items in order; else None."""
    try:
        digest = (folder / f"{name}.sha256").read_text().split()[0]
        data = (folder / f"{name}.jsonl").read_bytes()
        claims = read_claims(folder, name)
    except (OSError, IndexError, ValueError):
        return None
    if sealed_digest(folder, name) != digest:
        return None
    rows = [json.loads(line) for line in data.decode().splitlines()]
    if [r["item_id"] for r in rows] != [i.id for i in sealed]:
        return None
    names = [n for n, info in status.items() if info["status"] == "ok"]
    return {n: np.array([r["scores"][n] for r in rows]) for n in names}, with_claims(status, claims), digest


def claims_file(name: str) -> str:
    """The file beside `name`.jsonl that holds its predictors' claims, where some predictor made any."""
    return f"{name}.claims.json"


def sealed_digest(folder: Path, name: str) -> str:
    """The SHA-256 of what `name` seals: `name`.jsonl's bytes, then its claims file's where there is one
    (a run without claims: the digest of `name`.jsonl alone, as before claims existed)."""
    data = (folder / f"{name}.jsonl").read_bytes()
    claims = folder / claims_file(name)
    return io.sha256(data + claims.read_bytes() if claims.is_file() else data)


def read_claims(folder: Path, name: str) -> dict[str, list[dict]]:
    """Each predictor's claims (as JSON) from `name`'s claims file; {} where there is none."""
    path = folder / claims_file(name)
    if not path.is_file():
        return {}
    claims = json.loads(path.read_text())
    if not isinstance(claims, dict) or not all(isinstance(v, list) for v in claims.values()):
        raise ValueError(f"{path} is not a mapping of predictors to their claims")
    return claims


def without_claims(status: dict[str, dict]) -> dict[str, dict]:
    """`status` with no predictor's `claims` (they are sealed in their own file, or not tested at all)."""
    return {name: {k: v for k, v in info.items() if k != "claims"} for name, info in status.items()}


def with_claims(status: dict[str, dict], claims: dict[str, list[dict]]) -> dict[str, dict]:
    """`status` with each predictor's claims as `claims` (from the sealed file) has them, and no other."""
    return {name: info | {"claims": claims[name]} if claims.get(name) else info
            for name, info in without_claims(status).items()}


def write_predictions(out: Path, name: str, items: Sequence[SealedItem], scores: dict[str, np.ndarray],
                      claims: dict[str, list[dict]] | None = None) -> str:
    """`name`.jsonl, the claims file where `claims` holds any, and `name`.sha256; returns the digest."""
    rows = [{"item_id": item.id, "family": item.family, "cell": item.cell,
             "scores": {k: float(v[i]) for k, v in scores.items()}} for i, item in enumerate(items)]
    claimed = out / claims_file(name)
    if claims:
        io.write_json(claimed, claims)
    else:
        claimed.unlink(missing_ok=True)  # an earlier attempt's, which these predictions do not make
    io.write_jsonl(out / f"{name}.jsonl", rows)
    digest = sealed_digest(out, name)
    covered = f"{name}.jsonl" + (f" + {claims_file(name)}" if claims else "")
    io.write_bytes(out / f"{name}.sha256", f"{digest}  {covered}\n".encode())
    return digest
