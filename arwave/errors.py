"""User-facing errors. The CLI prints any ArwaveError as one line (`arwave: error: ...`), no traceback."""


class ArwaveError(Exception):
    """Base class: bad input, a missing file, a wrong option. The message names the file and the problem."""


class ArwaveWarning(UserWarning):
    """Something was skipped or repaired and the command went on (a vanished file, a torn log line).
    The CLI prints it as one line, `arwave: warning: ...`."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and `kill` send), raised where the process is so that training saves a
    checkpoint exactly as it does for Ctrl-C. The CLI exits with 143 (128 + SIGTERM)."""
