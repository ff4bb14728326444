"""The report's twin in the terminal: the tables `brittlebench run` prints."""
from __future__ import annotations

from ..metrics import BASELINES, INFORMATIVE_MIN, RANKING, REFERENCE, SANITY, format_interval
from ..results import Band, Cell, Claim, Results, Row, Track, View
from .rows import num, own, power, saturated, track_tables


def _cells(results: Results, title: str, shown) -> list[str]:
    """One line per cell, `shown(cell)` last, then what the model's context could not hold."""
    width = max([len(f"{c.family}/{c.cell}") for c in results.cells] + [24])
    lines = [f"{'cell':<{width}}  {'shift':<14} {'n':>5}  {title}"]
    lines += [f"{c.family + '/' + c.cell:<{width}}  {c.shift:<14} {c.n:>5}  {shown(c)}" for c in results.cells]
    if results.skipped:
        named = "; ".join(f"{name} ({why})" for name, why in results.skipped.items())
        lines.append(f"skipped, longer than the model's context: {named}")
    return lines


def format_results(results: Results) -> str:
    lines = _cells(results, "failure", lambda c: f"{c.failure_rate:.3f}") + [""]
    competence = results.competence
    if competence.base_failure:
        lines.append("base-region failure per family: " + ", ".join(
            f"{name} {rate:.2f}{' (flagged)' if name in competence.flagged else ''}"
            for name, rate in competence.base_failure.items()))
    if competence.note:
        lines.append(f"warning: {competence.note}")
    families = results.families
    if families and all(f.n_failed is not None for f in families.values()):
        lines.append("variant outcomes per family (failed/passed): " + ", ".join(
            f"{name} {f.n_failed}/{f.n_passed}{'' if f.informative else ' (uninformative)'}"
            for name, f in families.items()))
        if not all(f.informative for f in families.values()):
            lines.append(f"  uninformative: fewer than {INFORMATIVE_MIN} of one outcome; such a family adds few pairs, "
                         "so the pair AUROC gives it almost no weight")
    if competence.base_failure or families:
        lines.append("")
    lines.append(format_predictors(results.predictors, results.run_level_items(), results.tracks, results.no_signal))
    if results.claims:
        lines += ["", format_claims(results.claims)]
    return "\n".join(lines)


def format_claims(claims: dict[str, list[Claim]]) -> str:
    """Each predictor's claims, one line each with its verdict, then each named cell's observed
    failure and 95% Wilson interval against the claim's threshold."""
    lines = ["claims: each named cell's observed variant failure, 95% Wilson interval; held where every cell's "
             "interval lies on its predicted side of the threshold, falsified where one lies wholly on the other",
             f"  {'predictor':<24} {'mechanism':<28} {'verdict':<10} threshold"]
    for name, made in claims.items():
        for claim in made:
            lines.append(f"  {name:<24} {claim.mechanism:<28} {claim.verdict:<10} {claim.threshold:g}")
            for c in claim.cells:
                seen = f"{c.rate:.3f} [{c.wilson[0]:.3f}, {c.wilson[1]:.3f}] n={c.n}" if c.n else "not in this run"
                why = " (family flagged)" if c.verdict == "absent" and c.n else ""
                lines.append(f"    {c.cell:<30} {c.predicted:<7} {seen:<32} {c.verdict}{why}")
    return "\n".join(lines)


def _predicted(cell: Cell) -> str:
    """A variant cell's predicted failure: median and range over the blind predictors."""
    values = sorted(v for n, v in cell.mean_predicted.items() if n not in BASELINES["blind"] + (SANITY,))
    if not values:
        return "no blind predictor ran"
    return f"{values[len(values) // 2]:.3f} [{values[0]:.3f}, {values[-1]:.3f}] predicted"


def format_screen(results: Results) -> str:
    """A predict-only run: base failure per cell, each variant cell's predicted failure, and what it cost."""
    lines = _cells(results, "base failure / predicted failure (median [min, max] over the blind predictors, "
                   "baselines aside)",
                   lambda c: f"{c.failure_rate:.3f} observed" if c.split == "base" else _predicted(c))
    screen, run_dir = results.screen, results.run_dir
    ok = [n for n, p in results.predictors.items() if p.status == "ok"]
    lines += ["", f"screen: {len(ok)} blind predictors sealed (sha256 {screen['predictions_sha256'][:16]}...) in "
              f"{screen['seconds']:.1f} s; no variant was traced or evaluated (a full run: about "
              f"{screen['estimated_full_seconds']:.0f} s, estimated from the base region)",
              f"complete it: brittlebench run ... --out {run_dir} --resume (the same options, without --predict-only)",
              f"gate it:     brittlebench compare {run_dir} --baseline LAST_GOOD_RUN"]
    return "\n".join(lines)


