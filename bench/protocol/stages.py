"""The protocol, in order: generate, calibrate, predict, seal, evaluate, score, report.

`run` below is the whole protocol on one screen, one line a stage; each stage takes
the run's context (`Run`) and says by its signature what else it reads and what it gives. Variant targets are not written
anywhere until the predictions and their SHA-256 are on disk. Predictors run in a
separate worker process (`bench.protocol.worker`) that is handed sealed items,
calibration observations and the shared trace, and never holds a target, the model,
the seed or the run folder. With `--resume`, each stage first looks in the run
folder for its stored output (`RunFolder.stored_*`) and reuses it when intact.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from predictors import Observation, Trace
from tasks import Item, SealedItem, TaskFamily, resolve_families, suite_families
from tasks.render import chat, few_shot

from ..errors import UserError
from ..model.evaluate import Outcome, OutcomeCache, auto_batch_size, evaluate, first_answer_tokens
from ..model.load import ModelHandle, ModelSpec, load_model
from ..model.trace import TraceCache, TracedModel
from ..scoring.cache import ScoreCache, restore_volatile, stable_status
from ..scoring.metrics import REFERENCE, SCORING_VERSION, cell_table
from ..scoring.run import RESULTS_SCHEMA_VERSION, base_competence, score, score_view, solved_components
from .folder import RunFolder, check_out, without_claims, write_predictions
from .history import History
from .predict import PredictionCache, check_predictors, leave_one_family_out, open_predictors, predict_by_track, reads_history
from .spec import DEFAULT_SHOTS, RunSpec, private_seed_digest
from .worker import PredictorPool

Log = Callable[[str], None]


@dataclass(frozen=True)
class Suite:
    """The generate stage's output: the run's items and what the results say of its tasks."""

    families: dict[str, TaskFamily]
    base: list[Item]
    variants: list[Item]
    tasks_info: dict[str, dict]
    shots: int
    skipped: dict[str, str] = field(default_factory=dict)  # "family" or "family/cell": why (`fit_context`)

    @property
    def sealed(self) -> list[SealedItem]:
        return [item.sealed() for item in self.variants]

    def without(self, skipped: dict[str, str]) -> "Suite":
        """The suite less the families and variant cells `skipped` names ("family" or "family/cell"),
        which it records; `tasks_info` still describes every family asked for."""
        def kept(item: Item) -> bool:
            return item.family not in skipped and f"{item.family}/{item.cell}" not in skipped

        return Suite({name: f for name, f in self.families.items() if name not in skipped},
                     [i for i in self.base if kept(i)], [i for i in self.variants if kept(i)], self.tasks_info,
                     self.shots, dict(skipped))


class Clock:
    """Seconds per stage, summed over a stage's visits."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now


@dataclass(frozen=True)
class Run:
    """What the stages of one run share."""

    spec: RunSpec  # the batch size settled
    handle: ModelHandle
    folder: RunFolder
    suite: Suite
    view: TracedModel  # the model as predictors see it
    pool: PredictorPool
    history: History | None  # None where no predictor reads one
    clock: Clock
    log: Log
    skipped: dict[str, dict]  # of 'all registered', the predictors that could not be loaded
    eval_stats: dict[str, int]  # what the evaluation counts (prefix hits, continued items, ...)


@dataclass(frozen=True)
class Sealed:
    """The predict stage's output: scores and status per predictor, their SHA-256 as sealed, and the
    variants' trace where the trace track needed one (None where it did not, or on resume)."""

    scores: dict[str, np.ndarray]
    status: dict[str, dict]
    digest: str
    variant_trace: Trace | None = None


def run(spec: RunSpec, log: Log = print) -> dict[str, Any]:
    """The sealed protocol on `spec`; returns results.json's content (and `run_dir`)."""
    spec.check()
    with contextlib.ExitStack() as cleanup:
        ctx = start(spec, log, cleanup)
        base_outcomes = calibrate(ctx)
        if spec.predict_only:
            return screened(ctx, base_outcomes)
        sealed = predict_and_seal(ctx, base_outcomes)
        if spec.protocol != "leave-one-family-out":
            ctx.pool.close(wait=False)  # its memory is free for the evaluation and the scoring; it exits meanwhile
        variant_outcomes = evaluate_variants(ctx, base_outcomes)
        reference = answer_visible(ctx, sealed)
        ctx.clock.lap("evaluate")
        results = scored(ctx, base_outcomes, variant_outcomes, sealed, reference)
        after_scoring(ctx, results, base_outcomes, variant_outcomes, sealed)
        return finish(ctx, results, sealed.digest, base_outcomes)


