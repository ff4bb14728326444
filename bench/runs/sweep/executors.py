"""Where a sweep's runs execute. Either way each run is a process of its own (`child`), so that a run
that crashes, leaks memory or holds a GPU takes nothing else down with it:

  local  a pool of threads on this machine, each waiting on one run's process at a time
         (`concurrent.futures`); `--gpus-per-run` hands each process its own CUDA_VISIBLE_DEVICES
  ray    one Ray task per run, asking for `--cpus-per-run` CPUs and `--gpus-per-run` GPUs; Ray places
         them on the cluster (`--address`) or on a cluster it starts here; the driver collects results
"""
from __future__ import annotations

import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Iterator

from ...errors import UserError
from .child import PARENT, RunTask

if TYPE_CHECKING:  # a Ray worker imports this module: it stays light
    from .grid import Execution


@dataclass(frozen=True)
class RunOutcome:
    id: str
    status: str  # "finished" or "failed"
    reason: str | None
    wall_s: float
    action: str | None = None  # what the run's process did: "run", "resume" (a folder started before) or "skip"


# -- one run, in its own process ------------------------------------------------------------------

_live: set[subprocess.Popen] = set()  # the runs' processes this process started and waits on
_live_lock = threading.Lock()
_stopping = threading.Event()  # set by `stop_children`: a run about to start stops at once


