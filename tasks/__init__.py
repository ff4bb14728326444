"""Task families: compositional variants of tasks, as `Item`s and `SealedItem`s."""
from .errors import TaskError
from .family import TaskFamily
from .records import SCHEMA_VERSION, SHIFTS, Cell, Item, SealedItem
from .registry import family_names, get_family

__all__ = ["SCHEMA_VERSION", "SHIFTS", "Cell", "Item", "SealedItem", "TaskError", "TaskFamily",
           "family_names", "get_family"]
