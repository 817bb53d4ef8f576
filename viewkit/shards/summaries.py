"""Rejected and converted inputs summarised in one line for a person: reasons, most common first."""

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


def conversions(manifest: dict, shown: int = 3) -> str:
    """"12 re-encoded (5 x a PNG image, 4 x EXIF orientation 6, ...)", or "" when every image
    passed through byte for byte (or the manifest predates the count)."""
    total: dict[str, int] = {}
    for shard in manifest["shards"]:
        for reason, count in shard.get("converted", {}).items():
            total[reason] = total.get(reason, 0) + count
    if not total:
        return ""
    common = sorted(total.items(), key=lambda item: (-item[1], item[0]))
    said = ", ".join(f"{count} x {reason}" for reason, count in common[:shown])
    more = f", {len(common) - shown} other reasons" if len(common) > shown else ""
    return f"{sum(total.values())} re-encoded ({said}{more})"
