"""Write failures that name their file.

A full disk fails a write, a flush or an fsync with an OSError that carries no file name,
and torch.save hides it inside a RuntimeError ("unexpected pos ..."). The commands print
one line, "PATH: CAUSE", so every writer that can hit a full disk wraps its writes here.
"""

from __future__ import annotations

import contextlib
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
