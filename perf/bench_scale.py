"""A large run's wall time and peak memory (prints figures; asserts nothing).

    python perf/bench_scale.py [--n 2500] [--model default] [--predictors ...]

Runs `brittlebench run --n N` (N items per cell of the model's suite) in a child
process and samples, every 0.2 s, the resident memory of the whole process tree (the
run and its predictor worker, summed), then prints the item count, the wall time, the
peak of the tree and of each process, and the time per stage from results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    out = []
    for child in map(int, text.split()):
        out += [child] + _children(child)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2500)
    parser.add_argument("--model", default="default")
    parser.add_argument("--predictors", default=None)
    parser.add_argument("--keep", default=None, help="keep the run folder here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp) / "run"
        cmd = [sys.executable, "-m", "bench.cli", "run", "--model", args.model, "--n", str(args.n),
               "--out", str(out), "--no-cache"] + (["--predictors", args.predictors] if args.predictors else [])
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peaks = {"tree": 0.0, "run": 0.0, "worker": 0.0}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                run = _rss_mib(proc.pid)
                worker = sum(_rss_mib(c) for c in _children(proc.pid))
                peaks["run"] = max(peaks["run"], run)
                peaks["worker"] = max(peaks["worker"], worker)
                peaks["tree"] = max(peaks["tree"], run + worker)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        done.set()
        sampler.join()
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"the run failed ({proc.returncode}): {err.decode()[-2000:]}")
        results = json.loads((out / "results.json").read_text())
    items = results["n_base"] + results["n_variant"]
    print(f"{items:,} items ({results['n_base']:,} base, {results['n_variant']:,} variant), "
          f"{len(results['predictors'])} predictors, model {args.model}")
    print(f"wall {wall:.1f} s; peak RSS: whole tree {peaks['tree']:.0f} MiB "
          f"(run {peaks['run']:.0f} MiB, predictor worker {peaks['worker']:.0f} MiB)")
    print("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in results["timings"].items()))
    slow = sorted(((p.get("seconds", 0.0), n) for n, p in results["predictors"].items()), reverse=True)[:5]
    print("slowest predictors: " + ", ".join(f"{n} {s:.1f}s" for s, n in slow))


if __name__ == "__main__":
    main()
