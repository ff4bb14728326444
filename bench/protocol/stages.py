"""The protocol, in order: generate, calibrate, predict, seal, evaluate, score, report.

`run` below is the whole protocol on one screen; each stage is a function whose
signature says what it reads and what it gives. Variant targets are not written
anywhere until the predictions and their SHA-256 are on disk. Predictors run in a
separate worker process (`bench.protocol.worker`) that is handed sealed items,
calibration observations and the shared trace, and never holds a target, the model,
the seed or the run folder. With `--resume`, each stage first looks in the run
folder for its stored output (`RunFolder.stored_*`) and reuses it when intact.
"""
from __future__ import annotations

import datetime as dt
import platform
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from predictors import Observation
from tasks import Item, SealedItem, TaskFamily, family_names, resolve_families
from tasks.render import few_shot

from ..errors import UserError
from ..model.evaluate import Outcome, auto_batch_size, evaluate
from ..model.load import ModelHandle, ModelSpec, load_model
from ..model.trace import TraceCache, TracedModel, default_cache_dir
from ..scoring.metrics import SCORING_VERSION, cell_table, score_predictors
from .folder import RunFolder, check_out, write_predictions
from .predict import check_predictors, fit_predict, leave_one_family_out, open_predictors, share_context
from .spec import DEFAULT_SHOTS, RunSpec, private_seed_digest
from .worker import PredictorPool

RESULTS_SCHEMA_VERSION = 1
Log = Callable[[str], None]


@dataclass(frozen=True)
class Suite:
    """The generate stage's output: the run's items and what the results say of its tasks."""

    families: dict[str, TaskFamily]
    base: list[Item]
    variants: list[Item]
    tasks_info: dict[str, dict]
    shots: int

    @property
    def sealed(self) -> list[SealedItem]:
        return [item.sealed() for item in self.variants]


class Clock:
    """Seconds per stage, summed over a stage's visits."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now


def run(spec: RunSpec, log: Log = print) -> dict[str, Any]:
    """The sealed protocol on `spec`; returns results.json's content (and `run_dir`)."""
    spec.check()
    families = resolve_families(spec.tasks) if spec.tasks is not None else None
    folder = RunFolder(check_out(spec), spec.resume)
    pool = open_predictors(spec.predictors, spec.predictor_timeout, log, wait=False)  # starts while the model loads
    clock = Clock()
    try:
        handle = load_model(spec.model)
        skipped = check_predictors(pool, bool(spec.predictors), log)
        clock.lap("load")
        families = families if families is not None else resolve_families(default_tasks(handle))
        suite = generate(spec, families, shots_for(spec, handle))
        check_context(handle, suite.base + suite.variants)
        spec = settle_batch_size(spec, handle, suite, log)
        clock.lap("generate")
        log(f"model {spec.model.name_or_path} ({handle.fingerprint}); "
            f"{len(suite.base)} base and {len(suite.variants)} variant items")
        folder.start(spec, handle.fingerprint, suite.base, suite.variants)
        eval_stats: dict[str, int] = {}
        base_outcomes = calibrate(folder, handle, suite, spec.batch_size, eval_stats)
        calibration = [Observation(item, o.output, o.correct) for item, o in zip(suite.base, base_outcomes)]
        clock.lap("evaluate")
        view = traced_view(spec, handle, pool)
        sealed = suite.sealed
        stored = folder.stored_predictions(sealed)
        if stored is None:
            scores, status = predict(pool, view, suite, calibration, skipped, clock, log)
            digest = seal(folder, sealed, scores, status)
            clock.lap("seal")
        else:
            scores, status, digest = stored
        if spec.protocol != "leave-one-family-out":
            pool.close()  # its memory is free for the evaluation and the scoring
        variant_outcomes = evaluate_variants(folder, handle, suite, base_outcomes, spec.batch_size, eval_stats)
        clock.lap("evaluate")
        results = score(suite, base_outcomes, variant_outcomes, scores, status, spec.seed)
        if spec.protocol == "leave-one-family-out":
            results["protocols"]["leave-one-family-out"] = predict_leaving_one_family_out(
                folder, pool, view, suite, calibration, variant_outcomes, resumed=stored is not None, seed=spec.seed,
                log=log)
            clock.lap("predict")
        if spec.target == "compositional":
            results["targets"]["compositional"] = score_compositional(
                folder, handle, suite, variant_outcomes, scores, spec.batch_size, spec.seed)
            clock.lap("evaluate")
        record(results, spec, handle, suite, digest, eval_stats, folder.reused, view)
        clock.lap("score")
        report(folder, results)
        clock.lap("report")
        results["timings"] = {k: round(v, 3) for k, v in clock.timings.items()}
        folder.write("results.json", results)
        results["run_dir"] = str(folder.path)
        return results
    finally:
        pool.close()


