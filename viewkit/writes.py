"""Write failures that name their file, and files created without writing through links.

A full disk fails a write, a flush or an fsync with an OSError that carries no file name,
and torch.save hides it inside a RuntimeError ("unexpected pos ..."). The commands print
one line, "PATH: CAUSE", so every writer that can hit a full disk wraps its writes here.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


def system_error(error: BaseException) -> OSError | None:
    """The OSError behind `error`: itself, or one it was raised while handling."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        # `raise ... from None` hides its context: that error was answered, not caused
        error = error.__cause__ if error.__cause__ is not None or error.__suppress_context__ else error.__context__
    return None


@contextlib.contextmanager
def writing(path: str | Path):
    """Re-raises a failed write inside the block as OSError(errno, cause, path)."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        cause = system_error(e)
        if cause is None or (cause is e and e.filename is not None):
            raise
        raise OSError(cause.errno, cause.strerror or str(cause), str(path)) from e


def open_new(path: str | Path, mode: str = "wb"):
    """`path` opened for writing as a file of its own, never through a link that stands there.

    A folder of viewkit's files is one a user (or anyone with write access) may have put a
    link in, named like a file viewkit writes: opening that name would overwrite the link's
    target anywhere on disk. So the file is created exclusively (O_EXCL, which also fails on
    a dangling link, and O_NOFOLLOW); a link there is refused, and a plain file left by a
    killed run is removed first.
    """
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"{path}: a link stands where viewkit writes its own file; it never writes through "
                         "links: remove the link")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a killed run's temporary (a folder here fails, named by the OSError)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise ValueError(f"{path}: another file appeared there while viewkit was creating it; "
                         "is a second program writing into this folder?") from None
    return os.fdopen(descriptor, mode)


def open_append(path: str | Path):
    """An existing file of viewkit's own opened to append, refusing a link (O_NOFOLLOW)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{path}: a link stands where viewkit writes its own file; remove the link") from None
        raise
    return os.fdopen(descriptor, "a")
