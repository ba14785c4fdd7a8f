"""Paths a command reads or writes, checked before any work is done.

Every command that writes a file checks its output path first (`check_output_file`): a wrong extension,
a folder where a file should go, a parent that is a regular file, a read-only folder, or a file that
already exists (without `--overwrite`) is one ArwaveError before the model is even loaded, so no work
is lost and nothing a user has is replaced. Outputs are then written to a temp file beside the target
and renamed over it at the end (`replacing`), so an error or Ctrl-C never leaves half a file.
"""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from arwave.errors import ArwaveError


def cache_root() -> Path:
    """Root of arwave's caches (corpus, converted weights, FAD statistics, unpacked bundles):
    $ARWAVE_CACHE, else ~/.cache/arwave."""
    env = os.environ.get("ARWAVE_CACHE", "")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "arwave"


def missing_reason(path: str | os.PathLike) -> str:
    """Why `path` cannot be opened: "no such file or folder", "symbolic link loop", "broken symbolic link
    (to X)", "permission denied" — so a link loop is not reported as a missing file."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop"
        if err.errno == errno.EACCES:
            return "permission denied"
        if err.errno == errno.ENOTDIR:
            return "a part of the path is a file, not a folder"
        if os.path.islink(path):
            return f"broken symbolic link (to {os.readlink(path)})"
        return "no such file or folder"
    return "exists"


def _first_existing(folder: Path) -> Path:
    """The nearest ancestor of `folder` (itself included) that exists."""
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_writable_folder(folder: str | os.PathLike, target: str | os.PathLike | None = None) -> None:
    """`folder` exists and is writable, or can be created (its nearest existing ancestor is a writable
    folder). Errors name `target` (the file or folder to be written) when given."""
    folder = Path(folder) if str(folder) else Path(".")
    name = Path(target) if target is not None else folder
    base = _first_existing(folder)
    if not base.exists():
        raise ArwaveError(f"{name}: cannot create it: {base} is a {missing_reason(base)}")
    if not base.is_dir():
        raise ArwaveError(f"{name}: cannot create it: {base} is a file, not a folder")
    # create (and remove) an empty probe file: os.access would say yes to root everywhere, while a
    # read-only file system or a kernel folder (/sys) still refuses; the probe is the test that cannot be wrong
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".arwave-probe-")
    except OSError as err:
        raise ArwaveError(f"{name}: cannot write there: folder {base} is not writable ({err.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(
    path: str | os.PathLike, overwrite: bool = False, extensions: Iterable[str] | None = None, what: str = "this file"
) -> Path:
    """Refuse, before any work, an output file that could not be written or would replace one the user has."""
    path = Path(path)
    if extensions is not None:
        extensions = tuple(extensions)
        if path.suffix.lower() not in extensions:
            raise ArwaveError(
                f"{path}: unsupported extension {path.suffix or '(none)'!r} for {what} (known: {' '.join(extensions)})"
            )
    if path.is_dir():
        raise ArwaveError(f"{path}: is a folder; give a file name")
    if os.path.lexists(path):
        if not overwrite:
            raise ArwaveError(f"{path}: already exists; pass --overwrite to replace it")
        if not path.exists():
            raise ArwaveError(f"{path}: {missing_reason(path)}; remove it or choose another name")
    check_writable_folder(path.parent, path)
    return path


def check_output_folder(path: str | os.PathLike) -> Path:
    """A folder to be created or filled (a run folder): not a file, and creatable/writable."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        reason = "is a file, not a folder" if path.exists() else missing_reason(path)
        raise ArwaveError(f"{path}: {reason}")
    check_writable_folder(path, path)
    return path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path` (the same folder, so the rename is atomic); on success the file is
    flushed to disk and renamed over `path` in one step, on any error (or Ctrl-C) it is removed and `path`
    is left as it was. Every file arwave writes goes through here: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())