def run_in_child(task: RunTask, env: dict[str, str] | None = None) -> RunOutcome:
    """Run `task` in a new process (its output appended to `task.log`) and wait for it."""
    environment = dict(os.environ if env is None else env)
    from ...process import reproducible_mkl_branch

    environment.setdefault("MKL_CBWR", reproducible_mkl_branch())  # before the child runs a model, as the command line does
    environment.setdefault("TOKENIZERS_PARALLELISM", "false")
    environment[PARENT] = str(os.getpid())  # the run stops when this process is gone
    if task.threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            environment.setdefault(name, str(task.threads))
    task.log.parent.mkdir(parents=True, exist_ok=True)
    task.outcome.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(task.log, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "bench.runs.sweep.child"], stdin=subprocess.PIPE,
                                   stdout=log, stderr=subprocess.STDOUT, env=environment,
                                   cwd=task.cwd if os.path.isdir(task.cwd) else None)
        with _live_lock:
            _live.add(process)
            if _stopping.is_set():
                process.terminate()
        try:
            process.stdin.write(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
            process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = process.wait()
        finally:
            with _live_lock:
                _live.discard(process)
    wall = round(time.perf_counter() - start, 3)
    try:
        told = json.loads(task.outcome.read_text())
        task.outcome.unlink()
        return RunOutcome(task.id, told["status"], told["reason"], wall, told.get("action"))
    except (OSError, ValueError, KeyError):  # it died without a word: a crash, the OOM killer, a signal
        how = f"exited with code {code}"
        if code < 0:
            how = f"was killed by {signal.Signals(-code).name if -code in signal.valid_signals() else -code}"
        return RunOutcome(task.id, "failed", f"its process {how} (see {task.log})", wall)


def stop_children() -> None:
    """SIGTERM to every run process this process is waiting on: each unwinds as on Ctrl-C."""
    with _live_lock:
        _stopping.set()
        for process in list(_live):
            if process.poll() is None:
                process.terminate()


# -- executors ------------------------------------------------------------------------------------

class LocalExecutor:
    """Runs at once: `workers` (default: this machine's cores, or its GPUs / --gpus-per-run)."""

    def __init__(self, execution: Execution):
        self.execution = execution
        self.gpus = self._gpu_slots(execution)
        cores = os.cpu_count() or 1
        if execution.workers:
            self.workers = execution.workers
        elif self.gpus is not None:
            self.workers = self.gpus.qsize()
        else:
            self.workers = max(1, cores // (execution.cpus_per_run or 1))
        self.threads = execution.cpus_per_run or max(1, cores // self.workers)

    @staticmethod
    def _gpu_slots(execution: Execution) -> "queue.Queue[str] | None":
        """With --gpus-per-run G: the visible GPUs, G to a slot (CUDA_VISIBLE_DEVICES of one run)."""
        if not execution.gpus_per_run:
            return None
        per_run = int(execution.gpus_per_run)
        if per_run != execution.gpus_per_run:
            raise UserError("--gpus-per-run must be a whole number with the local executor (Ray shares GPUs "
                            "by fractions: --executor ray)")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            ids = [d.strip() for d in visible.split(",") if d.strip()]
        else:
            import torch

            ids = [str(i) for i in range(torch.cuda.device_count())]
        if len(ids) < per_run:
            raise UserError(f"--gpus-per-run {per_run}, but {len(ids)} GPU(s) are visible here")
        slots: queue.Queue[str] = queue.Queue()
        for k in range(len(ids) // per_run):
            slots.put(",".join(ids[k * per_run:(k + 1) * per_run]))
        return slots

    def describe(self) -> dict:
        return {"executor": "local", "workers": self.workers, "threads_per_run": self.threads,
                "gpus_per_run": self.execution.gpus_per_run}

    def _one(self, task: RunTask) -> RunOutcome | None:
        if _stopping.is_set():
            return None
        if self.gpus is None:
            return run_in_child(task)
        slot = self.gpus.get()
        try:
            return run_in_child(task, dict(os.environ, CUDA_VISIBLE_DEVICES=slot))
        finally:
            self.gpus.put(slot)

    def map(self, tasks: Iterable[RunTask]) -> Iterator[RunOutcome]:
        """Each task's outcome as it finishes. On Ctrl-C (or SIGTERM) the runs going are stopped,
        none is started, and KeyboardInterrupt goes on up."""
        _stopping.clear()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sweep-run")
        try:
            for future in as_completed([pool.submit(self._one, replace(t, threads=self.threads)) for t in tasks]):
                if (outcome := future.result()) is not None:
                    yield outcome
        except BaseException:
            stop_children()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """One Ray task per run; the runs' folders must be on a filesystem every node sees."""

    def __init__(self, execution: Execution):
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'brittlebench[sweep]'") from None
        self.version = ray.__version__
        self.execution = execution
        self.cpus = execution.cpus_per_run or 1

    def describe(self) -> dict:
        return {"executor": "ray", "ray": self.version, "address": self.execution.address, "cpus_per_run": self.cpus,
                "gpus_per_run": self.execution.gpus_per_run, "workers": self.execution.workers}

    def _connect(self) -> bool:
        """Connect to the cluster (or start one here); True where this call started it."""
        import logging

        import ray

        if ray.is_initialized():  # the caller's own cluster (a notebook, a test)
            return False
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            if self.execution.address:
                ray.init(address=self.execution.address, **options)
            else:
                ray.init(num_cpus=self.execution.workers * self.cpus if self.execution.workers else None, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {self.execution.address}" if self.execution.address else "a local Ray cluster"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"cannot connect to {where}: {first} (start one with 'ray start --head')") from None
        return True

    def map(self, tasks: Iterable[RunTask]) -> Iterator[RunOutcome]:
        import ray

        started = self._connect()
        # The task only waits on the run's own process, which inherits the CUDA_VISIBLE_DEVICES and
        # OMP_NUM_THREADS Ray's worker holds: the worker can be reused; a task whose node is lost is
        # tried once more (it resumes what it had stored).
        remote = ray.remote(num_cpus=self.cpus, num_gpus=self.execution.gpus_per_run, max_retries=1)(run_in_child)
        waiting = [replace(t, threads=self.cpus) for t in tasks]
        limit = self.execution.workers or len(waiting)  # at most this many submitted at once
        pending: dict = {}
        try:
            while waiting or pending:
                while waiting and len(pending) < limit:
                    task = waiting.pop(0)
                    pending[remote.remote(task)] = task
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as e:
                        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                        yield RunOutcome(task.id, "failed", f"its Ray task failed: {first}", 0.0)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()


def make_executor(execution: Execution) -> LocalExecutor | RayExecutor:
    return RayExecutor(execution) if execution.executor == "ray" else LocalExecutor(execution)
