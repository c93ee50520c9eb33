"""The one exception family the command line and the app show as a one-line message instead of a traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (a file, a folder, an option); the message names it and says what is wrong."""
