"""The leave-one-model-out protocol, over finished runs of several models on one suite.

`brittlebench lomo RUN_A RUN_B ...`: for each model, every predictor is refit on that
model's base outcomes plus the *other* models' observed variant outcomes on the same
items (those of its own items that they ran: a run skips the cells its model's context
cannot hold), and predicts this model's variants from this model's own internals. The
runner owns the split: a model's own variant outcomes are never in its calibration.
Each run folder gets `predictions.leave-one-model-out.jsonl` (+ .sha256) and a
`protocols["leave-one-model-out"]` view in results.json, which `verify` checks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from predictors import Observation, registered
from tasks import Item

from .. import io
from ..errors import UserError
from ..model.evaluate import Outcome
from ..model.load import ModelSpec, load_model
from ..model.trace import TraceCache, TracedModel, default_cache_dir
from ..scoring.metrics import score_predictors
from ..protocol.folder import write_predictions
from ..protocol.predict import open_predictors, predict_by_track
from ..protocol.verify import check_run_folder

PROTOCOL = "leave-one-model-out"


def _load(run: Path) -> dict:
    results = check_run_folder(run)
    for name in ("items/base.jsonl", "items/variants.jsonl"):
        if not (run / name).is_file():
            raise UserError(f"{run} has no {name}: leave-one-model-out needs full run folders")
    outcomes = {r["item_id"]: Outcome.from_dict(r) for r in io.read_jsonl(run / "outcomes.jsonl")}
    base = [Item.from_dict(r) for r in io.read_jsonl(run / "items" / "base.jsonl")]
    variants = [Item.from_dict(r) for r in io.read_jsonl(run / "items" / "variants.jsonl")]
    return {"run": run, "results": results, "base": base, "variants": variants, "outcomes": outcomes}


def check_same_items(loaded: Sequence[dict]) -> None:
    """A one-line UserError unless the runs hold the same variant items, but for the families and
    cells some run skipped (longer than its model's context): a model is then fit on the other
    models' outcomes on the items it holds itself."""
    skipped = {name for run in loaded for name in run["results"].get("skipped", {})}
    shared = lambda run: [i.id for i in run["variants"]  # noqa: E731
                          if i.family not in skipped and f"{i.family}/{i.cell}" not in skipped]
    first = shared(loaded[0])
    for other in loaded[1:]:
        if shared(other) != first:
            raise UserError(f"{other['run']} was run on other items than {loaded[0]['run']}: "
                            "run every model with the same --tasks, --n and --seed")
    if not first:
        raise UserError("the runs share no variant cell: each skipped what the others ran (longer than its model's "
                        "context)")


def leave_one_model_out(runs: Sequence[Path], log: Callable[[str], None] = print) -> dict[str, dict]:
    if len(runs) < 2:
        raise UserError("leave-one-model-out needs the runs of at least two models")
    loaded = [_load(Path(r)) for r in runs]
    check_same_items(loaded)
    fingerprints = [r["results"]["provenance"]["model"]["fingerprint"] for r in loaded]
    if len(set(fingerprints)) != len(fingerprints):
        raise UserError("two of the runs are of the same model: pass one run per model")
    summary = {}
    for k, this in enumerate(loaded):
        results = this["results"]
        spec = ModelSpec(**results["provenance"]["model"]["spec"])
        handle = load_model(spec)
        if handle.fingerprint != fingerprints[k]:
            raise UserError(f"the model of {this['run']} has changed since it was run (fingerprint differs)")
        known = registered()
        asked = {(n if n in known else p["cls"]): n  # a plugin by its class
                 for n, p in results["predictors"].items() if p.get("status") == "ok"}
        pool = open_predictors(list(asked), None, log,
                               params={a: results["predictors"][n]["params"] for a, n in asked.items()})
        calibration = [Observation(item, this["outcomes"][item.id].output, this["outcomes"][item.id].correct)
                       for item in this["base"]]
        mine = {item.id for item in this["variants"]}  # not the cells this model's context could not hold
        for j, other in enumerate(loaded):
            if j != k:  # every other model's observed variant outcomes on this model's items: never its own
                calibration += [Observation(item, other["outcomes"][item.id].output, other["outcomes"][item.id].correct)
                                for item in other["variants"] if item.id in mine]
        view = TracedModel(handle, attention=any("attention" in info["reads"] for info in pool.infos.values()),
                           cache=TraceCache(default_cache_dir(), handle.cache_name))
        sealed = [item.sealed() for item in this["variants"]]  # this model's own items
        with pool:
            scores, status, _ = predict_by_track(pool, view, [i.sealed() for i in this["base"]], sealed, calibration,
                                                 log)
        digest = write_predictions(this["run"], f"predictions.{PROTOCOL}", sealed, scores)
        failed = np.array([not this["outcomes"][i.id].correct for i in this["variants"]], dtype=bool)
        cells = np.array([f"{i.family}/{i.cell}" for i in this["variants"]])
        metrics = score_predictors(failed, cells, scores, results["provenance"]["seed"],
                                   tracks={n: info["track"] for n, info in status.items() if n in scores})
        results.setdefault("protocols", {})[PROTOCOL] = {
            "predictions_sha256": digest, "n": len(sealed), "other_models": [str(r["run"]) for j, r in enumerate(loaded) if j != k],
            "predictors": {n: info | metrics.get(n, {}) for n, info in status.items()}}
        io.write_json(this["run"] / "results.json", results)
        summary[str(this["run"])] = results["protocols"][PROTOCOL]
        log(f"{this['run']}: leave-one-model-out predictions from {len(loaded) - 1} other model(s)")
    return summary
