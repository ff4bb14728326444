"""A run killed mid-way and started again with --resume finishes with the results of an
uninterrupted run, reusing what it stored."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.errors import UserError
from bench.protocol.spec import RunSpec
from bench.protocol.predict import fit_predict, open_predictors
from bench.protocol.stages import run
from predictors import Predictor

PREDICTORS = "random,confidence,knn_distance"
VOLATILE = {"created", "timings", "trace", "spec", "run_dir", "resumed", "evaluation", "scores_cached"}


def _stable(path):
    results = json.loads(path.read_text())
    out = {k: v for k, v in results.items() if k not in VOLATILE}
    for p in out["predictors"].values():
        p.pop("seconds", None)
        p.pop("cached", None)  # answers taken from the prediction cache: the same answers
    return out


def _start(out):
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--n", "12", "--predictors", PREDICTORS,
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc, path, sig, limit=120):
    started = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() - started < limit
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait()


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run every killed one must end up equal to."""
    folder = tmp_path_factory.mktemp("whole") / "run"
    assert subprocess.run([sys.executable, "-m", "bench.cli", "run", "--n", "12", "--predictors", PREDICTORS,
                           "--out", str(folder)], capture_output=True).returncode == 0
    return folder


@pytest.mark.parametrize("stage, sig", [("stages/outcomes.base.jsonl", signal.SIGKILL),
                                        ("predictions.sha256", signal.SIGKILL),
                                        ("run.json", signal.SIGTERM)])
def test_killed_run_resumes_to_the_same_results(stage, sig, whole, tmp_path):
    out = tmp_path / "killed"
    killed = _start(out)
    _kill_when(killed, out / stage, sig)
    assert not (out / "results.json").exists()
    if sig == signal.SIGTERM:  # unwound like Ctrl-C: the worker's folder is gone already
        assert killed.pid not in _worker_folder_owners()
    again = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--n", "12", "--predictors", PREDICTORS,
                            "--out", str(out), "--resume"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert killed.pid not in _worker_folder_owners()  # a SIGKILLed run's folder is swept by the next run
    assert _stable(out / "results.json") == _stable(whole / "results.json")
    resumed = json.loads((out / "results.json").read_text())["resumed"]
    if stage == "predictions.sha256":
        assert {"base evaluation", "sealed predictions"} <= set(resumed)
    if stage == "stages/outcomes.base.jsonl":
        assert "base evaluation" in resumed
    assert (out / "predictions.jsonl").read_bytes() == (whole / "predictions.jsonl").read_bytes()


def _worker_folder_owners() -> set[int]:
    import tempfile

    owners = set()
    for owner in Path(tempfile.gettempdir()).glob("brittlebench-worker-*/owner"):
        try:
            owners.add(int(owner.read_text()))
        except (OSError, ValueError):
            pass
    return owners


def test_a_worker_folder_left_by_a_dead_process_is_swept_and_a_live_ones_kept():
    import tempfile

    from bench.protocol.worker import PredictorPool

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = Path(tempfile.mkdtemp(prefix="brittlebench-worker-")), Path(tempfile.mkdtemp(prefix="brittlebench-worker-"))
    (dead / "owner").write_text(gone.stdout.strip())
    (alive / "owner").write_text(str(os.getppid()))
    try:
        with PredictorPool(["random"]) as pool:
            pool.ready()
            assert not dead.exists() and alive.exists()
            mine = pool._scratch
            assert (mine / "owner").read_text() == str(os.getpid())
        assert not mine.exists()
    finally:
        import shutil

        shutil.rmtree(dead, ignore_errors=True)
        shutil.rmtree(alive, ignore_errors=True)


def test_resume_refuses_other_settings_and_missing_runs(tmp_path):
    run(RunSpec(n=3, out=tmp_path / "r", predictors=("random",)), log=lambda m: None)
    with pytest.raises(UserError, match="other settings"):
        run(RunSpec(n=4, out=tmp_path / "r", predictors=("random",), resume=True), log=lambda m: None)
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "notes.txt").write_text("not a run")
    with pytest.raises(UserError, match="nothing to resume"):
        run(RunSpec(n=3, out=tmp_path / "stray", resume=True), log=lambda m: None)
    with pytest.raises(UserError, match="--resume to continue"):
        run(RunSpec(n=3, out=tmp_path / "r", predictors=("random",)), log=lambda m: None)


def test_resume_with_nothing_there_starts_the_run(tmp_path):
    """A retry loop reruns the same command: a run killed before its folder existed just starts."""
    first = run(RunSpec(n=3, out=tmp_path / "new", predictors=("random",), resume=True), log=lambda m: None)
    again = run(RunSpec(n=3, out=tmp_path / "new", predictors=("random",), resume=True), log=lambda m: None)
    assert first["predictions_sha256"] == again["predictions_sha256"] and (tmp_path / "new" / "results.json").is_file()


class Hangs(Predictor):
    """Hypothesis: none; never returns."""

    name = "hangs"

    def predict(self, model, items):
        time.sleep(60)


class Raises(Predictor):
    """Hypothesis: none; raises."""

    name = "raises"

    def predict(self, model, items):
        raise RuntimeError("boom")


class BadShape(Predictor):
    name = "bad_shape"

    def predict(self, model, items):
        return np.zeros(len(items) + 1)


class NaNs(Predictor):
    name = "nans"

    def predict(self, model, items):
        return np.full(len(items), np.nan)


class OutOfRange(Predictor):
    name = "out_of_range"

    def predict(self, model, items):
        return np.full(len(items), 1.5)


class Fine(Predictor):
    name = "fine"

    def predict(self, model, items):
        return np.full(len(items), 0.5)


