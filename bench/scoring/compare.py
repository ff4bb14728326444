"""`brittlebench compare NEW --baseline BASE`: the CI regression gate, two gates in one.

* predictors (`compare`): a predictor's metric regressed when it moved the wrong way by more
  than its tolerance AND the baseline's value lies outside the new run's 95% interval (so
  noise is not called a regression);
* brittleness (`brittleness`): the model regressed when a variant cell's or a family's failure
  rate, or the compositional gap, rose by more than its tolerance AND the interval of the rise
  lies above zero. A predict-only run (a screen) is judged by predicted failure.

Exit 0: nothing regressed; 1: something did; 2: unusable input.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from .. import io
from ..errors import UserError
from .metrics import HIGHER_IS_BETTER

DEFAULT_MAX_DROP = {"pair_auroc": 0.02}  # the ranking figure


def parse_tolerances(text: str | None, flag: str, metrics, defaults: dict[str, float],
                     keep_defaults: bool = False) -> dict[str, float]:
    """`METRIC=TOL,...` for `flag`: a one-line UserError for an unknown metric, a non-number or a
    negative tolerance. With `keep_defaults`, the metrics not named keep their default."""
    if not text:
        return dict(defaults)
    out = dict(defaults) if keep_defaults else {}
    for part in text.split(","):
        metric, sep, value = part.partition("=")
        metric = metric.strip()
        if not sep or metric not in metrics:
            raise UserError(f"{flag} takes METRIC=TOLERANCE pairs with metrics from {', '.join(metrics)}; got {part!r}")
        try:
            out[metric] = float(value)
        except ValueError:
            raise UserError(f"{flag} {metric}: {value!r} is not a number") from None
        if out[metric] < 0:
            raise UserError(f"{flag} {metric}: the tolerance must be >= 0")
    return out


def parse_max_drop(text: str | None) -> dict[str, float]:
    return parse_tolerances(text, "--max-drop", HIGHER_IS_BETTER, DEFAULT_MAX_DROP)


def load_results(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise UserError(f"no results at {path}: pass a results.json or a run folder")
    try:
        results = json.loads(path.read_text())
        results["predictors"], results["cells"], results["provenance"]["seed"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise UserError(f"{path} is corrupted: it is not a brittlebench results file") from None
    return results


def _suite(results: dict) -> list[tuple]:
    return sorted((c["family"], c["cell"], c["n"]) for c in results["cells"])


def check_same_suite(new: dict, base: dict) -> None:
    """A one-line UserError unless both runs are on the same items (skipping the same families and
    cells where their model's context could not hold some)."""
    if (new.get("skipped") or {}).keys() != (base.get("skipped") or {}).keys():
        said = lambda r: ", ".join(r.get("skipped") or {}) or "nothing"  # noqa: E731
        raise UserError(f"the two runs skipped different families or cells, longer than their model's context "
                        f"(the new run: {said(new)}; the baseline: {said(base)}): compare runs of models whose "
                        "contexts hold the same items")
    if _suite(new) != _suite(base) or new["provenance"]["seed"] != base["provenance"]["seed"]:
        raise UserError("the two runs are on different suites (tasks, cells, n or seed differ): "
                        "compare runs made with the same --tasks, --n and --seed")
    if new["provenance"].get("private_seed") != base["provenance"].get("private_seed"):
        raise UserError("the two runs used different private seeds (different held-out items): "
                        "compare runs made with the same --private-seed-file")


def compare(new: dict, base: dict, max_drop: dict[str, float]) -> tuple[bool, list[str]]:
    """Predictor regressions: (regressed, lines to print)."""
    check_same_suite(new, base)
    lines, regressed = [], False
    order = {"blind": 0, "trace": 1}
    for name, old in sorted(base["predictors"].items(), key=lambda kv: order.get(kv[1].get("track"), 2)):
        now = new["predictors"].get(name)
        name = f"{name} ({old.get('track', 'trace')})"
        if old.get("status") != "ok":
            continue
        if now is None or now.get("status") != "ok":
            status = "missing" if now is None else f"{now.get('status', 'failed').replace('_', ' ')}: {now.get('reason', '')}"
            lines.append(f"REGRESSED {name}: {status}")
            regressed = True
            continue
        for metric, tolerance in max_drop.items():
            a, b = old.get(metric, {}), now.get(metric, {})
            if a.get("value") is None or b.get("value") is None:
                continue
            sign = 1 if HIGHER_IS_BETTER[metric] else -1
            drop = sign * (a["value"] - b["value"])  # > 0: worse
            outside = b.get("lo") is not None and (b["hi"] < a["value"] if sign > 0 else b["lo"] > a["value"])
            moved = f"{metric} {a['value']:.3f} -> {b['value']:.3f} [{b.get('lo') or 0:.3f}, {b.get('hi') or 0:.3f}]"
            if drop > tolerance and outside:
                lines.append(f"REGRESSED {name}: {moved}, worse by {drop:.3f} > {tolerance}")
                regressed = True
            elif drop > tolerance:
                lines.append(f"noise     {name}: {moved}, worse by {drop:.3f} but the baseline is inside the interval")
            elif abs(drop) > 1e-12:
                lines.append(f"ok        {name}: {moved}")
    lines.append(("regression found" if regressed else "no regression") +
                 f" ({len(base['predictors'])} predictors; tolerances {max_drop})")
    return regressed, lines


# -- observed (or predicted) brittleness --------------------------------------------------------
#
# The compositional gap: failure of the whole among items whose components are all solved.

DEFAULT_MAX_RISE = {"failure": 0.05, "gap": 0.05}
N_BOOT = 1000


def parse_max_rise(text: str | None) -> dict[str, float]:
    return parse_tolerances(text, "--max-rise", DEFAULT_MAX_RISE, DEFAULT_MAX_RISE, keep_defaults=True)


class Run:
    """One side of a comparison: results.json, and where given a run folder, its item-level files."""

    def __init__(self, path: Path):
        path = Path(path)
        self.results = load_results(path)
        self.folder = path if path.is_dir() else None
        self.screen = self.results.get("stage") == "screen"

    def _rows(self, name: str) -> list[dict] | None:
        if self.folder is None or not (self.folder / name).is_file():
            return None
        try:
            return io.read_jsonl(self.folder / name)
        except (OSError, ValueError) as e:
            raise UserError(f"{self.folder / name} is corrupted: {e}") from None

    def _from_counts(self, value) -> dict[str, dict[str, float]]:
        """Per variant cell, stand-in items from results.json's counts (no ids: compared unpaired)."""
        out = {}
        for c in self.results["cells"]:
            if c.get("split") == "variant" and value(c) is not None:
                failures = round(value(c) * c["n"])
                out[f"{c['family']}/{c['cell']}"] = {f"#{k}": float(k < failures) for k in range(c["n"])}
        return out

    def observed(self) -> dict[str, dict[str, float]]:
        """Per variant cell: item id -> 1.0 where the model failed it."""
        if self.screen:
            raise UserError(f"{self.folder or 'the run'} is a predict-only screen: it observed no variant")
        rows = self._rows("outcomes.jsonl")
        predictions = self._rows("predictions.jsonl") if rows is not None else None
        cell_of = {r["item_id"]: f"{r['family']}/{r['cell']}" for r in predictions or []}
        if not cell_of:
            return self._from_counts(lambda c: c["failure_rate"])
        out: dict[str, dict[str, float]] = {}
        for r in rows:
            if r["split"] == "variant":
                out.setdefault(cell_of[r["item_id"]], {})[r["item_id"]] = float(not r["correct"])
        return out

    def predicted(self, predictor: str) -> dict[str, dict[str, float]]:
        """Per variant cell: item id -> `predictor`'s predicted failure."""
        if (self.results["predictors"].get(predictor) or {}).get("status") != "ok":
            raise UserError(f"{self.folder or 'the run'} has no predictions of {predictor}: pass --screen-predictor "
                            f"one of {', '.join(blind_predictors(self.results)) or 'its blind predictors'}")
        rows = self._rows("stages/screen.jsonl" if self.screen else "predictions.jsonl")
        if rows is None:
            return self._from_counts(lambda c: (c.get("mean_predicted") or {}).get(predictor))
        out: dict[str, dict[str, float]] = {}
        for r in rows:
            out.setdefault(f"{r['family']}/{r['cell']}", {})[r["item_id"]] = float(r["scores"][predictor])
        return out

    def gap(self) -> dict[str, dict[str, float]] | None:
        """Per family: for each item whose components the model all solved, 1.0 where it failed the
        whole (the compositional gap's items); None without the compositional target's files."""
        components, outcomes = self._rows("components.jsonl"), self._rows("outcomes.jsonl")
        predictions = self._rows("predictions.jsonl")
        if self.screen or components is None or outcomes is None or predictions is None:
            return None
        solved: dict[str, bool] = {}
        for r in components:
            solved[r["parent"]] = solved.get(r["parent"], True) and bool(r["correct"])
        failed = {r["item_id"]: float(not r["correct"]) for r in outcomes if r["split"] == "variant"}
        out: dict[str, dict[str, float]] = {}
        for r in predictions:
            if solved.get(r["item_id"]):
                out.setdefault(r["family"], {})[r["item_id"]] = failed[r["item_id"]]
        return out


def blind_predictors(results: dict) -> list[str]:
    """Blind predictors that ran, baselines aside, best pair AUROC first where scored."""
    from .metrics import BASELINES, RANKING, SANITY

    names = [n for n, p in results["predictors"].items()
             if p.get("status") == "ok" and p.get("track") == "blind" and n not in BASELINES["blind"] + (SANITY,)]
    return sorted(names, key=lambda n: -((results["predictors"][n].get(RANKING) or {}).get("value") or -1))


def rise(new: dict[str, float], base: dict[str, float], key: str, seed: int) -> tuple[float, float, float, bool]:
    """(rise of the mean, 95% interval low, high, paired): new minus base, bootstrapped over items.
    Paired where both hold the same item ids (run folders of one suite): items are resampled
    together, so two checkpoints that differ on a few items are told apart from noise; else (from
    results.json's counts alone) each run is resampled on its own."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    resample = lambda v: v[rng.integers(0, len(v), size=(N_BOOT, len(v)))].mean(1)  # noqa: E731
    paired = bool(new) and new.keys() == base.keys() and not next(iter(new)).startswith("#")
    if paired:
        ids = sorted(new)
        diff = np.array([new[i] for i in ids]) - np.array([base[i] for i in ids])
        rows, value = resample(diff), float(diff.mean())
    else:
        a, b = np.array(list(new.values())), np.array(list(base.values()))
        rows, value = resample(a) - resample(b), float(a.mean() - b.mean())
    lo, hi = np.percentile(rows, [2.5, 97.5])
    return value, float(lo), float(hi), paired


def brittleness(new: Run, base: Run, max_rise: dict[str, float], predictor: str | None = None,
                against: str = "predicted") -> tuple[bool, list[str]]:
    """Did NEW fail more than BASE: per variant cell, per family, and the compositional gap? A
    screen (predict-only run) is judged by `predictor`'s predicted failure, against BASE's
    prediction by the same predictor (`against="predicted"`, like for like) or BASE's observed
    failure. Returns (regressed, lines), the moved rows worst first."""
    check_same_suite(new.results, base.results)
    seed = new.results["provenance"]["seed"]
    if new.screen or base.screen:
        if predictor is None:
            full = base if not base.screen else new if not new.screen else None
            ranked = blind_predictors(full.results) if full is not None else []
            if not ranked:
                raise UserError("comparing screens needs --screen-predictor NAME: the blind predictor whose predicted "
                                "failure stands for the observed one")
            predictor = ranked[0]
        like = base.screen or against == "predicted"
        new_values = new.predicted(predictor) if new.screen else new.observed()
        base_values = base.predicted(predictor) if like else base.observed()
        what = f"failure as {predictor} predicts it" + ("" if like else ", against the baseline's observed failure")
    else:
        new_values, base_values, what = new.observed(), base.observed(), "observed failure"
    rows = [("cell", cell, "failure", *rise(new_values[cell], base_values[cell], cell, seed))
            for cell in sorted(set(new_values) & set(base_values))]
    for family in sorted({c.split("/", 1)[0] for c in new_values}):
        pick = lambda values: {i: v for c, items in values.items() if c.split("/", 1)[0] == family  # noqa: E731
                               for i, v in items.items()}
        a, b = pick(new_values), pick(base_values)
        if a and b:
            rows.append(("family", family, "failure", *rise(a, b, "family:" + family, seed)))
    new_gap, base_gap = new.gap(), base.gap()
    if new_gap is not None and base_gap is not None:
        for family in sorted(set(new_gap) & set(base_gap)):
            rows.append(("gap", family, "gap", *rise(new_gap[family], base_gap[family], "gap:" + family, seed)))
    verdicts, lines = [], []
    for kind, name, metric, value, lo, hi, paired in sorted(rows, key=lambda r: -r[3]):
        tolerance = max_rise[metric]
        verdict = ("REGRESSED" if value > tolerance and lo > 0 else "noise" if value > tolerance
                   else "improved" if value < -tolerance and hi < 0 else "ok")
        verdicts.append(verdict)
        if abs(value) > 1e-12 or verdict != "ok":
            note = ", but its interval reaches zero" if verdict == "noise" else ""
            lines.append(f"{verdict:<9} {kind} {name}: {metric} {value:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                         f"{' paired' if paired else ''}{note}")
    moved = sum(v != "ok" for v in verdicts)
    lines.insert(0, f"brittleness ({what}; tolerances {max_rise}): {len(rows)} cells, families and gaps compared, "
                    f"{moved} moved beyond tolerance")
    return "REGRESSED" in verdicts, lines
