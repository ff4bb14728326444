"""The grid: which runs a sweep makes (from flags or a TOML file), planned into run specs and folders."""
from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ...errors import UserError
from ...model.load import DEFAULT_MODEL, ModelSpec, device_map_of, resolve
from ...protocol.spec import RunSpec
from ..over_training import CheckpointRun, checkpoint_runs


@dataclass(frozen=True)
class Grid:
    """Which runs: every model (at every point of its training, where asked) × seed × suite, each an
    ordinary run with the options of `base` (--n, --predictors, --dtype, --device-map, ...)."""

    models: tuple[str, ...] = (DEFAULT_MODEL,)
    base: RunSpec = field(default_factory=RunSpec)
    revisions: tuple[str, ...] = ()  # a run per revision of each model (HF revisions, oldest first)
    at_each_checkpoint: bool = False  # a run per checkpoint of each model, the earlier ones its history
    seeds: tuple[int, ...] = (0,)
    suites: tuple[str, ...] = ()  # a run per named suite; empty: every run gets base.suite / base.tasks


@dataclass(frozen=True)
class Execution:
    """Where the runs execute and how many at once."""

    executor: str = "local"  # "local": processes on this machine; "ray": tasks on a Ray cluster
    workers: int | None = None  # runs at once; None: this machine's cores (local), what Ray's resources allow (ray)
    cpus_per_run: int | None = None  # a run's threads; None: the cores shared out among the workers
    gpus_per_run: float = 0  # GPUs a run is given (CUDA_VISIBLE_DEVICES: a local slot, or Ray's num_gpus)
    address: str | None = None  # ray: an existing cluster ("auto", "ray://HEAD:10001"); None: start one here


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class PlannedRun:
    """One run of the grid: its parameters, its id (its log's name) and its RunSpec (whose `out` is its folder)."""

    id: str
    model: str  # as the grid names it
    label: str  # how ids and folders name it
    point: str | None  # a checkpoint's or revision's name ("final": the model as given); None: no points
    step: int | None
    seed: int
    suite: str | None
    spec: RunSpec

    @property
    def folder(self) -> Path:
        return Path(self.spec.out)


# -- options: flags and the TOML file share their names ------------------------------------------

GRID_KEYS = ("models", "zoo", "revisions", "at_each_checkpoint", "seeds", "suites")
RUN_KEYS = ("tasks", "predictors", "n", "dtype", "device", "device_map", "batch_size", "shots", "shot_mode", "chat",
            "no_cache", "protocol", "target", "predictor_timeout", "trust_remote_code", "allow_pickle", "history_n",
            "history_traces")
EXECUTION_KEYS = ("executor", "workers", "address", "cpus_per_run", "gpus_per_run")
OTHER_KEYS = ("out", "no_summaries")
KEYS = GRID_KEYS + RUN_KEYS + EXECUTION_KEYS + OTHER_KEYS
_LISTS = ("models", "revisions", "seeds", "suites", "tasks", "predictors")
_FLAGS = ("at_each_checkpoint", "chat", "no_cache", "trust_remote_code", "allow_pickle", "no_summaries")
_INTS = ("n", "workers", "cpus_per_run", "shots", "history_traces")
_MODEL = ("dtype", "device", "device_map", "trust_remote_code", "allow_pickle")  # RUN_KEYS of the ModelSpec


@dataclass(frozen=True)
class SweepOptions:
    grid: Grid
    execution: Execution
    out: Path
    summaries: bool = True