class Exits(Predictor):
    """Hypothesis: none; takes its process down."""

    name = "exits"

    def predict(self, model, items):
        os._exit(3)


class Prints(Predictor):
    """Hypothesis: none; chatters on stdout, which must not garble the worker's answers."""

    name = "prints"

    def predict(self, model, items):
        print('{"ok": true, "scores": [0.0]}')
        return np.full(len(items), 0.25)


def test_faulty_predictors_are_marked_failed_and_the_others_finish():
    from tasks import get_family

    items = [i.sealed() for i in get_family("addition").generate("digits=4", 5)]
    names = [f"tests.bench.test_resume:{c}" for c in ("Hangs", "Raises", "BadShape", "NaNs", "OutOfRange", "Exits",
                                                         "Prints", "Fine")]
    started = time.time()
    pool = open_predictors(names, 1.0, log=lambda m: None)
    skipped = pool.skipped
    with pool:
        scores, status = fit_predict(pool, [], items, log=lambda m: None)
    assert time.time() - started < 20
    assert skipped == {}
    assert "predictor-timeout" in status["hangs"]["reason"]
    assert "RuntimeError: boom" in status["raises"]["reason"]
    assert "shape" in status["bad_shape"]["reason"]
    assert "NaN" in status["nans"]["reason"]
    assert "outside [0, 1]" in status["out_of_range"]["reason"]
    assert "worker exited" in status["exits"]["reason"]
    assert status["prints"]["status"] == "ok" and list(scores["prints"]) == [0.25] * 5
    assert status["fine"]["status"] == "ok" and sorted(scores) == ["fine", "prints"]
    assert status["fine"]["cls"] == "tests.bench.test_resume:Fine"


class PidA(Predictor):
    """Hypothesis: none; scores which process computed it (its id, as a fraction), taking a while."""

    name = "pid_a"

    def predict(self, model, items):
        time.sleep(0.3)  # its own time, as its status records
        return np.full(len(items), os.getpid() / 2**32)


class PidB(PidA):
    name = "pid_b"


def test_without_a_timeout_each_predictor_answers_alone_and_failures_stay_its_own():
    """No --predictor-timeout: the worker asks the predictors one after another; every predictor's
    answer, or its failure and reason, is its own, and the order is the order asked."""
    from tasks import get_family

    items = [i.sealed() for i in get_family("addition").generate("digits=4", 5)]
    names = [f"tests.bench.test_resume:{c}" for c in ("PidA", "PidB", "Raises", "BadShape", "NaNs", "OutOfRange",
                                                         "Prints", "Fine")]
    with open_predictors(names, None, log=lambda m: None) as pool:
        scores, status = fit_predict(pool, [], items, log=lambda m: None)
    assert status["pid_a"]["seconds"] >= 0.3 and status["pid_b"]["seconds"] >= 0.3  # each its own time
    assert "RuntimeError: boom" in status["raises"]["reason"]
    assert "shape" in status["bad_shape"]["reason"] and "NaN" in status["nans"]["reason"]
    assert "outside [0, 1]" in status["out_of_range"]["reason"]
    assert list(scores["prints"]) == [0.25] * 5 and list(scores["fine"]) == [0.5] * 5
    assert list(status) == ["pid_a", "pid_b", "raises", "bad_shape", "nans", "out_of_range", "prints", "fine"]

    # One that takes its process down: the rest still answer, it fails with the reason, alone.
    crash = [f"tests.bench.test_resume:{c}" for c in ("Fine", "Exits", "Prints", "Raises")]
    with open_predictors(crash, None, log=lambda m: None) as pool:
        scores, status = fit_predict(pool, [], items, log=lambda m: None)
    assert "worker exited" in status["exits"]["reason"]
    assert list(scores["fine"]) == [0.5] * 5 and list(scores["prints"]) == [0.25] * 5
    assert "RuntimeError: boom" in status["raises"]["reason"]


def test_ctrl_c_reaches_the_whole_process_group_and_ends_in_one_line(tmp_path):
    """A terminal's Ctrl-C signals the run's process group (the predictor worker has a session of its
    own): one line to the user, exit 130, no traceback, and no process left behind."""
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--n", "12", "--out", str(out), "--no-cache"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    started = time.time()
    while not (out / "stages" / "outcomes.base.jsonl").exists():  # the history is computed next
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() - started < 120
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1].decode()
    if proc.returncode != 130 or "Traceback" in err or not err.strip().splitlines()[-1].startswith(
            "brittlebench: interrupted"):
        pytest.fail(f"exit {proc.returncode}, stderr:\n{err}")
    assert proc.pid not in _worker_folder_owners()  # its worker (a session of its own) was closed
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a process of the interrupted run is still there")


def test_an_interruption_a_library_turned_into_its_own_error_still_ends_in_one_line(monkeypatch, capsys):
    """numpy's `tofile`, hit by Ctrl-C, raises a TypeError in place of the KeyboardInterrupt: the
    run still says it was interrupted (exit 130, one line), while the same error without an
    interruption stays a bug's traceback."""
    from types import SimpleNamespace

    from bench import cli

    def mangled(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise TypeError("expected str, bytes or os.PathLike object, not BufferedWriter") from None

    def plain(args):
        raise TypeError("a bug")

    for func, expect in ((mangled, 130), (plain, TypeError)):
        parser = SimpleNamespace(parse_args=lambda argv, f=func: SimpleNamespace(func=f))
        monkeypatch.setattr(cli, "build_parser", lambda p=parser: p)
        if expect is TypeError:
            with pytest.raises(TypeError, match="a bug"):
                cli.main([])
        else:
            assert cli.main([]) == 130
            assert capsys.readouterr().err.strip() == "brittlebench: interrupted (a run can continue with --resume)"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
