"""Paths are local: a URL given where viewkit reads or writes files is refused in one line.

Without this, `viewkit shard ... s3://bucket/set` wrote a local folder named `s3:` and exited 0,
and a URL to read was answered "no such folder". Object storage is read through a copy on a
local disk for now.
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
    hint = f" (for example `aws s3 sync {value} DIR`)" if scheme == "s3" else ""
    return (f"{value}: a URL ({scheme}://) given as {what}; viewkit reads and writes local files only: copy the "
            f"data to a local disk first{hint} and give its folder")


def refuse_url(value, what: str = "a path") -> None:
    if (refusal := url_refusal(value, what)) is not None:
        raise ValueError(refusal)