def start(spec: RunSpec, log: Log, cleanup: contextlib.ExitStack) -> Run:
    """The folder checked and locked, the predictor worker started (while the model loads), the model
    loaded, the items generated and written, the history's checkpoints found. `cleanup` closes the
    worker and lets go of the folder when the run ends, however it ends."""
    clock = Clock()
    families = resolve_families(spec.tasks) if spec.tasks is not None else None
    out, lock = check_out(spec)
    cleanup.callback(lock.release)
    folder = RunFolder(out, spec.resume and (out / "run.json").is_file())  # --resume with nothing there starts it
    pool = open_predictors(spec.predictors, spec.predictor_timeout, log, wait=False)  # starts while the model loads
    cleanup.callback(pool.close)
    handle = load_model(spec.model)
    skipped = check_predictors(pool, bool(spec.predictors), log)
    clock.lap("load")
    families = families if families is not None else resolve_families(default_tasks(handle, spec.suite))
    shots = spec.shots if spec.shots is not None else (0 if zoo_card(handle) else DEFAULT_SHOTS)  # zoo: zero-shot
    suite = generate(spec, families, shots, chat_template(handle) if spec.chat else None)
    suite = fit_context(handle, suite, log)
    spec = settle_batch_size(spec, handle, suite, log)
    history = training_history(spec, handle, suite, pool, log) if reads_history(pool) else None
    clock.lap("generate")
    log(f"model {spec.model.name_or_path} ({handle.fingerprint}); "
        f"{len(suite.base)} base and {len(suite.variants)} variant items")
    folder.start(spec, handle.fingerprint, suite.base, suite.variants)
    return Run(spec, handle, folder, suite, traced_view(spec, handle, pool), pool, history, clock, log, skipped, {})


def finish(ctx: Run, results: dict[str, Any], digest: str, base_outcomes: list[Outcome]) -> dict[str, Any]:
    """How the run was made and its learning curves into `results`; the report and results.json written."""
    from ..scoring.report import write_report

    record(ctx, results, digest)
    if ctx.history is not None:
        results["history"] = ctx.history.summary({o.item_id: o.correct for o in base_outcomes}, ctx.handle.fingerprint)
    ctx.clock.lap("score")
    results["timings"] = {k: round(v, 3) for k, v in ctx.clock.timings.items()}  # the report shows those so far
    write_report(ctx.folder.path, results=results)
    ctx.clock.lap("report")
    results["timings"] = {k: round(v, 3) for k, v in ctx.clock.timings.items()}
    ctx.folder.write("results.json", results)
    results["run_dir"] = str(ctx.folder.path)
    return results


# -- generate ------------------------------------------------------------------------------

def generate(spec: RunSpec, families: dict[str, TaskFamily], shots: int, apply_chat=None) -> Suite:
    """Every cell's items of `families`, from the run's item seed, rendered with `shots` examples
    (`spec.shot_mode`), as a chat where `apply_chat` renders one (see `chat_template`)."""
    base, variants, tasks_info = [], [], {}
    for name, family in families.items():
        for cell in family.cells:
            items = family.generate(cell.name, spec.n, spec.item_seed)
            items = (chat(items, family, shots, apply_chat, spec.item_seed, spec.shot_mode) if apply_chat is not None
                     else few_shot(items, family, shots, spec.item_seed, spec.shot_mode))
            (base if cell.is_base else variants).extend(items)
        tasks_info[name] = {"description": family.description, "axes": dict(family.axes),
                            "source": getattr(family, "source", "built-in"),
                            "cells": [{"name": c.name, "shift": c.shift, "axes": dict(c.axes)} for c in family.cells]}
    return Suite(families, base, variants, tasks_info, shots)


def settle_batch_size(spec: RunSpec, handle: ModelHandle, suite: Suite, log: Log) -> RunSpec:
    """`--batch-size auto` made a number from the model's size and the longest item."""
    if spec.batch_size != "auto":
        return spec
    items = suite.base + suite.variants
    longest = max((len(ids) for ids in handle.token_ids([i.prompt + i.target for i in items])), default=1)
    spec = replace(spec, batch_size=auto_batch_size(handle, longest))
    log(f"--batch-size auto: {spec.batch_size}")
    return spec


