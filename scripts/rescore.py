"""Independent re-scoring of a run folder: pair-pooled AUROC from items, outcomes and predictions only."""
import json, sys
import numpy as np
from scipy.stats import mannwhitneyu
folder = sys.argv[1]
failed = {o["item_id"]: not o["correct"] for o in map(json.loads, open(f"{folder}/outcomes.jsonl")) if o["split"] == "variant"}
rows = [json.loads(l) for l in open(f"{folder}/predictions.jsonl")]
results = json.load(open(f"{folder}/results.json"))
kept = {f for f, v in results["families"].items() if not v.get("flagged")} if "families" in results else None
worst = 0.0
for name in rows[0]["scores"]:
    u = pairs = 0.0
    for fam in sorted({r["family"] for r in rows}):
        if kept is not None and fam not in kept:
            continue
        s = np.array([r["scores"][name] for r in rows if r["family"] == fam])
        y = np.array([failed[r["item_id"]] for r in rows if r["family"] == fam])
        if 0 < y.sum() < len(y):
            u += mannwhitneyu(s[y], s[~y]).statistic  # failed scored above passed, ties half
            pairs += y.sum() * (~y).sum()
    mine, theirs = u / pairs, results["predictors"][name]["pair_auroc"]["value"]
    worst = max(worst, abs(mine - theirs))
    print(f"{name:22s} independent {mine:.4f}  results.json {theirs:.4f}")
print(f"largest difference {worst:.2e} over {len(rows[0]['scores'])} predictors")
