"""Recompute a run's ranking figure independently: `python scripts/rescore.py RUN_FOLDER`.

The pair-pooled AUROC of every predictor from `outcomes.jsonl` and `predictions.jsonl` alone, with
scipy's Mann-Whitney U summed over the families the run kept (results.json says which, and holds
the figure this is printed beside). No brittlebench code is imported."""
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu


def main(folder: Path) -> int:
    failed = {o["item_id"]: not o["correct"] for o in map(json.loads, open(folder / "outcomes.jsonl"))
              if o["split"] == "variant"}
    rows = [json.loads(line) for line in open(folder / "predictions.jsonl")]
    results = json.loads((folder / "results.json").read_text())
    kept = {f for f, v in results["families"].items() if not v.get("flagged")}
    worst = 0.0
    for name in rows[0]["scores"]:
        u = pairs = 0.0
        for family in sorted(kept):
            s = np.array([r["scores"][name] for r in rows if r["family"] == family])
            y = np.array([failed[r["item_id"]] for r in rows if r["family"] == family])
            if 0 < y.sum() < len(y):
                u += mannwhitneyu(s[y], s[~y]).statistic  # failed scored above passed, ties half
                pairs += y.sum() * (~y).sum()
        mine, theirs = u / pairs, results["predictors"][name]["pair_auroc"]["value"]
        worst = max(worst, abs(mine - theirs))
        print(f"{name:22s} independent {mine:.4f}  results.json {theirs:.4f}")
    print(f"largest difference {worst:.2e} over {len(rows[0]['scores'])} predictors")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "results.json").is_file():
        print("usage: python scripts/rescore.py RUN_FOLDER (a finished run: results.json, outcomes.jsonl, "
              "predictions.jsonl)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
