"""Where a cold run's time goes, against the forward passes it cannot skip (prints figures; asserts nothing).

    python perf/bench_forward.py [more `brittlebench run` options, e.g. --model zoo/zoo-l6]

Runs `brittlebench run --no-cache` in this process (the default model and suite unless told) with
hooks on every model the run loads: each forward pass of it (the evaluated
model, its checkpoints, the mechanistic reads) is timed, its tokens counted at the input embedding
and its unembedded rows at the output embedding. Prints the seconds spent in forward passes, their
FLOPs (`perf/flops.py`: 2 x non-embedding parameters x tokens + 2 x d_model x vocab x unembedded
rows) and GFLOP/s against this machine's fp32 matmul peak, and the rest of the run by stage. Where
the passes run near the peak, only fewer passes make the run faster. The hooks cost a little
themselves: compare walls with `perf/bench_eval.py`, not with this.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench.process import reproducible_numerics, settle  # noqa: E402

reproducible_numerics()
settle()
import torch  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.model.load import ModelHandle  # noqa: E402
from perf.flops import matmul_peak, non_embedding_parameters  # noqa: E402

passes = {"calls": 0, "seconds": 0.0, "flops": 0.0, "tokens": 0}
models = 0


def hooked(handle_init):
    """ModelHandle.__init__ that also times each forward pass of the handle's model and counts its
    tokens (at the input embedding) and unembedded rows (at the output embedding)."""
    def init(self, spec, model, *args, **kwargs):
        global models
        handle_init(self, spec, model, *args, **kwargs)
        models += 1
        head, params, started = model.get_output_embeddings(), non_embedding_parameters(model), []

        def tokens(module, args):
            passes["tokens"] += args[0].numel()
            passes["flops"] += 2 * params * args[0].numel()

        def rows(module, args):
            passes["flops"] += 2 * head.in_features * head.out_features * args[0].shape[:-1].numel()

        def done(module, args, output):
            passes["calls"] += 1
            passes["seconds"] += time.perf_counter() - started.pop()

        model.register_forward_pre_hook(lambda module, args: started.append(time.perf_counter()))
        model.register_forward_hook(done)
        model.get_input_embeddings().register_forward_pre_hook(tokens)
        head.register_forward_pre_hook(rows)
    return init


ModelHandle.__init__ = hooked(ModelHandle.__init__)
peak = matmul_peak()
with tempfile.TemporaryDirectory() as tmp:
    os.environ["BRITTLEBENCH_CACHE"] = f"{tmp}/cache"
    started = time.perf_counter()
    main(["run", "--no-cache", "--out", f"{tmp}/r", *sys.argv[1:]])
    wall = time.perf_counter() - started
    timings = json.loads(Path(f"{tmp}/r/results.json").read_text())["timings"]
gflops = passes["flops"] / 1e9
print(f"\nwhole run: {wall:.1f} s wall in this process (hooks on); its stages: "
      + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
print(f"forward passes: {passes['calls']} of {models} models, {passes['tokens']} tokens, {gflops:.0f} GFLOP "
      f"in {passes['seconds']:.1f} s: {gflops / passes['seconds']:.0f} GFLOP/s, "
      f"{gflops / passes['seconds'] / peak:.0%} of this machine's fp32 matmul peak ({peak:.0f} GFLOP/s, "
      f"{torch.get_num_threads()} threads); at the peak they would take {gflops / peak:.1f} s")
print(f"everything else: {wall - passes['seconds']:.1f} s ({(wall - passes['seconds']) / wall:.0%} of the wall)")
