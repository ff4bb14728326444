"""The protocol, in order: generate, calibrate, predict (sealed), seal, evaluate, score.

Variant targets are not written anywhere until the predictions and their
SHA-256 are on disk. Predictors run in a separate worker process
(`bench.worker`) that is handed sealed items, calibration observations and the
shared trace, and never holds a target, the model, the seed or the run folder.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from predictors import Observation, PredictorError, registered
from tasks import Item, SealedItem, TaskFamily, family_names, resolve_families
from tasks.render import few_shot

from . import io
from .errors import UserError
from .evaluate import Outcome, auto_batch_size, evaluate
from .models import ModelHandle, ModelSpec, load_model
from .score import SCORING_VERSION, cell_table, score_predictors
from .trace import TraceCache, TracedModel, default_cache_dir
from .worker import PredictorFailed, PredictorPool, WorkerError

RESULTS_SCHEMA_VERSION = 1
MIN_FREE_BYTES = 64 * 2**20  # a run folder of the default suite takes a few MiB
PROTOCOLS = ("base", "leave-one-family-out")
TARGETS = ("failure", "compositional")
DEFAULT_SHOTS = 3


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's results; the CLI and the Python API share it."""

    model: ModelSpec = field(default_factory=ModelSpec)
    tasks: tuple[str, ...] | None = None  # None: a zoo model's trained families, else every built-in family
    predictors: tuple[str, ...] = ()  # empty: every registered predictor
    n: int = 100  # items per cell
    seed: int = 0
    out: Path | None = None
    batch_size: int | str = 64  # or "auto" (`bench.evaluate.auto_batch_size`); results do not depend on it
    shots: int | None = None  # k-shot examples; None: 0 for zoo models, DEFAULT_SHOTS otherwise
    protocol: str = "base"  # or "leave-one-family-out" (see PROTOCOLS)
    predictor_timeout: float | None = None  # seconds for one predictor's fit + predict; None: no limit
    resume: bool = False  # continue the run in `out`, reusing every stage already stored there
    target: str = "failure"  # or "compositional": components solved, whole failed
    use_cache: bool = True  # reuse traces on disk keyed by (model fingerprint, item)
    cache_dir: Path | None = None  # None: $BRITTLEBENCH_CACHE or ~/.cache/brittlebench
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out) if self.out else None
        d["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        d["private_seed"] = private_seed_digest(self.private_seed)
        return d

    def identity(self) -> dict[str, Any]:
        """What decides the results: a resumed run must match it."""
        d = self.to_dict()
        for volatile in ("out", "resume", "batch_size", "use_cache", "cache_dir", "predictor_timeout"):
            d.pop(volatile)
        d["tasks"] = list(d["tasks"]) if d["tasks"] is not None else None
        d["predictors"] = list(d["predictors"])
        return d


def private_seed_digest(secret: str | None) -> str | None:
    """What a run records of its private seed: a commitment that the same secret was used."""
    return None if secret is None else "sha256:" + hashlib.sha256(f"brittlebench private seed\0{secret}".encode()).hexdigest()


def _sealed(item: Item | SealedItem) -> SealedItem:
    return item.sealed() if isinstance(item, Item) else item


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("brittlebench", "torch", "transformers", "numpy", "scikit-learn", "scipy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _check_out(spec: RunSpec) -> Path:
    """The run folder, checked before any work: it must be new (or empty) and writable."""
    if spec.out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = Path(spec.model.name_or_path).name or "model"
        out = Path("runs") / f"{stamp}-{name}-seed{spec.seed}"
    else:
        out = Path(spec.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} is a file: pass --out a folder path")
    if spec.resume:
        if spec.out is None:
            raise UserError("--resume needs --out: the folder of the run to continue")
        stored = out / "run.json"
        if not stored.is_file():
            raise UserError(f"nothing to resume in {out}: it has no run.json (start the run without --resume)")
        try:
            identity = json.loads(stored.read_text())["identity"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{stored} is corrupted: start the run again in a new --out") from None
        if identity != spec.identity():
            moved = sorted(k for k in identity if identity.get(k) != spec.identity().get(k))
            raise UserError(f"{out} holds a run with other settings ({', '.join(moved)}): resume it with the same "
                            "options, or pass another --out")
        return out
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"output folder {out} already holds files: pass another --out, or --resume to continue it")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output folder {out}: {parent} is not a writable folder")
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise UserError(f"only {free // 2**20} MiB free under {parent}: free some space or pass another --out")
    return out


def _generate(spec: RunSpec, families: dict[str, TaskFamily], shots: int) -> tuple[list[Item], list[Item], dict]:
    base, variants, tasks_info = [], [], {}
    for name, family in families.items():
        for cell in family.cells:
            items = few_shot(family.generate(cell.name, spec.n, spec.item_seed), family, shots, spec.item_seed)
            (base if cell.is_base else variants).extend(items)
        tasks_info[name] = {"description": family.description, "axes": dict(family.axes),
                            "source": getattr(family, "source", "built-in"),
                            "cells": [{"name": c.name, "shift": c.shift, "axes": dict(c.axes)} for c in family.cells]}
    return base, variants, tasks_info


def zoo_card(handle: ModelHandle) -> dict | None:
    """The zoo card of a model the zoo trained (they know the task formats: zero-shot), else None."""
    path = Path(handle.source) / "zoo.json"
    return json.loads(path.read_text()) if path.is_file() else None


def model_name(spec: ModelSpec, handle: ModelHandle) -> str:
    """How tables name the model: 'default', a zoo preset, or the name or folder given."""
    if spec.name_or_path == "default":
        return "default"
    return (zoo_card(handle) or {}).get("preset") or Path(spec.name_or_path).name or spec.name_or_path


def default_tasks(handle: ModelHandle) -> tuple[str, ...]:
    """A zoo model's own families (it cannot read the others' formats); every built-in family otherwise."""
    card = zoo_card(handle)
    return tuple(card["recipe"]["tasks"]) if card else tuple(family_names())


def _check_context(handle: ModelHandle, items: Sequence[Item]) -> None:
    limit = handle.card.context_length
    if not limit:
        return
    for item in items:
        need = len(handle.tokenizer(item.prompt + item.target)["input_ids"]) + 2
        if need > limit:
            raise UserError(f"{item.family}/{item.cell} items need {need} tokens but the model's context is {limit}: "
                            "leave that family out of --tasks or use a model with a longer context")


def open_predictors(names: Sequence[str], timeout: float | None, log: Callable[[str], None],
                    params: dict[str, dict] | None = None, wait: bool = True) -> PredictorPool:
    """The worker process, loading the predictors (plugins are imported there, never here).
    With `wait=False` it starts in the background; call `check_predictors` before using it."""
    asked = list(names)
    if len(set(asked)) != len(asked):
        twice = next(n for n in asked if asked.count(n) > 1)
        raise UserError(f"predictor {twice!r} is listed twice")
    if asked:
        unknown = [n for n in asked if ":" not in n and n not in registered()]
        if unknown:
            raise PredictorError(f"unknown predictor {unknown[0]!r}; registered: {', '.join(sorted(registered())) or 'none'}")
    # The worker runs in an empty folder: a plugin file named relative to here is sent by its full path.
    resolved = {n: _absolute_plugin(n) for n in asked}
    pool = PredictorPool([resolved[n] for n in asked] or sorted(registered()), timeout,
                         {resolved.get(n, n): v for n, v in (params or {}).items()})
    if wait:
        check_predictors(pool, bool(asked), log)
    return pool


def _absolute_plugin(name: str) -> str:
    path, sep, cls = name.rpartition(":")
    return f"{Path(path).resolve()}:{cls}" if sep and path.endswith(".py") else name


def check_predictors(pool: PredictorPool, asked: bool, log: Callable[[str], None]) -> dict[str, dict]:
    """Wait for the worker to load the predictors: one asked for by name must load (else a user
    error); of 'all registered', broken ones are skipped and reported. Returns those skipped."""
    pool.ready()
    skipped = {}
    for name, error in pool.errors.items():
        if asked:
            pool.close()
            raise PredictorError(error)
        log(f"skipping predictor {name}: {error}")
        skipped[name] = {"status": "failed", "reason": error}
    pool.skipped = skipped
    return skipped


def _check_scores(scores: Any, n: int) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"returned shape {arr.shape}, expected ({n},)")
    if not np.isfinite(arr).all():
        raise ValueError("returned NaN or infinite scores")
    if (arr < 0).any() or (arr > 1).any():
        raise ValueError("returned scores outside [0, 1]")
    return arr


def run(spec: RunSpec, log: Callable[[str], None] = print) -> dict[str, Any]:
    if spec.n <= 0:
        raise UserError(f"--n must be a positive number of items per cell, got {spec.n}")
    if spec.batch_size != "auto" and (not isinstance(spec.batch_size, int) or spec.batch_size <= 0):
        raise UserError(f"--batch-size must be a positive number or auto, got {spec.batch_size}")
    if spec.shots is not None and spec.shots < 0:
        raise UserError(f"--shots must be 0 or more, got {spec.shots}")
    if spec.predictor_timeout is not None and spec.predictor_timeout <= 0:
        raise UserError(f"--predictor-timeout must be a positive number of seconds, got {spec.predictor_timeout}")
    if spec.protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {spec.protocol!r}: use one of {', '.join(PROTOCOLS)}")
    if spec.target not in TARGETS:
        raise UserError(f"unknown target {spec.target!r}: use one of {', '.join(TARGETS)}")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - clock
        clock = now

    if spec.tasks is not None:
        families = resolve_families(spec.tasks)
    out = _check_out(spec)
    pool = open_predictors(spec.predictors, spec.predictor_timeout, log, wait=False)
    try:
        return _run(spec, log, pool, out, families if spec.tasks is not None else None, timings, lap)
    finally:
        pool.close()


def _run(spec: RunSpec, log: Callable[[str], None], pool: PredictorPool, out: Path,
         families: dict[str, TaskFamily] | None, timings: dict[str, float], lap: Callable[[str], None]) -> dict[str, Any]:
    handle = load_model(spec.model)
    skipped = check_predictors(pool, bool(spec.predictors), log)
    if spec.tasks is None:
        families = resolve_families(default_tasks(handle))
    lap("load")
    shots = spec.shots if spec.shots is not None else (0 if zoo_card(handle) else DEFAULT_SHOTS)
    base, variants, tasks_info = _generate(spec, families, shots)
    _check_context(handle, base + variants)
    if spec.batch_size == "auto":
        longest = max((len(ids) for ids in handle.tokenizer([i.prompt + i.target for i in base + variants])["input_ids"]),
                      default=1)
        spec = replace(spec, batch_size=auto_batch_size(handle, longest))
        log(f"--batch-size auto: {spec.batch_size}")
    lap("generate")
    log(f"model {spec.model.name_or_path} ({handle.fingerprint}); {len(base)} base and {len(variants)} variant items")

    out.mkdir(parents=True, exist_ok=True)
    reused: list[str] = []
    if not spec.resume:
        io.write_json(out / "run.json", {"identity": spec.identity(), "fingerprint": handle.fingerprint})
    io.write_jsonl(out / "items" / "base.jsonl", (item.to_dict() for item in base))
    io.write_jsonl(out / "items" / "variants.sealed.jsonl", (_sealed(item).to_dict() for item in variants))
    eval_stats: dict[str, int] = {}

    def evaluated(split: str, items: list[Item]) -> list[Outcome]:
        """The split's outcomes: stored by an earlier attempt (with --resume), else evaluated and stored."""
        path = out / "stages" / f"outcomes.{split}.jsonl"
        stored = _stored_outcomes(path, items) if spec.resume else None
        if stored is not None:
            reused.append(f"{split} evaluation")
            return stored
        outcomes = evaluate(handle, items, spec.batch_size, families, stats=eval_stats)
        io.write_jsonl(path, (o.to_dict() for o in outcomes))
        return outcomes

    base_outcomes = evaluated("base", base)
    lap("evaluate")
    calibration = [Observation(item, o.output, o.correct) for item, o in zip(base, base_outcomes)]

    cache = TraceCache(spec.cache_dir or default_cache_dir(), handle.fingerprint) if spec.use_cache else None
    attention = any("attention" in info["reads"] for info in pool.infos.values())
    model_view = TracedModel(handle, spec.batch_size, attention=attention, cache=cache)
    sealed = [_sealed(item) for item in variants]
    stored = _stored_predictions(out, sealed) if spec.resume else None
    if stored is None:
        share_context(pool, model_view, [_sealed(item) for item in base] + sealed, calibration, sealed)
        lap("trace")
        scores, status = fit_predict(pool, calibration, sealed, log)
        status = dict(skipped) | status
        lap("predict")
        # The status first, then the predictions and their digest: a digest on disk means both are stored.
        io.write_json(out / "stages" / "predictors.json", status)
        digest = write_predictions(out, "predictions", sealed, scores)
        lap("seal")
    else:
        scores, status, digest = stored
        reused.append("sealed predictions")
    if spec.protocol != "leave-one-family-out":
        pool.close()  # its memory is free for the evaluation and the scoring

    variant_outcomes = evaluated("variant", variants)
    lap("evaluate")
    io.write_jsonl(out / "items" / "variants.jsonl", (item.to_dict() for item in variants))
    outcome_rows = [dict(o.to_dict(), split=split) for split, outs in (("base", base_outcomes), ("variant", variant_outcomes))
                    for o in outs]
    io.write_jsonl(out / "outcomes.jsonl", outcome_rows)

    results = score_run(families, base, variants, base_outcomes, variant_outcomes, scores, status, spec.seed)
    results["protocols"], results["targets"] = {}, {}
    cells = np.array([f"{it.family}/{it.cell}" for it in variants])
    failed = np.array([not o.correct for o in variant_outcomes], dtype=bool)
    if spec.protocol == "leave-one-family-out":
        if stored is not None:  # resumed after sealing: the worker has no traces yet
            share_context(pool, model_view, [_sealed(item) for item in base] + sealed)
        lofo_scores, lofo_status = leave_one_family_out(pool, calibration, variants, variant_outcomes, log)
        lofo_digest = write_predictions(out, "predictions.leave-one-family-out", sealed, lofo_scores)
        metrics = score_predictors(failed, cells, lofo_scores, spec.seed)
        results["protocols"]["leave-one-family-out"] = {
            "predictions_sha256": lofo_digest,
            "predictors": {n: info | metrics.get(n, {}) for n, info in lofo_status.items()}}
        lap("predict")
    if spec.target == "compositional":
        eligible, whole_failed, rows = compositional_labels(families, handle, variants, variant_outcomes, spec.batch_size)
        io.write_jsonl(out / "components.jsonl", rows)
        subset = {n: v[eligible] for n, v in scores.items()}
        results["targets"]["compositional"] = {
            "n_eligible": int(eligible.sum()), "n_with_components": int(len({r["parent"] for r in rows})),
            "compositional_failure_rate": float(whole_failed[eligible].mean()) if eligible.any() else None,
            "predictors": score_predictors(whole_failed[eligible], cells[eligible], subset, spec.seed) if eligible.any() else {}}
        lap("evaluate")
    results.update(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        spec=spec.to_dict(),
        provenance={"versions": _versions(), "protocol": spec.protocol, "target": spec.target, "seed": spec.seed,
                    "private_seed": private_seed_digest(spec.private_seed),
                    "model": {"spec": asdict(spec.model), "source": handle.source, "fingerprint": handle.fingerprint,
                              "card": handle.card.to_dict()},
                    "tasks": tasks_info, "n_per_cell": spec.n, "shots": shots},
        predictions_sha256=digest,
        model_name=model_name(spec.model, handle),
    )
    results["evaluation"] = eval_stats
    results["resumed"] = reused
    results["trace"] = {"attention": attention, "items_traced": model_view.traced,
                        "cache": str(cache.folder) if cache else None, "cache_hits": cache.hits if cache else 0}
    lap("score")
    from .report import write_report

    write_report(out, results=results)
    lap("report")
    results["timings"] = {k: round(v, 3) for k, v in timings.items()}
    io.write_json(out / "results.json", results)
    results["run_dir"] = str(out)
    return results


def _stored_outcomes(path: Path, items: Sequence[Item]) -> list[Outcome] | None:
    if not path.is_file():
        return None
    try:
        rows = io.read_jsonl(path)
        outcomes = [Outcome.from_dict(r) for r in rows]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    return outcomes if [o.item_id for o in outcomes] == [i.id for i in items] else None


def _stored_predictions(out: Path, sealed: Sequence[SealedItem]):
    """(scores, status, digest) sealed by an earlier attempt, if complete and intact."""
    try:
        digest = (out / "predictions.sha256").read_text().split()[0]
        data = (out / "predictions.jsonl").read_bytes()
        status = json.loads((out / "stages" / "predictors.json").read_text())
    except (OSError, IndexError, json.JSONDecodeError):
        return None
    if io.sha256(data) != digest:
        return None
    rows = [json.loads(line) for line in data.decode().splitlines()]
    if [r["item_id"] for r in rows] != [i.id for i in sealed]:
        return None
    names = [n for n, info in status.items() if info["status"] == "ok"]
    return {n: np.array([r["scores"][n] for r in rows]) for n in names}, status, digest


def fit_predict(pool: PredictorPool, calibration: list[Observation], sealed: list[SealedItem],
                log: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Each of the pool's predictors, fresh, fit on `calibration` and asked about `sealed`, in the
    worker process. A predictor that raises, hangs past the timeout or returns bad scores is
    marked failed with its reason; the others go on."""
    scores: dict[str, np.ndarray] = {}
    status: dict[str, dict[str, Any]] = {}
    for asked, info in pool.infos.items():
        name = info["predictor"]
        started = time.perf_counter()
        try:
            raw, notes = pool.predict(asked, calibration, sealed)
            scores[name] = _check_scores(raw, len(sealed))
            status[name] = {"status": "ok", "notes": notes}
        except (PredictorFailed, TimeoutError, WorkerError, ValueError) as e:  # a broken predictor must not sink the run
            reason = str(e) if isinstance(e, PredictorFailed) else f"{type(e).__name__}: {e}"
            status[name] = {"status": "failed", "reason": reason}
            log(f"predictor {name} failed: {reason}")
        status[name].update(seconds=round(time.perf_counter() - started, 4), version=info["version"],
                            reads=info["reads"], params=info["params"], cls=info["cls"])
    return scores, status


def share_context(pool: PredictorPool, model_view: TracedModel, items: Sequence[SealedItem],
                  calibration: list[Observation] | None = None, sealed: list[SealedItem] | None = None) -> None:
    """One shared trace of `items` (calibration and variants), handed to the worker with the
    default `calibration` and `sealed` items (`fit_predict` given these very lists sends no copy)."""
    trace = model_view.trace(items)
    pool.set_context(model_view.card, model_view.tokenizer_json(), trace, [i.prompt for i in items],
                     calibration, sealed)
    model_view.forget()  # the worker maps the arrays from disk; this process needs them no more


def write_predictions(out: Path, name: str, items: Sequence[SealedItem], scores: dict[str, np.ndarray]) -> str:
    """`name`.jsonl and `name`.sha256; returns the digest."""
    rows = [{"item_id": item.id, "family": item.family, "cell": item.cell,
             "scores": {k: float(v[i]) for k, v in scores.items()}} for i, item in enumerate(items)]
    digest = io.sha256(io.write_jsonl(out / f"{name}.jsonl", rows))
    io.write_bytes(out / f"{name}.sha256", f"{digest}  {name}.jsonl\n".encode())
    return digest


def leave_one_family_out(pool, calibration, variants, variant_outcomes, log):
    """Each family's variants predicted from base outcomes plus every other family's variant
    outcomes; the runner withholds the scored family's own."""
    sealed = [_sealed(item) for item in variants]
    scores: dict[str, np.ndarray] = {}
    status: dict[str, dict] = {}
    for family in dict.fromkeys(item.family for item in variants):
        index = [i for i, item in enumerate(variants) if item.family == family]
        others = [Observation(item, o.output, o.correct) for item, o in zip(variants, variant_outcomes)
                  if item.family != family]
        fold_scores, fold_status = fit_predict(pool, calibration + others, [sealed[i] for i in index], log)
        for name, info in fold_status.items():
            notes = [f"on family {family}: {n}" for n in info.get("notes", [])]
            if info["status"] != "ok":
                status[name] = info | {"reason": f"on family {family}: {info['reason']}"}
            status.setdefault(name, info | {"notes": []})
            if "notes" in status[name]:
                status[name]["notes"] = status[name]["notes"] + notes
        for name, values in fold_scores.items():
            scores.setdefault(name, np.zeros(len(variants)))[index] = values
    return {k: v for k, v in scores.items() if status[k]["status"] == "ok"}, status


def compositional_labels(families, handle, variants, variant_outcomes, batch_size):
    """(eligible, failed, rows): items whose components the model all solves, and whether it
    fails the whole (Press et al. 2022's compositional gap)."""
    parts, owner = [], []
    for i, item in enumerate(variants):
        for part in families[item.family].components(item):
            parts.append(part)
            owner.append(i)
    outcomes = evaluate(handle, parts, batch_size, families) if parts else []
    solved = np.ones(len(variants), dtype=bool)
    has = np.zeros(len(variants), dtype=bool)
    for i, o in zip(owner, outcomes):
        has[i] = True
        solved[i] &= o.correct
    eligible = has & solved
    failed = np.array([not o.correct for o in variant_outcomes], dtype=bool)
    rows = [o.to_dict() | {"parent": variants[i].id} for i, o in zip(owner, outcomes)]
    return eligible, failed, rows


def score_run(families: dict[str, TaskFamily], base: list[Item], variants: list[Item], base_outcomes: list[Outcome],
              variant_outcomes: list[Outcome], scores: dict[str, np.ndarray], status: dict[str, dict],
              seed: int) -> dict[str, Any]:
    """Metrics per predictor (over all variant items), per family, and per cell."""
    shifts = {(name, c.name): c.shift for name, family in families.items() for c in family.cells}
    rows = [{"family": it.family, "cell": it.cell, "shift": shifts[it.family, it.cell], "split": "base",
             "failed": not o.correct} for it, o in zip(base, base_outcomes)]
    rows += [{"family": it.family, "cell": it.cell, "shift": shifts[it.family, it.cell], "split": "variant",
              "failed": not o.correct, "pred_index": i} for i, (it, o) in enumerate(zip(variants, variant_outcomes))]
    failed = np.array([not o.correct for o in variant_outcomes], dtype=bool)
    cells = np.array([f"{it.family}/{it.cell}" for it in variants])
    overall = score_predictors(failed, cells, scores, seed) if len(failed) else {}
    per_family = {}
    for name in families:
        mask = np.array([it.family == name for it in variants], dtype=bool)
        if mask.any():
            per_family[name] = {"n": int(mask.sum()), "failure_rate": float(failed[mask].mean()),
                                "predictors": score_predictors(failed[mask], cells[mask],
                                                               {k: v[mask] for k, v in scores.items()}, seed)}
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "scoring_version": SCORING_VERSION,
        "n_base": len(base),
        "n_variant": len(variants),
        "base_failure_rate": float(np.mean([not o.correct for o in base_outcomes])) if base_outcomes else None,
        "variant_failure_rate": float(failed.mean()) if len(failed) else None,
        "predictors": {name: dict(info) | overall.get(name, {}) for name, info in status.items()},
        "families": per_family,
        "cells": cell_table(rows, scores),
    }
