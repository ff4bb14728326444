"""SCAN-like commands: `jump twice and walk left` -> `JJ<W`.

A generated grammar (no external data). Actions are one character each:
W walk, R run, L look, J jump, `<` turn left, `>` turn right.

    command  := phrase | phrase "and" phrase | phrase "after" phrase
    phrase   := verb [ "twice" | "thrice" ]
    verb     := action [ direction ] | "turn" direction
    direction:= ("left" | "right") | "opposite" side | "around" side

`x and y` does x then y; `x after y` does y then x; `opposite` turns twice
before acting, `around` turns and acts four times.

Axes: output length (actions), whether `jump` appears in composition (the base
region shows it only alone), whether `around right` appears (the base region
shows `around left` and `right` but never the two together), and two that only
variant cells set: which phrase's actions end a long answer, and an extra space
before `=` (a surface change that leaves the command's meaning alone).
"""
from __future__ import annotations

import random
from typing import Any

from .family import TaskFamily
from .records import Cell, Item

ACTIONS = {"walk": "W", "run": "R", "look": "L", "jump": "J"}
TURNS = {"left": "<", "right": ">"}
REPEATS = {"": 1, "twice": 2, "thrice": 3}
BASE_MAX_OUTPUT = 12
LONG = BASE_MAX_OUTPUT + 1  # the long cells' answers: one past the base region (at 14 the default model fails all)
# At LONG the default model fails every answer that starts with the longer phrase's actions and
# only part of those that end with them; the long cells hold the latter, where it half-succeeds.


def verb_output(action: str | None, how: str, side: str) -> str:
    act = ACTIONS[action] if action else ""
    turn = TURNS.get(side, "")
    if how == "":
        return turn + act
    if how == "opposite":
        return turn * 2 + act
    if how == "around":
        return (turn + act) * 4 if act else turn * 4
    raise ValueError(how)


class Phrase:
    """One `verb [repeat]` phrase, kept as parts so it can be rendered and interpreted."""

    def __init__(self, action: str | None, how: str, side: str, repeat: str):
        self.action, self.how, self.side, self.repeat = action, how, side, repeat

    def words(self) -> str:
        verb = [self.action or "turn"] + ([self.how] if self.how else []) + ([self.side] if self.side else [])
        return " ".join(verb + ([self.repeat] if self.repeat else []))

    def output(self) -> str:
        return verb_output(self.action, self.how, self.side) * REPEATS[self.repeat]


def _random_phrase(rng: random.Random, actions: list[str]) -> Phrase:
    action = rng.choice(actions + [None])  # None: "turn"
    side = rng.choice(["", "left", "right"]) if action else rng.choice(["left", "right"])
    how = rng.choice(["", "", "opposite", "around"]) if side else ""
    return Phrase(action, how, side, rng.choice(list(REPEATS)))


class Commands(TaskFamily):
    name = "commands"
    description = "Translate a SCAN-like command into its action string (W R L J, < and > for turns)."
    axes = {"output_length": "actions in the answer",
            "jump_composed": "jump used inside a larger command (the base region has it only alone)",
            "around_right": "the modifier combination 'around right' occurs",
            "conjunctions": "phrases joined by 'and' / 'after'",
            "longer_last": "the answer ends with its longer phrase's actions (the long cells only)",
            "spaced": "an extra space before '=' (the spaced cell only)"}
    cells = (
        Cell("phrase", {"conjunctions": 0, "output_length": (1, BASE_MAX_OUTPUT)}, "base"),
        Cell("conjunction", {"conjunctions": 1, "output_length": (2, BASE_MAX_OUTPUT)}, "base"),
        Cell("jump", {"conjunctions": (0, 1), "output_length": (2, BASE_MAX_OUTPUT), "jump_composed": True},
             "substitutivity", "jump, seen only alone, in the verb slot of seen commands"),
        Cell("around_right", {"conjunctions": (0, 1), "output_length": (1, BASE_MAX_OUTPUT), "around_right": True},
             "systematicity", "'around' and 'right' are each seen, never together"),
        Cell("long,and", {"conjunctions": 1, "output_length": (LONG, LONG), "joiner": "and", "longer_last": True},
             "productivity", "'x and y' whose answer is one action longer than any in the base region, y's part the longer"),
        Cell("long,after", {"conjunctions": 1, "output_length": (LONG, LONG), "joiner": "after", "longer_last": True},
             "productivity", "'x after y' whose answer is one action longer than any in the base region, x's part the longer"),
        Cell("spaced", {"conjunctions": 1, "output_length": (2, BASE_MAX_OUTPUT), "spaced": True}, "distraction",
             "a base-region command with one extra space before '=' (the base region always has one)"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        jump = cell.axes.get("jump_composed", False)
        around_right = cell.axes.get("around_right", False)
        lo, hi = cell.axes["output_length"]
        if cell.is_base and cell.axes["conjunctions"] == 0 and rng.random() < 0.1:
            return self._finish([Phrase("jump", "", "", "")], None, False)  # jump is seen, alone
        conj = cell.axes["conjunctions"]
        while True:
            count = 1 + (rng.randint(*conj) if isinstance(conj, tuple) else conj)
            actions = ["walk", "run", "look"] + (["jump"] if jump else [])
            phrases = [_random_phrase(rng, actions) for _ in range(count)]
            if jump and not any(p.action == "jump" for p in phrases):
                phrases[rng.randrange(count)].action = "jump"
            if around_right:
                p = phrases[rng.randrange(count)]
                p.how, p.side = "around", "right"
            has_ar = any(p.how == "around" and p.side == "right" for p in phrases)
            if has_ar != around_right:
                continue
            if jump and count == 1 and phrases[0].words() == "jump":
                continue  # "jump" alone is base
            joiner = cell.axes.get("joiner") or (rng.choice(["and", "after"]) if count == 2 else None)
            prompt, target, axes, meta = self._finish(phrases, joiner, jump)
            if "longer_last" in cell.axes:
                first, last = meta["phrase_outputs"][::-1] if joiner == "after" else meta["phrase_outputs"]
                if (len(last) > len(first)) != cell.axes["longer_last"]:
                    continue
                axes["longer_last"] = cell.axes["longer_last"]
            if cell.axes.get("spaced"):
                prompt, axes["spaced"] = prompt[:-1] + " =", True
            if lo <= len(target) <= hi:
                return prompt, target, axes, meta

    @staticmethod
    def _finish(phrases: list[Phrase], joiner: str | None, jump: bool):
        outputs = [p.output() for p in phrases]
        if joiner == "after":
            target = outputs[1] + outputs[0]
        else:
            target = "".join(outputs)
        words = f" {joiner} ".join(p.words() for p in phrases) if joiner else phrases[0].words()
        axes = {"output_length": len(target), "jump_composed": jump,
                "around_right": any(p.how == "around" and p.side == "right" for p in phrases),
                "conjunctions": len(phrases) - 1}
        meta = {"phrases": [p.words() for p in phrases], "phrase_outputs": outputs, "joiner": joiner}
        return f"{words} =", target, axes, meta

    def components(self, item: Item) -> list[Item]:
        """Each phrase of a conjunction as its own command; a lone phrase has none."""
        if not item.meta.get("joiner"):
            return []
        return [Item(id=f"{item.id}.{k}", family=self.name, cell=f"{item.cell}/component",
                     axes={"output_length": len(out), "conjunctions": 0}, prompt=f"{words} =", target=out,
                     meta={"parent": item.id, "step": k})
                for k, (words, out) in enumerate(zip(item.meta["phrases"], item.meta["phrase_outputs"]))]
