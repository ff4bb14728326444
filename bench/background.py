"""Work in a forked child process, beside the caller's own work on the other core.

`Background` computes one function's result there (the run's pooled scoring while this process
scores each family). `Staged` runs a generator there one stage at a time (the training history's
checkpoints while this process traces and evaluates the model itself): the first stage starts at
once, each later one only when the caller asks for it, so the order of work stays the caller's.

Either way the child sends the pickled result back through a pipe and leaves with `os._exit`.
Where the platform does not fork safely (anything but Linux), where forking fails, or where the
child fails, the caller computes the same thing in its own process: the same function on the same
arguments, so the same numbers. The child holds torch (if loaded) and the BLAS/OpenMP pools to one
thread: OpenMP's pool does not survive a fork, and two processes of one thread each are what the
two cores are for."""
from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import struct
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator


@contextlib.contextmanager
def long_lived():
    """Python's cyclic garbage collector paused while the objects made inside are made (the imports
    of torch, transformers or scikit-learn: ~0.6 s of collections that free nothing), and every
    object there is then frozen (`gc.freeze`): later collections, here and in the children forked
    from here, do not walk them again (a full one took 0.16-0.25 s of a run, twice), and a forked
    child does not copy their pages by marking them. `gc.unfreeze()` hands them back to the
    collector (a run in a longer-lived process does, when it ends)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


def one_thread():
    """Native thread pools (BLAS, OpenMP) held to one thread: two processes scoring side by side on
    two cores, not four threads fighting over them."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _fork() -> tuple[int, int, int] | None:
    """(pid, read end, write end) of a fork with a pipe (pid 0 in the child), or None where not."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        read, write = os.pipe()
        with warnings.catch_warnings():  # Python 3.12+ warns on forking a threaded process; the child
            warnings.simplefilter("ignore", DeprecationWarning)  # only computes and leaves with os._exit
            pid = os.fork()
    except OSError:
        return None
    if pid == 0:
        # Ctrl-C is the caller's to answer: it stops (kills) this child, which must not unwind the
        # caller's frames it was forked with.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    return pid, read, write


def _kill(pid: int | None) -> None:
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


def write_all(fd: int, data: bytes) -> None:
    """Every byte of `data` to the pipe `fd` (a pipe takes a large write in parts)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Claims:
    """Indices two processes take in turn: a pipe holding them, read two bytes at a time (a read
    that small is atomic), made before the fork so that both hold it."""

    def __init__(self, order: Iterable[int]):
        self._read, write = os.pipe()
        write_all(write, b"".join(struct.pack("<H", k) for k in order))
        os.close(write)  # once every index is taken, reading gives nothing

    def taken(self) -> Iterator[int]:
        """The indices this process takes, one at a time, until none is left."""
        while self._read is not None and len(data := os.read(self._read, 2)) == 2:
            yield struct.unpack("<H", data)[0]

    def close(self) -> None:
        if self._read is not None:
            os.close(self._read)
            self._read = None


class Background:
    def __init__(self, fn: Callable[..., Any], *args: Any):
        self._fn, self._args = fn, args
        self._pid: int | None = None
        self._read: int | None = None
        forked = _fork()
        if forked is None:
            return
        pid, read, write = forked
        if pid == 0:  # the child: compute, hand the result over, leave without running any cleanup
            code = 1
            try:
                os.close(read)
                write_all(write, pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL))
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._read = pid, read

    def result(self) -> Any:
        """The child's result, or the same computed here where there is none."""
        if self._pid is not None:
            with os.fdopen(self._read, "rb") as source:
                data = source.read()
            self._read = None
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            if status == 0 and data:
                return pickle.loads(data)
        return self._fn(*self._args)

    def cancel(self) -> None:
        """Stop the child if it is still there (the caller was interrupted)."""
        _kill(self._pid)
        self._pid = None
        if self._read is not None:
            os.close(self._read)
            self._read = None


_GO, _STOP = b"g", b"s"


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Staged:
    """`fn(*args)`, a generator of `stages` values, run in a forked child: `next_stage()` returns
    the next value. The child computes the first at once and each later one only when it is asked
    for (`ask`, or `next_stage` itself): nothing runs ahead of the caller's order; `close()` ends it
    where stages are left.
    Without a child (see the module), or after one fails, the generator runs here: the values
    already received are skipped, the rest computed in this process."""

    def __init__(self, fn: Callable[..., Iterator[Any]], *args: Any, stages: int, fork: bool = True):
        self._fn, self._args, self.stages = fn, args, stages
        self.received = 0
        self._asked = 0  # stages the child was let begin
        self._pid: int | None = None
        self._results: int | None = None
        self._control: int | None = None
        self._here: Iterator[Any] | None = None
        if not (fork and stages > 0 and sys.platform.startswith("linux")):
            return
        control_read, control_write = os.pipe()
        forked = _fork()
        if forked is None:
            os.close(control_read)
            os.close(control_write)
            return
        pid, results_read, results_write = forked
        if pid == 0:
            os.close(results_read)
            os.close(control_write)  # the caller's end: when the caller is gone, reading it ends the child
            self._child(control_read, results_write)
        os.close(results_write)
        os.close(control_read)
        self._pid, self._results, self._control = pid, results_read, control_write

    @property
    def forked(self) -> bool:
        """Whether a child computes the stages still to come."""
        return self._pid is not None

    def _child(self, control: int, results: int) -> None:  # never returns
        code = 1
        try:
            values = self._fn(*self._args)
            for k in range(self.stages):
                if k and os.read(control, 1) != _GO:
                    break
                data = pickle.dumps(next(values), protocol=pickle.HIGHEST_PROTOCOL)
                write_all(results, struct.pack("<Q", len(data)) + data)
            code = 0
        finally:
            os._exit(code)

    def ready(self) -> bool:
        """Whether a stage the child was let begin is done (its value is there to take without
        waiting); False where no child computes one."""
        if self._pid is None or self._asked <= self.received:
            return False
        return bool(select.select([self._results], [], [], 0)[0])

    def ask(self) -> None:
        """Let the child begin the next stage now (the caller works meanwhile; `next_stage` takes it)."""
        if self._pid is not None and self._asked <= self.received < self.stages:
            try:
                if self.received:
                    os.write(self._control, _GO)
            except OSError:
                self._end_child(kill=True)
            self._asked = self.received + 1

    def next_stage(self) -> Any:
        """The next stage's value (from the child, else computed here); StopIteration past the last."""
        if self.received >= self.stages:
            raise StopIteration
        self.ask()
        if self._pid is not None:
            try:
                size = struct.unpack("<Q", _read_exactly(self._results, 8))[0]
                value = pickle.loads(_read_exactly(self._results, size))
            except (EOFError, OSError, pickle.UnpicklingError, struct.error):
                self._end_child(kill=True)  # it failed: what is left is computed here
            else:
                self.received += 1
                if self.received == self.stages:
                    self._end_child()
                return value
        if self._here is None:  # no child (any more): the same generator here, past what was received
            self._here = self._fn(*self._args)
            for _ in range(self.received):
                next(self._here)
        value = next(self._here)
        self.received += 1
        return value

    def _end_child(self, kill: bool = False) -> None:
        if self._pid is not None:
            if kill:
                _kill(self._pid)
            else:
                with contextlib.suppress(OSError):
                    os.write(self._control, _STOP)
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(self._pid, 0)
            self._pid = None
        for name in ("_results", "_control"):
            fd = getattr(self, name)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, None)

    def close(self, kill: bool = False) -> None:
        """End the child (the stages left are not computed); `kill` where the caller was interrupted."""
        self._end_child(kill=kill)
        self._here = None
