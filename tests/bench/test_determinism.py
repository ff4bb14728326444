"""Same seed and inputs: byte-identical items, predictions, outcomes and results (apart from
timestamps, durations and cache bookkeeping) across batch sizes and a process restart."""
import json
import subprocess
import sys

from bench.protocol.spec import RunSpec

from bench.protocol.stages import run

VOLATILE = {"created", "timings", "trace", "spec", "run_dir", "scores_cached"}
FILES = ("items/base.jsonl", "items/variants.sealed.jsonl", "items/variants.jsonl", "predictions.jsonl",
         "predictions.sha256", "outcomes.jsonl")


def _stable(results: dict) -> dict:
    out = {k: v for k, v in results.items() if k not in VOLATILE}
    for p in out["predictors"].values():
        p.pop("seconds", None)
        p.pop("cached", None)  # answers from the prediction cache: the same answers
        for request in p.get("mechanistic", {}).values():  # what it asked stays compared, not how long it took
            request.pop("seconds", None)
    # cache bookkeeping: items whose traces came from the disk cache take the full evaluation path,
    # the same outcomes by another way (how many of each the fast path decided stays compared)
    out["evaluation"] = {k: v for k, v in out["evaluation"].items() if k != "continued"}
    return out


def test_byte_identical_across_batch_sizes_and_processes(tmp_path):
    # checkpoint_agreement reads the default model's history: its checkpoints are evaluated and traced
    # too, on the base region and the variants
    predictors = ("random", "confidence", "entropy", "knn_distance", "mahalanobis", "logit_lens_settling",
                  "attention_shift", "prompt_length", "checkpoint_agreement",
                  # mechanistic access: reads, ablation and probes on base items, answered by the run's process
                  "hop_resolution", "lookup_heads", "carried_state")
    for b in (1, 8, 64):
        run(RunSpec(n=6, out=tmp_path / f"b{b}", batch_size=b, predictors=predictors, use_cache=False),
            log=lambda m: None)
    code = ("from bench.protocol.spec import RunSpec; from bench.protocol.stages import run; from pathlib import Path; "
            f"run(RunSpec(n=6, out=Path({str(tmp_path / 'fresh')!r}), batch_size=8, predictors={predictors!r}), "
            "log=lambda m: None)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    reference = tmp_path / "b1"
    for other in ("b8", "b64", "fresh"):
        for name in FILES:
            assert (reference / name).read_bytes() == (tmp_path / other / name).read_bytes(), (other, name)
        a = _stable(json.loads((reference / "results.json").read_text()))
        b = _stable(json.loads((tmp_path / other / "results.json").read_text()))
        assert a == b, other



def test_matrix_rows_do_not_depend_on_the_batch_in_this_process():
    """What batch-size invariance rests on: MKL_CBWR set before any product (the command line and
    conftest call bench.process.reproducible_numerics).
    (With MKL_CBWR=AVX512 on an AVX-512 machine this returns False: the check is not blind.)"""
    from bench.model.load import rows_are_batch_invariant

    assert rows_are_batch_invariant()


def test_the_reproducible_mkl_branch_follows_the_cpu():
    """MKL's AVX-512 branch only where an Intel CPU reports AVX-512; the AVX2 branch otherwise."""
    from bench.process import reproducible_mkl_branch

    intel512 = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
    assert reproducible_mkl_branch(intel512) == "AVX512,STRICT"
    assert reproducible_mkl_branch(intel512.replace(" avx512f avx512bw", "")) == "AVX2,STRICT"
    assert reproducible_mkl_branch(intel512.replace("GenuineIntel", "AuthenticAMD")) == "AVX2,STRICT"
    assert reproducible_mkl_branch("") == "AVX2,STRICT"
    # "avx512f" inside another flag's name is not the flag
    assert reproducible_mkl_branch("vendor_id\t: GenuineIntel\nflags\t\t: avx2 xavx512fx\n") == "AVX2,STRICT"



def test_the_command_line_sets_the_reproducible_branch_and_the_library_does_not():
    """Process-wide settings are the entry point's: importing the runner and loading a model leave
    MKL_CBWR unset; `bench.cli.main` sets it (a value the user set is kept)."""
    import os

    script = ("import os\n"
              "from bench.model.load import load_model\n"
              "from bench.protocol.stages import run\n"
              "load_model('default')\n"
              "assert 'MKL_CBWR' not in os.environ, 'a library call set MKL_CBWR'\n"
              "from bench.cli import main\n"
              "main(['tasks', 'list'])\n"
              "print(os.environ['MKL_CBWR'])\n")
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].endswith(",STRICT")
    kept = script.replace("'MKL_CBWR' not in os.environ", "os.environ['MKL_CBWR'] == 'COMPATIBLE'")
    done = subprocess.run([sys.executable, "-c", kept], env=env | {"MKL_CBWR": "COMPATIBLE"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "COMPATIBLE"
