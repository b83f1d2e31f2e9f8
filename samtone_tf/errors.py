"""The errors that are the user's input or environment, not a bug.

``samtone`` prints a :class:`SamtoneError` (and an ``OSError`` such as a missing,
read-only or full path) as one line ``samtone: error: ...`` with exit code 2, and
the traceback with ``--debug``. Anything else is a bug in samtone_tf and surfaces
with its traceback: it is never disguised as a user error.
"""


class SamtoneError(Exception):
    """Base of the errors the CLI reports as one line."""


class UserInputError(SamtoneError, ValueError):
    """Bad input: a configuration value, a flag, a data file, a folder."""


class ConfigError(UserInputError):
    """An invalid configuration or flag; the message names the field."""


class DataError(UserInputError):
    """Malformed or unusable data; the message names the file and line or the id."""


class TrainingStopped(SamtoneError, RuntimeError):
    """Training could not go on safely (non-finite numbers, no intact checkpoint)."""
