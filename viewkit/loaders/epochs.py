"""Which samples each rank reads in an epoch, and how many batches that makes.

Pure functions of (counts, seed, epoch, rank, world): the shard order is reshuffled per
epoch; DALI's reader then splits the samples of that order into `world` contiguous parts,
part r = [floor(N r / W), floor(N (r + 1) / W)). Every rank runs the same number of
batches; a rank whose part runs out pads, and padded samples are flagged invalid.
"""

from __future__ import annotations

import random


def shard_order(num_shards: int, seed: int, epoch: int) -> list[int]:
    order = list(range(num_shards))
    random.Random(f"viewkit-shard-order/{seed}/{epoch}").shuffle(order)
    return order


def part_bounds(num_samples: int, rank: int, world: int) -> tuple[int, int]:
    """Sample positions [start, end) of rank's part: the split DALI's readers make."""
    return num_samples * rank // world, num_samples * (rank + 1) // world


def steps_per_epoch(num_samples: int, world: int, batch_size: int, drop_last: bool) -> int:
    """Batches every rank runs: all of the largest part (padding the others), or with
    drop_last only full batches of the smallest part (the tail of each part is dropped)."""
    sizes = [end - start for start, end in (part_bounds(num_samples, r, world) for r in range(world))]
    return min(sizes) // batch_size if drop_last else -(-max(sizes) // batch_size)


def pipeline_seed(seed: int, epoch: int, rank: int) -> int:
    """Different draws per epoch and rank, the same for the same (seed, epoch, rank)."""
    return random.Random(f"viewkit-pipeline/{seed}/{epoch}/{rank}").randrange(2**31 - 1)
