"""Predictors run here, in a separate process that never holds a target.

The run's process hands this worker only what a predictor may see: the sealed items, the
calibration observations, the architecture card, the tokenizer and the trace arrays
(memory-mapped from a private folder). The worker has no model weights, no run folder, no seed,
no command line and none of the caller's `BRITTLEBENCH_*` environment, and it runs in an empty
working folder, which is also its HOME (the caches under the caller's ~/.cache are not where it
looks), so a plugin cannot find what it must not know by looking around its own process (`gc`,
frames, `sys.argv`, `os.environ`) either. It answers in JSON, never in pickle, so a plugin
cannot run code in the process that holds the targets.

Protocol: the parent writes pickled requests to stdin; the worker answers each with one JSON line
on the stdout it was started with (a plugin's own prints go to stderr).
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from predictors.trace import Trace

from ..process import long_lived

# What of the caller's environment the worker keeps, besides every LC_* (its PYTHONPATH and thread counts are set)
_KEEP_ENV = ("PATH", "HOME", "LANG", "TMPDIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VIRTUAL_ENV", "SYSTEMROOT")


class WorkerError(RuntimeError):
    """The worker died or broke the protocol (not a predictor's own failure)."""


# ---------------------------------------------------------------- worker side

class TraceStore:
    """The run's trace arrays, read-only, row by item id."""

    def __init__(self, folder: Path, withheld: Sequence[str] = ()):
        self.withheld = frozenset(withheld)  # items whose trace this context does not hold (the blind track)
        meta = json.loads((folder / "trace.json").read_text())
        self.rows = {item_id: r for r, item_id in enumerate(meta["item_ids"])}
        self.prompts: list[str] = meta["prompts"]
        self.sites = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in meta["sites"]}

    def take(self, items: Sequence[Any]) -> Trace:
        rows = []
        for item in items:
            r = self.rows.get(item.id)
            if r is None and item.id in self.withheld:
                raise PermissionError(f"the blind track has no trace of variant items (asked for {item.id!r}): "
                                      "a blind predictor may trace base items only; declare track = 'trace' to "
                                      "read variant traces")
            if r is None or self.prompts[r] != item.prompt:
                raise PermissionError(f"item {item.id!r} is not one of this run's items; "
                                      "only the run's own items can be traced")
            rows.append(r)
        index = np.asarray(rows, dtype=np.int64)
        return Trace(tuple(item.id for item in items), **{n: np.asarray(a[index]) for n, a in self.sites.items()})


class MechanisticClient:
    """`model.mechanistic` in the worker: each call is a request that the run's process answers with
    `bench.model.mechanistic.RegionAccess` (the worker holds no weights). Items travel as (id, prompt);
    the run's process refuses any that is not in the context's region (the blind track: base items)."""

    def __init__(self, ask):
        self._ask = ask
        self.declared = False  # whether the predictor being asked declared `mechanistic` in its reads

    def _request(self, op: str, **fields: Any) -> Any:
        if not self.declared:
            raise PermissionError("mechanistic access needs 'mechanistic' in the predictor's reads")
        return self._ask({"op": op, **fields})

    def read(self, items: Sequence[Any], sites: Sequence[str], layers: Sequence[int] | None = None,
             positions: Sequence[int] | None = None) -> list[dict[str, np.ndarray]]:
        """Per item, {"SITE.L": array}: resid_post.L (pos, d_model), pattern.L (head, pos, pos),
        z.L (pos, head, d_head), for `layers` (all by default), at token `positions` (negative from
        the end; all by default; of pattern, the query rows)."""
        return self._request("read", items=_pairs(items), sites=list(sites),
                             layers=None if layers is None else [int(x) for x in layers],
                             positions=None if positions is None else [int(p) for p in positions])

    def ablate(self, items: Sequence[Any], heads: dict[int, Sequence[int]] | None = None, how: str = "zero",
               mlps: Sequence[int] = ()) -> list[np.ndarray]:
        """Per item, the next-token probabilities with `heads` ({layer: [head, ...]}) and the MLPs of
        the blocks in `mlps` zero- or mean-ablated."""
        return self._request("ablate", items=_pairs(items), how=how, mlps=[int(x) for x in mlps],
                             heads={str(int(k)): [int(h) for h in v] for k, v in (heads or {}).items()})

    def patch(self, source: Any, target: Any, layer: int, positions: Sequence[int]) -> np.ndarray:
        """The target's next-token probabilities with resid_post.`layer` at `positions` from the source's."""
        return self._request("patch", items=_pairs([source, target]), layer=int(layer),
                             positions=[int(p) for p in positions])

    def next_token(self, items: Sequence[Any]) -> list[np.ndarray]:
        """Per item, the unchanged next-token probabilities."""
        return self._request("next_token", items=_pairs(items))

    def composition(self, kind: str = "k") -> np.ndarray:
        """(layer, head, layer, head) Q-, K- or V-composition scores from the weights."""
        return self._request("composition", kind=kind)


