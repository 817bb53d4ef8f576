"""Rejected inputs summarised in one line for a person: the reasons, most common first."""

from __future__ import annotations


def every_input_rejected(rejected: list[dict], shown: int = 3) -> str:
    """One line: the reasons, most common first, each with its count and an example."""
    by_reason: dict[str, list[str]] = {}
    for record in rejected:
        by_reason.setdefault(record["reason"], []).append(record["path"])
    common = sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0]))
    said = "; ".join(f"{len(paths)} x {reason} (e.g. {paths[0]})" for reason, paths in common[:shown])
    more = f"; and {len(common) - shown} other reasons" if len(common) > shown else ""
    return f"every input was rejected ({len(rejected)} input{'' if len(rejected) == 1 else 's'}), no dataset " \
           f"was written: {said}{more}"
