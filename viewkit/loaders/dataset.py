"""Opens a sharded dataset for reading, refusing anything a pipeline would choke on later.

Every check runs before the first batch and names the file and the fix: missing shard or
index, an index that belongs to another tar (stale), a tar whose size or checksum differs
from the manifest, an empty dataset, foreign tars without a viewkit manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from viewkit import storage
from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest


@dataclass(frozen=True)
class ShardSet:
    root: Path  # the dataset's folder; for a dataset in object storage, its node-local cache
    manifest: dict
    tars: tuple[str, ...]
    indices: tuple[str, ...]
    counts: tuple[int, ...]  # samples per shard
    url: str | None = None  # the dataset in object storage
    cache: object | None = None  # its ShardCache (shard_cache.py)

    @property
    def name(self) -> str:
        """The dataset as its user named it: its URL or its folder."""
        return self.url or str(self.root)

    @property
    def num_samples(self) -> int:
        return sum(self.counts)

    def holding(self, tars: list[str]):
        """A context in which `tars` (of `self.tars`) are local files: for a dataset in object
        storage, fetched into the cache and kept there until the block ends."""
        if self.cache is None:
            return contextlib.nullcontext()
        entries = {str(self.root / shard["tar"]): shard for shard in self.manifest["shards"]}
        return self.cache.holding([entries[tar] for tar in tars])

    @property
    def has_boxes(self) -> bool:
        return fmt.BOXES in self.manifest["components"]

    @property
    def has_labels(self) -> bool:
        """One class label per image: folders of class folders and ImageNet, not COCO (boxes)."""
        return bool(self.manifest["classes"]) and self.manifest["source"] != "coco"


# sha256 of tars hashed in this process, by (path, size, mtime): a loader built again every
# epoch, or one per evaluation, hashes each shard once per process.
_HASHED: dict[tuple[str, int, int], str] = {}


def _tar_sha256(tar: Path) -> str:
    stat = tar.stat()
    key = (str(tar), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = fmt.sha256_file(tar)
    return _HASHED[key]


def _index_count(index_bytes: bytes, index: Path) -> int:
    """The sample count an index holds, from its header and its lines (they must agree)."""
    lines = index_bytes.split(b"\n")
    try:
        header_count = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise ValueError(f"{index}: not a webdataset index (first line {lines[0][:60]!r})") from None
    line_count = len([line for line in lines[1:] if line.strip()])
    if header_count != line_count:
        raise ValueError(f"{index}: header says {header_count} samples, the file lists {line_count}")
    return header_count


def _check_checksums(root: Path, shards: list[dict], part: tuple[int, int]) -> None:
    """Hashes this rank's share of the tars, on several threads (hashlib releases the GIL).

    choice: rank r hashes shards r, r + world, ...: together the ranks check every shard once,
    and a rank that finds damage fails the job (torchrun stops every process when one fails).
    """
    rank, world = part
    mine = shards[rank::world]
    if not mine:
        return
    with ThreadPoolExecutor(min(len(mine), os.cpu_count() or 1, 8)) as pool:
        digests = list(pool.map(lambda shard: _tar_sha256(root / shard["tar"]), mine))
    for shard, digest in zip(mine, digests):
        if digest != shard["sha256"]:
            raise ValueError(f"{root / shard['tar']}: sha256 differs from the manifest, the shard's bytes changed; "
                             f"run `viewkit verify {root}` to name the samples, then re-run `viewkit shard` to "
                             "repair it")


def open_dataset(path: str | os.PathLike, *, verify_checksums: bool = False, part: tuple[int, int] = (0, 1),
                 cache_dir: str | os.PathLike | None = None, cache_limit: int | str | None = None) -> ShardSet:
    """Checks files, sizes, index hashes and sample counts (cheap); `verify_checksums` also
    hashes the tars (rank `part[0]` of `part[1]` its share), once per process, so that damaged
    bytes never train silently: DALI's decoder turns many damaged JPEGs into garbage pixels
    without an error. A URL (s3://bucket/prefix) is read through a node-local cache
    (`cache_dir`, `cache_limit`: shard_cache.py), whose fetches check every tar's sha256;
    `verify_checksums` then hashes again, once per process, what the cache held before."""
    if storage.is_url(path):
        return _open_remote(str(path), cache_dir, cache_limit, verify_checksums)
    path = Path(path)
    manifest_path = path / fmt.MANIFEST_NAME if path.is_dir() else path
    if manifest_path.name != fmt.MANIFEST_NAME or not manifest_path.exists():
        raise FileNotFoundError(fmt.not_a_dataset(path))
    manifest = read_manifest(manifest_path)
    shards = _checked(manifest, manifest_path, tars_here=True)
    if verify_checksums:
        _check_checksums(shards.root, manifest["shards"], part)
    return shards


def _open_remote(url: str, cache_dir, cache_limit, verify_checksums: bool) -> ShardSet:
    from viewkit.loaders.shard_cache import ShardCache, dataset_folder, default_limit, parse_bytes

    folder = dataset_folder(url, cache_dir)
    limit = parse_bytes(cache_limit) if cache_limit is not None else default_limit(folder)
    cache = ShardCache(url.rstrip("/"), folder, limit, rehash=verify_checksums)
    try:
        manifest_path = cache.fetch_manifest()
    except FileNotFoundError as e:
        if "bucket" in str(e):
            raise
        raise FileNotFoundError(f"{url}: no viewkit dataset (no dataset.json there); make one with `viewkit shard`") \
            from None
    manifest = read_manifest(manifest_path)
    cache.fetch_indices(manifest["shards"])
    shards = _checked(manifest, manifest_path, tars_here=False)
    return ShardSet(shards.root, manifest, shards.tars, shards.indices, shards.counts, url.rstrip("/"), cache)


def _checked(manifest: dict, manifest_path: Path, tars_here: bool) -> ShardSet:
    """The shards the manifest lists, their index files checked against it (and the tars'
    presence and sizes where they are here: a cache checks its fetches itself)."""
    root = Path(manifest["root"])
    if manifest["num_samples"] == 0 or not manifest["shards"]:
        raise ValueError(f"{manifest_path}: the dataset is empty (0 samples; see {root / fmt.REJECTED_NAME})")
    tars, indices, counts = [], [], []
    for shard in manifest["shards"]:
        tar, index = root / shard["tar"], root / shard["index"]
        for file in (tar, index) if tars_here else (index,):
            if not file.exists():
                raise FileNotFoundError(f"{file}: listed in {manifest_path} but missing; re-run `viewkit shard` (it resumes)")
        if tars_here and tar.stat().st_size != shard["bytes"]:
            raise ValueError(f"{tar}: {tar.stat().st_size} bytes, the manifest says {shard['bytes']}; "
                             "the shard was changed or truncated: run `viewkit verify` and re-shard")
        index_bytes = index.read_bytes()
        if hashlib.sha256(index_bytes).hexdigest() != shard["index_sha256"]:
            raise ValueError(f"{index}: does not match its tar (stale index: its sha256 differs from the "
                             f"manifest); re-run `viewkit shard` or restore the index")
        if _index_count(index_bytes, index) != shard["samples"]:
            raise ValueError(f"{index}: holds {_index_count(index_bytes, index)} samples, {manifest_path} says "
                             f"{shard['samples']}; samples would be dropped or repeated: run `viewkit verify {root}`")
        tars.append(str(tar))
        indices.append(str(index))
        counts.append(shard["samples"])
    if sum(counts) != manifest["num_samples"]:
        raise ValueError(f"{manifest_path}: num_samples is {manifest['num_samples']}, its shards hold {sum(counts)}; "
                         f"run `viewkit verify {root}`")
    return ShardSet(root, manifest, tuple(tars), tuple(indices), tuple(counts))


def open_labelled_pair(train: str | os.PathLike, val: str | os.PathLike, purpose: str) -> tuple[ShardSet, ShardSet]:
    """Train and val shards for kNN or a linear probe, checked before any work: both with one
    class label per image, and the same class list (label i must name the same class in both)."""
    pair = open_dataset(train), open_dataset(val)
    for shards in pair:
        if not shards.has_labels:
            why = ("COCO shards hold boxes and categories, not one label per image"
                   if shards.manifest["source"] == "coco" else "they were sharded from a folder without class folders")
            raise ValueError(f"{shards.root}: {purpose} needs labelled shards, and {why}")
    train_classes, val_classes = ([c["id"] for c in shards.manifest["classes"]] for shards in pair)
    if train_classes != val_classes:
        first, second = train_classes + [None], val_classes + [None]
        label = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
        raise ValueError(f"{purpose}: the class lists differ, label {label} is {first[label]!r} in {pair[0].root} "
                         f"({len(train_classes)} classes) and {second[label]!r} in {pair[1].root} "
                         f"({len(val_classes)}); shard both from the same class folders")
    return pair
