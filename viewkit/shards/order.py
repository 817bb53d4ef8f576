"""The plan of a sharding run that its inputs and options fix: the shuffled input order and
the samples per shard. The writer, its Ray engine and the completion check share it."""

from __future__ import annotations

import os
import random

from viewkit.shards import format as fmt

# Tar overhead of one sample: a header per component, padding of the image, and one
# block of data for each small component (cls, json, id, label).
_SAMPLE_OVERHEAD_BYTES = 5 * fmt.TAR_BLOCK + fmt.TAR_BLOCK // 2 + 4 * fmt.TAR_BLOCK


def samples_per_shard(listing, options) -> int:
    """`--shard-samples`, or as many samples of the inputs' mean size as fill `--shard-size`."""
    if options.shard_samples:
        return options.shard_samples
    if not listing.items:
        return 1
    mean_bytes = sum(os.path.getsize(i.path) for i in listing.items) / len(listing.items)
    return max(1, int(options.shard_size // (mean_bytes + _SAMPLE_OVERHEAD_BYTES)))


def shuffled_order(count: int, seed: int) -> list[int]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return order
