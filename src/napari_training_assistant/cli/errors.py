"""`UserError`: bad arguments found after parsing (printed by `main` as one line, exit 2)."""


class UserError(Exception):
    """Bad arguments found after parsing (printed as one line, exit 2)."""
