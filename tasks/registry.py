"""Built-in task families by name. Importing this never imports torch."""
from __future__ import annotations

from .addition import Addition
from .errors import TaskError
from .family import TaskFamily

_FAMILIES: dict[str, type[TaskFamily]] = {cls.name: cls for cls in (Addition,)}


def family_names() -> list[str]:
    return list(_FAMILIES)


def get_family(name: str) -> TaskFamily:
    try:
        return _FAMILIES[name]()
    except KeyError:
        raise TaskError(f"unknown task family {name!r}; known families: {', '.join(_FAMILIES)}") from None
