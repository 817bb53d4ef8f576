"""Index files that list one rank's samples, so that its DALI reader indexes its part alone.

Given every shard of the dataset and (num_shards, shard_id), DALI's webdataset reader
indexes every sample in each rank before it reads its part: about 0.5 KB of memory and
2.7 us of build time per sample of the whole dataset, per rank and per epoch, twice while
the next epoch is built ahead (ImageNet-21k: some 7 GB a rank). It reads exactly the
samples its index files list, so a rank's reader is given only the shards its part touches:
a shard wholly inside the part keeps its own index file, and the at most two shards its
bounds cut get a copy of the lines inside it. The reader then sees the part as its whole
epoch (one shard of one), the same samples in the same order as DALI's own split.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from viewkit.shards import format as fmt


def _index_lines(index: str) -> list[str]:
    return Path(index).read_text().splitlines()[1:]


def _write_index(folder: Path, index: str, lines: list[str]) -> str:
    path = folder / Path(index).name
    path.write_text(f"{fmt.INDEX_VERSION} {len(lines)}\n" + "".join(line + "\n" for line in lines))
    return str(path)


def touched(counts: list[int], start: int, end: int) -> list[int]:
    """Positions (in the given order) of the shards that samples [start, end) lie in."""
    found, first = [], 0
    for position, count in enumerate(counts):
        if first < end and first + count > start:
            found.append(position)
        first += count
    return found


def positions(tars: list[str], indices: list[str], counts: list[int], start: int, end: int,
              folder: Path) -> tuple[list[str], list[str]]:
    """(tars, index files) of the samples at positions [start, end) of the shards in the given
    order, as DALI counts them; cut shards' index files are written into `folder`."""
    firsts = [0, *itertools.accumulate(counts)]
    kept_tars, kept_indices = [], []
    for i in touched(counts, start, end):
        first, last = firsts[i], firsts[i] + counts[i]
        if start <= first and last <= end:
            kept_indices.append(indices[i])
        else:
            lines = _index_lines(indices[i])[max(start, first) - first:min(end, last) - first]
            kept_indices.append(_write_index(folder, indices[i], lines))
        kept_tars.append(tars[i])
    return kept_tars, kept_indices


def listed(tars: list[str], indices: list[str], ids, folder: Path) -> tuple[list[str], list[str]]:
    """(tars, index files) of the samples whose ids are in `ids`, in the given shard order."""
    wanted = {fmt.sample_key(int(i)) for i in ids}
    kept_tars, kept_indices = [], []
    for tar, index in zip(tars, indices):
        mine = [line for line in _index_lines(index) if line.split(" ", 4)[3].split(".", 1)[0] in wanted]
        if mine:
            kept_tars.append(tar)
            kept_indices.append(_write_index(folder, index, mine))
    return kept_tars, kept_indices