def read_config(path: Path) -> dict[str, Any]:
    """A sweep's TOML file: the flags' names as keys (dashes or underscores), lists as arrays."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"cannot read --config {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"--config {path} is not valid TOML: {e}") from None
    options = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        raise UserError(f"--config {path}: unknown key {unknown[0]!r}; a sweep file takes {', '.join(KEYS)}")
    return options


def sweep_options(flags: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> SweepOptions:
    """The sweep that the flags (those given: not None) and the config file (under them) describe."""
    o = dict(config or {})
    o.update({k: v for k, v in flags.items() if k in KEYS and v is not None})
    for key in _LISTS:
        if key in o:
            o[key] = _as_list(key, o[key])
    for key in _FLAGS:
        if key in o and not isinstance(o[key], bool):
            raise UserError(f"{key} must be true or false, got {o[key]!r}")
    for key in _INTS:
        if key in o:
            o[key] = _as_int(key, o[key])
    seeds = tuple(dict.fromkeys(_as_int("seeds", s) for s in o.get("seeds", (0,))))
    if not o.get("out"):
        raise UserError("a sweep needs --out: the folder its runs and sweep.json go to (rerun with the same "
                        "--out to finish it)")
    models = list(o.get("models", ()))
    if o.get("zoo"):
        models += zoo_members(Path(o["zoo"]))
    if "history_n" in o:
        o["history_n"] = None if str(o["history_n"]).strip() == "all" else _as_int("history_n", o["history_n"])
    if o.get("batch_size", "auto") != "auto":
        o["batch_size"] = _as_int("batch_size", o["batch_size"])
    given = lambda keys: {k: o[k] for k in keys if k in o}  # noqa: E731 - the rest keep RunSpec's defaults
    run = given(k for k in RUN_KEYS if k not in _MODEL + ("no_cache",)) | {"tasks": o.get("tasks") or None}
    base = RunSpec(model=ModelSpec(**given(_MODEL)), use_cache=not o.get("no_cache", False), **run)
    grid = Grid(models=tuple(dict.fromkeys(models)) or (DEFAULT_MODEL,), base=base,
                revisions=tuple(dict.fromkeys(o.get("revisions", ()))), at_each_checkpoint=o.get("at_each_checkpoint", False),
                seeds=seeds, suites=tuple(dict.fromkeys(o.get("suites", ()))))
    execution = Execution(**given(("executor", "workers", "cpus_per_run", "address")),
                          gpus_per_run=_as_number("gpus_per_run", o.get("gpus_per_run", 0)))
    check_execution(execution)
    return SweepOptions(grid, execution, Path(o["out"]), summaries=not o.get("no_summaries", False))


def check_execution(execution: Execution) -> None:
    if execution.executor not in EXECUTORS:
        raise UserError(f"unknown executor {execution.executor!r}: use one of {', '.join(EXECUTORS)}")
    for name in ("workers", "cpus_per_run"):
        value = getattr(execution, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    if execution.gpus_per_run < 0:
        raise UserError(f"--gpus-per-run must be 0 or more, got {execution.gpus_per_run}")
    if execution.address and execution.executor != "ray":
        raise UserError("--address names a Ray cluster: pass it with --executor ray")


def _as_list(key: str, value: Any) -> tuple:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(v.strip() if isinstance(v, str) else v for v in value)
    raise UserError(f"{key} must be a list (or comma-separated), got {value!r}")


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise UserError(f"{key} must be whole numbers, got {value!r}")


def _as_number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise UserError(f"{key} must be a number, got {value!r}")
    return number


def zoo_members(zoo: Path) -> list[str]:
    """The zoo's models: the folders under `zoo` holding a zoo card (zoo.json)."""
    if not zoo.is_dir():
        raise UserError(f"--zoo {zoo} is not a folder: pass the folder 'brittlebench zoo build' wrote")
    members = [str(p) for p in sorted(zoo.iterdir()) if (p / "zoo.json").is_file()]
    if not members:
        raise UserError(f"--zoo {zoo} holds no zoo model (folders with zoo.json): train them with "
                        "'brittlebench zoo build'")
    return members


# -- the plan ------------------------------------------------------------------------------------