TRACK_TITLES = {
    "blind": "blind track: predicted before any forward pass on a variant (its text and axes, the architecture, "
             "the base region's traces and outcomes)",
    "trace": "trace track: predicted from the variants' prompt-only traces too",
}


def format_predictors(predictors: dict[str, Row], n_items: int, tracks: dict[str, Track],
                      band: Band | None = None) -> str:
    """One table per track, blind first, each ranked by the pair-pooled AUROC, under the run's
    no-signal band and minimum detectable effect; the trace table ends with the answer-visible
    reference row."""
    blocks = []
    for track, names in track_tables(predictors, tracks).items():
        info = tracks[track]
        reference = info.reference
        lines = [TRACK_TITLES[track] + ":",
                 f"  {n_items} items; ranked by pair AUROC (every failed/passed pair inside a family counted once), "
                 f"95% bootstrap; Δ: minus the best {track} baseline's ({info.best_baseline or 'none'}); "
                 "* beats it (interval above 0)" + ("; Δ ref: minus the answer-visible reference" if reference else "")]
        chance = band.pair_auroc if band else None
        if chance:
            rho = band.spearman
            lines.append(f"  no signal: a score with no signal lands in [{chance.lo:.3f}, {chance.hi:.3f}] "
                         + (f"(cell ρ: [{rho.lo:+.3f}, {rho.hi:+.3f}]) " if rho else "")
                         + f"(95% of {band.n_permutations} within-family permutations); {SANITY} is a sanity row, "
                         "never the bar")
        if info.mde:
            lines.append(f"  power: {power(info.mde)}")
        lines.append(f"  {'predictor':<30} {'pair AUROC':<22} {'Δ best baseline':<25} "
                     + (f"{'Δ ref':>7} " if reference else "") + f"{'fam AUC':>7} {'cell ρ':>6} {'Brier':>6}")
        baselines = set(info.baselines)
        notes = []
        for name in names:
            p = predictors[name]
            label = name + (" (baseline)" if name in baselines else " (sanity)" if name == SANITY else "")
            lines.append(_row(name, label, p, track, bool(reference)))
            if p.same_ranking_as:
                notes.append(f"{name} ranks every item as {p.same_ranking_as} does (a monotone transform): "
                             "one finding, not two")
            if p.status == "ok" and saturated(p):
                notes.append(f"{name} gives one value to {p.saturation:.0%} of items (saturated): its ranking "
                             "says little")
        if reference:
            lines.append(_row(REFERENCE, f"{REFERENCE} (reference)", reference, track, True))
        lines += [f"  note: {n}" for n in notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_view(view: View) -> str:
    """A protocol's or target's tables (results.json's `protocols`, `targets`)."""
    return format_predictors(view.predictors, view.n_items, view.tracks)


def _row(name: str, label: str, p: Row, track: str, with_reference: bool) -> str:
    """One table row; a row from another track (a blind baseline in the trace table) shows its figures only."""
    if p.status == "not_applicable":
        return f"  {label:<30} not applicable: {p.reason}"
    if p.status != "ok":
        return f"  {label:<30} failed: {p.reason}"
    mine = own(name, p, track)
    vs = p.vs_best_baseline
    diff = ("" if not mine else "n/a" if not vs else "(best baseline)" if vs.baseline == name
            else format_interval(vs.difference, signed=True))
    ref = ""
    if with_reference:
        versus = p.vs_reference.difference if p.vs_reference else None
        ref = f"{versus.value:>+7.3f} " if mine and versus and versus.value is not None else f"{'':>7} "
    return (f"  {label:<29}{'*' if mine and vs and vs.beats else ' '} {format_interval(p.figures.get(RANKING)):<22} "
            f"{diff:<25} {ref}{num(p.figure('family_auroc')):>7} {num(p.figure('spearman')):>6} "
            f"{num(p.figure('brier')):>6}")