def zoo_card(handle: ModelHandle) -> dict | None:
    """The zoo card of a model the zoo trained (they know the task formats: zero-shot), else None; a
    checkpoint saved inside a member (MEMBER/checkpoints/step-N) has its member's card."""
    source = Path(handle.source)
    for folder in (source, source.parent.parent if source.parent.name == "checkpoints" else None):
        if folder is not None and (folder / "zoo.json").is_file():
            return json.loads((folder / "zoo.json").read_text())
    return None


def model_name(spec: ModelSpec, handle: ModelHandle) -> str:
    """How tables name the model: 'default', a zoo preset, or the name or folder given."""
    if spec.name_or_path == "default":
        return "default"
    preset = (zoo_card(handle) or {}).get("preset")
    if preset and not (Path(handle.source) / "zoo.json").is_file():  # a checkpoint of a zoo member
        return f"{preset}/{Path(handle.source).name}"
    return preset or Path(spec.name_or_path).name or spec.name_or_path


def default_tasks(handle: ModelHandle, suite: str | None = None) -> tuple[str, ...]:
    """The families of `suite`; without one, a zoo model's own families (it cannot read the others'
    formats) and the plain-language "pretrained" suite for every other model."""
    if suite is not None:
        return suite_families(suite)
    card = zoo_card(handle)
    return tuple(card["recipe"]["tasks"]) if card else suite_families("pretrained")


def chat_template(handle: ModelHandle):
    """A function rendering chat messages with the model's chat template, ready for the answer."""
    tokenizer = handle.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{handle.spec.name_or_path} has no chat template: run it without --chat")
    return lambda messages: tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def fit_context(handle: ModelHandle, suite: Suite, log: Log) -> Suite:
    """The suite less what the model's context cannot hold (`too_long`), decided before any
    evaluation from the items' token counts alone, and said in one line; a one-line UserError
    where no family fits."""
    limit = handle.card.context_length
    if not limit:
        return suite
    skipped = too_long(suite.families, context_needs(handle, suite.base + suite.variants), limit)
    said = "; ".join(f"{name} ({why})" for name, why in skipped.items())
    if all(name in skipped for name in suite.families):
        raise UserError(f"no task family fits the model's context of {limit} tokens ({said}): "
                        "use a model with a longer context")
    if skipped:
        log(f"skipped, longer than the model's context: {said}")
    return suite.without(skipped)


def context_needs(handle: ModelHandle, items: Sequence[Item]) -> dict[tuple[str, str], int]:
    """Per (family, cell), the tokens its longest item needs: prompt and target, and 2 to spare."""
    needs: dict[tuple[str, str], int] = {}
    for item, ids in zip(items, handle.token_ids([item.prompt + item.target for item in items])):
        key = (item.family, item.cell)
        needs[key] = max(needs.get(key, 0), len(ids) + 2)
    return needs


def too_long(families: dict[str, TaskFamily], needs: dict[tuple[str, str], int], limit: int) -> dict[str, str]:
    """What a context of `limit` tokens cannot hold, in the families' and cells' order, each with why:
    a family whose base region does not fit (its predictors have nothing to learn from) or none of
    whose variant cells fits (nothing to predict), under its name; else each variant cell that does
    not fit, under "family/cell". `needs` gives each cell's longest item (`context_needs`)."""
    skipped: dict[str, str] = {}
    context = f"the model's context is {limit}"
    for name, family in families.items():
        base = max(needs[name, c.name] for c in family.base_cells)
        over = {c.name: needs[name, c.name] for c in family.variant_cells if needs[name, c.name] > limit}
        if base > limit:
            skipped[name] = f"its base region needs {base} tokens; {context}"
        elif over and len(over) == len(family.variant_cells):
            skipped[name] = f"each of its variant cells needs {min(over.values())} tokens or more; {context}"
        else:
            skipped.update({f"{name}/{cell}": f"needs {need} tokens; {context}" for cell, need in over.items()})
    return skipped


# -- calibrate -----------------------------------------------------------------------------

