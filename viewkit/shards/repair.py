"""Rewrites the damaged or missing shards of a finished dataset, byte for byte as first written.

A shard's manifest entry records `inputs`, the slice of the shuffled input order it was cut
from, so one shard is rebuilt from its own inputs without touching the others. Datasets
written before that entry existed are rebuilt whole (the bytes come out the same: the
writer is deterministic).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from viewkit.shards.samples import in_order, prepare_tasks, write_one_shard
from viewkit.shards.sources import SourceListing


def repair_shards(listing: SourceListing, out: Path, manifest: dict, options, damaged: list[tuple[int, str]],
                  progress: bool = True) -> None:
    from viewkit.shards.writer import write_shards, clear_output, shuffled_order

    if any("inputs" not in manifest["shards"][position] for position, _ in damaged):
        clear_output(out)
        write_shards(listing, out, manifest["split"], options, manifest["fingerprint"], progress, None)
        return
    order = shuffled_order(len(listing.items), options.seed)
    workers = options.workers or os.cpu_count() or 1
    with ThreadPoolExecutor(workers, thread_name_prefix="viewkit-repair") as pool:
        for position, why in damaged:
            shard = manifest["shards"][position]
            if progress:
                tqdm.write(f"{out / shard['tar']}: {why}; writing it again")
            _rewrite(listing, out, shard, order, options, pool, workers)


def _rewrite(listing: SourceListing, out: Path, shard: dict, order: list[int], options, pool, workers: int) -> None:
    start, end = shard["inputs"]
    tasks = prepare_tasks(listing, order[start:end], options)
    record, _ = write_one_shard(listing, out / shard["tar"], order[start:end], shard["first_id"],
                                in_order(pool, tasks, window=4 * workers))
    if (record["sha256"], record["index_sha256"]) != (shard["sha256"], shard["index_sha256"]):
        for name in (record["tar"], record["index"]):
            (out / name).unlink(missing_ok=True)
        raise ValueError(f"{out / shard['tar']}: rewritten from its inputs it differs from the manifest, so an "
                         "input changed without changing its size or time; shard again with --overwrite")
