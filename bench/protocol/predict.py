"""The predict stage's machinery: the worker process (`bench.protocol.worker`, which never holds a
target) that holds the predictors, the trace it is handed, and fitting and asking each predictor
with its failures contained."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from predictors import TRACKS, Claim, Observation, PredictorError, Trace, registered
from tasks import SealedItem

from .. import io
from ..errors import UserError
from .worker import PredictorFailed, PredictorNotApplicable, PredictorPool, WorkerError

if TYPE_CHECKING:
    from ..model.trace import TracedModel
    from .history import History


def open_predictors(names: Sequence[str], timeout: float | None, log: Callable[[str], None],
                    params: dict[str, dict] | None = None, wait: bool = True) -> PredictorPool:
    """The worker process, loading the predictors (plugins are imported there, never here).
    With `wait=False` it starts in the background; call `check_predictors` before using it."""
    asked = list(names)
    if len(set(asked)) != len(asked):
        twice = next(n for n in asked if asked.count(n) > 1)
        raise UserError(f"predictor {twice!r} is listed twice")
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


def tracks_of(pool: PredictorPool) -> dict[str, list[str]]:
    """The pool's predictors (as asked for) by track, blind first."""
    return {track: [asked for asked, info in pool.infos.items() if info["track"] == track] for track in TRACKS}


def reads_history(pool: PredictorPool, track: str | None = None) -> bool:
    """Whether some predictor (of `track`) reads the model's training history."""
    return any("history" in info["reads"] and track in (None, info["track"]) for info in pool.infos.values())


