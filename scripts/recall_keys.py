"""Where a model's recall fails, by how the other keys overlap the queried one.

    .venv/bin/python scripts/recall_keys.py [MODEL] [--pairs 4] [-n 1000] [--seed 4242]

Recall's keys are two letters (`zo:24 za:48 ... zo?`). For each item the other keys are
compared with the queried key: none shares a letter ("clean"), one shares its first letter
only ("first"), its second only ("second"), one each ("both"), or a letter at the other place
("crossed"). Exact-match accuracy per kind shows which letter the lookup reads. Then, at the
"?", each attention head's mean weight on the key's first and second letter (2 and 1 tokens
back), per layer: where the key reaches the position that answers.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.process import reproducible_numerics  # noqa: E402
reproducible_numerics()  # MKL's reproducible branch, as the command line asks for it

KINDS = ("clean", "first", "second", "both", "crossed")


def overlap(pairs, query: str) -> str:
    others = [key for key, _ in pairs if key != query]
    first = any(k[0] == query[0] for k in others)
    second = any(k[1] == query[1] for k in others)
    if first and second:
        return "both"
    if first or second:
        return "first" if first else "second"
    return "crossed" if any(set(k) & set(query) for k in others) else "clean"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="default")
    parser.add_argument("--pairs", type=int, default=4, choices=(2, 3, 4, 8, 12))
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=4242)
    args = parser.parse_args()

    import torch

    from bench.model.evaluate import evaluate
    from bench.model.load import ModelSpec, load_model

    torch.set_num_threads(1)  # light: it may run beside a training
    from tasks import get_family

    items = get_family("recall").generate(f"pairs={args.pairs}", args.n, seed=args.seed)
    handle = load_model(ModelSpec(args.model))
    outcomes = evaluate(handle, items)
    right, total = collections.Counter(), collections.Counter()
    for item, outcome in zip(items, outcomes):
        kind = overlap(item.meta["pairs"], item.meta["query"])
        total[kind] += 1
        right[kind] += outcome.correct
    print(f"{args.model}: recall pairs={args.pairs}, {args.n} items (seed {args.seed}), "
          f"exact match {sum(right.values()) / args.n:.3f}")
    print(f"{'other keys share':<18} {'items':>6} {'right':>6}")
    for kind in KINDS:
        if total[kind]:
            print(f"{kind:<18} {total[kind]:>6} {right[kind] / total[kind]:>6.3f}")

    from bench.model.load import eager_attention

    model, tokenizer = handle.model, handle.tokenizer
    weight = None
    with torch.no_grad(), eager_attention(model):
        for item in items[:200]:
            ids = tokenizer(item.prompt, return_tensors="pt")["input_ids"]
            attentions = model(ids, output_attentions=True).attentions  # per layer: (1, heads, q, k)
            at = torch.stack([a[0, :, -1, -3:-1] for a in attentions])  # the "?" on 2 and 1 back
            weight = at if weight is None else weight + at
    weight = weight / min(200, len(items))
    print("\nmean attention from the '?' to the key's letters (first | second), per layer and head")
    for layer, heads in enumerate(weight):
        print(f"layer {layer}: " + "  ".join(f"h{h} {w[0]:.2f}|{w[1]:.2f}" for h, w in enumerate(heads.tolist())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
