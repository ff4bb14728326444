"""Integrity under faults and forgery: unreadable cache entries are misses, a run folder has one
writer at a time, and `verify` derives again everything a submitter could edit (docs/integrity.md)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bench import io
from bench.cli import main
from bench.model.load import load_model
from bench.model.trace import TraceCache, TracedModel, site_shapes, trace
from bench.protocol.folder import LOCK, FolderLock
from bench.protocol.spec import RunSpec
from bench.protocol.stages import Suite, run
from bench.protocol.verify import read_stored, run_families, stratified_sample, verify
from bench.scoring.run import score
from tasks import get_family

TASKS = ("addition", "multihop")


def _cli(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "bench.cli", *argv], capture_output=True, text=True, **kw)


def _one_line_error(proc, code=2):
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("brittlebench: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


# -- caches -------------------------------------------------------------------------------------

def _items(n=16):
    return [i.sealed() for c in ("digits=1", "digits=3") for i in get_family("addition").generate(c, n // 2, seed=0)]


@pytest.fixture(scope="module")
def llama(tiny_llama):
    return load_model(str(tiny_llama))


@pytest.mark.parametrize("attention", [False, True])
def test_site_shapes_are_the_shapes_trace_fills(llama, tiny_gpt2, attention):
    for handle in (llama, load_model(str(tiny_gpt2))):
        traced = trace(handle, _items(4), attention=attention)
        assert {n: getattr(traced, n).shape[1:] for n in traced.site_names()} == site_shapes(handle, attention)


@pytest.mark.parametrize("fault", ["truncated", "zeroed", "garbage", "empty", "renamed", "other numerics",
                                   "wrong shape", "site missing"])
def test_an_unreadable_cache_entry_is_a_miss_replaced_and_said_once(llama, tmp_path, fault):
    items = _items()
    name = llama.cache_name
    clean = TracedModel(llama, cache=TraceCache(tmp_path, name)).trace(items)
    [path] = (tmp_path / name).glob("*.npz")
    data = path.read_bytes()
    if fault == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif fault == "zeroed":
        path.write_bytes(bytes(len(data)))
    elif fault == "garbage":
        path.write_bytes(b"not an archive at all")
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "renamed":  # another batch's file under this name: its keys are not the ones the name says
        path.rename(path.with_name("0123456789abcdef.npz"))
        path = path.with_name("0123456789abcdef.npz")
    elif fault == "other numerics":  # the same items traced under other numerics, swapped in
        other = TraceCache(tmp_path, name + "-other")
        other.put(items, clean)
        shutil.copy(next((tmp_path / (name + "-other")).glob("*.npz")), path)
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        if fault == "wrong shape":
            arrays["hidden"] = arrays["hidden"][:, :-1]
        else:
            del arrays["lens_top_ids"]
        np.savez(path, **arrays)
    said = []
    cache = TraceCache(tmp_path, name, log=said.append)
    model = TracedModel(llama, cache=cache)
    again = model.trace(items)
    assert model.traced == len(items)  # a miss: traced again
    for site in clean.site_names():
        np.testing.assert_array_equal(getattr(again, site), getattr(clean, site), err_msg=site)
    assert len(said) == 1 and path.name in said[0] and "1 unreadable entry removed" in said[0], said
    if fault == "renamed":
        assert not path.exists()  # removed; the items' own file is written anew
    later = []
    third = TracedModel(llama, cache=TraceCache(tmp_path, name, log=later.append))
    third.trace(items)
    assert third.traced == 0 and later == []


def test_a_trace_without_attention_is_not_enough_but_not_wrong(llama, tmp_path):
    said = []
    TracedModel(llama, cache=TraceCache(tmp_path, llama.cache_name)).trace(_items())
    model = TracedModel(llama, attention=True, cache=TraceCache(tmp_path, llama.cache_name, log=said.append))
    assert model.trace(_items()).has_attention and model.traced == 16 and said == []


def test_cache_files_are_written_by_rename(llama, tmp_path, monkeypatch):
    """A writer killed before its rename leaves nothing under the entry's name (nor a temporary file)."""
    def killed(source, target):
        raise KeyboardInterrupt

    cache = TraceCache(tmp_path, llama.cache_name)
    traced = trace(llama, _items(4))
    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            cache.put(_items(4), traced)
    assert list((tmp_path / llama.cache_name).iterdir()) == []


def _run(out, cache, **kw):
    return run(RunSpec(n=4, tasks=TASKS, out=out, cache_dir=cache, **kw), log=lambda m: None)


