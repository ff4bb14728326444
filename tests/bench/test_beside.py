"""Work beside the run's own: the training history's checkpoints in a forked one-thread child.

The child must give exactly what this process would compute (the same points, outcomes and
traces, bit for bit), must not run ahead of the caller's order (the variant stage begins only when
asked: after the blind predictions), must be replaced by computing here when it fails, and must
give the run its threads back when it is done."""
from __future__ import annotations

import os
import time
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.background import Staged

LINUX = sys.platform.startswith("linux")


def _stages(marker: str, parent: int):
    yield ("first", os.getpid() != parent)
    Path(marker).write_text("the second stage began")
    yield ("second", os.getpid() != parent)


@pytest.mark.skipif(not LINUX, reason="forks on Linux only")
def test_a_staged_child_computes_each_stage_only_when_asked(tmp_path):
    marker = tmp_path / "second"
    work = Staged(_stages, str(marker), os.getpid(), stages=2)
    assert work.forked
    assert work.next_stage() == ("first", True)  # computed in the child
    assert not marker.exists()  # nothing ran ahead of the caller
    work.ask()
    assert work.next_stage() == ("second", True)
    assert marker.exists() and not work.forked  # the child is gone once its last stage is in
    with pytest.raises(StopIteration):
        work.next_stage()

    closed = Staged(_stages, str(tmp_path / "never"), os.getpid(), stages=2)
    assert closed.next_stage()[0] == "first"
    closed.close()  # the run stopped early: the second stage is never computed
    assert not (tmp_path / "never").exists() and not closed.forked


def _dies_in_second_stage(parent: int):
    yield "first"
    if os.getpid() != parent:
        os._exit(3)
    yield "second, computed here"


def _fails(parent: int):
    raise ValueError("a user's mistake, reported as such")
    yield  # pragma: no cover


def test_a_failing_child_is_replaced_by_computing_here():
    work = Staged(_dies_in_second_stage, os.getpid(), stages=2)
    assert work.next_stage() == "first"
    assert work.next_stage() == "second, computed here"  # the first stage is not taken twice
    with pytest.raises(ValueError, match="a user's mistake"):  # the child's error, raised here
        Staged(_fails, os.getpid(), stages=1).next_stage()
    here = Staged(_stages, "/nonexistent/never", os.getpid(), stages=1, fork=False)
    assert not here.forked and here.next_stage() == ("first", False)


DEFAULT = Path(__file__).resolve().parents[2] / "bench" / "default_model"  # six checkpoints


def _history(member=DEFAULT, n=3, traces=1):
    from bench.model.load import ModelSpec, load_model
    from bench.protocol.history import History
    from bench.protocol.spec import RunSpec
    from bench.protocol.stages import default_tasks, generate
    from tasks import resolve_families

    spec = RunSpec(model=ModelSpec(str(member)), n=n, history_traces=traces, use_cache=False)
    handle = load_model(spec.model)
    families = resolve_families(default_tasks(handle))
    suite = generate(spec, families, 0)
    return History(spec, handle, families, True, log=lambda m: None), suite


@pytest.mark.skipif(not LINUX, reason="forks on Linux only")
def test_the_history_beside_the_run_is_the_history_computed_here():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as on any machine with two cores, whatever this one has
    try:
        here, suite = _history()
        here.start(suite.base, 8, sealed=suite.sealed, beside=False)
        base_here = here.base(suite.base, 8)
        variants_here = here.variants([i.sealed() for i in suite.base], suite.sealed)
        assert not here.beside

        beside, _ = _history()
        beside.start(suite.base, 8, sealed=suite.sealed, beside=True)
        assert beside.beside and torch.get_num_threads() == 1  # one core each while the child works
        base_beside = beside.base(suite.base, 8)
        assert 0 < len(beside._mine) < len(base_beside)  # both processes took checkpoints
        assert torch.get_num_threads() == 1  # the child waits for the variant stage
        beside.settle()
        assert torch.get_num_threads() == 1 and not beside._work.ready()  # nothing to take: not asked yet
        beside.begin_variants()
        deadline = time.monotonic() + 300
        while torch.get_num_threads() == 1 and time.monotonic() < deadline:  # as between the run's batches
            beside.settle()
            time.sleep(0.02)
        assert torch.get_num_threads() == 2  # the child's variant stage taken, the threads given back
        variants_beside = beside.variants([i.sealed() for i in suite.base], suite.sealed)
    finally:
        torch.set_num_threads(threads)
    assert len(base_here) == len(base_beside) == len(variants_here) == 6
    for a, b in zip(base_here + variants_here, base_beside + variants_beside):
        assert (a.name, a.step, a.fingerprint, a.correct) == (b.name, b.step, b.fingerprint, b.correct)
        assert (a.trace is None) == (b.trace is None)
        if a.trace is not None:
            assert a.trace.item_ids == b.trace.item_ids
            for site in ("hidden", "top_ids", "top_probs", "entropy", "attn_entropy", "lens_final_prob"):
                assert np.array_equal(getattr(a.trace, site), getattr(b.trace, site)), site
    assert variants_here[-1].trace is not None and len(variants_here[-1].trace.item_ids) > len(suite.sealed)


@pytest.mark.skipif(not LINUX, reason="forks on Linux only")
def test_a_run_stopped_before_the_variant_stage_leaves_no_child():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        history, suite = _history()
        history.start(suite.base, 8, sealed=suite.sealed, beside=True)
        history.base(suite.base, 8)
        child = history._work._pid
        history.close(kill=True)
        assert torch.get_num_threads() == 2
        with pytest.raises(ChildProcessError):
            os.waitpid(child, os.WNOHANG)  # reaped: no zombie left
    finally:
        torch.set_num_threads(threads)


def test_what_lives_as_long_as_the_run_is_frozen_for_the_run_and_handed_back_after(tmp_path):
    """`long_lived`: no collection while the imports run, their objects frozen after (a forked child
    does not walk or copy them); a run hands them back to the collector when it ends, unless the
    host process had frozen objects itself."""
    import gc

    from bench.background import long_lived
    from bench.protocol.spec import RunSpec
    from bench.protocol.stages import run

    gc.unfreeze()
    with long_lived():
        assert not gc.isenabled()
        made = [[k] for k in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(made)
    gc.unfreeze()
    run(RunSpec(n=2, out=tmp_path / "r", predictors=("random",), use_cache=False), log=lambda m: None)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.freeze()  # the host's own
    try:
        run(RunSpec(n=2, out=tmp_path / "s", predictors=("random",), use_cache=False), log=lambda m: None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
