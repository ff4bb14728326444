import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import predictors.registry as registry
from bench.protocol.spec import RunSpec
from bench.protocol.stages import run
from predictors import PredictorError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """The example plugin package, installed (without touching the venv) into a folder."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT / "examples" / "brittlebench-example-plugin")],
                   check=True, capture_output=True)
    return target


def _cli(args, plugin_path, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(plugin_path))
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path)


def test_installed_plugin_is_listed_checked_and_run(plugin_path, tmp_path):
    listed = _cli(["predictors", "list"], plugin_path, tmp_path)
    assert listed.returncode == 0
    line = next(l for l in listed.stdout.splitlines() if l.startswith("answer_digits"))
    assert "brittlebench-example-plugin" in line and "prompt" in line and "0.1.0" in line
    checked = _cli(["check-predictor", "answer_digits"], plugin_path, tmp_path)
    assert checked.returncode == 0 and "conforms" in checked.stdout
    ran = _cli(["run", "--n", "6", "--predictors", "random,answer_digits", "--out", "r"], plugin_path, tmp_path)
    assert ran.returncode == 0, ran.stderr
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["predictors"]["answer_digits"]["status"] == "ok"
    assert results["predictors"]["answer_digits"]["auroc"]["value"] is not None


def test_listing_imports_no_predictor_module():
    code = ("import sys; from bench.cli import main; main(['predictors', 'list']); "
            "bad = [m for m in sys.modules if m in ('predictors.representation', 'predictors.output', "
            "'predictors.baselines', 'predictors.architecture', 'torch', 'sklearn')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def _fake_entry_points(*eps):
    return lambda group: [e for e in eps if e.group == group]


class _Dist:
    def __init__(self, name):
        self.name = name


def _ep(name, value, dist):
    ep = EntryPoint(name, value, registry.GROUP)
    return ep._for(_Dist(dist)) if hasattr(ep, "_for") else ep


def test_a_name_claimed_twice_names_both_distributions(monkeypatch):
    monkeypatch.setattr(registry, "entry_points", _fake_entry_points(
        _ep("dup", "a.b:C", "dist-one"), _ep("dup", "x.y:Z", "dist-two")))
    with pytest.raises(PredictorError, match="dist-one and dist-two"):
        registry.registered()


def test_broken_plugin_is_skipped_unless_asked_for(monkeypatch, tmp_path):
    """A really installed distribution (a .dist-info on sys.path) whose entry point cannot be
    imported: the worker process, which alone imports plugins, sees it as the run does."""
    site = tmp_path / "site"
    info = site / "brittlebench_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brittlebench-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.GROUP}]\nbroken = no_such_module_xyz:Thing\n")
    monkeypatch.syspath_prepend(str(site))
    assert registry.registered()["broken"].distribution == "brittlebench-broken"
    said = []
    results = run(RunSpec(n=3, out=tmp_path / "all"), log=said.append)
    assert results["predictors"]["broken"]["status"] == "failed"
    assert "no_such_module_xyz" in results["predictors"]["broken"]["reason"]
    assert results["predictors"]["random"]["status"] == "ok"
    assert any("skipping predictor broken" in s for s in said)
    with pytest.raises(PredictorError, match="cannot import"):
        run(RunSpec(n=3, out=tmp_path / "named", predictors=("broken",)), log=said.append)