def calibrate(ctx: Run) -> list[Outcome]:
    """The base region traced (one prompt pass, which the evaluation goes on from) and evaluated:
    the outcomes predictors may learn from."""
    ctx.view.keep_continuations([item.id for item in ctx.suite.base])
    ctx.view.trace([item.sealed() for item in ctx.suite.base])
    ctx.clock.lap("trace")
    outcomes = _evaluated(ctx, "base", ctx.suite.base)
    ctx.clock.lap("evaluate")
    return outcomes


def observations(suite: Suite, base_outcomes: list[Outcome]) -> list[Observation]:
    return [Observation(item, o.output, o.correct) for item, o in zip(suite.base, base_outcomes)]


def _evaluated(ctx: Run, split: str, items: list[Item]) -> list[Outcome]:
    """`items` evaluated (or their outcomes stored by an earlier attempt, or cached from an earlier
    run of this model on these items), going on from the prompt passes the trace kept where it kept them."""
    stored = ctx.folder.stored_outcomes(split, items)
    if stored is not None:
        return stored
    cache = OutcomeCache(ctx.spec.cache_root, ctx.handle.cache_name) if ctx.spec.use_cache else None
    outcomes = cache.get(items) if cache is not None else None
    continuations, stats = ctx.view.continuations, ctx.eval_stats
    if outcomes is not None:
        stats["cached"] = stats.get("cached", 0) + len(items)
    else:
        outcomes = evaluate(ctx.handle, items, ctx.spec.batch_size, ctx.suite.families, stats=stats,
                            progress=f"evaluate {split}", continuations=continuations)
        if continuations is not None:
            stats["continued"] = stats.get("continued", 0) + continuations.evaluated
        if cache is not None:
            cache.put(items, outcomes)
    if continuations is not None:
        continuations.forget()  # evaluated (or cached): the kept prompt passes are not needed again
    ctx.folder.write_outcomes(split, outcomes)
    return outcomes


def scored(ctx: Run, base_outcomes: list[Outcome], variant_outcomes: list[Outcome], sealed: Sealed,
           reference: np.ndarray | None) -> dict[str, Any]:
    """`score`, or the figures an earlier run scored on the same cells, outcomes, sealed predictions,
    seed and scoring code, read from the cache beside the model's traces (unless --no-cache)."""
    suite = ctx.suite
    if not ctx.spec.use_cache:
        return score(suite, base_outcomes, variant_outcomes, sealed.scores, sealed.status, ctx.spec.seed, reference)
    cache = ScoreCache(ctx.spec.cache_root / ctx.handle.cache_name,
                       ("bench.scoring.run", "bench.scoring.metrics", "bench.scoring.claims", "predictors.claims",
                        "predictors.base"))
    path = cache.path([[(name, [(c.name, c.shift) for c in f.cells]) for name, f in suite.families.items()],
                       [(i.family, i.cell) for i in suite.base], [(i.family, i.cell) for i in suite.variants],
                       np.array([o.correct for o in base_outcomes]), np.array([o.correct for o in variant_outcomes]),
                       stable_status(sealed.status), list(sealed.status), ctx.spec.seed, reference,
                       *[part for name in sealed.scores
                         for part in (name, np.asarray(sealed.scores[name], dtype=np.float64))]])
    cached = cache.get(path)
    if cached is not None:
        return restore_volatile(cached, sealed.status) | {"scores_cached": True}
    results = score(suite, base_outcomes, variant_outcomes, sealed.scores, sealed.status, ctx.spec.seed, reference)
    cache.put(path, results)
    return results


# -- predict, seal ---------------------------------------------------------------------------

def traced_view(spec: RunSpec, handle: ModelHandle, pool: PredictorPool) -> TracedModel:
    """The model as predictors see it: card, tokenizer and prompt-only traces (attention sites
    only when some predictor reads them), cached on disk by fingerprint unless --no-cache."""
    cache = TraceCache(spec.cache_root, handle.cache_name) if spec.use_cache else None
    attention = any("attention" in info["reads"] for info in pool.infos.values())
    return TracedModel(handle, spec.batch_size, attention=attention, cache=cache)


def training_history(spec: RunSpec, handle: ModelHandle, suite: Suite, pool: PredictorPool, log: Log) -> History:
    """The model's checkpoints (zoo checkpoints, --checkpoints or --revisions), for the predictors
    that read a history; empty where the model has none. Found (and checked) before any work."""
    attention = any({"attention", "history"} <= set(info["reads"]) for info in pool.infos.values())
    return History(spec, handle, suite.families, attention, suite.base, log)


