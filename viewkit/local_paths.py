"""Paths are local where viewkit writes: a URL given there is refused in one line.

Without this, `viewkit shard ... s3://bucket/set` wrote a local folder named `s3:` and exited 0.
Datasets are read from object storage (viewkit/storage.py); writing there is not done yet.
"""

from __future__ import annotations

import re

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value) -> bool:
    return isinstance(value, str) and bool(_URL.match(value))


def url_refusal(value, what: str = "a path") -> str | None:
    """The one line that refuses `value` as `what`, or None when it is no URL."""
    if not is_url(value):
        return None
    scheme = value.split("://", 1)[0]
    hint = f", for example `aws s3 sync DIR {value}`" if scheme == "s3" else ""
    return (f"{value}: a URL ({scheme}://) given as {what}; viewkit reads datasets from object storage but "
            f"writes local files only: give a local folder (and copy it to the store after{hint})")


def refuse_url(value, what: str = "a path") -> None:
    if (refusal := url_refusal(value, what)) is not None:
        raise ValueError(refusal)
