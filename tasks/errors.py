class TaskError(ValueError):
    """A user mistake about tasks (unknown family or cell, bad n, bad task file)."""