def predict_and_seal(ctx: Run, base_outcomes: list[Outcome]) -> Sealed:
    """The predictions sealed by an earlier attempt (with --resume), else each predictor fit on the
    calibration observations and asked about the sealed variants (`predict`), and the predictions
    and their SHA-256 written before any variant is evaluated."""
    sealed = ctx.suite.sealed
    stored = ctx.folder.stored_predictions(sealed)
    if stored is not None:
        return Sealed(*stored)
    screen = ctx.folder.stored_screen(sealed)
    ctx.view.keep_continuations([item.id for item in ctx.suite.variants])  # one prompt pass: trace, then evaluation
    scores, status, variant_trace = predict(ctx, observations(ctx.suite, base_outcomes))
    if screen is not None:
        check_screen(ctx.folder, scores, screen)
    digest = ctx.folder.seal(sealed, scores, status)
    ctx.clock.lap("seal")
    return Sealed(scores, status, digest, variant_trace)


def predict(ctx: Run, calibration: list[Observation], blind_only: bool = False
            ) -> tuple[dict[str, np.ndarray], dict[str, dict], Trace | None]:
    """Each predictor fit on the calibration observations and asked about the sealed variants, track
    by track (`predict_by_track`): (scores, status per predictor, the variants' trace or None)."""
    base = [item.sealed() for item in ctx.suite.base]
    cache = PredictionCache(ctx.spec.cache_root / ctx.handle.cache_name) if ctx.spec.use_cache else None
    scores, status, variant_trace = predict_by_track(ctx.pool, ctx.view, base, ctx.suite.sealed, calibration, ctx.log,
                                                     ctx.clock.lap, ctx.history, blind_only, cache)
    # the screen (blind only): the trace track's predictors (and those skipped) wait for the full run
    return scores, status if blind_only else dict(ctx.skipped) | status, variant_trace


# -- the screen: predict only ----------------------------------------------------------------

def screened(ctx: Run, base_outcomes: list[Outcome]) -> dict[str, Any]:
    """A predict-only run: the base region evaluated, the blind track's predictions sealed into
    stages/screen.jsonl, no variant traced or evaluated. results.json holds each variant cell's
    predicted failure; `--resume` without --predict-only completes the same folder."""
    folder, sealed = ctx.folder, ctx.suite.sealed
    if folder.stored_predictions(sealed) is not None:
        raise UserError(f"{folder.path} is sealed past its screen already: resume it without --predict-only")
    screen = folder.stored_screen(sealed)
    if screen is None:
        scores, status, _ = predict(ctx, observations(ctx.suite, base_outcomes), blind_only=True)
        status = without_claims(status)  # a screen observes no variant: nothing to test a claim against
        digest = folder.seal_screen(sealed, scores, status, sum(ctx.clock.timings.values()))
        ctx.clock.lap("seal")
    else:
        scores, status, digest = screen
        folder.reused.append("screen")
    ctx.pool.close()
    results = screen_results(ctx.suite, base_outcomes, scores, status)
    record(ctx, results, digest)
    seconds = json.loads((folder.path / "stages" / "screen.json").read_text())["seconds"]
    results["screen"] = {"predictions_sha256": digest, "seconds": seconds,
                         "estimated_full_seconds": round(seconds + estimated_variant_seconds(ctx.suite, ctx.clock), 1)}
    results["timings"] = {k: round(v, 3) for k, v in ctx.clock.timings.items()}
    folder.write("results.json", results)
    results["run_dir"] = str(folder.path)
    return results


