"""results.json as the report and the terminal tables read it: frozen records made once from the JSON
(`Results.of`). What an older file lacks (a field a former scoring version did not write) gets its
default here, once, not at each reader. The run's scoring still writes plain JSON (`run.score`); the
records only read it. Open-ended parts (the provenance, the spec, a claim's evidence) stay dicts."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .metrics import CELL_METRICS, FAMILY_METRICS, METRICS, Interval

FIGURES = METRICS + CELL_METRICS + FAMILY_METRICS


def interval(data: dict | None) -> Interval | None:
    """A stored interval (a figure with its bounds, or a band with bounds only); None where absent."""
    return Interval(data.get("value"), data.get("lo"), data.get("hi")) if data else None


@dataclass(frozen=True)
class Versus:
    """A row's paired difference from another: the track's best baseline, or the reference."""

    difference: Interval | None
    baseline: str | None = None
    beats: bool = False

    @classmethod
    def of(cls, data: dict | None) -> Versus | None:
        return cls(interval(data.get("difference")), data.get("baseline"), bool(data.get("beats"))) if data else None


@dataclass(frozen=True)
class Row:
    """One predictor's result, or the reference's, or a predictor's figures within one family or
    view (those hold no status of their own: they read as "ok")."""

    status: str = "ok"
    track: str | None = None
    reason: str = ""
    figures: dict[str, Interval] = field(default_factory=dict)
    vs_best_baseline: Versus | None = None
    vs_reference: Versus | None = None
    same_ranking_as: str | None = None
    saturation: float = 0.0

    @classmethod
    def of(cls, data: dict, **given: Any) -> Row:
        data = data | given
        return cls(data.get("status", "ok"), data.get("track"), data.get("reason", ""),
                   {m: interval(data[m]) for m in FIGURES if data.get(m)}, Versus.of(data.get("vs_best_baseline")),
                   Versus.of(data.get("vs_reference")), data.get("same_ranking_as"), data.get("saturation") or 0.0)

    def figure(self, metric: str) -> float | None:
        return self.figures[metric].value if metric in self.figures else None


@dataclass(frozen=True)
class Track:
    """A track's summary: its baselines, the best of them, its power and (trace) the reference row."""

    baselines: tuple[str, ...] = ()
    best_baseline: str | None = None
    mde: dict | None = None  # metrics.minimum_detectable_effect's figures
    reference: Row | None = None

    @classmethod
    def of(cls, data: dict) -> Track:
        reference = data.get("reference")
        return cls(tuple(data.get("baselines", ())), data.get("best_baseline"), data.get("mde"),
                   Row.of(reference) if reference else None)


@dataclass(frozen=True)
class Family:
    """One family's figures: its outcomes, its base failure and its predictors' figures there."""

    n: int | None
    failure_rate: float | None
    base_failure_rate: float | None
    flagged: bool
    predictors: dict[str, Row]
    reference: Row | None = None
    n_failed: int | None = None  # the outcome counts (scoring v7 and later)
    n_passed: int | None = None
    informative: bool = True

    @classmethod
    def of(cls, data: dict) -> Family:
        return cls(data.get("n"), data.get("failure_rate"), data.get("base_failure_rate"), bool(data.get("flagged")),
                   {n: Row.of(m) for n, m in (data.get("predictors") or {}).items() if m},
                   Row.of(data["reference"]) if data.get("reference") else None,
                   data.get("n_failed"), data.get("n_passed"), data.get("informative", True))


@dataclass(frozen=True)
class Competence:
    """Which families the model can do at all (`run.base_competence`); a run before it: none flagged."""

    base_failure: dict[str, float] = field(default_factory=dict)
    flagged: tuple[str, ...] = ()
    scored_families: tuple[str, ...] | None = None  # None: not recorded (every family counts)
    note: str = ""

    @classmethod
    def of(cls, data: dict | None) -> Competence:
        data = data or {}
        scored = data.get("scored_families")
        return cls(data.get("base_failure") or {}, tuple(data.get("flagged", ())),
                   None if scored is None else tuple(scored), data.get("note") or "")


@dataclass(frozen=True)
class Band:
    """The no-signal band: where a score with no signal lands (95% of within-family permutations)."""

    n_permutations: int
    pair_auroc: Interval | None
    spearman: Interval | None

    @classmethod
    def of(cls, data: dict | None) -> Band | None:
        return cls(data.get("n_permutations", 0), interval(data.get("pair_auroc")),
                   interval(data.get("spearman"))) if data else None


@dataclass(frozen=True)
class ClaimCell:
    cell: str
    predicted: str
    n: int
    rate: float | None
    wilson: tuple[float, float] | None
    verdict: str


@dataclass(frozen=True)
class Claim:
    """A predictor's claim as the scoring judged it (`claims.judge_claims`)."""

    mechanism: str
    statement: str
    threshold: float
    verdict: str
    evidence: dict
    cells: tuple[ClaimCell, ...]

    @classmethod
    def of(cls, data: dict) -> Claim:
        cells = tuple(ClaimCell(c["cell"], c["predicted"], c["n"], c.get("rate"), c.get("wilson"), c["verdict"])
                      for c in data["cells"])
        return cls(data["mechanism"], data["statement"], data["threshold"], data["verdict"],
                   data.get("evidence") or {}, cells)