def _pairs(items: Sequence[Any]) -> list[list[str]]:
    return [[str(item.id), str(item.prompt)] for item in items]


class WorkerView:
    """The `ModelView` predictors get in the worker: card, tokenizer, the run's traces, and the
    mechanistic access the run's process serves."""

    def __init__(self, card: Any, tokenizer_json: str, store: TraceStore, history: tuple = (),
                 mechanistic: MechanisticClient | None = None):
        self.card = card
        self.history = history  # the checkpoints along training, oldest first, ending with this model ("final")
        self.mechanistic = mechanistic
        self._tokenizer_json = tokenizer_json
        self._tokenizer = None
        self._store = store
        self._pieces: dict[int, str] = {}

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_str(self._tokenizer_json)
            # The run's tokenizer may carry the padding its last batched call turned on.
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
        out = []
        for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=False) if texts else []:
            for i in encoding.ids:
                if i not in self._pieces:
                    self._pieces[i] = self._tokenizer.decode([i], skip_special_tokens=False)
            out.append([self._pieces[i] for i in encoding.ids])
        return out

    def trace(self, items: Sequence[Any]) -> Trace:
        return self._store.take(items)


def _serve() -> None:
    import signal

    from predictors import NotApplicable, load_predictor

    # Ctrl-C is the run's to answer (then it closes this worker), never a traceback here; the worker
    # is started in a session of its own as well, so that a terminal's Ctrl-C does not reach it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reply_to = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # a plugin's prints must not corrupt the answers
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    sys.stdin = open(os.devnull)
    view = None
    defaults: dict[str, Any] = {"calibration": [], "sealed": []}
    loaded: dict[str, Any] = {}

    def answer(message: dict) -> None:
        reply_to.write(json.dumps(message) + "\n")
        reply_to.flush()

    def ask(request: dict) -> Any:
        """A mechanistic request to the run's process, answered in the middle of a `predict`."""
        answer({"access": request})
        reply = pickle.load(stdin)  # from the process that started this one: trusted
        if not reply["ok"]:
            raise (PermissionError if reply.get("refused") else ValueError)(reply["error"])
        return reply["result"]

    mechanistic = MechanisticClient(ask)

    while True:
        try:
            request = pickle.load(stdin)
        except EOFError:
            return
        op = request["op"]
        if op == "load":
            infos = []
            for name, params in request["predictors"]:
                try:
                    predictor = load_predictor(name)
                    if params:
                        predictor.set_params(**params)
                    loaded[name] = predictor
                    infos.append({"name": name, "ok": True, "info": _info(predictor)})
                except Exception as e:  # reported, and the parent decides
                    infos.append({"name": name, "ok": False, "error": str(e)})
            answer({"ok": True, "predictors": infos})
        elif op == "warm":
            with long_lived():  # what the predictors import lives as long as the worker
                _warm_up()
            answer({"ok": True})
        elif op == "context":
            store = TraceStore(Path(request["trace_dir"]), request["withheld"])
            view = WorkerView(request["card"], request["tokenizer_json"], store,
                              _history(request, store), mechanistic)
            defaults = {"calibration": request["calibration"], "sealed": request["sealed"]}
            answer({"ok": True})
        elif op == "predict":
            calibration = request["calibration"] if request["calibration"] is not None else defaults["calibration"]
            sealed = request["sealed"] if request["sealed"] is not None else defaults["sealed"]
            try:
                mechanistic.declared = "mechanistic" in loaded[request["name"]].reads
                fitted = loaded[request["name"]].clone().fit(view, calibration)
                scores = np.asarray(fitted.predict(view, sealed), dtype=np.float64)
                if scores.ndim != 1:
                    raise ValueError(f"returned shape {scores.shape}, expected ({len(sealed)},)")
                answer({"ok": True, "scores": [float(v) for v in scores],
                        "notes": [str(n) for n in getattr(fitted, "notes_", [])], "claims": _claims(fitted)})
            except NotApplicable as e:  # nothing to read here: listed, never ranked
                answer({"ok": False, "not_applicable": str(e) or "not applicable to these items"})
            except BaseException as e:  # the predictor's failure, told to the parent
                answer({"ok": False, "error": f"{type(e).__name__}: {e}"})


