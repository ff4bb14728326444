"""`brittlebench sweep`: a grid of ordinary runs, each in its own process, locally or on Ray.

One small grid serves the integration tests: three tiny models, one with a checkpoint, with
--at-each-checkpoint: four runs (a@step-1, a@final, b, c), each a couple of seconds of work. Its local
sweep is killed after its first run finishes and rerun to the end; Ray's sweep of the same grid
must give the same run folders."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.runs.sweep.grid import Grid, plan, read_config, sweep_options
from bench.protocol.spec import RunSpec
from bench.protocol.verify import verify
from tests.bench.test_determinism import FILES, VOLATILE
from tests.conftest import save_tiny

RUN = ["--tasks", "addition", "--n", "2", "--shots", "0", "--predictors", "random,confidence,prompt_length"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-models")
    a = save_tiny("gpt2", root / "a", seed=1)
    save_tiny("gpt2", a / "checkpoints" / "step-1", seed=2)
    return [str(a), str(save_tiny("llama", root / "b", seed=3)), str(save_tiny("gpt2", root / "c", seed=4))]


def grid_argv(models, out) -> list[str]:
    return ["sweep", "--models", ",".join(models), "--at-each-checkpoint", *RUN, "--out", str(out)]


def index(out) -> dict:
    return json.loads((Path(out) / "sweep.json").read_text())


@pytest.fixture(scope="module")
def local_sweep(models, tmp_path_factory):
    """The grid swept locally (2 processes) by a driver killed (SIGKILL) once its first run finished,
    then by the same command again. Returns (out, the ids finished before the kill, their results.json
    bytes then, the index then)."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    # A trace cache of its own, as Ray's sweep below has: how a run evaluates (continuing the trace's
    # prompt passes or not, in results["evaluation"]) depends on whether its traces were cached.
    cache = {"BRITTLEBENCH_CACHE": str(out.parent / "cache")}
    driver = subprocess.Popen([sys.executable, "-m", "bench.cli", *grid_argv(models, out), "--workers", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, **cache))
    finished, deadline = [], time.monotonic() + 300
    while not finished and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            finished = [r["id"] for r in index(out)["runs"] if r["status"] == "finished"]
        except (OSError, ValueError):
            continue
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    driver.stderr.close()
    before = {r["id"]: r for r in index(out)["runs"]}
    finished = [i for i, r in before.items() if r["status"] == "finished"]  # by the time it was killed
    kept = {i: (out / before[i]["folder"] / "results.json").read_bytes() for i in finished}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BRITTLEBENCH_CACHE", cache["BRITTLEBENCH_CACHE"])
        assert main(grid_argv(models, out)) == 0
    return out, finished, kept, before


def test_a_killed_sweep_finishes_when_rerun_and_skips_what_finished(local_sweep, capsys):
    out, finished, kept, before = local_sweep
    runs = {r["id"]: r for r in index(out)["runs"]}
    assert list(runs) == ["a@step-1-seed0", "a@final-seed0", "b-seed0", "c-seed0"]
    assert sum(r["status"] == "pending" for r in before.values()) >= 2  # the kill left work to do
    assert all(r["status"] == "finished" for r in runs.values())
    assert index(out)["counts"] == {"runs": 4, "finished": 4, "failed": 0, "pending": 0}
    for run_id in finished:  # skipped, not run again: results untouched but for the summaries' views
        assert runs[run_id]["action"] == "skip" and runs[run_id]["wall_s"] > 0
        again = json.loads((out / runs[run_id]["folder"] / "results.json").read_bytes())
        again.get("protocols", {}).pop("leave-one-model-out", None)
        assert again == json.loads(kept[run_id])
    # The rest ran now: afresh, or resumed from what the killed sweep's run had stored (or, if that run
    # finished after all before it noticed its sweep was gone, kept).
    assert all(runs[i]["action"] in ("run", "resume", "skip") for i in runs if i not in finished)
    assert any(runs[i]["action"] in ("run", "resume") for i in runs if i not in finished)
    for run in runs.values():
        assert verify(out / run["folder"])[0]
        assert (out / run["log"]).is_file()
    capsys.readouterr()
    assert main(grid_argv(index(out)["grid"]["models"], out)) == 0  # a third time: nothing to do
    assert "4 of 4 runs finished (4 before this time)" in capsys.readouterr().out


