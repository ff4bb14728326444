import json
import subprocess
import sys

import pytest

from tasks import SHIFTS, check_family, family_names, get_family
from tasks.render import few_shot
from tests.tasks.solvers import SOLVERS

FAMILIES = family_names()


def test_at_least_six_families_and_four_shift_kinds():
    assert len(FAMILIES) >= 6
    kinds = {c.shift for name in FAMILIES for c in get_family(name).variant_cells}
    assert kinds <= set(SHIFTS) and len(kinds) >= 4


@pytest.mark.parametrize("name", FAMILIES)
def test_family_passes_conformance(name):
    assert check_family(get_family(name), n=60) == []


@pytest.mark.parametrize("name", FAMILIES)
def test_every_target_agrees_with_an_independent_solver(name):
    family, solve = get_family(name), SOLVERS[name]
    for cell in family.cells:
        for item in family.generate(cell.name, 300, seed=11):
            assert solve(item.prompt) == item.target, (cell.name, item.prompt)


@pytest.mark.parametrize("name", FAMILIES)
def test_variant_cells_differ_from_base_along_their_axes(name):
    family = get_family(name)
    base = [i for c in family.base_cells for i in family.generate(c.name, 400, seed=0)]
    base_axes = {json.dumps(dict(i.axes), sort_keys=True) for i in base}
    base_prompts = {i.prompt for i in base}
    for cell in family.variant_cells:
        for item in family.generate(cell.name, 200, seed=0):
            assert json.dumps(dict(item.axes), sort_keys=True) not in base_axes
            assert item.prompt not in base_prompts


def test_zoo_training_data_holds_no_variant_prompt():
    from bench.zoo.recipe import Recipe
    from bench.zoo.trainer import training_items

    trained = {i.prompt for i in training_items(Recipe(tasks=tuple(FAMILIES), items_per_cell=3000))}
    for name in FAMILIES:
        family = get_family(name)
        for cell in family.variant_cells:
            assert not trained & {i.prompt for i in family.generate(cell.name, 300, seed=0)}, (name, cell.name)


def test_items_equal_across_processes_for_every_family():
    code = ("import json; from tasks import family_names, get_family; print(json.dumps("
            "[i.to_dict() for n in family_names() for c in get_family(n).cells for i in get_family(n).generate(c.name, 5, 3)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = [i.to_dict() for n in FAMILIES for c in get_family(n).cells for i in get_family(n).generate(c.name, 5, 3)]
    assert json.loads(out) == here


def test_multihop_components_recompose():
    family = get_family("multihop")
    for item in family.generate("hops=8", 50, seed=1):
        parts = family.components(item)
        assert len(parts) == item.axes["hops"] == 8
        assert [p.prompt.split(";")[-1].rstrip("?") for p in parts] == item.meta["chain"]
        assert all(SOLVERS["multihop"](p.prompt) == p.target == item.target for p in parts)


def test_compose_components_recompose():
    family = get_family("compose")
    for item in family.generate("depth=3", 50, seed=1):
        parts = family.components(item)
        assert len(parts) == 3
        for before, after in zip(parts, parts[1:]):
            assert after.prompt.split(":")[1].rstrip("=") == before.target
        assert parts[0].prompt.endswith(f":{item.meta['input']}=")
        assert parts[-1].target == item.target
        assert all(SOLVERS["compose"](p.prompt) == p.target for p in parts)


def test_commands_components_recompose():
    family = get_family("commands")
    for item in [*family.generate("long,and", 25, seed=1), *family.generate("long,after", 25, seed=1)]:
        first, second = family.components(item)
        joined = second.target + first.target if item.meta["joiner"] == "after" else first.target + second.target
        assert joined == item.target


def test_few_shot_uses_base_items_never_the_item_and_is_seeded():
    family = get_family("addition")
    items = family.generate("digits=1", 40, seed=0)
    shot = few_shot(items, family, k=3, seed=0)
    assert shot == few_shot(items, family, k=3, seed=0)
    for original, rendered in zip(items, shot):
        lines = rendered.prompt.split("\n")
        assert len(lines) == 4 and lines[-1] == original.prompt and rendered.target == original.target
        for example in lines[:3]:
            prompt, _, answer = example.partition("=")
            assert SOLVERS["addition"](prompt + "=") == answer
            assert prompt + "=" != original.prompt
            assert max(len(x) for x in prompt.split("+")) <= 3  # base region only


def test_tasks_never_import_torch():
    code = ("import sys; import tasks; from bench.cli import main; main(['tasks', 'list']); "
            "main(['tasks', 'show', 'commands']); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
