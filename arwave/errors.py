"""User-facing errors. The CLI prints any ArwaveError as one line (`arwave: error: ...`), no traceback."""


class ArwaveError(Exception):
    """Base class: bad input, a missing file, a wrong option. The message names the file and the problem."""
