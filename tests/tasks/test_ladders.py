"""The variant ladders: what each re-cut cell holds, the base region frozen, and the pretrained
suite's doubling ladders within a small model's context."""
import hashlib
import json

import pytest

from tasks import SUITES, get_family
from tasks.addition import carries, longest_chain
from tasks.render import few_shot

# The zoo's models were trained on these base cells, and pretrained runs compare across versions:
# a change to what a base cell generates is a change to every trained model's data.
BASE_DIGESTS = {
    "addition": "5358bc70ccde71a9", "multihop": "66a537593bdfe32b", "compose": "e67567eed8a9aef8",
    "commands": "debe1aba9c120439", "recall": "960cf356b1259fcd", "parity": "9a02a6d00af01998",
    "counting": "1ae712ebe4e606e5", "modular": "a60075ee589bd1f0", "copy": "03b6fe60507936db",
    "sequence": "b287cd26db5f176a", "index": "869c3799d4b47f6e", "case": "a33beece583dd341",
    "lookup": "54513ba6fb1bc7f7", "twohop": "250d7597804c6d6f",
}


@pytest.mark.parametrize("name", sorted(BASE_DIGESTS))
def test_base_cells_generate_what_they_always_did(name):
    family = get_family(name)
    rows = [[i.id, i.prompt, i.target, dict(i.axes)] for c in family.base_cells for i in family.generate(c.name, 40, 0)]
    assert hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16] == BASE_DIGESTS[name]


def test_the_zoo_suite_keeps_its_run_short():
    assert sum(len(get_family(name).variant_cells) for name in SUITES["zoo"]) <= 27


def test_carry_chain_past_the_shorter_operand():
    for item in get_family("addition").generate("carry=3,short", 200, seed=0):
        operands = item.meta["operands"]
        assert sorted(len(str(x)) for x in operands) == [2, 3]
        assert longest_chain(carries(operands)) == 3 and sum(operands) >= 1000


def test_counting_padded_cells_start_below_ten_zero_padded():
    family = get_family("counting")
    for cell, lengths in (("padded,length=2-3", {2, 3}), ("padded,length=4-5", {4, 5})):
        items = family.generate(cell, 200, seed=0)
        assert {i.axes["length"] for i in items} == lengths
        for item in items:
            assert item.axes["first"] < 10 and item.prompt.startswith(f"count:0{item.axes['first']},")
            assert all(len(n) == 2 for n in item.target.split())


def test_compose_one_digit_inputs_and_commands_one_action_past_the_base():
    compose = get_family("compose")
    for cell, depths in (("length=1", {1, 2}), ("depth=3,length=1", {3})):
        items = compose.generate(cell, 100, seed=0)
        assert {i.axes["depth"] for i in items} == depths and {len(i.meta["input"]) for i in items} == {1}
    commands = get_family("commands")
    for joiner in ("and", "after"):
        for item in commands.generate(f"long,{joiner}", 100, seed=0):
            assert item.meta["joiner"] == joiner and len(item.target) == 13
            first, last = item.meta["phrase_outputs"][::-1] if joiner == "after" else item.meta["phrase_outputs"]
            assert len(last) > len(first) and item.target == first + last  # the answer ends with the longer part


def test_spaced_commands_are_base_region_commands_with_one_more_space():
    commands = get_family("commands")
    for item in commands.generate("spaced", 100, seed=0):
        assert item.prompt.endswith("  =") and item.axes["spaced"]
        outputs, joiner = item.meta["phrase_outputs"], item.meta["joiner"]
        assert item.target == "".join(outputs[::-1] if joiner == "after" else outputs)
        assert 2 <= len(item.target) <= 12 and item.axes["conjunctions"] == 1
        plain = item.prompt[:-3] + " ="
        assert " ".join(plain.split()) == plain  # otherwise single-spaced, as the base region


def test_pretrained_ladders_double():
    copy = [c.axes["words"] for c in get_family("copy").cells if c.axes["vocabulary"] == "common"]
    assert copy == [2 ** k for k in range(9)]
    lookup = [c.axes["facts"] for c in get_family("lookup").cells if c.axes["position"] == "any"]
    assert lookup == [2 ** k for k in range(1, 8)]


@pytest.mark.parametrize("name", SUITES["pretrained"])
def test_pretrained_items_fit_a_small_context(name):
    # 3-shot prompt and answer within 3,200 bytes: a byte-level tokenizer's 4,096-token context
    # (the test models') and a BPE tokenizer's 1,024 (GPT-2's) both hold every rung.
    family = get_family(name)
    for cell in family.cells:
        for item in few_shot(family.generate(cell.name, 20, seed=0), family, k=3, seed=0):
            assert len((item.prompt + item.target).encode()) <= 3200, (cell.name, len(item.prompt))
