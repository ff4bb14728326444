"""Built-in task families by name. Importing this never imports torch."""
from __future__ import annotations

from .addition import Addition
from .commands import Commands
from .compose import Compose
from .counting import Counting
from .multihop import Multihop
from .modular import Modular
from .parity import Parity
from .plain import Case, Copy, Index, Lookup, Sequence, TwoHop
from .recall import Recall
from .errors import TaskError
from .family import TaskFamily

_FAMILIES: dict[str, type[TaskFamily]] = {cls.name: cls for cls in (Addition, Multihop, Compose, Commands, Recall, Parity, Counting,
                                                                  Modular, Copy, Sequence, Index, Case, Lookup, TwoHop)}

#: Named suites. "zoo": the formats the zoo's models are trained on (`c=4;y=c;y?`); "pretrained":
#: plain-language ladders a pretrained or instruct LM can follow (tasks/plain.py).
SUITES: dict[str, tuple[str, ...]] = {
    "zoo": ("addition", "multihop", "compose", "commands", "recall", "parity", "counting"),
    "pretrained": ("copy", "sequence", "index", "case", "lookup", "twohop"),
}


def suite_families(suite: str) -> tuple[str, ...]:
    try:
        return SUITES[suite]
    except KeyError:
        raise TaskError(f"unknown suite {suite!r}; known suites: {', '.join(SUITES)}") from None


def family_names() -> list[str]:
    return list(_FAMILIES)


def get_family(name: str) -> TaskFamily:
    try:
        return _FAMILIES[name]()
    except KeyError:
        raise TaskError(f"unknown task family {name!r}; known families: {', '.join(_FAMILIES)}") from None


def resolve_families(specs) -> dict[str, TaskFamily]:
    """Family names and user task files (a .jsonl path or a saved dataset folder) to families."""
    from pathlib import Path

    from .filetask import load_task_file

    families: dict[str, TaskFamily] = {}
    for spec in specs:
        if spec.endswith(".jsonl") or "/" in spec or Path(spec).is_dir():
            family = load_task_file(spec)
        else:
            family = get_family(spec)
        if family.name in families:
            raise TaskError(f"task {family.name!r} is named twice")
        families[family.name] = family
    if not families:
        raise TaskError("no tasks selected: pass --tasks with family names or task files")
    return families