# -- generate ------------------------------------------------------------------------------

def generate(spec: RunSpec, families: dict[str, TaskFamily], shots: int) -> Suite:
    """Every cell's items of `families`, from the run's item seed, rendered with `shots` examples."""
    base, variants, tasks_info = [], [], {}
    for name, family in families.items():
        for cell in family.cells:
            items = few_shot(family.generate(cell.name, spec.n, spec.item_seed), family, shots, spec.item_seed)
            (base if cell.is_base else variants).extend(items)
        tasks_info[name] = {"description": family.description, "axes": dict(family.axes),
                            "source": getattr(family, "source", "built-in"),
                            "cells": [{"name": c.name, "shift": c.shift, "axes": dict(c.axes)} for c in family.cells]}
    return Suite(families, base, variants, tasks_info, shots)


def shots_for(spec: RunSpec, handle: ModelHandle) -> int:
    """`--shots`, else 0 for a zoo model (it was trained on the formats) and DEFAULT_SHOTS otherwise."""
    return spec.shots if spec.shots is not None else (0 if zoo_card(handle) else DEFAULT_SHOTS)


def settle_batch_size(spec: RunSpec, handle: ModelHandle, suite: Suite, log: Log) -> RunSpec:
    """`--batch-size auto` made a number from the model's size and the longest item."""
    if spec.batch_size != "auto":
        return spec
    items = suite.base + suite.variants
    longest = max((len(ids) for ids in handle.tokenizer([i.prompt + i.target for i in items])["input_ids"]), default=1)
    spec = replace(spec, batch_size=auto_batch_size(handle, longest))
    log(f"--batch-size auto: {spec.batch_size}")
    return spec


def zoo_card(handle: ModelHandle) -> dict | None:
    """The zoo card of a model the zoo trained (they know the task formats: zero-shot), else None."""
    import json

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


def check_context(handle: ModelHandle, items: Sequence[Item]) -> None:
    limit = handle.card.context_length
    if not limit:
        return
    for item in items:
        need = len(handle.tokenizer(item.prompt + item.target)["input_ids"]) + 2
        if need > limit:
            raise UserError(f"{item.family}/{item.cell} items need {need} tokens but the model's context is {limit}: "
                            "leave that family out of --tasks or use a model with a longer context")


# -- calibrate -----------------------------------------------------------------------------

def calibrate(folder: RunFolder, handle: ModelHandle, suite: Suite, batch_size: int,
              stats: dict[str, int]) -> list[Outcome]:
    """The base region evaluated: the outcomes predictors may learn from."""
    return _evaluated(folder, "base", handle, suite.base, suite.families, batch_size, stats)


def _evaluated(folder: RunFolder, split: str, handle: ModelHandle, items: list[Item],
               families: dict[str, TaskFamily], batch_size: int, stats: dict[str, int]) -> list[Outcome]:
    stored = folder.stored_outcomes(split, items)
    if stored is not None:
        return stored
    outcomes = evaluate(handle, items, batch_size, families, stats=stats)
    folder.write_outcomes(split, outcomes)
    return outcomes


# -- predict, seal ---------------------------------------------------------------------------

def traced_view(spec: RunSpec, handle: ModelHandle, pool: PredictorPool) -> TracedModel:
    """The model as predictors see it: card, tokenizer and prompt-only traces (attention sites
    only when some predictor reads them), cached on disk by fingerprint unless --no-cache."""
    cache = TraceCache(spec.cache_dir or default_cache_dir(), handle.fingerprint) if spec.use_cache else None
    attention = any("attention" in info["reads"] for info in pool.infos.values())
    return TracedModel(handle, spec.batch_size, attention=attention, cache=cache)


