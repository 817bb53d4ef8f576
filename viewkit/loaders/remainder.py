"""The rest of an epoch on another number of ranks: the samples no rank delivered yet.

A preempted job may come back on another number of GPUs. Each rank's loader state holds
the ids it delivered this epoch (a bit per sample); their union over the earlier job's
ranks leaves the samples still due, which are dealt to the new ranks in contiguous parts
of the id order, as DALI deals an epoch. A rank then reads its part alone: its DALI reader
gets index files that list only its samples (part_files.listed), so no sample is read twice
and none is skipped. Views stay a function of (seed, epoch, sample id): the same views as
an uninterrupted run, in another batch composition.
"""

from __future__ import annotations

import zlib

import numpy as np

from viewkit.loaders.epochs import part_bounds


def pack(flags: np.ndarray) -> bytes:
    """A bit per sample, compressed: a checkpoint holds one per rank, and an epoch's delivered
    ids are long runs (whole shards), so 14M samples take kilobytes, not 1.75 MB a rank."""
    return zlib.compress(np.packbits(flags).tobytes(), 1)


def unpack(data: bytes, count: int) -> np.ndarray:
    try:
        data = zlib.decompress(data)
    except zlib.error:  # a state saved before the bits were compressed
        pass
    return np.unpackbits(np.frombuffer(data, np.uint8), count=count).astype(bool)


def still_due(states: list[dict], num_samples: int) -> np.ndarray:
    """Ids of the epoch that none of `states` (every rank's state of one job) delivered."""
    delivered = np.zeros(num_samples, bool)
    for state in states:
        if state.get("delivered") is not None:
            delivered |= unpack(state["delivered"], num_samples)
    return np.flatnonzero(~delivered)


def share(due: np.ndarray, rank: int, world: int) -> np.ndarray:
    start, end = part_bounds(len(due), rank, world)
    return due[start:end]


def steps(due: np.ndarray, world: int, batch_size: int, drop_last: bool) -> int:
    """Batches every rank runs for the rest of the epoch: all of the largest share, padded,
    or with drop_last the full batches of the smallest share (the rest is dropped, as an
    epoch's tail is: a trainer's batches stay whole)."""
    sizes = [len(share(due, r, world)) for r in range(world)]
    return min(sizes) // batch_size if drop_last else -(-max(sizes) // batch_size)
