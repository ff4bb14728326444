"""One run of a sweep, in a process of its own: `python -m bench.runs.sweep.child`.

It reads its `RunTask` (pickled) on standard input, locks the run's log (so that a run left going by
a killed sweep and the same run started again never write one folder together), runs the protocol
exactly as `brittlebench run` does, and writes its `RunOutcome` as JSON to `task.outcome`. Its
stdout and stderr are the run's log. When the process that started it dies (a sweep killed with
SIGKILL), it stops within a second, as on Ctrl-C: the run continues next time with --resume.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from ... import io
from ...errors import UserError


@dataclass(frozen=True)
class RunTask:
    """What the child is handed: the run and where its log (which it locks) and outcome go."""

    id: str
    spec: object  # a RunSpec (its `out` is the run folder); `object` here keeps this module free of imports
    log: Path
    outcome: Path
    cwd: str  # the sweep's working folder: relative paths in the spec are relative to it
    threads: int | None = None  # OMP/MKL threads for the run (None: as the environment says)


@contextlib.contextmanager
def run_lock(path: Path, wait_s: float = 60.0):
    """An exclusive lock on `path` for as long as the run goes (released when its process ends,
    however it ends); a UserError when another process (the same run left going by a killed
    sweep) holds it for longer than `wait_s`."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(path, "a") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(f"another process is running this run (it holds {path}): wait for it to "
                                    "stop, then rerun the sweep") from None
                time.sleep(0.2)
        yield


PARENT = "BRITTLEBENCH_SWEEP_PARENT"  # the pid of the process that started this one (it may be gone already)


def _stop_when_orphaned() -> None:
    """SIGTERM to this process once the one that started it is gone: the run unwinds as on Ctrl-C."""
    parent = int(os.environ.get(PARENT, os.getppid()))

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def main() -> int:
    def terminated(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    _stop_when_orphaned()
    task: RunTask = pickle.load(sys.stdin.buffer)
    from predictors import PredictorError
    from tasks import TaskError

    print(f"== {task.id}: {task.spec.out} (process {os.getpid()})", file=sys.stderr, flush=True)
    action = "run"
    try:
        with run_lock(task.log):
            from ...process import settle
            from ...protocol.stages import run

            settle()  # this process is the run's: its settings are the entry point's to make

            # Decided under the lock: a run left going by a killed sweep may have started (or even
            # finished) the folder since the sweep looked.
            folder = Path(task.spec.out)
            if (folder / "run.json").is_file():
                action = "skip" if (folder / "results.json").is_file() else "resume"
            if action != "skip":
                run(replace(task.spec, resume=action == "resume"),
                    log=lambda message: print(message, file=sys.stderr, flush=True))
    except (UserError, TaskError, PredictorError) as e:
        print(f"brittlebench: error: {e}", file=sys.stderr)
        code, reason = 2, str(e)
    except KeyboardInterrupt:
        print("brittlebench: interrupted (the sweep continues it when rerun)", file=sys.stderr)
        code, reason = 130, "interrupted"
    except Exception as e:  # any other failure is this run's alone: recorded, and the sweep goes on
        traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        code, reason = 1, f"{type(e).__name__}: {first}" if first else type(e).__name__
    else:
        code, reason = 0, None
    io.write_json(task.outcome, {"id": task.id, "status": "failed" if code else "finished", "reason": reason,
                                 "action": action})
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # stopped before the run began (its sweep was already gone)
        sys.exit(130)
