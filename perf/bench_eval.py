"""Evaluation speed, side by side in one run (prints figures; asserts nothing).

    python perf/bench_eval.py [--models default,zoo/zoo-l6] [--tasks addition] [--n 300] [--no-lm-eval]
    python perf/bench_eval.py --real [--n 10]     # SmolLM2-135M-Instruct on the pretrained suite
    python perf/bench_eval.py --models none --repeat 3 [--predictors a,b,...]   # the whole run alone

For each model, on the same items (n per cell of the given families), in separate
processes so that each peak RSS is its own:
  1. brittlebench's evaluation (teacher-forced fast path, generation where it cannot decide);
  2. a plain batched HF `generate` greedy loop, written the way a user would;
  3. lm-evaluation-harness (`generate_until`) on the same items, exported with
     `brittlebench tasks export --format lm-eval`, local model folder, offline;
then the ratios and whether all three agree on every item's exact match. Then the
whole `brittlebench run` on the default suite: wall time, share per stage, each
predictor's share, and achieved forward GFLOP/s against this machine's fp32 matmul peak.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.process import reproducible_numerics  # noqa: E402
reproducible_numerics()  # MKL's reproducible branch, as the command line asks for it
from perf.flops import backbone_flops, matmul_peak, unembedding_flops  # noqa: E402
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))

BRITTLEBENCH = """
import json, sys, time
from bench.model.load import load_model
from bench.model.evaluate import evaluate
from tasks import Item
items = [Item.from_dict(json.loads(l)) for l in open(sys.argv[2])]
handle = load_model(sys.argv[1])
evaluate(handle, items[:8])  # warm-up, as every method gets
stats = {}
t = time.perf_counter()
outcomes = evaluate(handle, items, batch_size=64, stats=stats)
seconds = time.perf_counter() - t
tokens = sum(len(handle.tokenizer(i.prompt + i.target)["input_ids"]) for i in items)  # one teacher-forced pass each
answers = sum(len(t) + 1 for t in handle.token_ids([i.target for i in items], special=False))  # positions unembedded
from perf.flops import non_embedding_parameters
json.dump({"seconds": seconds, "correct": [o.correct for o in outcomes], "stats": stats, "tokens": tokens,
           "params": handle.card.n_parameters, "non_embedding": non_embedding_parameters(handle.model),
           "d_model": handle.card.d_model, "vocab": handle.card.vocab_size, "unembedded": answers},
          open(sys.argv[3], "w"))
"""

PLAIN_LOOP = """
import json, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
rows = [json.loads(l) for l in open(sys.argv[2])]
tok = AutoTokenizer.from_pretrained(sys.argv[1]); tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
stop = [tok.eos_token_id] + [i for i in tok("\\n", add_special_tokens=False)["input_ids"][:1]]
def answers(batch):
    enc = tok([r["prompt"] for r in batch], return_tensors="pt", padding=True)
    budget = max(len(tok(r["target"], add_special_tokens=False)["input_ids"]) for r in batch) + 2
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=budget, eos_token_id=stop, pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [t.split("\\n")[0].strip() for t in texts]
answers(rows[:8])
t = time.perf_counter()
correct = []
for i in range(0, len(rows), 64):
    batch = rows[i:i + 64]
    correct += [a == r["target"] for a, r in zip(answers(batch), batch)]
seconds = time.perf_counter() - t
raw = []
for i in range(0, len(rows), 64):
    batch = rows[i:i + 64]
    enc = tok([r["prompt"] for r in batch], return_tensors="pt", padding=True)
    budget = max(len(tok(r["target"], add_special_tokens=False)["input_ids"]) for r in batch) + 2
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=budget, eos_token_id=stop, pad_token_id=tok.pad_token_id)
    raw += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=False)
json.dump({"seconds": seconds, "correct": correct, "raw": raw}, open(sys.argv[3], "w"))
"""


def _child(code: str, *args: str) -> tuple[dict, float, float]:
    """Run code in a fresh python; (its JSON result, wall seconds, peak RSS MiB)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result = f.name
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args, result], env=ENV, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"child failed: {proc.stderr.read().decode()[-2000:]}")
    return json.loads(Path(result).read_text()), wall, usage.ru_maxrss / 1024