def screen_results(suite: Suite, base_outcomes: list[Outcome], scores: dict[str, np.ndarray],
                   status: dict[str, dict]) -> dict[str, Any]:
    """What a screen knows: the base region's observed failure and each variant cell's failure as
    each blind predictor predicts it (the mean of its scores over the cell's items)."""
    families, base, variants = suite.families, suite.base, suite.variants
    shifts = {(name, c.name): c.shift for name, family in families.items() for c in family.cells}
    rows = [{"family": it.family, "cell": it.cell, "shift": shifts[it.family, it.cell], "split": "base",
             "failed": not o.correct} for it, o in zip(base, base_outcomes)]
    cells = cell_table(rows, {})
    index: dict[tuple[str, str], list[int]] = {}
    for i, it in enumerate(variants):
        index.setdefault((it.family, it.cell), []).append(i)
    for (family, cell), members in index.items():
        cells.append({"family": family, "cell": cell, "shift": shifts[family, cell], "split": "variant",
                      "n": len(members), "failure_rate": None,
                      "mean_predicted": {name: float(np.mean(s[members])) for name, s in scores.items()}})
    return {"schema_version": RESULTS_SCHEMA_VERSION, "scoring_version": SCORING_VERSION, "stage": "screen",
            "n_base": len(base), "n_variant": len(variants),
            "base_failure_rate": float(np.mean([not o.correct for o in base_outcomes])) if base_outcomes else None,
            "variant_failure_rate": None, "predictors": status,
            "competence": base_competence(families, base, base_outcomes), "cells": cells}


def estimated_variant_seconds(suite: Suite, clock: Clock) -> float:
    """What the rest of a full run would take, roughly: the base region's trace and evaluation time
    scaled by the variants' share of the text (prompts and targets)."""
    size = lambda items: sum(len(it.prompt) + len(it.target) for it in items) or 1  # noqa: E731
    per_base = clock.timings.get("trace", 0.0) + clock.timings.get("evaluate", 0.0)
    return per_base * size(suite.variants) / size(suite.base)


def check_screen(folder: RunFolder, scores: dict[str, np.ndarray], screen) -> None:
    """A screened run completed: its blind predictions must be the very ones sealed by the screen."""
    screened_scores, _, digest = screen
    moved = [n for n, s in screened_scores.items() if n not in scores or not np.array_equal(scores[n], s)]
    if moved:
        raise UserError(f"{folder.path}: the blind predictions of {', '.join(moved)} differ from those its screen sealed "
                        f"(sha256 {digest[:12]}...): the predictors changed since; run it again in a new --out")
    folder.reused.append("screen")


# -- evaluate --------------------------------------------------------------------------------

def evaluate_variants(ctx: Run, base_outcomes: list[Outcome]) -> list[Outcome]:
    """The variants evaluated (after sealing); then their targets and every outcome are written."""
    outcomes = _evaluated(ctx, "variant", ctx.suite.variants)
    ctx.folder.write("items/variants.jsonl", (item.to_dict() for item in ctx.suite.variants))
    ctx.folder.write("outcomes.jsonl", [dict(o.to_dict(), split=split)
                                        for split, outs in (("base", base_outcomes), ("variant", outcomes)) for o in outs])
    return outcomes


def answer_visible(ctx: Run, sealed: Sealed) -> np.ndarray | None:
    """The trace track's reference row, computed here, after sealing, from the targets (which no
    predictor holds): 1 where the model's next token after the prompt is not the answer's first
    token, 0 where it is, ties broken by 1 - P(that token) (its probability 0 outside the top k).
    It is how far reading the answer position goes, the ceiling a trace-track predictor is shown
    against. None where no trace-track predictor ran. Written to reference.jsonl for `verify`."""
    if not any(info.get("track") == "trace" and info["status"] == "ok" for info in sealed.status.values()):
        return None
    suite = ctx.suite
    trace = sealed.variant_trace if sealed.variant_trace is not None else ctx.view.trace(suite.sealed)  # resumed
    first = np.asarray(first_answer_tokens(ctx.handle, suite.variants))
    top_ids, top_probs = np.asarray(trace.top_ids), np.asarray(trace.top_probs, dtype=np.float64)
    p_first = (top_probs * (top_ids == first[:, None])).sum(1)
    scores = 0.5 * (top_ids[:, 0] != first) + 0.5 * (1.0 - p_first)
    ctx.folder.write("reference.jsonl", ({"item_id": item.id, REFERENCE: float(v)}
                                         for item, v in zip(suite.variants, scores)))
    return scores


# -- score -----------------------------------------------------------------------------------

def after_scoring(ctx: Run, results: dict[str, Any], base_outcomes: list[Outcome], variant_outcomes: list[Outcome],
                  sealed: Sealed) -> None:
    """The protocols and targets asked for beyond the base protocol's item-level target, into `results`."""
    if ctx.spec.protocol == "leave-one-family-out":
        results["protocols"]["leave-one-family-out"] = predict_leaving_one_family_out(ctx, base_outcomes,
                                                                                      variant_outcomes)
        ctx.clock.lap("predict")
    if ctx.spec.target == "compositional":
        results["targets"]["compositional"] = score_compositional(ctx, variant_outcomes, sealed)
        ctx.clock.lap("evaluate")


