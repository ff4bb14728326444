"""Process-wide settings in one place: the garbage collector's policy and torch's native threads.

The command-line entry point (`bench.cli.entry`) and the predictor worker's own entry point call
`settle()`; library calls such as `bench.protocol.stages.run` change no process-wide state. The
two context managers below change native thread pools only for their body and put them back."""
from __future__ import annotations

import contextlib
import gc


def settle() -> None:
    """For a process that is about to run the benchmark and end: Python's cyclic collector paused
    while torch and transformers are imported (~0.6 s of collections that free nothing), and those
    modules' objects then frozen (`gc.freeze`), so later collections do not walk them again."""
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


_THREADS_KEEP_ROWS: dict[int, bool] = {}  # torch's thread count -> checked


def threads_keep_rows_invariant() -> bool:
    """Whether, with torch's current thread count, one row of a batched float32 product equals the
    row computed alone and the same product on one thread (MKL's strict CNR mode, which
    bench.model.load asks for with MKL_CBWR, makes it so on the CPUs we know); checked once per
    thread count."""
    import torch

    threads = torch.get_num_threads()
    if threads not in _THREADS_KEEP_ROWS:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(96, 576, generator=generator)
        w = torch.randn(576, 1536, generator=generator)
        batched, alone = x @ w, x[:1] @ w
        with torch_threads(1):
            single = x @ w
        _THREADS_KEEP_ROWS[threads] = bool(torch.equal(batched[:1], alone) and torch.equal(batched, single))
    return _THREADS_KEEP_ROWS[threads]


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


def invariant_threads():
    """Every core where rows stay batch-invariant with them (`threads_keep_rows_invariant`), else
    one thread, where they always do."""
    return contextlib.nullcontext() if threads_keep_rows_invariant() else torch_threads(1)
