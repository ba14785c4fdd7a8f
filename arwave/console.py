"""What arwave prints for people while it works (progress bars, notes), and `--quiet`, which silences
it all in one place: code deep inside (encoding data for AR training, indexing a folder, rendering the
corpus) asks `bars()` rather than taking a flag through every call. Errors and warnings still print."""

from __future__ import annotations

import contextvars
import sys
from contextlib import contextmanager

_QUIET = contextvars.ContextVar("arwave_quiet", default=False)


@contextmanager
def quiet(on: bool = True):
    """Within this block (this thread / task), `bars()` is False and `note()` prints nothing."""
    token = _QUIET.set(bool(on) or _QUIET.get())
    try:
        yield
    finally:
        _QUIET.reset(token)


def is_quiet() -> bool:
    return _QUIET.get()


def bars(progress: bool = True) -> bool:
    """Whether a progress bar should show: the caller wants one and no `quiet()` block is active."""
    return bool(progress) and not _QUIET.get()


def note(message: str) -> None:
    """One informational line on stderr (silenced by `quiet()`)."""
    if not _QUIET.get():
        print(message, file=sys.stderr, flush=True)


def count_text(n: int) -> str:
    """1234567 -> "1.2M" (parameter counts in tables)."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def quality_text(q: dict) -> str:
    """A model card's measured quality in one line."""
    if not q:
        return "not measured"
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in q.items())
