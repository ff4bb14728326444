"""Process-wide settings in one place: MKL's reproducible branch, the garbage collector's policy and
torch's native threads.

The command line (`bench.cli.main`) asks for MKL's reproducible branch (`reproducible_numerics`)
before any command runs, and `brittlebench run` and a sweep's run process call `settle()`; library
calls such as `bench.protocol.stages.run` change no process-wide state (a model loaded where rows
are not batch-invariant warns, naming the setting). The two context managers below change native
thread pools only for their body and put them back."""
from __future__ import annotations

import contextlib
import functools
import gc
import os
from pathlib import Path

#: The fewest rows the runner multiplies at once: on some CPUs (AMD EPYC, measured) a product of 1-3
#: rows takes another kernel than a larger one, even in MKL's strict mode, while every block of 4 or
#: more rows equals the same rows of a larger product. The trace pads its unembedding to this many.
MIN_ROWS = 4


def reproducible_mkl_branch(cpuinfo: str | None = None) -> str:
    """MKL's strict conditional numerical reproducibility mode for this CPU: its AVX-512 code path
    where an Intel CPU has AVX-512 (float32 products twice as fast as on the AVX2 path, measured
    here), else the AVX2 one (MKL's named branches are for Intel CPUs; elsewhere it picks its own).

    Results must not depend on --batch-size. Without this, MKL picks its matrix kernels by shape, so
    an item's row of a batched product differs in the last bits from the same row computed alone;
    in strict mode every row is the same whatever the batch and thread count. The branch is part of
    what a trace's last bits depend on (`numerics`): the trace cache keeps the two apart."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "AVX512,STRICT" if "GenuineIntel" in cpuinfo and "avx512f" in flags else "AVX2,STRICT"


def reproducible_numerics() -> None:
    """MKL's strict branch for this CPU (`reproducible_mkl_branch`) asked for in the environment,
    where the user set none. MKL reads it once, at its first call: before any model runs.
    `bench.model.load.rows_are_batch_invariant` checks it took."""
    os.environ.setdefault("MKL_CBWR", reproducible_mkl_branch())


def settle() -> None:
    """For a process that is about to run the benchmark and end: Python's cyclic collector paused
    while torch and transformers are imported (~0.6 s of collections that free nothing), and those
    modules' objects then frozen (`gc.freeze`), so later collections do not walk them again; MKL's
    reproducible branch asked for (`reproducible_numerics`)."""
    reproducible_numerics()
    with long_lived():
        for name in ("torch", "transformers"):
            with contextlib.suppress(ImportError):
                __import__(name)


@contextlib.contextmanager
def long_lived():
    """The collector paused while the objects made inside are made, and every object there then
    frozen: they live as long as the process."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


def one_thread():
    """Native thread pools (BLAS, OpenMP) held to one thread: a sum's last bits do not depend on the
    machine's core count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


_THREADS_KEEP_ROWS: dict[tuple, bool] = {}  # (torch's thread count, the products checked) -> verdict


def threads_keep_rows_invariant(model=None) -> bool:
    """Whether, with torch's current thread count, a block of MIN_ROWS rows of a batched product
    equals those rows computed alone, wherever they sit in the batch, and the same product on one
    thread (MKL's strict mode makes it so for some shapes on the CPUs we know, not for all). Checked
    once per thread count on each kind of product `model` has (every linear layer's shape; a fixed
    product without a model)."""
    import torch

    products = _products(model)
    key = (torch.get_num_threads(), tuple(signature for signature, _, _ in products))
    if key not in _THREADS_KEEP_ROWS:
        generator = torch.Generator().manual_seed(0)
        held = True
        with torch.inference_mode():
            for signature, width, product in products:
                x = torch.randn(128, width, generator=generator).to(signature[-1])
                batched = product(x)
                with torch_threads(1):
                    single = product(x)
                held = held and torch.equal(batched, single) and all(
                    torch.equal(batched[at:at + MIN_ROWS], product(x[at:at + MIN_ROWS])) for at in (0, 101))
        _THREADS_KEEP_ROWS[key] = held
    return _THREADS_KEEP_ROWS[key]


def _products(model) -> list[tuple[tuple, int, object]]:
    """(signature ending in the dtype, input width, product) for each kind of product `model` runs
    on a CPU (none where it runs elsewhere: threads are a CPU's matter)."""
    import torch

    if model is None:
        return [(("matmul", 576, 1536, torch.float32), 576, _fixed_product())]
    out: dict[tuple, tuple] = {}
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.device.type != "cpu" \
                or isinstance(module, torch.nn.Embedding):
            continue
        if isinstance(module, torch.nn.Linear):
            width = module.in_features
        elif type(module).__name__ == "Conv1D":  # GPT-2's: x @ weight, weight (in, out)
            width = weight.shape[0]
        else:
            continue
        out.setdefault((type(module).__name__, *weight.shape, module.bias is not None, weight.dtype), (width, module))
    return [(signature, width, module) for signature, (width, module) in out.items()]


@functools.lru_cache(maxsize=1)
def _fixed_product():
    """The product checked where no model is named (made once, not on every check's cache lookup)."""
    import torch

    w = torch.randn(576, 1536, generator=torch.Generator().manual_seed(1))
    return lambda x: x @ w


@contextlib.contextmanager
def torch_threads(n: int):
    """torch on `n` threads for the body, the count before it restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def invariant_threads(model=None):
    """Every core where rows stay batch-invariant with them (`threads_keep_rows_invariant`, on
    `model`'s products), else one thread, where they always do."""
    return contextlib.nullcontext() if threads_keep_rows_invariant(model) else torch_threads(1)
