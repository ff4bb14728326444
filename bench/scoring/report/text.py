"""The report's twin in the terminal: the tables `brittlebench run` prints."""
from __future__ import annotations

from ..metrics import BASELINES, INFORMATIVE_MIN, RANKING, REFERENCE, SANITY, format_interval
from .rows import figure, num, own, power, saturated, track_tables


def _cells(results: dict, title: str, shown) -> list[str]:
    """One line per cell, `shown(cell)` last, then what the model's context could not hold."""
    width = max([len(f"{c['family']}/{c['cell']}") for c in results["cells"]] + [24])
    lines = [f"{'cell':<{width}}  {'shift':<14} {'n':>5}  {title}"]
    lines += [f"{c['family'] + '/' + c['cell']:<{width}}  {c['shift']:<14} {c['n']:>5}  {shown(c)}"
              for c in results["cells"]]
    if results.get("skipped"):
        named = "; ".join(f"{name} ({why})" for name, why in results["skipped"].items())
        lines.append(f"skipped, longer than the model's context: {named}")
    return lines


def format_results(results: dict) -> str:
    lines = _cells(results, "failure", lambda c: f"{c['failure_rate']:.3f}") + [""]
    competence = results.get("competence") or {}
    if competence.get("base_failure"):
        lines.append("base-region failure per family: " + ", ".join(
            f"{name} {rate:.2f}{' (flagged)' if name in competence['flagged'] else ''}"
            for name, rate in competence["base_failure"].items()))
    if competence.get("note"):
        lines.append(f"warning: {competence['note']}")
    families = results.get("families") or {}
    if families and all("n_failed" in f for f in families.values()):
        lines.append("variant outcomes per family (failed/passed): " + ", ".join(
            f"{name} {f['n_failed']}/{f['n_passed']}{'' if f['informative'] else ' (uninformative)'}"
            for name, f in families.items()))
        if not all(f["informative"] for f in families.values()):
            lines.append(f"  uninformative: fewer than {INFORMATIVE_MIN} of one outcome; such a family adds few pairs, "
                         "so the pair AUROC gives it almost no weight")
    if competence.get("base_failure") or families:
        lines.append("")
    scored = competence.get("scored_families")  # the run-level figures are over these families' variants
    n_items = sum(families[f]["n"] for f in scored if f in families) if scored and families else results["n_variant"]
    lines.append(format_predictors(results["predictors"], n_items, results.get("tracks"), results.get("no_signal")))
    if results.get("claims"):
        lines += ["", format_claims(results["claims"])]
    return "\n".join(lines)


def format_claims(claims: dict[str, list[dict]]) -> str:
    """Each predictor's claims, one line each with its verdict, then each named cell's observed
    failure and 95% Wilson interval against the claim's threshold."""
    lines = ["claims: each named cell's observed variant failure, 95% Wilson interval; held where every cell's "
             "interval lies on its predicted side of the threshold, falsified where one lies wholly on the other",
             f"  {'predictor':<24} {'mechanism':<28} {'verdict':<10} threshold"]
    for name, made in claims.items():
        for claim in made:
            lines.append(f"  {name:<24} {claim['mechanism']:<28} {claim['verdict']:<10} {claim['threshold']:g}")
            for c in claim["cells"]:
                seen = (f"{c['rate']:.3f} [{c['wilson'][0]:.3f}, {c['wilson'][1]:.3f}] n={c['n']}" if c["n"]
                        else "not in this run")
                why = " (family flagged)" if c["verdict"] == "absent" and c["n"] else ""
                lines.append(f"    {c['cell']:<30} {c['predicted']:<7} {seen:<32} {c['verdict']}{why}")
    return "\n".join(lines)


def _predicted(cell: dict) -> str:
    """A variant cell's predicted failure: median and range over the blind predictors."""
    values = sorted(v for n, v in cell["mean_predicted"].items() if n not in BASELINES["blind"] + (SANITY,))
    if not values:
        return "no blind predictor ran"
    return f"{values[len(values) // 2]:.3f} [{values[0]:.3f}, {values[-1]:.3f}] predicted"