class PredictionCache:
    """Each predictor's successful answers on disk beside the model's traces (`folder`: the model's
    `cache_name`), keyed by everything they are computed from: the predictor (`worker.source_digest`
    among its info), what the worker was handed (`context_key`), the calibration observations and the
    sealed items. What the key covers and why: docs/internals.md, "Predictions"."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / "predictions"

    def path(self, info: dict, context: str, calibration: Sequence[Observation], sealed: Sequence[SealedItem]) -> Path:
        key = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode() + context.encode())
        for o in calibration:
            key.update(json.dumps([o.item.to_dict(), o.output, o.correct], sort_keys=True).encode())
        for item in sealed:
            key.update(json.dumps(item.to_dict(), sort_keys=True).encode())
        return self.folder / f"{info['predictor']}-{key.hexdigest()[:24]}.json"

    def get(self, path: Path, n: int, timeout: float | None = None) -> dict | None:
        """The answers stored at `path` for `n` sealed items; None where there are none, or where
        computing them took longer than `timeout` (the predictor is asked again, and fails as it would)."""
        def check(entry: dict) -> None:
            entry["scores"] = _check_scores(entry["scores"], n)
            if not isinstance(entry["notes"], list) or not isinstance(entry["seconds"], (int, float)):
                raise TypeError("not a predictor's answers")
            entry["claims"] = [Claim.from_json(c).to_json() for c in entry["claims"]]

        entry = io.read_keyed(path, check)
        return entry if entry is not None and (timeout is None or entry["seconds"] <= timeout) else None

    def put(self, path: Path, scores: np.ndarray, status: dict) -> None:
        io.write_keyed(path, {"scores": scores.tolist(), "notes": status["notes"], "claims": status.get("claims", []),
                              "seconds": status["seconds"]}
                       | ({"mechanistic": status["mechanistic"]} if status.get("mechanistic") else {}))


def context_key(items: Sequence[SealedItem], withheld: Sequence[SealedItem], track: str, points: Sequence = (),
                final_step: int | None = None, mechanistic: str | None = None, model: str = "") -> str:
    """What a context hands the worker, as a digest: the traced items (a trace is the model's, and the
    cache folder is the model's: its weights, numerics and trace version), the withheld ones, the
    track, each checkpoint handed over (its fingerprint, outcomes and traced items), the region
    mechanistic requests may reach and `model`: a digest of the card, the tokenizer and the trace's
    sites (attention where any predictor of the pool reads it)."""
    key = hashlib.sha256(json.dumps([track, final_step, mechanistic, model, [item.id for item in withheld]]).encode())
    for item in items:
        key.update(f"{item.id}\x00{item.prompt}\x00".encode())
    for p in points:
        key.update(json.dumps([p.name, p.step, p.fingerprint, sorted(p.correct.items()),
                               None if p.trace is None else list(p.trace.item_ids)]).encode())
    return key.hexdigest()


def fit_predict(pool: PredictorPool, calibration: list[Observation], sealed: list[SealedItem],
                log: Callable[[str], None], names: Sequence[str] | None = None,
                cache: PredictionCache | None = None, context: str | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Each of the pool's predictors (or those `names` asked for), fresh, fit on `calibration` and
    asked about `sealed`, in the worker process, one after another. A predictor that raises, hangs
    past the timeout or returns bad scores or a malformed claim is marked failed with its reason; the
    others go on. A predictor's claims (`Predictor.claim`), where it made any, are in its status
    (`claims`, as JSON). With `cache` and the worker's `context` (`context_key`), a predictor whose
    answers to these very inputs are cached is not asked again (its status says `cached`)."""
    scores: dict[str, np.ndarray] = {}
    status: dict[str, dict[str, Any]] = {}
    for asked in [asked for asked in pool.infos if names is None or asked in names]:
        info = pool.infos[asked]
        name = info["predictor"]
        started = time.perf_counter()
        requests = len(pool.access.log) if pool.access is not None else 0
        path = cache.path(info, context, calibration, sealed) if cache and context and info.get("source") else None
        hit = cache.get(path, len(sealed), pool.timeout) if path is not None else None
        try:
            if hit is not None:
                checked, notes, claims = hit["scores"], hit["notes"], hit["claims"]
            else:
                raw, notes, claims = pool.predict(asked, calibration, sealed)
                checked = _check_scores(raw, len(sealed))
                claims = [Claim.from_json(c).to_json() for c in claims]  # a malformed claim fails the predictor
            scores[name] = checked
            status[name] = {"status": "ok", "notes": notes} | ({"claims": claims} if claims else {})
        except PredictorNotApplicable as e:
            status[name] = {"status": "not_applicable", "reason": str(e)}
            log(f"predictor {name} does not apply here: {e}")
        except (PredictorFailed, TimeoutError, WorkerError, ValueError) as e:  # a broken predictor must not sink the run
            reason = str(e) if isinstance(e, PredictorFailed) else f"{type(e).__name__}: {e}"
            status[name] = {"status": "failed", "reason": reason}
            log(f"predictor {name} failed: {reason}")
        status[name].update(seconds=round(time.perf_counter() - started, 4), version=info["version"],
                            reads=info["reads"], track=info["track"], params=info["params"], cls=info["cls"])
        if pool.access is not None and len(pool.access.log) > requests:
            status[name]["mechanistic"] = access_summary(pool.access.log[requests:])
        if hit is not None:
            status[name].update(({"mechanistic": hit["mechanistic"]} if "mechanistic" in hit else {}), cached=True)
        elif path is not None and name in scores:
            cache.put(path, scores[name], status[name])
    return scores, status


def access_summary(log: Sequence[dict]) -> dict[str, Any]:
    """What a predictor asked of the model (`RegionAccess.log`), in brief: per kind of request, how
    many, on how many distinct items, and the sites, layers or heads named."""
    out: dict[str, dict[str, Any]] = {}
    for entry in log:
        kind = next(k for k in ("read", "ablate", "patch", "next_token", "composition") if k in entry)
        row = out.setdefault(kind, {"requests": 0, "items": set(), "seconds": 0.0})
        row["requests"] += 1
        row["seconds"] = round(row["seconds"] + entry.get("seconds", 0.0), 4)
        row["items"].update(entry.get("items", ()))
        if kind == "read":
            row.setdefault("sites", set()).update(entry["read"])
            row.setdefault("layers", set()).update(entry["layers"])
        elif kind == "ablate":
            row.setdefault("heads", set()).update(f"{layer}.{h}" for layer, hs in entry["ablate"].items() for h in hs)
            if entry.get("mlps"):
                row.setdefault("mlps", set()).update(entry["mlps"])
        elif kind == "patch":
            row.setdefault("layers", set()).add(entry["layer"])
    return {kind: {k: len(v) if k == "items" else sorted(v) if isinstance(v, set) else v for k, v in row.items()}
            for kind, row in out.items()}


def share_context(pool: PredictorPool, model_view: TracedModel, items: Sequence[SealedItem],
                  calibration: list[Observation] | None = None, sealed: list[SealedItem] | None = None,
                  withheld: Sequence[SealedItem] = (), history: History | None = None, track: str = "blind",
                  keep: bool = False) -> tuple[Trace, str]:
    """One shared trace of `items`, handed to the worker with the default `calibration` and `sealed`
    items (`fit_predict` given these very lists sends no copy). `withheld`: items left out of the
    trace on purpose (the blind track's variants), which the worker refuses to trace with the
    reason. `history`: its checkpoints handed over too, as `track` may read them. Returns the trace
    and the context's key (`context_key`); `keep` holds the trace in `model_view` too (a later context
    traces a superset: its rows are not traced again where there is no disk cache)."""
    trace = model_view.trace(items)
    points = () if history is None else history.base() if track == "blind" else history.variants(sealed or ())
    mechanistic = any("mechanistic" in info["reads"] and info["track"] == track for info in pool.infos.values())
    access = model_view.region_access(items, "base" if track == "blind" else "run") if mechanistic else None
    card, tokenizer = model_view.card, model_view.tokenizer_json()
    final = history.final_step if history is not None else None
    pool.set_context(card, tokenizer, trace, [i.prompt for i in items], calibration, sealed,
                     withheld=[item.id for item in withheld], history=points, final_step=final, access=access)
    model = hashlib.sha256(json.dumps([card, trace.site_names()], sort_keys=True, default=str).encode()
                           + tokenizer.encode()).hexdigest()
    if not keep:
        model_view.forget()  # the worker maps the arrays from disk
    return trace, context_key(items, withheld, track, points, final, None if access is None else access.region, model)


def predict_by_track(pool: PredictorPool, model_view: TracedModel, base: list[SealedItem], sealed: list[SealedItem],
                     calibration: list[Observation], log: Callable[[str], None],
                     lap: Callable[[str], None] = lambda stage: None, history: History | None = None,
                     blind_only: bool = False, cache: PredictionCache | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, dict], Trace | None]:
    """The blind track first: the worker holds the base region's traces only, and the variants have
    not been traced at all. Then, where a trace-track predictor is asked (and not `blind_only`: a
    predict-only screen), the variants are traced and the trace track predicts. Returns (scores,
    status in the pool's order, the variants' trace or None where nothing traced them)."""
    tracks = tracks_of(pool)
    if blind_only:
        tracks["trace"] = []
    _, context = share_context(pool, model_view, base, calibration, sealed, withheld=sealed, history=history,
                               keep=bool(tracks["trace"]))
    lap("trace")
    scores, status = fit_predict(pool, calibration, sealed, log, tracks["blind"], cache, context)
    lap("predict")
    variant_trace = None
    if tracks["trace"]:
        everything, context = share_context(pool, model_view, base + sealed, calibration, sealed,
                                            history=history if reads_history(pool, "trace") else None, track="trace")
        variant_trace = everything.take(range(len(base), len(base) + len(sealed)))
        lap("trace")
        more_scores, more_status = fit_predict(pool, calibration, sealed, log, tracks["trace"], cache, context)
        scores |= more_scores
        status |= more_status
        lap("predict")
    order = [info["predictor"] for info in pool.infos.values()]
    return ({n: scores[n] for n in order if n in scores}, {n: status[n] for n in order if n in status},
            variant_trace)