def predict_leaving_one_family_out(ctx: Run, base_outcomes: list[Outcome], variant_outcomes: list[Outcome]
                                   ) -> dict[str, Any]:
    """The leave-one-family-out protocol: each family's variants predicted from the base outcomes
    and every other family's observed variant outcomes; sealed and scored as its own view."""
    suite = ctx.suite
    base = [item.sealed() for item in suite.base]
    lofo_scores, lofo_status = leave_one_family_out(ctx.pool, ctx.view, base, observations(suite, base_outcomes),
                                                    suite.variants, variant_outcomes, ctx.log, ctx.history)
    digest = write_predictions(ctx.folder.path, "predictions.leave-one-family-out", suite.sealed, lofo_scores)
    failed = np.array([not o.correct for o in variant_outcomes], dtype=bool)
    cells = np.array([f"{it.family}/{it.cell}" for it in suite.variants])
    metrics = score_view(failed, cells, lofo_scores, lofo_status, ctx.spec.seed)
    return {"predictions_sha256": digest,
            "predictors": {n: info | metrics.get(n, {}) for n, info in lofo_status.items()}}


def score_compositional(ctx: Run, variant_outcomes: list[Outcome], sealed: Sealed) -> dict[str, Any]:
    """The compositional target: among items whose components the model all solves, does it fail
    the whole (Press et al. 2022's compositional gap)? Components are evaluated here, after sealing."""
    suite = ctx.suite
    eligible, whole_failed, rows = compositional_labels(suite.families, ctx.handle, suite.variants, variant_outcomes,
                                                        ctx.spec.batch_size)
    ctx.folder.write("components.jsonl", rows)
    cells = np.array([f"{it.family}/{it.cell}" for it in suite.variants])
    return {"n_eligible": int(eligible.sum()), "n_with_components": int(len({r["parent"] for r in rows})),
            "compositional_failure_rate": float(whole_failed[eligible].mean()) if eligible.any() else None,
            "predictors": score_view(whole_failed, cells, sealed.scores, sealed.status, ctx.spec.seed, eligible)}


def compositional_labels(families, handle, variants, variant_outcomes, batch_size):
    """(eligible, failed, rows): items whose components the model all solves, whether it fails the
    whole, and the components' outcomes (each naming its `parent`)."""
    owned = [(item.id, part) for item in variants for part in families[item.family].components(item)]
    outcomes = evaluate(handle, [part for _, part in owned], batch_size, families) if owned else []
    rows = [o.to_dict() | {"parent": owner} for (owner, _), o in zip(owned, outcomes)]
    failed = np.array([not o.correct for o in variant_outcomes], dtype=bool)
    return solved_components(rows, [item.id for item in variants]), failed, rows


def record(ctx: Run, results: dict[str, Any], digest: str) -> None:
    """How the run was made, into `results`: spec, versions, model, tasks, seeds, what the model's
    context could not hold, paths taken."""
    spec, handle, suite, cache = ctx.spec, ctx.handle, ctx.suite, ctx.view.cache
    results.update(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        spec=spec.to_dict(),
        provenance={"versions": versions(), "protocol": spec.protocol, "target": spec.target, "seed": spec.seed,
                    "private_seed": private_seed_digest(spec.private_seed),
                    "model": {"spec": asdict(spec.model), "source": handle.source, "fingerprint": handle.fingerprint,
                              "numerics": handle.numerics, "card": handle.card.to_dict()},
                    "tasks": suite.tasks_info, "n_per_cell": spec.n, "shots": suite.shots},
        predictions_sha256=digest,
        model_name=model_name(spec.model, handle),
    )
    if suite.skipped:  # only where the model's context could not hold some family or cell
        results["skipped"] = suite.skipped
    results["evaluation"] = ctx.eval_stats
    results["resumed"] = ctx.folder.reused
    results["trace"] = {"attention": ctx.view.attention, "items_traced": ctx.view.traced,
                        "cache": str(cache.folder) if cache else None, "cache_hits": cache.hits if cache else 0}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("brittlebench", "torch", "transformers", "numpy", "scikit-learn", "scipy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out