def test_corrupt_cache_entries_leave_the_run_byte_identical(tmp_path, capfd):
    cache = tmp_path / "cache"
    _run(tmp_path / "clean", cache)
    folders = sorted(p for p in cache.iterdir() if any(p.glob("*.npz")))  # every checkpoint's has its outcomes
    assert len(folders) == 2  # traces: the model's and its latest checkpoint's (the history's traced one)
    first, second = (sorted(f.glob("*.npz")) for f in folders)
    assert len(first) == len(second) == 2  # the base region's pass and the variants'
    first[0].write_bytes(first[0].read_bytes()[:100])  # truncated
    first[1].write_bytes(bytes(first[1].stat().st_size))  # zeroed
    a, b = second  # swapped
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    capfd.readouterr()
    _run(tmp_path / "again", cache)
    err = capfd.readouterr().err
    for name in ("predictions.jsonl", "outcomes.jsonl"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    said = [line for line in err.splitlines() if line.startswith("trace cache")]
    assert len(said) == 2, err  # one line per cache folder, naming its entries
    for folder, files in zip(folders, (first, second)):
        [line] = [s for s in said if str(folder) in s]
        assert "2 unreadable entries removed" in line and all(f.name in line for f in files), line


# -- one writer per run folder --------------------------------------------------------------------

RUN = ["run", "--n", "3", "--tasks", "addition", "--predictors", "random,confidence"]


def test_two_runs_into_one_folder_one_wins(tmp_path):
    out = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-m", "bench.cli", *RUN, "--seed", str(seed), "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    done = [(p.wait(), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in done) == [0, 2], done
    [err] = [e for code, e in done if code == 2]
    assert err.startswith("brittlebench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "is being written by another run (process " in err or "already holds files" in err
    assert verify(out)[0] and not (out / LOCK).exists()


def test_a_held_folder_is_refused_in_one_line_naming_the_holder(tmp_path):
    lock = FolderLock(tmp_path / "held").take()
    try:
        proc = _cli(*RUN, "--out", str(tmp_path / "held"))
        _one_line_error(proc)
        assert f"being written by another run (process {os.getpid()} on " in proc.stderr
        proc = _cli(*RUN, "--resume", "--out", str(tmp_path / "held"))
        _one_line_error(proc)
    finally:
        lock.release()
    assert not (tmp_path / "held").exists()  # taking the lock made it; nothing was written


def test_a_killed_runs_lock_does_not_block_resume(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--n", "4", "--tasks", ",".join(TASKS),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = time.time()
    while not (out / "stages" / "outcomes.base.jsonl").exists():  # the base region is evaluated: kill it now
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() - started < 120
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / LOCK).exists()  # left behind, unlocked
    resumed = _cli("run", "--n", "4", "--tasks", ",".join(TASKS), "--resume", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert verify(out)[0] and not (out / LOCK).exists()


def test_a_stale_lock_file_does_not_block_a_fresh_run(tmp_path):
    out = tmp_path / "fresh"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "since": "yesterday"}))
    assert main(RUN + ["--out", str(out)]) == 0


# -- verify ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "run"
    run(RunSpec(n=6, tasks=TASKS, out=out), log=lambda m: None)
    return out


def _copy(finished, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(finished, target)
    return target


def _edit_jsonl(path, pick, change):
    rows = io.read_jsonl(path)
    row = next(r for r in rows if pick(r))
    change(row)
    path.write_bytes(io.jsonl_bytes(rows))
    return row


def test_an_untouched_run_verifies_and_reevaluates(finished, capsys):
    ok, lines = verify(finished, reevaluate=12, sample_seed=3)
    assert ok, lines
    assert any(l.startswith("items: the ") and "targets included: ok" in l for l in lines)
    assert any(l.startswith("outcomes: each of the ") for l in lines)
    assert any(l.startswith("base region: ") and l.endswith(": ok") for l in lines)
    assert any(l.startswith("reevaluate: 12 items drawn with sample seed 3") for l in lines)
    assert main(["verify", str(finished), "--reevaluate", "8"]) == 0


def _flip(row):
    row["correct"] = not row["correct"]


def _output(row):
    row["output"] = row["output"] + "7"


EDITS = {
    "a base outcome's correct": ("outcomes.jsonl", lambda r: r["split"] == "base", _flip, "outcomes: MISMATCH"),
    "a base outcome's output": ("outcomes.jsonl", lambda r: r["split"] == "base" and r["correct"], _output,
                                "outcomes: MISMATCH"),
    "a failed outcome's output": ("outcomes.jsonl", lambda r: not r["correct"], _output, "outcomes: MISMATCH"),
    "a variant outcome's correct": ("outcomes.jsonl", lambda r: r["split"] == "variant", _flip, "outcomes: MISMATCH"),
    "a variant outcome's output": ("outcomes.jsonl", lambda r: r["split"] == "variant" and r["correct"], _output,
                                   "outcomes: MISMATCH"),
    "a base item's target": ("items/base.jsonl", lambda r: True, lambda r: r.update(target=r["target"] + "1"),
                             "items: MISMATCH"),
    "a variant item's target": ("items/variants.jsonl", lambda r: True, lambda r: r.update(target=r["target"] + "1"),
                                "items: MISMATCH"),
    "a prediction": ("predictions.jsonl", lambda r: True, lambda r: r["scores"].update(random=0.123),
                     "predictions.sha256"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_every_edit_makes_verify_fail_naming_it(finished, tmp_path, edit, capsys):
    name, pick, change, said = EDITS[edit]
    folder = _copy(finished, tmp_path)
    row = _edit_jsonl(folder / name, pick, change)
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out
    [line] = [l for l in out.splitlines() if l.startswith(said)]
    assert "MISMATCH" in line
    if name != "predictions.jsonl":  # a digest cannot say which row moved
        assert (row.get("item_id") or row["id"]) in line


def test_flipping_a_base_outcome_and_its_stage_file_still_fails(finished, tmp_path):
    """Both copies of the base outcomes edited, output made to agree: the base region's figures say so."""
    folder = _copy(finished, tmp_path)
    forged = _edit_jsonl(folder / "outcomes.jsonl", lambda r: r["split"] == "base" and r["correct"],
                         lambda r: r.update(correct=False, output="forged"))
    _edit_jsonl(folder / "stages" / "outcomes.base.jsonl", lambda r: r["item_id"] == forged["item_id"],
                lambda r: r.update(correct=False, output="forged"))
    ok, lines = verify(folder)
    [line] = [l for l in lines if l.startswith("base region: MISMATCH")]
    assert not ok and "competence.base_failure" in line and "failure_rate" in line


def test_an_edited_competence_flag_is_named(finished, tmp_path):
    folder = _copy(finished, tmp_path)
    results = json.loads((folder / "results.json").read_text())
    results["competence"]["flagged"] = ["multihop"]
    (folder / "results.json").write_text(json.dumps(results))
    ok, lines = verify(folder)
    assert not ok and any(l.startswith("base region: MISMATCH") and "competence.flagged" in l for l in lines)


def forge(folder, family):
    """What a forger would do: every base outcome of `family` made a failure, and everything that
    derives from the outcomes (the stage files, the scores, the flags, the learning curve's last
    point) recomputed with the run's own code, so that the folder is consistent."""
    results = json.loads((folder / "results.json").read_text())
    stored = read_stored(folder, results)
    families = run_families(results)
    rows = io.read_jsonl(folder / "outcomes.jsonl")
    base = {item.id for item in stored.base if item.family == family}
    for row in rows:
        if row["item_id"] in base:
            row.update(correct=False, output="forged", complete=True)
    (folder / "outcomes.jsonl").write_bytes(io.jsonl_bytes(rows))
    for split in ("base", "variant"):
        (folder / "stages" / f"outcomes.{split}.jsonl").write_bytes(io.jsonl_bytes(
            {k: v for k, v in r.items() if k != "split"} for r in rows if r["split"] == split))
    stored = read_stored(folder, results)
    names = [n for n, info in stored.status.items() if info["status"] == "ok"]
    scores = {n: np.array([p["scores"][n] for p in stored.predictions]) for n in names}
    made = results["provenance"]
    suite = Suite(families, stored.base, stored.variants, made["tasks"], made["shots"])
    again = score(suite, stored.outcomes["base"], stored.outcomes["variant"], scores, stored.status,
                  results["provenance"]["seed"], stored.reference)
    results.update({k: v for k, v in again.items() if k not in ("protocols", "targets")})
    final = results["history"][-1]
    for cell in again["cells"]:
        if cell["split"] == "base":
            final["base_accuracy"][f"{cell['family']}/{cell['cell']}"] = 1 - cell["failure_rate"]
    io.write_json(folder / "results.json", results)
    return results


def test_a_forged_but_consistent_run_passes_verify_and_fails_reevaluation(finished, tmp_path, capsys):
    folder = _copy(finished, tmp_path)
    results = forge(folder, "multihop")
    assert results["competence"]["flagged"] == ["multihop"]  # the family a forger wanted left out
    ok, lines = verify(folder)
    assert ok, lines  # consistent: only the model can tell
    assert main(["verify", str(folder), "--reevaluate", "8"]) == 1
    out = capsys.readouterr().out
    [line] = [l for l in out.splitlines() if l.startswith("reevaluate: MISMATCH")]
    assert "base multihop/" in line and "output 'forged'" in line


def test_reevaluation_refuses_another_model(finished, tmp_path):
    folder = _copy(finished, tmp_path)
    for name in ("results.json", "run.json"):
        text = (folder / name).read_text()
        fingerprint = json.loads((folder / "run.json").read_text())["fingerprint"]
        (folder / name).write_text(text.replace(fingerprint, "0123456789abcdef"))
    assert verify(folder)[0]  # a fingerprint is only checked against the model itself
    ok, lines = verify(folder, reevaluate=4)
    assert not ok and any("has fingerprint" in l and "MISMATCH" in l for l in lines)


def test_the_sample_is_seeded_and_covers_every_split_and_family(finished):
    results = json.loads((finished / "results.json").read_text())
    stored = read_stored(finished, results)
    first = stratified_sample(stored, 8, seed=1)
    assert [i.id for _, i, _ in first] == [i.id for _, i, _ in stratified_sample(stored, 8, seed=1)]
    assert [i.id for _, i, _ in first] != [i.id for _, i, _ in stratified_sample(stored, 8, seed=2)]
    assert {(split, item.family) for split, item, _ in first} == {(s, f) for s in ("base", "variant") for f in TASKS}
    assert len(stratified_sample(stored, 10**6, seed=1)) == len(stored.base) + len(stored.variants)


def test_a_leaderboard_copy_without_items_verifies_from_the_seed(finished, tmp_path):
    folder = _copy(finished, tmp_path)
    shutil.rmtree(folder / "items")
    ok, lines = verify(folder)
    assert ok and any(l.startswith("items: not stored") for l in lines)


def test_the_leaderboard_reevaluates_a_submission(finished, tmp_path):
    from bench.errors import UserError
    from bench.leaderboard.board import REEVALUATE_K, validate

    assert REEVALUATE_K == 50
    folder = _copy(finished, tmp_path)
    (folder / "submission.json").write_text(json.dumps({"predictor": "knn_distance", "source": "x==1"}))
    assert validate(folder)["submission"]["predictor"] == "knn_distance"
    forge(folder, "multihop")
    with pytest.raises(UserError, match="reevaluate: MISMATCH"):
        validate(folder)


@pytest.mark.parametrize("fault", ["another version", "no outcomes", "no items, private seed", "corrupted items",
                                   "model not here", "negative K"])
def test_bad_input_to_verify_is_one_line_exit_2(finished, tmp_path, fault):
    folder = _copy(finished, tmp_path)
    argv = ["verify", str(folder)]
    results = json.loads((folder / "results.json").read_text())
    if fault == "another version":
        results["schema_version"] = 99
    elif fault == "no outcomes":
        (folder / "outcomes.jsonl").unlink()
    elif fault == "no items, private seed":
        shutil.rmtree(folder / "items")
        results["provenance"]["private_seed"] = "0" * 64
    elif fault == "corrupted items":
        (folder / "items" / "base.jsonl").write_text("{not json\n")
    elif fault == "model not here":
        results["provenance"]["model"]["spec"]["name_or_path"] = str(tmp_path / "gone")
        argv += ["--reevaluate", "4"]
    else:
        argv += ["--reevaluate", "-1"]
    (folder / "results.json").write_text(json.dumps(results))
    _one_line_error(_cli(*argv))


def test_a_gguf_cache_entry_moved_in_from_another_key_is_a_miss(tiny_gguf, tmp_path, monkeypatch, capsys):
    """The dequantized-weights cache (`bench.model.gguf_cache`): an entry of the same file in another
    dtype, moved under this one's name, loads as a plain folder; its record says whose it is."""
    from bench.model import gguf_cache
    from bench.model.load import ModelSpec

    monkeypatch.setenv("BRITTLEBENCH_CACHE", str(tmp_path))
    fresh = load_model(str(tiny_gguf))
    load_model(ModelSpec(str(tiny_gguf), dtype="float16"))
    single, half = sorted((e.folder for e in gguf_cache.entries()), key=lambda f: f.name.endswith("float16"))
    shutil.rmtree(single)
    half.rename(single)
    capsys.readouterr()
    again = load_model(str(tiny_gguf))
    said = [l for l in capsys.readouterr().err.splitlines() if l.startswith("brittlebench:")]
    assert len(said) == 1 and "not this file's in float32" in said[0], said
    assert again.fingerprint == fresh.fingerprint  # dequantized again, not the float16 weights
    assert load_model(str(tiny_gguf)).fingerprint == fresh.fingerprint
