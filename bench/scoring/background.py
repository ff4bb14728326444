"""One computation in a forked child process, beside the caller's own work: the second core scores
while the first does (scoring holds each process to one native thread: `one_thread`). The child computes `fn(*args)` and sends the pickled result back through a
pipe; where the platform does not fork safely (anything but Linux), where forking fails, or where
the child fails, `result()` computes it in this process instead. The same function on the same
arguments either way, so the same numbers."""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import warnings
from typing import Any, Callable


def one_thread():
    """Native thread pools (BLAS, OpenMP) held to one thread: two processes scoring side by side on
    two cores, not four threads fighting over them."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


class Background:
    def __init__(self, fn: Callable[..., Any], *args: Any):
        self._fn, self._args = fn, args
        self._pid: int | None = None
        self._read: int | None = None
        if not sys.platform.startswith("linux"):
            return
        try:
            read, write = os.pipe()
            with warnings.catch_warnings():  # Python 3.12+ warns on forking a threaded process; the child
                warnings.simplefilter("ignore", DeprecationWarning)  # only computes and leaves with os._exit
                pid = os.fork()
        except OSError:
            return
        if pid == 0:  # the child: compute, hand the result over, leave without running any cleanup
            code = 1
            try:
                os.close(read)
                data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write, "wb") as out:
                    out.write(data)
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
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            except OSError:
                pass
            self._pid = None
        if self._read is not None:
            os.close(self._read)
            self._read = None