def _claims(fitted: Any) -> list[dict]:
    """The predictor's claims (`Predictor.claim`) as JSON; one that is not a `Claim` fails the predictor."""
    from predictors import Claim

    claims = list(getattr(fitted, "claims_", []))
    for claim in claims:
        if not isinstance(claim, Claim):
            raise TypeError(f"claims_ holds a {type(claim).__name__}, not a Claim: make claims with self.claim(...)")
    return [claim.to_json() for claim in claims]


def _history(request: dict, store: TraceStore) -> tuple:
    """The context's checkpoints as `predictors.history.Checkpoint`s, the evaluated model last."""
    from predictors.history import Checkpoint

    if not request["history"]:
        return ()
    final = {o.item.id: bool(o.correct) for o in request["calibration"]}
    return tuple(Checkpoint(p["name"], p["step"], p["correct"],
                            TraceStore(Path(p["trace_dir"]), request["withheld"]).take if p["trace_dir"] else None)
                 for p in request["history"]) + (Checkpoint("final", request["final_step"], final, store.take),)


WARM = ("sklearn.covariance", "sklearn.linear_model", "sklearn.metrics", "sklearn.model_selection",
        "sklearn.neighbors", "sklearn.pipeline", "sklearn.preprocessing", "tokenizers")


def _warm_up() -> None:
    """Import what the built-in predictors use, so that no predictor's time includes it."""
    import importlib

    for name in WARM:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(ImportError):  # scikit-learn's chunked pairwise distances: 128 MiB at a time, not 1 GiB
        importlib.import_module("sklearn").set_config(working_memory=128)


def _info(predictor) -> dict[str, Any]:
    from predictors import track_of

    cls = type(predictor)
    return {"predictor": predictor.name, "version": str(predictor.version), "reads": sorted(predictor.reads),
            "track": track_of(predictor), "params": json.loads(json.dumps(predictor.get_params(), default=repr)),
            "cls": f"{cls.__module__}:{cls.__qualname__}", "source": source_digest(cls)}


def source_digest(cls: type) -> str | None:
    """The SHA-256 of the code a predictor class runs: for it and each predictor class it derives
    from, every module of its top-level package (a built-in predictor's helpers are its package's),
    or its own file where it has no package (a plugin file's sibling modules are not covered: pass
    --no-cache after editing them); None where the class has no file."""
    import hashlib
    import inspect

    from predictors import Predictor

    files: set[Path] = set()
    for klass in cls.__mro__:
        if klass is not cls and not issubclass(klass, Predictor):
            continue
        try:
            path = Path(inspect.getsourcefile(klass) or "")
        except TypeError:  # no source file
            if klass is cls:
                return None
            continue
        package = getattr(sys.modules.get(klass.__module__.split(".")[0]), "__path__", None)
        if package:
            files.update(file for folder in package for file in Path(folder).rglob("*.py"))
        elif path.is_file():
            files.add(path)
        elif klass is cls:
            return None
    h = hashlib.sha256()
    for file in sorted(files):
        h.update(file.read_bytes())
    return h.hexdigest()[:16] if files else None


# ---------------------------------------------------------------- parent side

def save_trace(trace: Trace, prompts: Sequence[str], folder: Path) -> Path:
    """The trace arrays as .npy files the worker maps read-only."""
    folder.mkdir(parents=True, exist_ok=True)
    sites = trace.site_names()
    for name in sites:
        np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(trace, name)), allow_pickle=False)
    (folder / "trace.json").write_text(json.dumps({"item_ids": list(trace.item_ids), "prompts": list(prompts),
                                                   "sites": sites}))
    return folder


