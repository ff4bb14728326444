"""The trace on a large vocabulary, where the unembedding dominates: the logit lens item by item (as
before: the vocab x d_model matrix streamed once per item), pooled (now: the trace's layer states
in products of up to 256 MiB of logits, the last layer's row taken from the final logits, no softmax
over the vocabulary kept) and left out, side by side in one process; then a cost model of the
trace: FLOPs by stage, each stage's share of the measured seconds and its GFLOP/s against this
machine's fp32 matmul peak. On a synthetic
large-vocabulary model: a tiny random HF llama with a 256,000-token vocabulary. Prints figures and
which sites are bit for bit the same; asserts nothing.

    python perf/bench_unembed.py [--vocab 256000] [--d-model 128] [--layers 4] [--n 64] [--batch-size 16] [--repeats 2]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.process import reproducible_numerics  # noqa: E402
reproducible_numerics()  # MKL's reproducible branch, as the command line asks for it
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from perf.flops import (attention_flops, backbone_flops, matmul_peak, non_embedding_parameters,  # noqa: E402
                        unembedding_flops)


def build(folder: Path, vocab: int, d_model: int, layers: int) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.zoo.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=d_model, intermediate_size=4 * d_model,
                                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                                         max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def head_clock(head, seconds: dict[str, float]):
    """Seconds inside the output embedding, by call: the final logits' (a 3-D input, (item, 1,
    d_model), padded by `last_position_only`) and the logit lens's products (2-D)."""
    started = []

    def before(module, args):
        started.append((time.perf_counter(), "final" if args[0].ndim == 3 else "lens"))

    def after(module, args, output):
        t, kind = started.pop()
        seconds[kind] = seconds.get(kind, 0.0) + time.perf_counter() - t

    hooks = [head.register_forward_pre_hook(before), head.register_forward_hook(after)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def work(handle, items) -> tuple[int, int]:
    """(tokens the trace runs: each shared prefix once, each item's own tokens once; the sum over
    those tokens of the keys each attends to)."""
    from bench.model.prefix import Prefixes

    prefixes = Prefixes(handle, [i.prompt for i in items])
    tokens = contexts = 0
    for prefix, members in prefixes.groups().items():
        start = prefixes.length(prefix) if prefix else 0
        tokens += start
        contexts += start * (start + 1) // 2
        for k in members:
            own = len(prefixes.ids[k]) - prefixes.length(prefix)
            tokens += own
            contexts += own * start + own * (own + 1) // 2
    prefixes.forget()
    return tokens, contexts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=256_000)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import torch

    import bench.model.trace as tracing
    from bench.model.load import load_model
    from bench.process import invariant_threads
    from tasks import get_family

    folder = Path(tempfile.mkdtemp(prefix="brittlebench-unembed-"))
    try:
        handle = load_model(str(build(folder, args.vocab, args.d_model, args.layers)))
        head = handle.model.get_output_embeddings()
        family = get_family("addition")
        cells = [c.name for c in family.cells]
        items = [i.sealed() for c in cells for i in family.generate(c, max(1, args.n // len(cells)), seed=0)]
        lengths = [len(ids) for ids in handle.token_ids([i.prompt for i in items])]

        saved = {name: getattr(tracing, name) for name in ("lens_batched", "has_lens")}
        ways = {
            "lens item by item (before)": dict(lens_batched=lambda head: False),
            "lens pooled (now)": {},
            "no logit lens": dict(has_lens=lambda model: False),
        }
        seconds: dict[str, list[float]] = {label: [] for label in ways}
        inside: dict[str, dict[str, float]] = {}
        traces = {}
        for _ in range(args.repeats):
            for label, patch in ways.items():  # in turn: this machine's speed drifts
                for name, value in patch.items():
                    setattr(tracing, name, value)
                clock: dict[str, float] = {}
                with head_clock(head, clock):
                    start = time.perf_counter()
                    traces[label] = tracing.trace(handle, items, batch_size=args.batch_size)
                    took = time.perf_counter() - start
                for name, value in saved.items():
                    setattr(tracing, name, value)
                if not seconds[label] or took < min(seconds[label]):
                    inside[label] = clock
                seconds[label].append(took)
        with invariant_threads():  # the threads the trace ran on
            threads = torch.get_num_threads()
            peak = matmul_peak()

        before, now, bare = (min(s) for s in seconds.values())
        a, b = traces["lens item by item (before)"], traces["lens pooled (now)"]
        moved = [site for site in a.site_names() if not np.array_equal(getattr(a, site), getattr(b, site))]
        if moved:
            same = f"all but {', '.join(moved)}"
            if "lens_final_prob" in moved:
                old_p, new_p = a.lens_final_prob.astype(np.float64), b.lens_final_prob.astype(np.float64)
                same += (f" (lens_final_prob: {np.mean(old_p != new_p):.0%} of entries moved, by at most "
                         f"{np.max(np.abs(new_p - old_p) / np.maximum(old_p, 1e-30)):.1e} relative)")
        else:
            same = "all"
        card = handle.card
        print(f"llama, vocab {args.vocab}, d_model {args.d_model}, {args.layers} layers; {len(items)} items of "
              f"{min(lengths)}-{max(lengths)} tokens, batch size {args.batch_size}, {threads} threads "
              f"(best of {args.repeats}); fp32 matmul peak {peak:.0f} GFLOP/s (2048^3, once)")
        for label, s in seconds.items():
            print(f"  trace, {label:<27} {min(s):7.2f} s   ({', '.join(f'{x:.2f}' for x in s)})")
        print(f"  the lens: {before - bare:.2f} s before ({(before - bare) / before:.0%} of the trace), "
              f"{now - bare:.2f} s now ({(now - bare) / now:.0%}); trace {before / now:.2f}x faster; "
              f"sites bit for bit the same: {same}")

        tokens, contexts = work(handle, items)
        n_items = len(items)
        flops = {
            "backbone": backbone_flops(non_embedding_parameters(handle.model), tokens),
            "attention scores": attention_flops(card.n_layers, card.d_model, contexts),
            "final unembedding": unembedding_flops(card.d_model, card.vocab_size, n_items),
        }
        print(f"\ncost model: {tokens} tokens run (each shared prefix once), {n_items} items; "
              f"{non_embedding_parameters(handle.model) / 1e6:.2f} M non-embedding parameters, "
              f"{card.vocab_size * card.d_model / 1e6:.1f} M in the unembedding")
        print("  stage                          GFLOP   seconds  share  GFLOP/s  of peak")

        def row(name: str, gflop: float, s: float | None, total: float) -> None:
            if s is None:
                print(f"  {name:<28} {gflop:8.3f}   (counted in the line above)")
                return
            rate = gflop / s if s > 0 else float("nan")
            print(f"  {name:<28} {gflop:8.3f} {s:8.3f}  {s / total:5.0%} {rate:8.1f}  {rate / peak:6.1%}")

        for label, lens_rows, total in (("lens item by item (before)", card.n_layers + 1, before),
                                        ("lens pooled (now)", card.n_layers, now)):
            clock = inside[label]
            final_s = inside["no logit lens"].get("final", 0.0)
            lens_s = total - bare
            print(f"  -- {label}: trace {total:.2f} s")
            row("backbone and the rest", (flops["backbone"] + flops["attention scores"]) / 1e9, bare - final_s, total)
            row("  of which attention scores", flops["attention scores"] / 1e9, None, total)
            row("final unembedding", flops["final unembedding"] / 1e9, final_s, total)
            lens_flops = unembedding_flops(card.d_model, card.vocab_size, n_items * lens_rows)
            row(f"logit lens ({lens_rows} rows/item)", lens_flops / 1e9, lens_s, total)
            print(f"  {'  of which its products':<28} {'':8} {clock.get('lens', 0.0):8.3f}  "
                  f"{clock.get('lens', 0.0) / total:5.0%} {lens_flops / 1e9 / max(clock.get('lens', 0.0), 1e-9):8.1f}  "
                  f"{lens_flops / 1e9 / max(clock.get('lens', 0.0), 1e-9) / peak:6.1%}")
            all_flops = flops["backbone"] + flops["attention scores"] + flops["final unembedding"] + lens_flops
            print(f"  {'whole trace':<28} {all_flops / 1e9:8.3f} {total:8.3f}  {1:5.0%} "
                  f"{all_flops / 1e9 / total:8.1f}  {all_flops / 1e9 / total / peak:6.1%}")
        print("  (backbone = 2 x non-embedding parameters x tokens; unembedding = 2 x d_model x vocab per row; "
              "the lens's seconds = the trace's less the trace without the lens, its products timed inside "
              "the output embedding; the rest = the trace without the lens less its final unembedding)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