def predict(pool: PredictorPool, view: TracedModel, suite: Suite, calibration: list[Observation],
            skipped: dict[str, dict], clock: Clock, log: Log) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Every item traced once and handed to the worker; each predictor fit on the calibration
    observations and asked about the sealed variants. Returns (scores, status per predictor)."""
    sealed = suite.sealed
    share_context(pool, view, [item.sealed() for item in suite.base] + sealed, calibration, sealed)
    clock.lap("trace")
    scores, status = fit_predict(pool, calibration, sealed, log)
    clock.lap("predict")
    return scores, dict(skipped) | status


def seal(folder: RunFolder, sealed: list[SealedItem], scores: dict[str, np.ndarray], status: dict[str, dict]) -> str:
    """The predictions and their SHA-256 on disk, before any variant is evaluated; returns the digest."""
    return folder.seal(sealed, scores, status)


# -- evaluate --------------------------------------------------------------------------------

def evaluate_variants(folder: RunFolder, handle: ModelHandle, suite: Suite, base_outcomes: list[Outcome],
                      batch_size: int, stats: dict[str, int]) -> list[Outcome]:
    """The variants evaluated (after sealing); then their targets and every outcome are written."""
    outcomes = _evaluated(folder, "variant", handle, suite.variants, suite.families, batch_size, stats)
    folder.write("items/variants.jsonl", (item.to_dict() for item in suite.variants))
    folder.write("outcomes.jsonl", [dict(o.to_dict(), split=split)
                                    for split, outs in (("base", base_outcomes), ("variant", outcomes)) for o in outs])
    return outcomes


# -- score -----------------------------------------------------------------------------------

def score(suite: Suite, base_outcomes: list[Outcome], variant_outcomes: list[Outcome],
          scores: dict[str, np.ndarray], status: dict[str, dict], seed: int) -> dict[str, Any]:
    """Metrics per predictor (over all variant items), per family, and per cell."""
    families, base, variants = suite.families, suite.base, suite.variants
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
        "protocols": {},
        "targets": {},
    }


def predict_leaving_one_family_out(folder: RunFolder, pool: PredictorPool, view: TracedModel, suite: Suite,
                                   calibration: list[Observation], variant_outcomes: list[Outcome], resumed: bool,
                                   seed: int, log: Log) -> dict[str, Any]:
    """The leave-one-family-out protocol: each family's variants predicted from the base outcomes
    and every other family's observed variant outcomes; sealed and scored as its own view."""
    sealed = suite.sealed
    if resumed:  # resumed after sealing: the worker has no traces yet
        share_context(pool, view, [item.sealed() for item in suite.base] + sealed)
    lofo_scores, lofo_status = leave_one_family_out(pool, calibration, suite.variants, variant_outcomes, log)
    digest = write_predictions(folder.path, "predictions.leave-one-family-out", sealed, lofo_scores)
    failed = np.array([not o.correct for o in variant_outcomes], dtype=bool)
    cells = np.array([f"{it.family}/{it.cell}" for it in suite.variants])
    metrics = score_predictors(failed, cells, lofo_scores, seed)
    return {"predictions_sha256": digest,
            "predictors": {n: info | metrics.get(n, {}) for n, info in lofo_status.items()}}


def score_compositional(folder: RunFolder, handle: ModelHandle, suite: Suite, variant_outcomes: list[Outcome],
                        scores: dict[str, np.ndarray], batch_size: int, seed: int) -> dict[str, Any]:
    """The compositional target: among items whose components the model all solves, does it fail
    the whole (Press et al. 2022's compositional gap)? Components are evaluated here, after sealing."""
    eligible, whole_failed, rows = compositional_labels(suite.families, handle, suite.variants, variant_outcomes,
                                                        batch_size)
    folder.write("components.jsonl", rows)
    cells = np.array([f"{it.family}/{it.cell}" for it in suite.variants])
    subset = {n: v[eligible] for n, v in scores.items()}
    return {"n_eligible": int(eligible.sum()), "n_with_components": int(len({r["parent"] for r in rows})),
            "compositional_failure_rate": float(whole_failed[eligible].mean()) if eligible.any() else None,
            "predictors": score_predictors(whole_failed[eligible], cells[eligible], subset, seed) if eligible.any() else {}}


def compositional_labels(families, handle, variants, variant_outcomes, batch_size):
    """(eligible, failed, rows): items whose components the model all solves, and whether it
    fails the whole."""
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


def record(results: dict[str, Any], spec: RunSpec, handle: ModelHandle, suite: Suite, digest: str,
           eval_stats: dict[str, int], reused: list[str], view: TracedModel) -> None:
    """How the run was made, into `results`: spec, versions, model, tasks, seeds, paths taken."""
    cache = view.cache
    results.update(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        spec=spec.to_dict(),
        provenance={"versions": versions(), "protocol": spec.protocol, "target": spec.target, "seed": spec.seed,
                    "private_seed": private_seed_digest(spec.private_seed),
                    "model": {"spec": asdict(spec.model), "source": handle.source, "fingerprint": handle.fingerprint,
                              "card": handle.card.to_dict()},
                    "tasks": suite.tasks_info, "n_per_cell": spec.n, "shots": suite.shots},
        predictions_sha256=digest,
        model_name=model_name(spec.model, handle),
    )
    results["evaluation"] = eval_stats
    results["resumed"] = reused
    results["trace"] = {"attention": view.attention, "items_traced": view.traced,
                        "cache": str(cache.folder) if cache else None, "cache_hits": cache.hits if cache else 0}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("brittlebench", "torch", "transformers", "numpy", "scikit-learn", "scipy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# -- report ----------------------------------------------------------------------------------

def report(folder: RunFolder, results: dict[str, Any]) -> None:
    """report.html, from the results and the folder's files."""
    from ..scoring.report import write_report

    write_report(folder.path, results=results)