def plan(grid: Grid, out: Path) -> list[PlannedRun]:
    """Every run of the grid, in order (model, seed, suite, point), checked: a UserError names the
    first model, suite, task or predictor no run could use."""
    check_grid(grid)
    labels = model_labels(grid.models)
    runs: list[PlannedRun] = []
    for model in grid.models:
        for seed in grid.seeds:
            for suite in grid.suites or (None,):
                name = f"{labels[model]}-seed{seed}" + (f"-{suite}" if suite else "")
                spec = replace(grid.base, model=replace(grid.base.model, name_or_path=model), seed=seed,
                               suite=suite or grid.base.suite, out=Path(out) / "runs" / name)
                for point in points(grid, spec):
                    run_id = name if point.name is None else f"{labels[model]}@{point.name}-seed{seed}" + (
                        f"-{suite}" if suite else "")
                    runs.append(PlannedRun(run_id, model, labels[model], point.name, point.step, seed, suite,
                                           point.spec))
    for run in runs:
        run.spec.check()
    return runs


def points(grid: Grid, spec: RunSpec) -> list[CheckpointRun]:
    """The runs of one model, seed and suite: one per checkpoint or revision (and the final model)
    where the grid asks for them, else the model as given (name None)."""
    folder = Path(spec.out)
    if grid.at_each_checkpoint:
        planned = checkpoint_runs(replace(spec, revisions=grid.revisions or None), folder)
        if planned:
            return planned
    elif grid.revisions:
        return [CheckpointRun(r, _step(r), replace(spec, model=replace(spec.model, revision=r), out=folder / r))
                for r in grid.revisions]
    return [CheckpointRun(None, None, spec)]


def _step(revision: str) -> int | None:
    """A revision's training step: the last number in its name (Pythia's step143000), as the history reads it."""
    numbers = re.findall(r"\d+", revision)
    return int(numbers[-1]) if numbers else None


def check_grid(grid: Grid) -> None:
    """One line for the first thing in the grid that no run could use."""
    from predictors.registry import registered
    from tasks import SUITES, resolve_families

    if not grid.models:
        raise UserError("the grid has no models: pass --models or --zoo")
    device_map_of(grid.base.model)
    for model in grid.models:
        check_model(model, grid.revisions)
    for suite in grid.suites:
        if suite not in SUITES:
            raise UserError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    if grid.suites and grid.base.tasks is not None:
        raise UserError("--suites and --tasks both choose the tasks: pass one of them")
    if grid.base.tasks is not None:
        resolve_families(grid.base.tasks)
    known = registered()
    for name in grid.base.predictors:
        if ":" not in name and name not in known:
            raise UserError(f"unknown predictor {name!r}; registered: {', '.join(sorted(known))}")
    if any(s < 0 for s in grid.seeds):
        raise UserError(f"seeds must be 0 or more, got {min(grid.seeds)}")


def check_model(model: str, revisions: tuple[str, ...] = ()) -> None:
    """A model the runs can load: a folder or file here, or a HF name (in the local cache when offline)."""
    source, local = resolve(model)  # a ModelLoadError (one line) for a folder without a model
    if local:
        return
    parent = Path(model).parent
    if str(parent) not in ("", ".") and parent.is_dir():  # zoo/zoo-l9: a folder's typo, not a HF name
        raise UserError(f"no model at {model}: {parent} has no {Path(model).name} (pass a folder with config.json)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        for revision in revisions or (None,):
            if not isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str):
                at = f" at revision {revision}" if revision else ""
                raise UserError(f"no model at {model}: not a folder here, and not in the local HF cache{at} "
                                "(HF_HUB_OFFLINE is set)")


def model_labels(models: tuple[str, ...]) -> dict[str, str]:
    """How run ids and folders name each model: its folder's name ('default' for the bundled model,
    org--name for a HF name), with a short hash where two would be named alike."""
    names = {m: _label(m) for m in models}
    counts = Counter(names.values())
    return {m: n if counts[n] == 1 else f"{n}-{hashlib.sha256(m.encode()).hexdigest()[:6]}" for m, n in names.items()}


def _label(model: str) -> str:
    if model == DEFAULT_MODEL:
        return DEFAULT_MODEL
    path = Path(model).expanduser()
    name = path.resolve().name if path.exists() else model.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
