class UserError(Exception):
    """A mistake the user can fix: the CLI prints its message on one line and exits 2."""