def test_summaries_where_the_grid_makes_them_meaningful(local_sweep):
    out = local_sweep[0]
    summaries = {(s["kind"], s["name"]): s for s in index(out)["summaries"]}
    assert set(summaries) == {("leave-one-model-out", "seed0"), ("leaderboard", "seed0"), ("over-training", "a-seed0")}
    assert all(s["status"] == "ok" for s in summaries.values())
    assert summaries["leaderboard", "seed0"]["runs"] == ["a@final-seed0", "b-seed0", "c-seed0"]  # final models only
    board = json.loads((out / "leaderboard" / "seed0" / "leaderboard.json").read_text())
    # every model of the grid is on the board: ranked, or left out with its reason (the tiny
    # untrained test models fail their own base region)
    assert sorted(board["models"] + list(board["left_out"])) == ["a", "b", "c"]
    assert all("base region" in why for why in board["left_out"].values())
    over = json.loads((out / "runs" / "a-seed0" / "over_training.json").read_text())
    assert [(p["name"], p["step"], p["run"]) for p in over["points"]] == [("step-1", 1, "step-1"), ("final", 2, "final")]
    results = json.loads((out / "runs" / "b-seed0" / "results.json").read_text())
    assert sorted(results["protocols"]["leave-one-model-out"]["other_models"]) == sorted(
        str(out / "runs" / f) for f in ("a-seed0/final", "c-seed0"))


def _stable(results: dict, resumed: bool) -> dict:
    """test_determinism's comparison; a run resumed after the kill also says what it reused
    (`resumed`) and how its items were evaluated then; the summaries' views are not the run's."""
    out = {k: v for k, v in results.items() if k not in VOLATILE | {"protocols"}
           | ({"resumed", "evaluation"} if resumed else set())}
    for p in out["predictors"].values():
        p.pop("seconds", None)
        p.pop("cached", None)  # answers from the prediction cache: the same answers
    return out


def test_ray_sweep_gives_the_local_sweeps_run_folders_and_records_a_failing_run(local_sweep, models, tmp_path,
                                                                                 monkeypatch, capsys):
    """One model of the grid on a local Ray cluster, beside a model without weights: that run fails
    (its reason in the index, exit 1) and the other gives the local sweep's run folder, byte for byte
    (one run is what Ray's path needs; each more costs a Ray worker's start on a 2-core machine)."""
    ray = pytest.importorskip("ray")
    out = local_sweep[0]
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(Path(models[1]) / "config.json", broken)
    monkeypatch.setenv("BRITTLEBENCH_CACHE", str(tmp_path / "cache"))  # Ray's workers start with this environment
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code = main(grid_argv([str(broken), models[1]], tmp_path / "ray") + ["--executor", "ray", "--no-summaries"])
    finally:
        ray.shutdown()
    assert code == 1 and "1 of 2 runs failed" in capsys.readouterr().err
    remote = {r["id"]: r for r in index(tmp_path / "ray")["runs"]}
    assert index(tmp_path / "ray")["executor"]["executor"] == "ray"
    assert remote["broken-seed0"]["status"] == "failed" and "no weights" in remote["broken-seed0"]["reason"]
    local = [r for r in index(out)["runs"] if r["id"] == "b-seed0"]
    assert [r["id"] for r in local] == list(remote)[1:]
    for run in local:
        assert remote[run["id"]]["status"] == "finished"
        a, b = out / run["folder"], tmp_path / "ray" / remote[run["id"]]["folder"]
        for name in FILES:
            assert (a / name).read_bytes() == (b / name).read_bytes(), (run["id"], name)
        resumed = run["action"] == "resume"
        assert _stable(json.loads((a / "results.json").read_text()), resumed) == \
            _stable(json.loads((b / "results.json").read_text()), resumed), run["id"]


