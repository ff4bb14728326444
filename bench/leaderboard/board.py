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
from pathlib import Path
from typing import Any

from .. import io
from ..errors import UserError
from ..protocol.verify import check_run_folder, verify

SCHEMA_VERSION = 2  # 2: a table per track, ranked by family AUROC


def model_label(results: dict) -> str:
    return results.get("model_name") or Path(results["provenance"]["model"]["spec"]["name_or_path"]).name


def validate(path: Path, submission: bool = True) -> dict:
    """The results of a valid run folder (and submission), or a UserError saying why not."""
    path = Path(path)
    results = check_run_folder(path)
    ok, lines = verify(path)
    stale = next((l for l in lines if l.startswith("scores: made by scoring version")), None)
    if not ok and stale:
        raise UserError(f"{path}: {stale}")
    if not ok:
        bad = next((l for l in lines if "MISMATCH" in l), "digest or scores do not match")
        raise UserError(f"{path} is tampered or corrupted: {' '.join(bad.split())}")
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
        if entry is None or entry.get("status") != "ok":
            raise UserError(f"{path}: the submitted predictor {name!r} has no successful result in results.json")
        results["submission"] = meta
    return results


def build(root: Path) -> dict[str, Any]:
    root = Path(root)
    entries = []
    for kind in ("runs", "submissions"):
        for folder in sorted((root / kind).glob("*/")) if (root / kind).is_dir() else []:
            results = validate(folder, submission=(kind == "submissions"))
            entries.append((kind, folder, results))
    models: list[str] = []
    tracks: dict[str, dict[str, dict]] = {track: {} for track in ("blind", "trace")}
    for kind, folder, results in entries:
        model = model_label(results)
        if model not in models:
            models.append(model)
        names = [results["submission"]["predictor"]] if kind == "submissions" else list(results["predictors"])
        for name in names:
            p = results["predictors"][name]
            if p.get("status") != "ok" or (p.get("family_auroc") or {}).get("value") is None:
                continue
            table = tracks.setdefault(p.get("track", "trace"), {})
            row = table.setdefault(name, {"source": results.get("submission", {}).get("source", "built-in"),
                                          "reads": p.get("reads", []), "models": {}})
            vs = p.get("vs_best_baseline", {})
            row["models"][model] = {"family_auroc": p["family_auroc"], "auroc": p.get("auroc"),
                                    "vs_best_baseline": vs.get("difference"), "best_baseline": vs.get("baseline"),
                                    "beats": bool(vs.get("beats")), "run": str(folder.relative_to(root))}
        reference = results.get("tracks", {}).get("trace", {}).get("reference")
        if reference and (reference.get("family_auroc") or {}).get("value") is not None:
            row = tracks["trace"].setdefault(REFERENCE_ROW, {"source": "the runner, after sealing", "reads": ["targets"],
                                                             "models": {}, "reference": True})
            row["models"][model] = {"family_auroc": reference["family_auroc"], "auroc": reference.get("auroc"),
                                    "vs_best_baseline": None, "best_baseline": None, "beats": False,
                                    "run": str(folder.relative_to(root))}
    for table in tracks.values():
        for row in table.values():
            values = [m["family_auroc"]["value"] for m in row["models"].values()]
            row["mean_family_auroc"] = sum(values) / len(values)
            row["beats_best_baseline_on"] = sum(m["beats"] for m in row["models"].values())
    ranked = {track: dict(sorted(table.items(), key=lambda kv: (kv[1].get("reference", False),
                                                               -kv[1]["beats_best_baseline_on"],
                                                               -kv[1]["mean_family_auroc"])))
              for track, table in tracks.items()}
    board = {"schema_version": SCHEMA_VERSION, "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "ranked_by": "family_auroc", "models": models, "tracks": ranked}
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


def _cell(m: dict | None) -> str:
    if not m:
        return "–"
    return f"{m['family_auroc']['value']:.3f}{'*' if m['beats'] else ''}"


def markdown(board: dict) -> str:
    models = board["models"]
    lines = ["# brittlebench leaderboard", "",
             "Family AUROC (each family's AUROC where both outcomes occur, averaged over families) of each predictor's "
             "P(failure) against observed failure on each model's variant items. `*`: beats the best baseline of its "
             "track with a 95% paired bootstrap interval above zero. Ranked by the number of models where it beats the "
             "baselines, then mean family AUROC. Rebuilt by `brittlebench leaderboard build`."]
    for track, table in board["tracks"].items():
        if not table:
            continue
        lines += ["", f"## {track} track", "", TRACK_NOTES[track], "",
                  "| predictor | beats baselines on | mean family AUROC | " + " | ".join(models) + " |",
                  "|---|---|---|" + "---|" * len(models)]
        for name, row in table.items():
            cells = " | ".join(_cell(row["models"].get(m)) for m in models)
            beats = "–" if row.get("reference") else f"{row['beats_best_baseline_on']}/{len(row['models'])}"
            lines.append(f"| {name} | {beats} | {row['mean_family_auroc']:.3f} | {cells} |")
    return "\n".join(lines) + "\n"


def page(board: dict) -> str:
    esc = html.escape
    models = board["models"]
    head = "".join(f"<th>{esc(h)}</th>" for h in ["predictor", "reads", "source", "beats baselines",
                                                   "mean family AUROC", *models])
    sections = []
    for track, table in board["tracks"].items():
        if not table:
            continue
        rows = []
        for name, row in table.items():
            cells = "".join(f"<td data-v='{row['models'][m]['family_auroc']['value'] if m in row['models'] else -1}'>"
                            f"{esc(_cell(row['models'].get(m)))}</td>" for m in models)
            beats = "–" if row.get("reference") else f"{row['beats_best_baseline_on']}/{len(row['models'])}"
            rows.append(f"<tr><td>{esc(name)}</td><td>{esc(', '.join(row['reads']))}</td><td>{esc(row['source'])}</td>"
                        f"<td data-v='{row['beats_best_baseline_on']}'>{beats}</td>"
                        f"<td data-v='{row['mean_family_auroc']}'>{row['mean_family_auroc']:.3f}</td>{cells}</tr>")
        sections.append(f"<h2>{esc(track)} track</h2><p>{esc(TRACK_NOTES[track])}</p>"
                        f"<table class='board'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>brittlebench leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}th{{background:#f2f2f2;cursor:pointer}}</style></head><body>
<h1>brittlebench leaderboard</h1>
<p>Family AUROC per model (each family's AUROC, averaged over families); * beats the best baseline of its track
(95% paired bootstrap). Click a column to sort. Built {esc(board['built'])}.</p>
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
