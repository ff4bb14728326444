"""The leaderboard: every predictor on every zoo model (and submitted runs), verified.

Layout under `leaderboard/`:
  runs/MODEL/            run folders of the built-in predictors on each zoo model
                         (`brittlebench leaderboard run-zoo` writes them)
  submissions/NAME/      a third party's run folder plus `submission.json`
  leaderboard.json, LEADERBOARD.md, leaderboard.html   what `leaderboard build` writes

A submission is the folder `brittlebench run --predictors PLUGIN` wrote, with a
`submission.json`: {"predictor": NAME, "source": "where its code is (URL, package==version)",
"authors": "..."}. `leaderboard validate` recomputes its digest and scores and rejects
it with the reason when anything does not match.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..errors import UserError
from ..protocol.verify import check_run_folder, verify
from ..scoring.claims import VERDICTS
from ..scoring.metrics import BASELINES, RANKING, SANITY, average_ranks

SCHEMA_VERSION = 4  # 3: ranked by pair AUROC, roles, coverage, Holm, pooled cell rho, models left out;
# 4: claims held, falsified and untestable per predictor, and the findings table
ALPHA = 0.025  # one-sided: a 95% interval's lower end above zero


def model_label(results: dict) -> str:
    return results.get("model_name") or Path(results["provenance"]["model"]["spec"]["name_or_path"]).name


REEVALUATE_K = 50  # a submission's items evaluated again with its model (`verify --reevaluate`)


def validate(path: Path, submission: bool = True, reevaluate: int = REEVALUATE_K) -> dict:
    """The results of a valid run folder (and submission), or a UserError saying why not. A
    submission is verified with `reevaluate` of its items evaluated again by the model it names,
    drawn by a seed the submitter cannot know (its outcomes and scores could be forged together)."""
    path = Path(path)
    results = check_run_folder(path)
    ok, lines = verify(path, reevaluate=reevaluate if submission else 0)
    stale = next((l for l in lines if l.startswith("scores: made by scoring version")), None)
    bad = next((l for l in lines if "MISMATCH" in l and l != lines[-1]), None)
    if not ok and stale and bad is None:
        raise UserError(f"{path}: {stale}")
    if not ok:
        bad = " ".join((bad or "digest or scores do not match").split())
        raise UserError(f"{path} is tampered or corrupted: {bad}")
    if submission:
        meta_path = path / "submission.json"
        if not meta_path.is_file():
            raise UserError(f"{path} has no submission.json: add {{\"predictor\": ..., \"source\": ...}}")
        try:
            meta = json.loads(meta_path.read_text())
            name, source = meta["predictor"], meta["source"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{meta_path} must be a JSON object with 'predictor' and 'source'") from None
        if not isinstance(source, str) or not source.strip():
            raise UserError(f"{meta_path}: 'source' must say where the predictor's code is")
        entry = results["predictors"].get(name)
        if entry is None:
            raise UserError(f"{meta_path}: 'predictor' must be the predictor's name as the run lists it, one of "
                            f"{', '.join(results['predictors'])}; got {name!r}")
        if entry.get("status") != "ok":
            raise UserError(f"{path}: the submitted predictor {name!r} has no successful result in results.json")
        results["submission"] = meta
    return results


def admission(results: dict) -> str | None:
    """Why a model's run is kept out of the rankings (None: it is ranked): a model that fails its own
    base region in some family (its variant failures there are not evidence of brittleness)."""
    flagged = (results.get("competence") or {}).get("flagged") or []
    if flagged:
        return f"fails more than {results['competence'].get('limit', 0.2):.0%} of its own base region in {', '.join(flagged)}"
    return None


def _one_sided_p(difference: dict | None) -> float:
    """P(difference <= 0) read off a 95% bootstrap interval under a normal approximation."""
    if not difference or difference.get("lo") is None or difference["hi"] <= difference["lo"]:
        return 1.0
    se = (difference["hi"] - difference["lo"]) / (2 * 1.959964)
    return 0.5 * math.erfc(difference["value"] / se / math.sqrt(2))


def holm_wins(differences: list[dict | None]) -> int:
    """How many of a predictor's per-model differences from the best baseline stay significant
    under Holm's family-wise correction over the models."""
    ps = sorted(_one_sided_p(d) for d in differences)
    wins = 0
    for k, p in enumerate(ps):
        if p > ALPHA / (len(ps) - k):
            break
        wins += 1
    return wins


def pooled_cell_rho(points: list[tuple[float, float]]) -> float | None:
    """Spearman rho between mean predicted and observed failure over (model, cell) pairs."""
    if len(points) < 3:
        return None
    predicted, observed = (np.array(v, dtype=np.float64)[None, :] for v in zip(*points))
    if np.ptp(predicted) == 0 or np.ptp(observed) == 0:
        return None
    a, b = average_ranks(predicted)[0], average_ranks(observed)[0]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


