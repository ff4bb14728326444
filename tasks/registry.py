"""Built-in task families by name. Importing this never imports torch."""
from __future__ import annotations

from .addition import Addition
from .commands import Commands
from .compose import Compose
from .counting import Counting
from .multihop import Multihop
from .modular import Modular
from .parity import Parity
from .recall import Recall
from .errors import TaskError
from .family import TaskFamily

_FAMILIES: dict[str, type[TaskFamily]] = {cls.name: cls for cls in (Addition, Multihop, Compose, Commands, Recall, Parity, Counting,
                                                                  Modular)}


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
