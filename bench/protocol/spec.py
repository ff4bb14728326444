"""`RunSpec`: everything that decides a run's results; the CLI and the Python API share it."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..model.load import ModelSpec

PROTOCOLS = ("base", "leave-one-family-out")
TARGETS = ("failure", "compositional")
DEFAULT_SHOTS = 3


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's results; the CLI and the Python API share it."""

    model: ModelSpec = field(default_factory=ModelSpec)
    tasks: tuple[str, ...] | None = None  # None: `suite`'s families (`stages.default_tasks`)
    predictors: tuple[str, ...] = ()  # empty: every registered predictor
    n: int = 100  # items per cell
    seed: int = 0
    out: Path | None = None
    batch_size: int | str = 64  # or "auto" (`bench.model.evaluate.auto_batch_size`); results do not depend on it
    shots: int | None = None  # k-shot examples; None: 0 for zoo models, DEFAULT_SHOTS otherwise
    shot_mode: str = "fixed"  # the same k examples before every item of a family, or "per-item"
    suite: str | None = None  # tasks.SUITES; None (and no tasks): a zoo model's own families, else "pretrained"
    chat: bool = False  # render each item (and its shots) with the tokenizer's chat template
    protocol: str = "base"  # or "leave-one-family-out" (see PROTOCOLS)
    predictor_timeout: float | None = None  # seconds for one predictor's fit + predict; None: no limit
    resume: bool = False  # continue the run in `out`, reusing every stage already stored there
    predict_only: bool = False  # the screen: stop after sealing the blind predictions (`--resume` completes it)
    target: str = "failure"  # or "compositional": components solved, whole failed
    use_cache: bool = True  # reuse the model's traces, outcomes, predictions and figures cached on disk
    cache_dir: Path | None = None  # None: $BRITTLEBENCH_CACHE or ~/.cache/brittlebench
    checkpoints: Path | None = None  # a folder of saved checkpoints: the model's training history
    revisions: tuple[str, ...] | None = None  # revisions of the model, oldest first: its training history
    # What each checkpoint of the history costs: its learning-curve points come from the first
    # `history_n` base items of every cell (None: all of them), and only the latest
    # `history_traces` checkpoints are traced (their prompt-only traces, for the predictors that
    # read states or next tokens along training); the evaluated model ("final") always is.
    history_n: int | None = 25
    history_traces: int = 1
    # A secret mixed into the item seed (a held-out suite): nobody without it, predictors
    # included, can regenerate the items. Never written anywhere; runs record its SHA-256.
    private_seed: str | None = field(default=None, repr=False)

    @property
    def item_seed(self) -> int:
        """The seed the items are generated from: `seed`, or with a private seed a 60-bit
        number derived from both that cannot be guessed without the secret."""
        if self.private_seed is None:
            return self.seed
        return int(hashlib.sha256(f"{self.private_seed}\0{self.seed}".encode()).hexdigest()[:15], 16)

    @property
    def cache_root(self) -> Path | None:
        """Where the model's caches live (`cache_dir`, else $BRITTLEBENCH_CACHE's); None without caching."""
        from ..model.trace import default_cache_dir

        return Path(self.cache_dir or default_cache_dir()) if self.use_cache else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for path in ("out", "cache_dir", "checkpoints"):
            d[path] = str(d[path]) if d[path] else None
        d["revisions"] = list(self.revisions) if self.revisions else None
        d["private_seed"] = private_seed_digest(self.private_seed)
        return d

    def identity(self) -> dict[str, Any]:
        """What decides the results: a resumed run must match it."""
        d = self.to_dict()
        for volatile in ("out", "resume", "predict_only", "batch_size", "use_cache", "cache_dir", "predictor_timeout"):
            d.pop(volatile)
        d["tasks"] = list(d["tasks"]) if d["tasks"] is not None else None
        d["predictors"] = list(d["predictors"])
        return d

    def check(self) -> None:
        """A one-line UserError for any setting no run can use."""
        if self.n <= 0:
            raise UserError(f"--n must be a positive number of items per cell, got {self.n}")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int) or self.batch_size <= 0):
            raise UserError(f"--batch-size must be a positive number or auto, got {self.batch_size}")
        if self.shots is not None and self.shots < 0:
            raise UserError(f"--shots must be 0 or more, got {self.shots}")
        if self.predictor_timeout is not None and self.predictor_timeout <= 0:
            raise UserError(f"--predictor-timeout must be a positive number of seconds, got {self.predictor_timeout}")
        from tasks import SUITES
        from tasks.render import SHOT_MODES

        if self.shot_mode not in SHOT_MODES:
            raise UserError(f"unknown shot mode {self.shot_mode!r}: use one of {', '.join(SHOT_MODES)}")
        if self.suite is not None and self.suite not in SUITES:
            raise UserError(f"unknown suite {self.suite!r}: use one of {', '.join(SUITES)}")
        if self.suite is not None and self.tasks is not None:
            raise UserError("--suite and --tasks both choose the tasks: pass one of them")
        if self.protocol not in PROTOCOLS:
            raise UserError(f"unknown protocol {self.protocol!r}: use one of {', '.join(PROTOCOLS)}")
        if self.target not in TARGETS:
            raise UserError(f"unknown target {self.target!r}: use one of {', '.join(TARGETS)}")
        if self.checkpoints is not None and not Path(self.checkpoints).is_dir():
            raise UserError(f"--checkpoints {self.checkpoints} is not a folder: pass a folder of saved checkpoints")
        if self.predict_only and self.protocol != "base":
            raise UserError("--predict-only stops before any variant is evaluated, which the "
                            f"{self.protocol} protocol needs: run it with the base protocol")
        if self.checkpoints is not None and self.revisions:
            raise UserError("--checkpoints and --revisions both name a history: pass one of them")
        if self.history_n is not None and (not isinstance(self.history_n, int) or self.history_n <= 0):
            raise UserError(f"--history-n must be a positive number of base items per cell or all, got {self.history_n}")
        if not isinstance(self.history_traces, int) or self.history_traces < 0:
            raise UserError(f"--history-traces must be 0 or more checkpoints, got {self.history_traces}")


def private_seed_digest(secret: str | None) -> str | None:
    """What a run records of its private seed: a commitment that the same secret was used."""
    return None if secret is None else "sha256:" + hashlib.sha256(f"brittlebench private seed\0{secret}".encode()).hexdigest()