@dataclass(frozen=True)
class Cell:
    family: str
    cell: str
    shift: str
    split: str
    n: int
    failure_rate: float | None  # None: a screen's variant cell (observed nowhere)
    mean_predicted: dict[str, float] = field(default_factory=dict)  # variant cells: per predictor


@dataclass(frozen=True)
class Checkpoint:
    """A point of the learning curves: base accuracy per cell at one checkpoint (or "final")."""

    name: str
    step: int | None
    traced: bool
    base_n: dict[str, int]
    base_accuracy: dict[str, float]


@dataclass(frozen=True)
class View:
    """A protocol's or target's figures (results.json's `protocols`, `targets`): its predictors' rows
    over its `n_items`, and their tracks summarised from those rows as the run's own are."""

    n_items: int
    predictors: dict[str, Row]
    tracks: dict[str, Track]
    n_with_components: int | None = None  # the compositional target: items with components, and the
    failure_rate: float | None = None  # failure among those whose every component the model solves

    @classmethod
    def of(cls, predictors: dict[str, dict], n_items: int, **counts: Any) -> View:
        from .run import track_summary

        return cls(n_items, {n: Row.of(p) for n, p in predictors.items()},
                   {t: Track.of(info) for t, info in track_summary(predictors, predictors, n_items).items()}, **counts)


@dataclass(frozen=True)
class Results:
    """A run's results.json, as read."""

    n_base: int
    n_variant: int
    base_failure_rate: float | None
    variant_failure_rate: float | None
    predictors: dict[str, Row]
    tracks: dict[str, Track]
    no_signal: Band | None
    families: dict[str, Family]
    competence: Competence
    cells: list[Cell]
    claims: dict[str, list[Claim]]
    skipped: dict[str, str]  # what the model's context could not hold, and why
    history: list[Checkpoint]
    predictions_sha256: str
    provenance: dict
    spec: dict
    evaluation: dict
    trace: dict
    timings: dict[str, float]
    created: str | None = None
    resumed: list | None = None
    run_dir: str | None = None
    screen: dict | None = None  # a predict-only run's seal and cost
    protocols: dict[str, View] = field(default_factory=dict)
    targets: dict[str, View] = field(default_factory=dict)

    @classmethod
    def of(cls, data: dict) -> Results:
        """The records of results.json's `data` (as `json.load` gives it)."""
        cells = [Cell(c["family"], c["cell"], c["shift"], c["split"], c["n"], c["failure_rate"],
                      c.get("mean_predicted") or {}) for c in data["cells"]]
        protocols = {name: View.of(view["predictors"], view.get("n", data["n_variant"]))
                     for name, view in (data.get("protocols") or {}).items()}
        targets = {name: View.of({n: {"status": "ok", "track": data["predictors"][n].get("track")} | m
                                  for n, m in view["predictors"].items()}, view["n_eligible"],
                                 n_with_components=view["n_with_components"],
                                 failure_rate=view["compositional_failure_rate"])
                   for name, view in (data.get("targets") or {}).items()}
        history = [Checkpoint(h["name"], h.get("step"), bool(h.get("traced")), h.get("base_n") or {},
                              h.get("base_accuracy") or {}) for h in data.get("history") or []]
        return cls(
            n_base=data["n_base"], n_variant=data["n_variant"], base_failure_rate=data.get("base_failure_rate"),
            variant_failure_rate=data.get("variant_failure_rate"),
            predictors={n: Row.of(p, status=p["status"]) for n, p in data["predictors"].items()},  # a run's own say it
            tracks={t: Track.of(info) for t, info in (data.get("tracks") or {}).items()},
            no_signal=Band.of(data.get("no_signal")),
            families={n: Family.of(f) for n, f in (data.get("families") or {}).items()},
            competence=Competence.of(data.get("competence")), cells=cells,
            claims={n: [Claim.of(c) for c in made] for n, made in (data.get("claims") or {}).items()},
            skipped=data.get("skipped") or {}, history=history, predictions_sha256=data.get("predictions_sha256", ""),
            provenance=data.get("provenance") or {}, spec=data.get("spec") or {},
            evaluation=data.get("evaluation") or {}, trace=data.get("trace") or {}, timings=data.get("timings") or {},
            created=data.get("created"), resumed=data.get("resumed"), run_dir=data.get("run_dir"),
            screen=data.get("screen"), protocols=protocols, targets=targets)

    @classmethod
    def read(cls, path: Path) -> Results:
        """The records of the results.json at `path`; a one-line UserError where it is not one this
        benchmark wrote (unreadable, not JSON, a field missing or of another kind)."""
        try:
            return cls.of(json.loads(Path(path).read_text()))
        except (OSError, ValueError, LookupError, TypeError, AttributeError) as error:
            raise UserError(f"{path} is not a results.json brittlebench can read "
                            f"({type(error).__name__}: {error})") from None

    def run_level_items(self) -> int:
        """How many variant items the run-level figures are over: the kept families' (all where unrecorded)."""
        scored = self.competence.scored_families
        if scored and self.families:
            return sum(self.families[f].n for f in scored if f in self.families)
        return self.n_variant