def test_a_run_folder_of_other_settings_is_a_user_mistake(local_sweep, models, capsys):
    argv = grid_argv(models, local_sweep[0])
    argv[argv.index("--n") + 1] = "3"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings (n)" in err and err.count("\n") == 1


# -- the grid, without running anything -------------------------------------------------------------

def test_the_grid_plans_ids_folders_and_specs(models, tmp_path):
    grid = Grid(models=(models[0], models[1]), base=RunSpec(n=2, tasks=("addition",)), seeds=(0, 1),
                at_each_checkpoint=True)
    runs = plan(grid, tmp_path)
    assert [r.id for r in runs] == ["a@step-1-seed0", "a@final-seed0", "a@step-1-seed1", "a@final-seed1",
                                    "b-seed0", "b-seed1"]
    assert runs[0].folder == tmp_path / "runs" / "a-seed0" / "step-1" and runs[0].spec.checkpoints is None
    assert runs[1].spec.checkpoints == tmp_path / "runs" / "a-seed0" / ".history" / "final"
    assert runs[1].spec.model.name_or_path == models[0] and runs[1].step == 2
    assert runs[4].folder == tmp_path / "runs" / "b-seed0" and runs[4].point is None
    assert {r.spec.n for r in runs} == {2} and [r.seed for r in runs] == [0, 0, 1, 1, 0, 1]
    revisions = plan(Grid(models=("default",), revisions=("step10", "step20"), suites=("zoo", "pretrained")),
                     tmp_path)
    assert [r.id for r in revisions] == ["default@step10-seed0-zoo", "default@step20-seed0-zoo",
                                         "default@step10-seed0-pretrained", "default@step20-seed0-pretrained"]
    assert revisions[1].spec.model.revision == "step20" and revisions[1].step == 20
    assert revisions[2].spec.suite == "pretrained"


def test_a_toml_file_under_the_flags(models, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'models = {json.dumps(models[1:])}\nseeds = [0, 2]\nn = 5\npredictors = "random"\n'
                      f'device-map = "auto"\nexecutor = "ray"\ncpus_per_run = 2\nout = "{tmp_path / "o"}"\n')
    options = sweep_options({"n": 3, "seeds": None}, read_config(config))
    assert options.grid.models == tuple(models[1:]) and options.grid.seeds == (0, 2)
    assert options.grid.base.n == 3 and options.grid.base.predictors == ("random",)  # the flag wins
    assert options.grid.base.model.device_map == "auto"
    assert (options.execution.executor, options.execution.cpus_per_run) == ("ray", 2)
    assert options.out == tmp_path / "o" and options.summaries
    assert (options.grid.base.history_n, options.grid.base.history_traces) == (25, 1)  # a run's defaults


def test_what_a_history_costs_is_a_sweep_option_too(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'history-n = "all"\nhistory_traces = 0\nout = "{tmp_path / "o"}"\n')
    base = sweep_options({}, read_config(config)).grid.base
    assert (base.history_n, base.history_traces) == (None, 0)
    base = sweep_options({"history_n": "10", "history_traces": 2}, read_config(config)).grid.base
    assert (base.history_n, base.history_traces) == (10, 2)  # the flags win