def leave_one_family_out(pool, model_view, base, calibration, variants, variant_outcomes, log, history=None):
    """Each family's variants predicted from base outcomes plus every other family's variant
    outcomes; the runner withholds the scored family's own. Blind predictors first, with the
    base region's traces only (no variant's trace, whatever family), then the trace track."""
    sealed = [item.sealed() for item in variants]
    scores: dict[str, np.ndarray] = {}
    status: dict[str, dict] = {}
    tracks = tracks_of(pool)
    families = list(dict.fromkeys(i.family for i in variants))
    inapplicable: dict[str, list[str]] = {}  # predictor -> families whose fold it could not read
    for track in [track for track in TRACKS if tracks[track]]:
        share_context(pool, model_view, base + (sealed if track == "trace" else []), sealed=sealed,
                      withheld=sealed if track == "blind" else (), history=history, track=track,
                      keep=track == "blind")
        for family in families:
            index = [i for i, item in enumerate(variants) if item.family == family]
            others = [Observation(item, o.output, o.correct) for item, o in zip(variants, variant_outcomes)
                      if item.family != family]
            fold_scores, fold_status = fit_predict(pool, calibration + others, [sealed[i] for i in index], log,
                                                   tracks[track])
            for name, info in fold_status.items():
                info = {k: v for k, v in info.items() if k != "claims"}  # this protocol tests no claims
                notes = [f"on family {family}: {n}" for n in info.get("notes", [])]
                if info["status"] == "not_applicable":  # nothing to rank within this family: no information there
                    fold_scores[name] = np.full(len(index), 0.5)
                    notes.append(f"on family {family}: not applicable ({info['reason']}); scored 0.5 there")
                    inapplicable.setdefault(name, []).append(family)
                    info = info | {"status": "ok"}
                elif info["status"] != "ok":
                    status[name] = info | {"reason": f"on family {family}: {info['reason']}"}
                status.setdefault(name, info | {"notes": []})
                if "notes" in status[name]:
                    status[name]["notes"] = status[name]["notes"] + notes
            for name, values in fold_scores.items():
                scores.setdefault(name, np.zeros(len(variants)))[index] = values
    for name, where in inapplicable.items():
        if where == families and status[name]["status"] == "ok":
            status[name] = {k: v for k, v in status[name].items() if k != "notes"} | {
                "status": "not_applicable", "reason": "not applicable on any family"}
    order = [info["predictor"] for info in pool.infos.values()]
    return ({k: scores[k] for k in order if k in scores and status[k]["status"] == "ok"},
            {k: status[k] for k in order if k in status})
