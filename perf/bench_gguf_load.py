"""Load once: a GGUF file's first load (dequantized, then cached) against its second (the cache),
side by side in one process (prints figures; asserts nothing).

    python perf/bench_gguf_load.py [FILE.gguf]    # default: SmolLM2-135M-Instruct (scripts/real_model.py fetch)

The cache goes to a fresh temporary $BRITTLEBENCH_CACHE, removed at the end.
"""
from __future__ import annotations

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


def main() -> int:
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
    else:
        sys.path.insert(0, str(ROOT / "scripts"))
        from real_model import fetch

        path = fetch()
    os.environ["BRITTLEBENCH_CACHE"] = cache = tempfile.mkdtemp(prefix="brittlebench-gguf-bench-")
    try:
        from bench.model import gguf_cache
        from bench.model.load import load_model

        stored = []
        store = gguf_cache.store

        def timed_store(*args, **kwargs):
            start = time.perf_counter()
            try:
                return store(*args, **kwargs)
            finally:
                stored.append(time.perf_counter() - start)

        gguf_cache.store = timed_store
        start = time.perf_counter()
        gguf_cache.file_digest(path)
        digest = time.perf_counter() - start
        seconds, prints = [], []
        for _ in range(2):
            start = time.perf_counter()
            handle = load_model(str(path))
            seconds.append(time.perf_counter() - start)
            prints.append(handle.fingerprint)
            del handle
        [entry] = gguf_cache.entries()
        print(f"{path.name} ({path.stat().st_size / 1e6:.1f} MB; cached as {entry.bytes / 1e6:.1f} MB float32)")
        print(f"  first load (dequantize + cache): {seconds[0]:7.2f} s   of which writing the cache {stored[0]:.2f} s")
        print(f"  second load (the cache):         {seconds[1]:7.2f} s   ({seconds[0] / seconds[1]:.1f}x faster)")
        print(f"  the file's SHA-256, in each:     {digest:7.2f} s")
        print(f"  fingerprints: {prints[0]} {prints[1]} ({'equal' if prints[0] == prints[1] else 'DIFFERENT'})")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