HELD, FALSIFIED, NO_SIGNAL = "held", "falsified", "no signal"


def finding(p: dict, band: dict | None) -> str:
    """What one model's run says of a predictor's hypothesis: held where it beats the best baseline of
    its track (the leaderboard's win), falsified where its pair AUROC interval lies wholly below the
    run's no-signal band (`results.json` `no_signal.pair_auroc`: it ranks failures below successes),
    no signal elsewhere."""
    if (p.get("vs_best_baseline") or {}).get("beats"):
        return HELD
    hi, lo = (p.get(RANKING) or {}).get("hi"), (band or {}).get("lo")
    return FALSIFIED if hi is not None and lo is not None and hi < lo else NO_SIGNAL


def findings(tracks: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Per predictor that is neither a baseline, the sanity row nor the reference: the ranked models
    where its hypothesis held, was falsified or showed no signal (`finding`), and its pair AUROC on each."""
    out = {}
    for track, table in tracks.items():
        for name, row in table.items():
            if row.get("role"):
                continue
            models = row["models"]
            out[name] = {"track": track} | {
                kind: [m for m, v in models.items() if v["finding"] == kind] for kind in (HELD, FALSIFIED, NO_SIGNAL)
            } | {"pair_auroc": {m: v["pair_auroc"]["value"] for m, v in models.items()}}
    return out


def build(root: Path) -> dict[str, Any]:
    root = Path(root)
    entries = [(kind, folder, validate(folder, submission=(kind == "submissions")))
               for kind in ("runs", "submissions") for folder in sorted((root / kind).glob("*/"))]
    models: list[str] = []
    left_out: dict[str, str] = {}
    skipped: dict[str, list[str]] = {}  # per ranked model, the families and cells its context could not hold
    informative: dict[str, list[str]] = {}
    tracks: dict[str, dict[str, dict]] = {track: {} for track in ("blind", "trace")}
    cells: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for kind, folder, results in entries:
        model = model_label(results)
        why = admission(results)
        if why:
            left_out[model] = why
            continue
        if model not in models:
            models.append(model)
            informative[model] = sorted(f for f, v in (results.get("families") or {}).items() if v.get("informative"))
            if results.get("skipped"):
                skipped[model] = list(results["skipped"])
        names = [results["submission"]["predictor"]] if kind == "submissions" else list(results["predictors"])
        for name in names:
            p = results["predictors"][name]
            if p.get("status") != "ok" or (p.get(RANKING) or {}).get("value") is None:
                continue
            track = p.get("track", "trace")
            role = "baseline" if name in BASELINES.get(track, ()) else "sanity" if name == SANITY else ""
            row = tracks.setdefault(track, {}).setdefault(name, {
                "source": results.get("submission", {}).get("source", "built-in"), "reads": p.get("reads", []),
                "role": role, "models": {}, "claims": {verdict: 0 for verdict in VERDICTS}})
            row.setdefault("_same", []).append(p.get("same_ranking_as"))
            for verdict, count in (p.get("claims_summary") or {}).items():
                row["claims"][verdict] += count
            vs = p.get("vs_best_baseline", {})
            row["models"][model] = {RANKING: p[RANKING], "auroc": p.get("auroc"),
                                    "vs_best_baseline": vs.get("difference"), "best_baseline": vs.get("baseline"),
                                    "beats": bool(vs.get("beats")), "run": str(folder.relative_to(root)),
                                    "finding": finding(p, (results.get("no_signal") or {}).get(RANKING))}
            for c in results.get("cells", []):
                if c.get("split") == "variant" and name in c.get("mean_predicted", {}) \
                        and c["family"] in (results.get("competence") or {}).get("scored_families", [c["family"]]):
                    cells.setdefault((track, name), []).append((c["mean_predicted"][name], c["failure_rate"]))
        reference = results.get("tracks", {}).get("trace", {}).get("reference")
        if reference and (reference.get(RANKING) or {}).get("value") is not None:
            row = tracks["trace"].setdefault(REFERENCE_ROW, {"source": "the runner, after sealing", "reads": ["targets"],
                                                             "role": "reference", "models": {}, "reference": True})
            row["models"][model] = {RANKING: reference[RANKING], "auroc": reference.get("auroc"),
                                    "vs_best_baseline": None, "best_baseline": None, "beats": False,
                                    "run": str(folder.relative_to(root))}
    for track, table in tracks.items():
        for name, row in table.items():
            same = set(row.pop("_same", [None]))
            if len(same) == 1 and None not in same:  # a monotone transform of the same predictor on every model
                row["same_ranking_as"] = same.pop()
            values = [m[RANKING]["value"] for m in row["models"].values()]
            row["mean"] = sum(values) / len(values)
            row["coverage"] = f"{len(values)}/{len(models)}"
            row["beats_best_baseline_on"] = sum(m["beats"] for m in row["models"].values())
            row["beats_after_holm"] = holm_wins([m["vs_best_baseline"] for m in row["models"].values()])
            row["wins_by_chance"] = round(len(values) * ALPHA, 2)
            row["pooled_cell_rho"] = pooled_cell_rho(cells.get((track, name), []))
    ranked = {track: dict(sorted(table.items(), key=lambda kv: (kv[1].get("reference", False),
                                                               -kv[1]["beats_after_holm"], -kv[1]["mean"])))
              for track, table in tracks.items()}
    board = {"schema_version": SCHEMA_VERSION, "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "ranked_by": RANKING, "models": models, "informative_families": informative, "left_out": left_out,
             **({"skipped": skipped} if skipped else {}),
             "tracks": ranked, "findings": findings(ranked)}
    io.write_json(root / "leaderboard.json", board)
    io.write_bytes(root / "LEADERBOARD.md", markdown(board).encode())
    io.write_bytes(root / "leaderboard.html", page(board).encode())
    return board


REFERENCE_ROW = "answer_visible (reference)"
TRACK_NOTES = {
    "blind": "Blind track: no forward pass of the model on any variant item reaches these predictors.",
    "trace": "Trace track: these also read the variants' prompt-only traces. The reference row is how well "
             "reading the model's answer at the answer position predicts failure (computed after sealing).",
}
HOW_TO_READ = (
    "Pair AUROC (every failed/passed pair of items inside one family counted once) of each predictor's P(failure) "
    "against observed failure on each model's variant items. `*`: beats the best baseline of its track with a 95% "
    "paired bootstrap interval above zero on that model. *beats*: such wins, then those that survive Holm's "
    "correction over the models (p from each interval, normal approximation), then how many wins chance alone "
    "gives (2.5% of the models covered). *mean*: over the models the row covers (*coverage*); `–`: the predictor "
    "did not run on that model (not applicable, or failed). *cell ρ*: Spearman between mean predicted and observed "
    "failure pooled over every (model, variant cell), the task-level figure. Roles: baseline (the bar), sanity "
    "(random: should sit at chance, never the bar), reference (reads the answer: competes with no one). Ranked by "
    "wins after Holm, then the mean. Rebuilt by `brittlebench leaderboard build`.")


def _cell(m: dict | None) -> str:
    if not m:
        return "–"
    return f"{m['pair_auroc']['value']:.3f}{'*' if m['beats'] else ''}"


def _label(name: str, row: dict) -> str:
    return name + (f" ({row['role']})" if row.get("role") and row["role"] != "reference" else "") + (
        f" = {row['same_ranking_as']}" if row.get("same_ranking_as") else "")


def _beats(row: dict) -> str:
    if row.get("reference"):
        return "–"
    return f"{row['beats_best_baseline_on']} / {row['beats_after_holm']} Holm / {row['wins_by_chance']:g} chance"


def _rho(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


FINDINGS_NOTE = (
    "Per predictor (baselines, the sanity row and the reference aside), what each ranked model's run says of its "
    "hypothesis: *held* where it beats the best baseline of its track (the `*` above), *falsified* where its pair "
    "AUROC interval lies wholly below that run's no-signal band (it ranks failures below successes), *no signal* "
    "elsewhere; each model's column gives its pair AUROC and the finding.")
CLAIMS_NOTE = (
    "Claims a predictor made beside its scores (`Predictor.claim`: a mechanism and the cells it says will be "
    "brittle or robust), sealed with its predictions and tested on each ranked model: held where every named "
    "cell's observed failure interval lies on the predicted side of the claim's threshold, falsified where one "
    "lies wholly on the other, untestable otherwise.")


def _left_out(board: dict) -> str:
    return "Models left out of the rankings: " + "; ".join(f"{m}: {why}" for m, why in board["left_out"].items()) + "."


def _skipped(board: dict) -> str:
    """The ranked models that skipped families or cells (longer than their context), and which."""
    return ("Skipped before evaluation, longer than a model's context (ranked on the rest): "
            + "; ".join(f"{m}: {', '.join(names)}" for m, names in board["skipped"].items()) + ".")


def _findings_md(board: dict) -> list[str]:
    models = board["models"]
    lines = ["", "## Findings", "", FINDINGS_NOTE, "",
             "| predictor | track | held | falsified | no signal | " + " | ".join(models) + " |",
             "|---|---|---|---|---|" + "---|" * len(models)]
    for name, f in board.get("findings", {}).items():
        cells = " | ".join("–" if m not in f["pair_auroc"] else f"{f['pair_auroc'][m]:.3f}" + next(
            (f" {kind}" for kind in (HELD, FALSIFIED) if m in f[kind]), "") for m in models)
        lines.append(f"| {name} | {f['track']} | {len(f[HELD])} | {len(f[FALSIFIED])} | {len(f[NO_SIGNAL])} | "
                     f"{cells} |")
    return lines


def _claims_md(board: dict) -> list[str]:
    rows = [(track, name, row["claims"]) for track, table in board["tracks"].items() for name, row in table.items()
            if any((row.get("claims") or {}).values())]
    lines = ["", "## Claims", "", CLAIMS_NOTE, ""]
    if not rows:
        return lines + ["No predictor made claims on the ranked models."]
    lines += ["| predictor | track | held | falsified | untestable |", "|---|---|---|---|---|"]
    return lines + [f"| {name} | {track} | " + " | ".join(str(claims[v]) for v in VERDICTS) + " |"
                    for track, name, claims in rows]


def markdown(board: dict) -> str:
    models = board["models"]
    lines = ["# brittlebench leaderboard", "", HOW_TO_READ]
    if board.get("left_out"):
        lines += ["", _left_out(board)]
    if board.get("skipped"):
        lines += ["", _skipped(board)]
    for track, table in board["tracks"].items():
        if not table:
            continue
        lines += ["", f"## {track} track", "", TRACK_NOTES[track], "",
                  "| predictor | beats (wins / Holm / chance) | mean | coverage | cell ρ | " + " | ".join(models) + " |",
                  "|---|---|---|---|---|" + "---|" * len(models)]
        for name, row in table.items():
            cells = " | ".join(_cell(row["models"].get(m)) for m in models)
            lines.append(f"| {_label(name, row)} | {_beats(row)} | {row['mean']:.3f} | {row['coverage']} | "
                         f"{_rho(row.get('pooled_cell_rho'))} | {cells} |")
    lines += _findings_md(board) + _claims_md(board)
    return "\n".join(lines) + "\n"


def page(board: dict) -> str:
    esc = html.escape
    models = board["models"]
    head = "".join(f"<th>{esc(h)}</th>" for h in ["predictor", "reads", "source", "beats (wins / Holm / chance)",
                                                   "mean", "coverage", "cell ρ", *models])
    sections = []
    for track, table in board["tracks"].items():
        if not table:
            continue
        rows = []
        for name, row in table.items():
            cells = "".join(f"<td data-v='{row['models'][m]['pair_auroc']['value'] if m in row['models'] else -1}'>"
                            f"{esc(_cell(row['models'].get(m)))}</td>" for m in models)
            rows.append(f"<tr><td>{esc(_label(name, row))}</td><td>{esc(', '.join(row['reads']))}</td>"
                        f"<td>{esc(row['source'])}</td><td data-v='{row['beats_after_holm']}'>{esc(_beats(row))}</td>"
                        f"<td data-v='{row['mean']}'>{row['mean']:.3f}</td><td>{row['coverage']}</td>"
                        f"<td data-v='{row.get('pooled_cell_rho') or 0}'>{_rho(row.get('pooled_cell_rho'))}</td>{cells}</tr>")
        sections.append(f"<h2>{esc(track)} track</h2><p>{esc(TRACK_NOTES[track])}</p>"
                        f"<table class='board'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>brittlebench leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}th{{background:#f2f2f2;cursor:pointer}}</style></head><body>
<h1>brittlebench leaderboard</h1>
<p>{esc(HOW_TO_READ)} Click a column to sort. Built {esc(board['built'])}.</p>
{('<p>' + esc(_left_out(board)) + '</p>') if board.get('left_out') else ''}
{('<p>' + esc(_skipped(board)) + '</p>') if board.get('skipped') else ''}
{''.join(sections)}
<script>
document.querySelectorAll('table.board').forEach(table => table.querySelectorAll('th').forEach((th, col) =>
  th.addEventListener('click', () => {{
    const body = table.querySelector('tbody');
    const rows = [...body.rows];
    const key = r => {{ const c = r.cells[col]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent; }};
    const dir = th.dataset.dir = th.dataset.dir === 'desc' ? 'asc' : 'desc';
    rows.sort((a, b) => {{ const x = key(a), y = key(b); const c = x < y ? -1 : x > y ? 1 : 0; return dir === 'desc' ? -c : c; }});
    rows.forEach(r => body.appendChild(r));
  }})));
</script></body></html>
"""
