"""Task families: compositional variants of tasks, as `Item`s and `SealedItem`s."""
from .errors import TaskError
from .family import TaskFamily
from .records import SCHEMA_VERSION, SHIFTS, Cell, Item, SealedItem
from .check import check_family
from .filetask import FileTask, load_task_file
from .registry import SUITES, family_names, get_family, resolve_families, suite_families

__all__ = ["SCHEMA_VERSION", "SHIFTS", "Cell", "FileTask", "Item", "SealedItem", "TaskError", "TaskFamily",
           "check_family", "family_names", "get_family", "load_task_file", "resolve_families", "SUITES", "suite_families"]