def format_screen(results: dict) -> str:
    """A predict-only run: base failure per cell, each variant cell's predicted failure, and what it cost."""
    lines = _cells(results, "base failure / predicted failure (median [min, max] over the blind predictors, "
                   "baselines aside)",
                   lambda c: f"{c['failure_rate']:.3f} observed" if c["split"] == "base" else _predicted(c))
    screen, run_dir = results["screen"], results["run_dir"]
    ok = [n for n, p in results["predictors"].items() if p.get("status") == "ok"]
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


def format_predictors(predictors: dict, n_items: int, tracks: dict | None, band: dict | None = None) -> str:
    """One table per track, blind first, each ranked by the pair-pooled AUROC, under the run's
    no-signal band and minimum detectable effect; the trace table ends with the answer-visible
    reference row."""
    blocks = []
    for track, names in track_tables(predictors, tracks).items():
        info = tracks[track]
        reference = info.get("reference")
        lines = [TRACK_TITLES[track] + ":",
                 f"  {n_items} items; ranked by pair AUROC (every failed/passed pair inside a family counted once), "
                 f"95% bootstrap; Δ: minus the best {track} baseline's ({info.get('best_baseline') or 'none'}); "
                 "* beats it (interval above 0)" + ("; Δ ref: minus the answer-visible reference" if reference else "")]
        chance = (band or {}).get("pair_auroc")
        if chance:
            rho = band.get("spearman")
            lines.append(f"  no signal: a score with no signal lands in [{chance['lo']:.3f}, {chance['hi']:.3f}] "
                         + (f"(cell ρ: [{rho['lo']:+.3f}, {rho['hi']:+.3f}]) " if rho else "")
                         + f"(95% of {band['n_permutations']} within-family permutations); {SANITY} is a sanity row, "
                         "never the bar")
        if info.get("mde"):
            lines.append(f"  power: {power(info['mde'])}")
        lines.append(f"  {'predictor':<30} {'pair AUROC':<22} {'Δ best baseline':<25} "
                     + (f"{'Δ ref':>7} " if reference else "") + f"{'fam AUC':>7} {'cell ρ':>6} {'Brier':>6}")
        baselines = set(info.get("baselines", ()))
        notes = []
        for name in names:
            p = predictors[name]
            label = name + (" (baseline)" if name in baselines else " (sanity)" if name == SANITY else "")
            lines.append(_row(name, label, p, track, bool(reference)))
            if p.get("same_ranking_as"):
                notes.append(f"{name} ranks every item as {p['same_ranking_as']} does (a monotone transform): "
                             "one finding, not two")
            if p.get("status") == "ok" and saturated(p):
                notes.append(f"{name} gives one value to {p['saturation']:.0%} of items (saturated): its ranking "
                             "says little")
        if reference:
            lines.append(_row(REFERENCE, f"{REFERENCE} (reference)", dict(reference, status="ok"), track, True))
        lines += [f"  note: {n}" for n in notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _row(name: str, label: str, p: dict, track: str, with_reference: bool) -> str:
    """One table row; a row from another track (a blind baseline in the trace table) shows its figures only."""
    if p.get("status") == "not_applicable":
        return f"  {label:<30} not applicable: {p.get('reason', '')}"
    if p.get("status") != "ok":
        return f"  {label:<30} failed: {p.get('reason', '')}"
    mine = own(name, p, track)
    vs = p.get("vs_best_baseline") or {}
    diff = ("" if not mine else "n/a" if not vs else "(best baseline)" if vs["baseline"] == name
            else format_interval(vs.get("difference"), signed=True))
    ref = ""
    if with_reference:
        versus = figure(p.get("vs_reference") or {}, "difference")
        ref = f"{versus:>+7.3f} " if mine and versus is not None else f"{'':>7} "
    return (f"  {label:<29}{'*' if mine and vs.get('beats') else ' '} {format_interval(p.get(RANKING)):<22} "
            f"{diff:<25} {ref}{num(figure(p, 'family_auroc')):>7} {num(figure(p, 'spearman')):>6} "
            f"{num(figure(p, 'brier')):>6}")
