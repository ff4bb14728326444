"""Deliberately adversarial predictors try to reach variant targets, outcomes, the seed or
the run folder through everything they can touch: what they are handed (sealed items,
model view, calibration), the model handle, their own process (gc, frames, argv,
environment, working folder), tracing inputs of their own making (teacher forcing), and
re-generating the items. Each reports what it found in a note; none may find anything."""
import dataclasses
import gc
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bench.protocol.spec import RunSpec

from bench.protocol.stages import run
from predictors import Predictor
from tasks import Item, SealedItem

# Drawn at import: the worker imports this module too (to find Snoop) and draws another,
# so the run's secret exists only in the test's process, as a user's would.
SECRET = __import__("secrets").token_hex(20)


def reachable(roots, limit=300_000):
    """Every object reachable by attributes, dataclass fields, container members and
    closures, stopping at modules, classes and array contents."""
    seen, stack, out = set(), list(roots), []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, (types.ModuleType, type, str, bytes, int, float, bool, np.ndarray)) or obj is None:
            continue
        if isinstance(obj, types.FunctionType):
            stack.extend(c.cell_contents for c in (obj.__closure__ or ()) if c.cell_contents is not None)
            continue
        if isinstance(obj, (dict, types.MappingProxyType)):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        if dataclasses.is_dataclass(obj):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        try:
            stack.extend(vars(obj).values())
        except TypeError:
            pass
    return out


class Snoop(Predictor):
    """Hypothesis: none; it looks for answers it must not find and reports what it saw."""

    name = "snoop"
    reads = frozenset({"hidden", "logits", "architecture", "prompt"})
    version = "1"

    def fit(self, model, calibration):
        self.calibration_ids_ = [o.item.id for o in calibration]
        return self

    def predict(self, model, items):
        from tasks import get_family

        found = {"pid": os.getpid()}
        variant_ids = {i.id for i in items}
        # 1. what it is handed
        handed = reachable([model, list(items)])
        found["sealed_types"] = sorted({type(i).__name__ for i in items})
        found["item_attrs"] = [n for n in ("target", "meta", "_target", "seed") if hasattr(items[0], n)]
        found["handed_strings"] = sorted({o for o in handed if isinstance(o, str)})
        found["handed_items"] = [o.id for o in handed if isinstance(o, Item) and o.id in variant_ids]
        found["calibration_variants"] = [i for i in self.calibration_ids_ if i in variant_ids]
        # 2. the model handle: weights or generation
        found["model_attrs"] = [n for n in ("_handle", "handle", "model", "generate", "_model", "forward")
                                if hasattr(model, n)]
        found["torch_modules"] = sum(str(getattr(type(o), "__module__", "")).startswith("torch.nn")
                                     for o in gc.get_objects())
        found["torch_imported"] = "torch" in sys.modules
        # 3. its own process
        everything = gc.get_objects()
        found["process_items"] = [o.id for o in everything if isinstance(o, Item) and o.id in variant_ids]
        frames = [f for f in sys._current_frames().values()]
        found["frame_locals"] = sorted({repr(v)[:200] for f in frames for v in f.f_locals.values()})
        found["argv"] = list(sys.argv)
        found["environ"] = dict(os.environ)
        found["cwd"] = os.getcwd()
        found["cwd_files"] = sorted(os.listdir("."))
        found["process_strings"] = _strings(everything)
        found["modules"] = sorted(sys.modules)
        # 4. teacher forcing: trace a prompt of its own making (prompt + a guessed answer)
        forged = SealedItem(id=items[0].id, family=items[0].family, cell=items[0].cell, axes=items[0].axes,
                            prompt=items[0].prompt + "1")
        try:
            model.trace([forged])
            found["forged_trace"] = "allowed"
        except PermissionError as e:
            found["forged_trace"] = f"refused: {e}"
        # 5. re-generating the items with every seed it might guess
        # A match is the same item (its id hashes family, cell, seed and index), not a prompt that
        # two seeds happen to share: small cells repeat prompts across seeds by chance.
        ids = {i.id for i in items}
        matches = 0
        for family_name in sorted({i.family for i in items}):
            family = get_family(family_name)
            for cell in family.variant_cells:
                for seed in range(0, 20):
                    matches += sum(x.id in ids for x in family.generate(cell.name, 20, seed))
        found["regenerated_matches"] = matches
        self.note(json.dumps(found, default=str))
        return np.full(len(items), 0.5)


def _strings(objects) -> list[str]:
    return sorted({r for o in objects for r in gc.get_referents(o) if isinstance(r, str) and len(r) < 400})


def _strings_of_a_clean_process(modules: list[str]) -> set[str]:
    """What a fresh Python holds after importing the worker's modules and running nothing: strings
    every such process has (pyarrow's `so_version` '2600', a module's constants), never a leak even
    where a variant target happens to equal one."""
    code = ("import gc, importlib, json, sys\n"
            "for m in json.loads(sys.stdin.read()):\n"
            "    try:\n        importlib.import_module(m)\n    except BaseException:\n        pass\n"
            "from tests.predictors.test_sealing import _strings\n"
            "print(json.dumps(_strings(gc.get_objects())))\n")
    modules = [m for m in modules if m != "__main__"]
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(modules), capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    return set(json.loads(done.stdout))


