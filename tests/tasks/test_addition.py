import json
import subprocess
import sys

import pytest

from tasks import SealedItem, TaskError, get_family
from tasks.addition import carries, longest_chain


@pytest.fixture
def addition():
    return get_family("addition")


def test_same_seed_same_items_and_different_seed_different(addition):
    for cell in addition.cells:
        a = addition.generate(cell.name, 50, seed=3)
        assert a == addition.generate(cell.name, 50, seed=3)
        assert [i.prompt for i in a] != [i.prompt for i in addition.generate(cell.name, 50, seed=4)]


def test_items_equal_across_processes(addition):
    code = ("import json; from tasks import get_family; "
            "print(json.dumps([i.to_dict() for i in get_family('addition').generate('carry=3', 20, seed=7)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [i.to_dict() for i in addition.generate("carry=3", 20, seed=7)]


def test_every_target_is_the_sum_and_meta_agrees(addition):
    for cell in addition.cells:
        for item in addition.generate(cell.name, 300, seed=1):
            operands = [int(x) for x in item.prompt.removesuffix("=").split("+")]
            assert int(item.target) == sum(operands)
            assert item.meta["operands"] == operands
            # Independent carry count, written out by hand per column.
            chain = best = 0
            carry = 0
            for position in range(max(len(str(x)) for x in operands)):
                column = sum(x // 10**position % 10 for x in operands) + carry
                carry = column // 10
                chain = chain + 1 if carry else 0
                best = max(best, chain)
            assert item.axes["carry"] == best


def test_cells_keep_to_their_declared_axes(addition):
    for cell in addition.cells:
        lo, hi = cell.axes["carry"]
        for item in addition.generate(cell.name, 300, seed=2):
            assert item.axes["digits"] == cell.axes["digits"]
            assert lo <= item.axes["carry"] <= hi
            assert len(item.meta["operands"]) == cell.axes["operands"]


def test_base_and_variant_regions_do_not_overlap(addition):
    base = {i.prompt for c in addition.base_cells for i in addition.generate(c.name, 2000, seed=0)}
    for cell in addition.variant_cells:
        assert not base & {i.prompt for i in addition.generate(cell.name, 500, seed=0)}, cell.name


def test_shift_kinds_and_base_region(addition):
    assert [c.name for c in addition.base_cells] == ["digits=1", "digits=2", "digits=3"]
    assert {c.shift for c in addition.variant_cells} >= {"productivity", "depth"}


def test_ids_are_unique_and_stable(addition):
    items = addition.generate("digits=4", 200, seed=0)
    assert len({i.id for i in items}) == 200
    assert items[0].id == addition.generate("digits=4", 1, seed=0)[0].id


def test_sealed_item_has_no_target_or_meta(addition):
    item = addition.generate("digits=4", 1, seed=0)[0]
    sealed = item.sealed()
    assert isinstance(sealed, SealedItem)
    assert not hasattr(sealed, "target") and not hasattr(sealed, "meta")
    assert item.target not in json.dumps(sealed.to_dict())


def test_carry_helpers():
    assert carries([999, 1]) == [1, 1, 1]
    assert longest_chain([1, 0, 1, 1]) == 2


def test_bad_requests_raise_task_errors(addition):
    with pytest.raises(TaskError, match="no cell"):
        addition.generate("digits=99", 5)
    with pytest.raises(TaskError, match="positive"):
        addition.generate("digits=1", 0)
    with pytest.raises(TaskError, match="unknown task family"):
        get_family("nope")