MISTAKES = [
    ("no out", ["sweep", "--models", "default"], "needs --out"),
    ("unknown model folder", ["sweep", "--models", "/no/such/model", "--out", "{o}"], "no model at /no/such/model"),
    ("a typo under a folder", ["sweep", "--models", "tests/zzz", "--out", "{o}"], "tests has no zzz"),
    ("seeds not numbers", ["sweep", "--seeds", "a,b", "--out", "{o}"], "seeds must be whole numbers"),
    ("unknown suite", ["sweep", "--suites", "everything", "--out", "{o}"], "unknown suite"),
    ("suites and tasks", ["sweep", "--suites", "zoo", "--tasks", "addition", "--out", "{o}"], "pass one of them"),
    ("unknown predictor", ["sweep", "--predictors", "oracle", "--out", "{o}"], "unknown predictor 'oracle'"),
    ("unknown task", ["sweep", "--tasks", "juggling", "--out", "{o}"], "unknown task family"),
    ("zoo folder missing", ["sweep", "--zoo", "{root}/nozoo", "--out", "{o}"], "--zoo"),
    ("n zero", ["sweep", "--n", "0", "--out", "{o}"], "--n"),
    ("address without ray", ["sweep", "--address", "auto", "--out", "{o}"], "--executor ray"),
    ("unknown config key", ["sweep", "--config", "{root}/bad.toml"], "unknown key 'modles'"),
    ("config not toml", ["sweep", "--config", "{root}/broken.toml"], "not valid TOML"),
    ("unknown device map", ["sweep", "--device-map", "everywhere", "--out", "{o}"], "unknown device map"),
    ("history-n not a number", ["sweep", "--history-n", "some", "--out", "{o}"], "history_n must be whole numbers"),
    ("history-n zero", ["sweep", "--history-n", "0", "--out", "{o}"], "--history-n must be a positive number"),
    ("history-traces negative", ["sweep", "--history-traces", "-1", "--out", "{o}"], "--history-traces must be 0"),
    ("gpus-per-run not finite", ["sweep", "--gpus-per-run", "nan", "--out", "{o}"], "gpus_per_run must be a number"),
]


@pytest.mark.parametrize("case, argv, message", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_user_mistakes_are_one_line_and_exit_2(case, argv, message, tmp_path, capsys):
    (tmp_path / "bad.toml").write_text('modles = ["default"]\n')
    (tmp_path / "broken.toml").write_text("models = [\n")
    argv = [a.replace("{root}", str(tmp_path)).replace("{o}", str(tmp_path / "o")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("brittlebench: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert not (tmp_path / "o" / "runs").exists()  # found before anything ran


def test_ray_executor_without_ray_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["sweep", "--executor", "ray", "--n", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'brittlebench[sweep]'" in err and err.count("\n") == 1


def test_an_interrupted_runs_leftover_temp_file_does_not_block_it(tmp_path):
    """A run killed while writing its first file leaves only a temp file: the sweep starts it afresh."""
    from bench.runs.sweep.driver import stored_state

    run = plan(Grid(base=RunSpec(n=2)), tmp_path)[0]
    run.folder.mkdir(parents=True)
    (run.folder / ".run.json.abc.tmp").write_text("{")
    assert stored_state(run) == "run" and not any(run.folder.iterdir())
    (run.folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds files but no run.json"):
        stored_state(run)


def test_gpus_per_run_shares_out_the_visible_gpus(monkeypatch):
    from bench.runs.sweep.executors import LocalExecutor
    from bench.runs.sweep.grid import Execution

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4")
    executor = LocalExecutor(Execution(gpus_per_run=2))
    assert executor.workers == 2 and list(executor.gpus.queue) == ["0,1", "2,3"]


def test_a_run_waits_for_the_same_run_going_elsewhere(tmp_path):
    """A sweep's run locks its log: the same run started again (by a rerun sweep) waits for it."""
    from bench.runs.sweep.child import run_lock

    log = tmp_path / "logs" / "a-seed0.log"
    log.parent.mkdir()
    with run_lock(log):
        with pytest.raises(UserError, match="another process is running this run"):
            with run_lock(log, wait_s=0.3):
                pass
    with run_lock(log, wait_s=0):
        pass