def lm_eval(model: str, folder: Path, items: list[dict]) -> tuple[dict, float, float]:
    out = folder / f"lm_eval_out_{abs(hash(model))}"  # one folder per model: results must not be mixed up
    path = Path(model).resolve()
    source = f"pretrained={path.parent},gguf_file={path.name}" if path.suffix == ".gguf" else f"pretrained={path}"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
           f"{source},dtype=float32", "--tasks", "bb_perf", "--include_path", str(folder),
           "--batch_size", "64", "--device", "cpu", "--log_samples", "--output_path", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"lm_eval failed: {proc.stderr.read().decode()[-3000:]}")
    by_id = {}
    for samples in out.rglob("samples_bb_perf*.jsonl"):  # one file per cell's task
        for line in samples.read_text().splitlines():
            row = json.loads(line)
            by_id[row["doc"]["id"]] = bool(row["exact_match"])
    return {"correct": [by_id[r["id"]] for r in items]}, wall, usage.ru_maxrss / 1024


PEAK = [1.0]


def _disagreements(name: str, ours: dict, other: dict, rows: list[dict]) -> None:
    differ = [k for k, (a, b) in enumerate(zip(ours["correct"], other["correct"])) if a != b]
    if differ:
        shown = ", ".join(f"{rows[k]['prompt']!r}->{rows[k]['target']!r} (brittlebench {ours['correct'][k]}, "
                          f"{name} {other['correct'][k]})" for k in differ[:3])
        print(f"  {len(differ)} items where brittlebench and {name} disagree, e.g. {shown}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="default,zoo/zoo-l6")
    parser.add_argument("--tasks", default="addition")
    parser.add_argument("--n", type=int, default=300, help="items per cell")
    parser.add_argument("--no-lm-eval", action="store_true")
    parser.add_argument("--no-run", action="store_true", help="skip the whole-run figures")
    parser.add_argument("--repeat", type=int, default=1, help="whole runs: the median of this many, after a "
                        "warm-up run when more than one (lm-eval likewise)")
    parser.add_argument("--predictors", help="the whole run with only these predictors (comma-separated), e.g. "
                        "the ones an earlier commit had, for a like-for-like figure against it")
    parser.add_argument("--real", action="store_true", help="only the real-model figures: SmolLM2-135M-Instruct "
                        "(fetched as `make real` does) on the pretrained suite, --n items per cell")
    parser.add_argument("--vocab", type=int, default=0, help="with --real: SmolLM2 with its vocabulary padded "
                        "to this many rows (zeros), a large-vocabulary stand-in built once in the cache")
    args = parser.parse_args()
    if args.real:
        return real_run(args)
    sys.path.insert(0, str(ROOT))
    from bench.model.load import DEFAULT_MODEL_PATH
    from tasks.export import export
    from tasks.registry import resolve_families

    import torch

    PEAK[0] = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul peak {PEAK[0]:.0f} GFLOP/s")
    families = resolve_families(args.tasks.split(","))
    items, shifts = [], {}
    for family in families.values():
        for cell in family.cells:
            items += family.generate(cell.name, args.n, seed=0)
            shifts[family.name, cell.name] = cell.shift
    folder = Path(tempfile.mkdtemp(prefix="bb-perf-"))
    export(items, shifts, "jsonl", folder)
    export(items, shifts, "lm-eval", folder, name="bb_perf")
    data = str(folder / "items.jsonl")
    rows = [json.loads(l) for l in Path(data).read_text().splitlines()]
    print(f"{len(items)} items from {', '.join(families)} ({args.n} per cell)\n")
    for model in [m for m in args.models.split(",") if m and m != "none"]:
        path = str(DEFAULT_MODEL_PATH) if model == "default" else model
        ours, _, ours_rss = _child(BRITTLEBENCH, path, data)
        plain, _, plain_rss = _child(PLAIN_LOOP, path, data)
        print(f"model {model}")
        print(f"  brittlebench evaluate   {len(items) / ours['seconds']:8.1f} items/s  peak RSS {ours_rss:6.0f} MiB  "
              f"(teacher-forced {ours['stats'].get('teacher_forced', 0)}, generated {ours['stats'].get('generated', 0)})")
        flops = (backbone_flops(ours["non_embedding"], ours["tokens"])
                 + unembedding_flops(ours["d_model"], ours["vocab"], ours["unembedded"]))
        gflops = flops / ours["seconds"] / 1e9
        print(f"  forward pass: {ours['non_embedding'] / 1e6:.2f} M non-embedding parameters x {ours['tokens']} tokens "
              f"+ the unembedding at {ours['unembedded']} answer positions, ~{gflops:.1f} GFLOP/s achieved "
              f"({gflops / PEAK[0]:.1%} of the fp32 matmul peak; lower bound: fallback generation and padded "
              "positions not counted)")
        print(f"  plain generate loop     {len(items) / plain['seconds']:8.1f} items/s  peak RSS {plain_rss:6.0f} MiB")
        agree = ours["correct"] == plain["correct"]
        _disagreements("plain loop", ours, plain, rows)
        line = f"  speed-up vs plain loop  {plain['seconds'] / ours['seconds']:8.2f}x"
        if not args.no_lm_eval:
            theirs, wall, rss = lm_eval(path, folder, rows)
            print(f"  lm-evaluation-harness   {len(items) / wall:8.1f} items/s  peak RSS {rss:6.0f} MiB  (whole command, "
                  f"{wall:.1f} s)")
            agree = agree and ours["correct"] == theirs["correct"]
            _disagreements("lm-eval", ours, theirs, rows)
            line += f"; vs lm-eval (whole command) {wall / ours['seconds']:.1f}x"
        print(line)
        print(f"  all agree on every item's exact match: {agree} "
              f"(accuracy {sum(ours['correct']) / len(items):.3f})\n")
    if not args.no_run:
        whole_run(args)


def _exported_run(tmp: Path, count_tokens=None):
    """The finished run in tmp/r: its results, its items, and those items exported for lm-eval into
    tmp/export (a JSONL and a task per cell, each cell's generation budget its longest target in
    `count_tokens`' tokens plus 2); returns (results, items, export folder, exported rows)."""
    from tasks import Item
    from tasks.export import export
    from tasks.registry import resolve_families

    results = json.loads((tmp / "r" / "results.json").read_text())
    items = [Item.from_dict(json.loads(line)) for name in ("base", "variants")
             for line in (tmp / "r" / "items" / f"{name}.jsonl").read_text().splitlines()]
    families = resolve_families(sorted({i.family for i in items}))
    shifts = {(f.name, c.name): c.shift for f in families.values() for c in f.cells}
    folder = tmp / "export"
    export(items, shifts, "jsonl", folder)
    export(items, shifts, "lm-eval", folder, name="bb_perf", count_tokens=count_tokens)
    rows = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    return results, items, folder, rows


def screen_wall(argv: list[str], out: str) -> float:
    """Wall seconds of the same run as a predict-only screen (`--predict-only`) into `out`."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.cli", "run", *argv, "--predict-only", "--out", out], env=ENV,
                   check=True, capture_output=True)
    return time.perf_counter() - started


def forward_flops(model: str, items) -> tuple[float, str]:
    """The FLOPs of one run's forward passes and how they were counted: 2 x non-embedding parameters
    x tokens (each shared prefix once, each item's own prompt tokens once (the trace's pass, which
    evaluation goes on from), each target) + 2 x d_model x vocab x rows unembedded (each prefix's last
    position, each item's last prompt position and logit-lens layers, each answer position and the end)."""
    from bench.model.load import load_model
    from bench.model.prefix import Prefixes
    from perf.flops import non_embedding_parameters

    handle = load_model(model)
    prefixes = Prefixes(handle, [i.prompt for i in items])
    own = sum(len(prefixes.ids[k]) - prefixes.length(prefixes.prefix[k]) for k in range(len(items)))
    shared = [p for p in prefixes.groups() if p]
    targets = handle.tokenizer([i.target for i in items], add_special_tokens=False)["input_ids"]
    tokens = own + sum(prefixes.length(p) for p in shared) + sum(len(t) for t in targets)
    card = handle.card
    rows = len(shared) + len(items) * (1 + card.n_layers) + sum(len(t) + 1 for t in targets)
    non_embedding = non_embedding_parameters(handle.model)
    flops = backbone_flops(non_embedding, tokens) + unembedding_flops(card.d_model, card.vocab_size, rows)
    return flops, (f"{non_embedding / 1e6:.0f} M non-embedding parameters x {tokens} tokens (prefixes once, own "
                   f"prompt tokens once, targets) + the {card.vocab_size} x {card.d_model} unembedding x {rows} rows "
                   "(last prompt positions, logit lens, answers)")


def whole_run(args) -> None:
    """The whole default run, and lm-evaluation-harness evaluating exactly that run's items alone."""
    from bench.model.load import DEFAULT_MODEL_PATH

    walls, warm_walls, lm_walls, last = [], [], [], {}
    pool = ["--predictors", args.predictors] if args.predictors else []

    def ours(tmp: str, warm: bool = False) -> None:
        """One whole run: cold (`--no-cache`), or warm (a cache of its own that an earlier run filled:
        traces and outcomes are read back, the rest is computed)."""
        shutil.rmtree(f"{tmp}/r", ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.cli", "run", "--out", f"{tmp}/r", *pool]
                       + ([] if warm else ["--no-cache"]),
                       env=dict(ENV, BRITTLEBENCH_CACHE=f"{tmp}/cache"), check=True, capture_output=True)
        (warm_walls if warm else walls).append(time.perf_counter() - started)
        last["warm" if warm else "cold"] = json.loads((Path(tmp) / "r" / "results.json").read_text())

    with tempfile.TemporaryDirectory() as tmp:
        ours(tmp)  # the first of several is a warm-up; its items are the ones lm-eval gets
        results, items, folder, rows = _exported_run(Path(tmp))
        screen = screen_wall(["--no-cache", *pool], f"{tmp}/s")
        ours(tmp, warm=True)  # fills the cache (not counted as warm: the first warm run below reads it)
        warm_walls.clear()
        if not args.no_lm_eval and args.repeat > 1:
            lm_walls.append(lm_eval(str(DEFAULT_MODEL_PATH), folder, rows)[1])  # its warm-up
        # Then one of each in turn: this machine's speed drifts by a third within an hour, and the
        # ratio is only meaningful between runs made side by side.
        for k in range(args.repeat if args.repeat > 1 else 0):
            ours(tmp)
            ours(tmp, warm=True)
            if not args.no_lm_eval:
                lm_walls.append(lm_eval(str(DEFAULT_MODEL_PATH), folder, rows)[1])
        if args.repeat == 1:
            ours(tmp, warm=True)
            if not args.no_lm_eval:
                lm_walls.append(lm_eval(str(DEFAULT_MODEL_PATH), folder, rows)[1])
    counted = slice(1, None) if args.repeat > 1 else slice(None)
    warm = statistics.median(warm_walls)
    wall = statistics.median(walls[counted])
    lm = (None, statistics.median(lm_walls[counted]), None) if lm_walls else None
    results, warm_results = last["cold"], last["warm"]  # the last run of each kind: its timings
    timings = results["timings"]
    inside = sum(timings.values())
    print(f"whole `brittlebench run` on the default suite ({len(items)} items, "
          f"{len(results['predictors'])} predictors): {wall:.1f} s wall, median of {len(walls[counted])} "
          f"({', '.join(f'{w:.1f}' for w in walls[counted])}; {inside:.1f} s in the last one's stages, the rest is "
          "Python start-up and imports)")
    print("  " + ", ".join(f"{k} {v:.2f}s ({v / wall:.0%})" for k, v in timings.items()))
    print(f"  evaluation: {results.get('evaluation')} (continued: answer tokens only, on the trace's kept prompt pass)")
    print(f"  predict-only screen (base region + blind predictions, no variant evaluated): {screen:.1f} s wall, "
          f"{screen / wall:.0%} of the whole run")
    shares = {n: p["seconds"] / wall for n, p in results["predictors"].items()}
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    print("  each predictor's share of the run (its fit + predict on the shared trace): " +
          ", ".join(f"{n} {s:.1%}" for n, s in ranked))
    if lm is not None:
        _, lm_wall, _ = lm
        print(f"  lm-evaluation-harness evaluating the same {len(items)} items alone: {lm_wall:.1f} s wall "
              f"(median of {len(lm_walls[counted])}: {', '.join(f'{w:.1f}' for w in lm_walls[counted])}); "
              f"the whole brittlebench run takes {wall / lm_wall:.2f}x its time"
              + (f" (run by run, in turn: {', '.join(f'{a / b:.2f}' for a, b in zip(walls[counted], lm_walls[counted]))})"
                 if len(lm_walls[counted]) == len(walls[counted]) > 1 else ""))
    print(f"second run of the same model, warm cache (traces and outcomes read back): {warm:.1f} s wall, median of "
          f"{len(warm_walls)} ({', '.join(f'{w:.1f}' for w in warm_walls)})"
          + (f"; {warm / lm[1]:.2f}x lm-evaluation-harness's time" if lm is not None else ""))
    print("  " + ", ".join(f"{k} {v:.2f}s" for k, v in warm_results["timings"].items())
          + f"; evaluation: {warm_results.get('evaluation')}")


def real_run(args) -> None:
    """A real pretrained model: the whole `brittlebench run` (every predictor, both tracks) on the
    pretrained suite, against lm-evaluation-harness evaluating exactly that run's items alone,
    exact match compared item for item."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from real_model import fetch, widened

    import torch

    gguf = widened(args.vocab) if args.vocab else fetch()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {gguf.name}")
    from bench.model.load import load_model

    tokenizer = load_model(str(gguf)).tokenizer
    count_tokens = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        argv = ["--model", str(gguf), "--suite", "pretrained", "--n", str(args.n), "--no-cache"]
        subprocess.run([sys.executable, "-m", "bench.cli", "run", *argv, "--out", f"{tmp}/r"], env=ENV, check=True,
                       capture_output=True)
        wall = time.perf_counter() - started
        results, items, folder, rows = _exported_run(Path(tmp), count_tokens)
        screen = screen_wall(argv, f"{tmp}/s")
        ours = {o["item_id"]: o["correct"] for o in map(json.loads, Path(f"{tmp}/r/outcomes.jsonl").read_text().splitlines())}
        theirs, lm_wall, lm_rss = lm_eval(str(gguf), folder, rows)
        warm = []  # the same run twice with the trace and outcome cache (~/.cache/brittlebench): the second reads it
        for k in range(2):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "bench.cli", "run", *argv[:-1], "--out", f"{tmp}/w{k}"], env=ENV,
                           check=True, capture_output=True)
            warm.append(time.perf_counter() - started)
        warm_timings = json.loads(Path(f"{tmp}/w1/results.json").read_text())["timings"]
    timings = results["timings"]
    print(f"whole `brittlebench run` on the pretrained suite ({len(items)} items, {args.n} per cell, "
          f"{len(results['predictors'])} predictors, both tracks): {wall:.1f} s wall")
    print("  " + ", ".join(f"{k} {v:.1f}s ({v / wall:.0%})" for k, v in timings.items()))
    print(f"  evaluation: {results.get('evaluation')} (continued: answer tokens only, on the trace's kept prompt pass)")
    flops, counted = forward_flops(str(gguf), items)
    seconds = timings.get("trace", 0.0) + timings.get("evaluate", 0.0)
    gflops = flops / seconds / 1e9
    peak = matmul_peak()
    print(f"  forward passes: {counted} in {seconds:.1f} s of trace + evaluate: ~{gflops:.1f} GFLOP/s, "
          f"{gflops / peak:.0%} of this machine's fp32 matmul peak ({peak:.0f} GFLOP/s, {torch.get_num_threads()} threads)")
    print(f"  predict-only screen (base region + blind predictions, no variant evaluated): {screen:.1f} s wall, "
          f"{screen / wall:.0%} of the whole run")
    mine = {"correct": [ours[r["id"]] for r in rows]}
    _disagreements("lm-eval", mine, theirs, rows)
    same = sum(a == b for a, b in zip(mine["correct"], theirs["correct"]))
    print(f"  lm-evaluation-harness evaluating the same {len(items)} items alone: {lm_wall:.1f} s wall "
          f"(peak RSS {lm_rss:.0f} MiB); the whole brittlebench run takes {wall / lm_wall:.2f}x its time")
    print(f"second run with the trace and outcome cache warm: {warm[1]:.1f} s wall, {warm[1] / lm_wall:.2f}x lm-eval's "
          f"time; " + ", ".join(f"{k} {v:.1f}s" for k, v in warm_timings.items()))
    print(f"  exact match equal on {same} of {len(rows)} items (accuracy: brittlebench "
          f"{sum(mine['correct']) / len(rows):.3f}, lm-eval {sum(theirs['correct']) / len(rows):.3f})")


if __name__ == "__main__":
    main()
