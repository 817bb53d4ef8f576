"""Writes one shard of a finished dataset again from its inputs, and never destroys to do it.

A shard's manifest entry records `inputs`, the slice of the shuffled input order it was cut
from, so one shard is rebuilt from its own inputs without touching the others. The rebuilt
files go to temporary names first, and only then is anything decided:

- they equal the manifest's entry: they replace the damaged or missing files;
- they equal the files already there: the files were sound and the manifest's entry was
  wrong (edited, or damaged), so the entry is corrected and the files stay;
- neither: an input changed without changing its size or time; the temporaries go and
  the files there stay as they were, with an error that says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from viewkit.shards import format as fmt
from viewkit.shards.samples import fill_shard, in_order, prepare_tasks
from viewkit.shards.sources import SourceListing
from viewkit.shards.tarwriter import ShardWriter

_SAME = ("bytes", "samples", "sha256", "index_sha256")


def _file_digests(out: Path, shard: dict) -> tuple[str | None, str | None]:
    tar, index = out / shard["tar"], out / shard["index"]
    return (fmt.sha256_file(tar) if tar.is_file() else None,
            hashlib.sha256(index.read_bytes()).hexdigest() if index.is_file() else None)


def rewrite_shard(listing: SourceListing, out: Path, shard: dict, order: list[int], options, pool,
                  workers: int) -> tuple[str, dict]:
    """("rewrote", entry) when the files were replaced, ("corrected", entry) when the manifest's
    entry was what differed; raises ValueError, leaving every file as it was, otherwise."""
    start, end = shard["inputs"]
    writer = ShardWriter(out / shard["tar"])
    fill_shard(listing, writer, order[start:end], shard["first_id"],
               in_order(pool, prepare_tasks(listing, order[start:end], options), window=4 * workers))
    record = writer.finish(install=False)
    rebuilt = {key: record[key] for key in _SAME}
    if rebuilt == {key: shard[key] for key in _SAME}:
        writer.install()
        return "rewrote", shard
    writer.discard()
    if _file_digests(out, shard) == (record["sha256"], record["index_sha256"]):
        return "corrected", shard | rebuilt
    raise ValueError(f"{out / shard['tar']}: written again from its inputs it differs from both the manifest and "
                     "the file there, so an input changed without changing its size or time; nothing was "
                     "removed: shard again with --overwrite, or into another folder")