class PredictorPool:
    """The parent's end: starts the worker, loads predictors there, and asks for predictions.
    A predictor that hangs past the timeout (`--predictor-timeout`) takes the worker down with it;
    the next request starts a new one, handed the current context first."""

    def __init__(self, names: Sequence[str], timeout: float | None = None,
                 params: dict[str, dict] | None = None):
        self.timeout = timeout
        self.infos: dict[str, dict] = {}  # asked name -> what the predictor says of itself
        self.errors: dict[str, str] = {}  # asked name -> why it could not be loaded
        self.skipped: dict[str, dict] = {}  # what `bench.protocol.predict.check_predictors` reported skipped
        self.access = None  # the context's `bench.model.mechanistic.RegionAccess`, where a predictor reads it
        self._load = {"op": "load", "predictors": [(n, (params or {}).get(n)) for n in names]}
        self._context: dict | None = None
        self._contexts = 0
        self._defaults: tuple | None = None
        self._owed = 0  # answers owed to requests sent without waiting: the load's, then the warm-up's
        self._proc: subprocess.Popen | None = None
        self._closing: threading.Thread | None = None
        self._lines: queue.Queue = queue.Queue()
        _sweep_orphans()
        self._scratch = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX))
        (self._scratch / "owner").write_text(str(os.getpid()))
        try:
            self._start()  # it starts while the caller loads the model; `ready()` waits
        except BaseException:
            self.close()
            raise

    def ready(self) -> "PredictorPool":
        """Wait until the predictors are loaded in the worker (`infos`, `errors` filled)."""
        if self._owed == 2:
            self._collect(1)
        return self

    def _start(self) -> None:
        """A fresh worker, sent the load and warm-up requests without waiting for their answers."""
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV or k.startswith("LC_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        # One native thread: a predictor's last bits do not depend on the machine's core count.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        empty = self._scratch / "cwd"
        empty.mkdir(exist_ok=True)
        env["HOME"] = str(empty)  # not the caller's: the caches under ~/.cache hold outcomes and other answers
        self._proc = subprocess.Popen([sys.executable, "-m", "bench.protocol.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=None, cwd=empty, env=env,
                                      start_new_session=True)  # it ends when its stdin does
        self._lines = queue.Queue()
        threading.Thread(target=_pump, args=(self._proc.stdout, self._lines), daemon=True).start()
        self._send(self._load)
        self._send({"op": "warm"})
        self._owed = 2

    def _collect(self, n: int) -> None:
        """Read `n` of the answers owed; the load's fills `infos` and `errors` (the first worker's only:
        a restarted one loads the same predictors)."""
        for _ in range(n):
            line = self._lines.get()
            if line is None:
                starting = self._owed == 2
                self._kill()
                raise WorkerError("the predictor worker exited" + (" while starting" if starting else ""))
            if self._owed == 2 and not self.infos and not self.errors:
                for entry in json.loads(line)["predictors"]:
                    if entry["ok"]:
                        self.infos[entry["name"]] = entry["info"]
                    else:
                        self.errors[entry["name"]] = entry["error"]
            self._owed -= 1

    def _send(self, request: dict) -> None:
        try:
            pickle.dump(request, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._kill()
            raise WorkerError("the predictor worker exited") from None

    def _ask(self, request: dict, timeout: float | None) -> dict:
        if self._proc is None:  # a predictor took the last worker down
            self._start()
            if self._context is not None and request is not self._context:
                self._ask(self._context, timeout=None)
        self._collect(self._owed)
        self._send(request)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # a predictor's mechanistic requests come first, each answered here
            try:
                line = self._lines.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._kill()
                raise TimeoutError(f"did not finish within --predictor-timeout {timeout:g}s") from None
            if line is None:
                self._kill()
                raise WorkerError("the predictor worker exited")
            reply = json.loads(line)
            if "access" not in reply:
                return reply
            self._send(self._serve_access(reply["access"]))

    def _serve_access(self, request: dict) -> dict:
        """One mechanistic request of the predictor being asked, answered from `self.access`."""
        if self.access is None:
            return {"ok": False, "refused": True,
                    "error": "this run serves no mechanistic access here (no predictor of this track declares it)"}
        try:
            return {"ok": True, "result": self.access.serve(request)}
        except PermissionError as e:
            return {"ok": False, "refused": True, "error": str(e)}
        except (ValueError, KeyError, IndexError, TypeError, NotImplementedError) as e:
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}

    def set_context(self, card: Any, tokenizer_json: str, trace: Trace, prompts: Sequence[str],
                    calibration: list | None = None, sealed: list | None = None, withheld: Sequence = (),
                    history: Sequence = (), final_step: int | None = None, access: Any = None) -> None:
        """What the predictors asked next may read: the card, the tokenizer, the trace of the run's
        items, and the default calibration and sealed items (sent once, not with each request).
        `withheld`: ids of the run's items left out of `trace` on purpose (the blind track's variants),
        which a predictor's `model.trace` refuses with the reason. Each context replaces the last,
        its arrays in a new folder. `access`: what answers the predictors' mechanistic requests."""
        self.access = access
        self._contexts += 1
        folder = save_trace(trace, prompts, self._scratch / f"trace-{self._contexts}")
        by_id = dict(zip(trace.item_ids, prompts))
        points = [{"name": p.name, "step": p.step, "correct": p.correct,
                   "trace_dir": None if p.trace is None else
                   str(save_trace(p.trace, [by_id[i] for i in p.trace.item_ids],
                                  self._scratch / f"trace-{self._contexts}-{k}"))}
                  for k, p in enumerate(history)]
        self._context = {"op": "context", "card": card, "tokenizer_json": tokenizer_json, "trace_dir": str(folder),
                         "calibration": list(calibration or []), "sealed": list(sealed or []),
                         "withheld": list(withheld), "history": points, "final_step": final_step}
        self._ask(self._context, timeout=None)
        self._defaults = (calibration, sealed)  # the caller's own lists: `predict` checks identity

    def predict(self, name: str, calibration: list, sealed: list) -> tuple[np.ndarray, list[str], list[dict]]:
        """Scores, notes and claims (as JSON) from predictor `name` (fit on `calibration`) for `sealed`;
        raises with the reason."""
        same = self._defaults
        reply = self._ask({"op": "predict", "name": name,
                           "calibration": None if same and calibration is same[0] else calibration,
                           "sealed": None if same and sealed is same[1] else sealed},
                          timeout=self.timeout)
        if reply["ok"]:
            return np.asarray(reply["scores"], dtype=np.float64), reply["notes"], reply["claims"]
        if "not_applicable" in reply:
            raise PredictorNotApplicable(reply["not_applicable"])
        raise PredictorFailed(reply["error"])

    def _kill(self) -> None:
        self._owed = 0
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self, wait: bool = True) -> None:
        """Stop the worker and remove its folder (idempotent). `wait=False` lets it exit in the
        background (its interpreter's teardown overlaps the caller's next work); a later `close()`
        waits for that."""
        if not wait:
            if self._closing is None:
                self._closing = threading.Thread(target=self.close, name="worker-close", daemon=True)
                self._closing.start()
            return
        if self._closing is not None and self._closing is not threading.current_thread():
            self._closing.join()
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._proc.stdin.close()
                self._proc.wait(timeout=5)
        self._kill()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "PredictorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SCRATCH_PREFIX = "brittlebench-worker-"


def _sweep_orphans() -> None:
    """Remove worker folders whose owning process is gone (it was killed before it could clean
    up: SIGKILL, a power cut). A folder whose owner is alive, or another user's, is left alone."""
    for folder in Path(tempfile.gettempdir()).glob(_SCRATCH_PREFIX + "*"):
        try:
            pid = int((folder / "owner").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive, but not ours to signal
            continue


class PredictorFailed(Exception):
    """The predictor itself raised; the message is its exception, as the worker saw it."""


class PredictorNotApplicable(Exception):
    """The predictor said it has nothing to read on these items (`predictors.NotApplicable`)."""


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.decode("utf-8"))
    lines.put(None)


if __name__ == "__main__":
    _serve()