def _snoop_run(tmp_path, **spec):
    out = tmp_path / "run"
    results = run(RunSpec(n=8, out=out, predictors=("tests.predictors.test_sealing:Snoop",), **spec),
                  log=lambda m: None)
    assert results["predictors"]["snoop"]["status"] == "ok", results["predictors"]["snoop"]
    found = json.loads(results["predictors"]["snoop"]["notes"][0])
    variants = [Item.from_dict(json.loads(line)) for line in (out / "items" / "variants.jsonl").read_text().splitlines()]
    return out, found, variants


def _strings_in(value) -> set[str]:
    """Every string in a JSON value, and the decimal form of every integer (a worker holding the
    number may well hold its text)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return set()
    if isinstance(value, int):
        return {str(value)}
    if isinstance(value, dict):
        return set().union(*(_strings_in(k) | _strings_in(v) for k, v in value.items())) if value else set()
    return set().union(*(_strings_in(v) for v in value)) if value else set()


def _telling(variants) -> set[str]:
    """The targets that would give an item away if found: four characters or more, and not one
    character repeated (`>>>>`, a commands answer, is also just a string any Python process may hold)."""
    return {i.target for i in variants if len(i.target) >= 4 and len(set(i.target)) > 1}


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    return _snoop_run(tmp_path_factory.mktemp("held_out"), seed=7, private_seed=SECRET)


def test_predictors_run_in_another_process(held_out):
    _, found, _ = held_out
    assert found["pid"] != os.getpid()


def test_nothing_handed_over_carries_a_target(held_out):
    out, found, variants = held_out
    assert found["sealed_types"] == ["SealedItem"]
    assert found["item_attrs"] == []
    assert found["handed_items"] == [] and found["calibration_variants"] == []
    assert len(found["handed_strings"]) > 50  # it did walk the tokenizer and the rest
    assert _telling(variants) and not _telling(variants) & set(found["handed_strings"])


def test_the_model_itself_is_out_of_reach(held_out):
    _, found, _ = held_out
    assert found["model_attrs"] == []
    assert found["torch_modules"] == 0 and not found["torch_imported"]  # no weights in the worker at all
    assert found["forged_trace"].startswith("refused")


def test_the_worker_process_holds_no_target_seed_or_run_folder(held_out):
    out, found, variants = held_out
    assert found["process_items"] == []
    # The worker legitimately holds the calibration: the base items (prompts, targets and every string
    # in their meta, such as an intermediate result) and the model's base outputs. A variant target
    # can equal one of those by chance (a commands answer reached by another phrase, a 4-digit sum
    # that is some base item's intermediate value).
    handed = set()
    for line in (out / "items" / "base.jsonl").read_text().splitlines():
        handed |= _strings_in(json.loads(line))
    handed |= {json.loads(line)["output"] for line in (out / "outcomes.jsonl").read_text().splitlines()
               if json.loads(line)["split"] == "base"}
    # It also holds every prompt, base and sealed variant: a target that is a piece of some prompt
    # (an operand that equals another item's sum, a digit string inside a longer one) may be held as
    # that piece by any predictor that cuts prompts into n-grams or words, and gives nothing away.
    prompts = [json.loads(line)["prompt"] for name in ("base.jsonl", "variants.sealed.jsonl")
               for line in (out / "items" / name).read_text().splitlines()]
    clean = _strings_of_a_clean_process(found["modules"])
    telling = {t for t in _telling(variants) - handed if not any(t in p for p in prompts)}
    assert len(telling - clean) >= 0.9 * len(telling) > 0  # the check still looks for nearly every target
    leaked = (telling - clean) & set(found["process_strings"])
    assert not leaked, sorted(leaked)
    strings = found["process_strings"] + found["frame_locals"] + found["argv"] + [found["cwd"]] + \
        [f"{k}={v}" for k, v in found["environ"].items()] + found["cwd_files"]
    assert not any(str(out) in s for s in strings), "the run folder is reachable"
    assert not any(SECRET in s for s in strings), "the private seed is reachable"
    assert found["cwd_files"] == []
    assert not any(k.startswith("BRITTLEBENCH") for k in found["environ"])


def test_a_private_seed_defeats_regenerating_the_items(held_out):
    out, found, variants = held_out
    assert found["regenerated_matches"] == 0
    results = json.loads((out / "results.json").read_text())
    text = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert SECRET not in text  # only its commitment is written
    assert results["provenance"]["private_seed"].startswith("sha256:")


def test_without_a_private_seed_the_public_suite_can_be_regenerated(tmp_path):
    """The contrast that shows the regeneration probe works: a public seed means public items."""
    _, found, _ = _snoop_run(tmp_path, seed=3)
    assert found["regenerated_matches"] > 0


def test_same_private_seed_same_items_different_secret_different_items(tmp_path):
    from bench.protocol.stages import generate
    from tasks import resolve_families

    families = resolve_families(("addition",))
    a = generate(RunSpec(n=5, private_seed=SECRET), families, 0).variants
    b = generate(RunSpec(n=5, private_seed=SECRET), families, 0).variants
    c = generate(RunSpec(n=5, private_seed=SECRET + "x"), families, 0).variants
    assert [i.to_dict() for i in a] == [i.to_dict() for i in b]
    assert [i.prompt for i in a] != [i.prompt for i in c]
    assert "private_seed=" not in repr(RunSpec(private_seed=SECRET)) and SECRET not in repr(RunSpec(private_seed=SECRET))
