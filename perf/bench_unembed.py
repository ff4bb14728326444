"""Unembed once: the trace's seconds with every position unembedded (as before) and with the last
position only (`bench.model.trace.last_position_only`), side by side in one process, on a synthetic
large-vocabulary model: a tiny random HF llama with a 256,000-token vocabulary (prints figures and
whether the two traces are bit for bit the same; asserts nothing). A third row leaves the logit
lens out, to show what its per-layer unembeddings cost.

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
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
def every_position(model):
    yield {}  # what the trace did before: no logits_to_keep, every position unembedded


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
    from tasks import get_family

    folder = Path(tempfile.mkdtemp(prefix="brittlebench-unembed-"))
    try:
        handle = load_model(str(build(folder, args.vocab, args.d_model, args.layers)))
        family = get_family("addition")
        cells = [c.name for c in family.cells]
        items = [i.sealed() for c in cells for i in family.generate(c, max(1, args.n // len(cells)), seed=0)]
        lengths = [len(ids) for ids in handle.token_ids([i.prompt for i in items])]
        new_way = tracing.last_position_only
        seconds: dict[str, list[float]] = {"every position (before)": [], "last position only (now)": []}
        traces = {}
        for _ in range(args.repeats):
            for label, way in zip(seconds, (every_position, new_way)):
                tracing.last_position_only = way
                start = time.perf_counter()
                traces[label] = tracing.trace(handle, items, batch_size=args.batch_size)
                seconds[label].append(time.perf_counter() - start)
        tracing.last_position_only = new_way
        lens = tracing._logit_lens
        tracing._logit_lens = lambda model, hidden_states, final_top: (None, None)
        without_lens = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tracing.trace(handle, items, batch_size=args.batch_size)
            without_lens.append(time.perf_counter() - start)
        tracing._logit_lens = lens
        before, now = (min(s) for s in seconds.values())
        a, b = traces.values()
        same = all(np.array_equal(getattr(a, site), getattr(b, site)) for site in a.site_names())
        print(f"llama, vocab {args.vocab}, d_model {args.d_model}, {args.layers} layers; {len(items)} items of "
              f"{min(lengths)}-{max(lengths)} tokens, batch size {args.batch_size}, {torch.get_num_threads()} threads "
              f"(best of {args.repeats})")
        for label, s in seconds.items():
            print(f"  trace, {label:<24} {min(s):7.2f} s   ({', '.join(f'{x:.2f}' for x in s)})")
        print(f"  trace, {'last only, no logit lens':<24} {min(without_lens):7.2f} s   (what the lens's "
              f"{args.layers + 1} unembeddings per item cost: {now - min(without_lens):.2f} s, "
              f"{(now - min(without_lens)) / now:.0%} of the trace now)")
        print(f"  speedup {before / now:.2f}x; traces bit for bit the same: {same}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
