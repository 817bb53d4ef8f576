"""The viewkit shard format: component names, the DALI index file and the manifest.

Described for users in docs/format.md; this module is its single source of truth.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from viewkit.writes import open_new, writing

FORMAT_NAME = "viewkit-wds"
FORMAT_VERSION = 1
MANIFEST_NAME = "dataset.json"
REJECTED_NAME = "rejected.jsonl"

# Component extensions. DALI and webdataset both split a member name at its first dot,
# so keys carry no dots and the binary components spell their dtype after the name.
IMAGE = "jpg"
CLASS_TEXT = "cls"  # ASCII integer: the webdataset convention
METADATA = "json"
SAMPLE_ID = "id.i64"  # int64 little-endian, one value: the global sample id
LABEL = "label.i64"  # int64 little-endian, one value: the class index (-1: none)
BOXES = "boxes.f32"  # float32 little-endian [n, 4]: x0, y0, x1, y1 in stored pixels (COCO)
CATEGORIES = "categories.i64"  # int64 little-endian [n]: contiguous category index (COCO)

TAR_BLOCK = 512
INDEX_VERSION = "v1.2"  # the version DALI's wds2idx writes


def sample_key(sample_id: int) -> str:
    return f"{sample_id:010d}"


def shard_name(prefix: str, shard_index: int) -> str:
    return f"{prefix}-{shard_index:06d}"


def index_text(samples: list[list[tuple[str, int, int, str]]]) -> str:
    """DALI's webdataset index, byte for byte what `wds2idx` writes for the same tar.

    samples: per sample, its components as (extension, data offset, size, member name).
    """
    lines = [f"{INDEX_VERSION} {len(samples)}\n"]
    for components in samples:
        lines.append(" ".join(" ".join(map(str, c)) for c in components) + "\n")
    return "".join(lines)


def parse_index(path: str | os.PathLike) -> list[list[tuple[str, int, int, str]]]:
    """Reads an index file; raises ValueError naming the file when it is malformed."""
    text = Path(path).read_text()
    lines = text.splitlines()
    try:
        version, count = lines[0].split()
        count = int(count)
    except (IndexError, ValueError):
        raise ValueError(f"{path}: not a webdataset index (first line {lines[:1]!r})") from None
    if version != INDEX_VERSION:
        raise ValueError(f"{path}: index version {version}, expected {INDEX_VERSION}")
    if len(lines) - 1 != count:
        raise ValueError(f"{path}: header says {count} samples, file has {len(lines) - 1}")
    samples = []
    for line_number, line in enumerate(lines[1:], start=2):
        fields = line.split(" ")
        if len(fields) % 4:
            raise ValueError(f"{path}:{line_number}: expected groups of 4 fields, got {len(fields)}")
        samples.append(
            [
                (fields[i], int(fields[i + 1]), int(fields[i + 2]), fields[i + 3])
                for i in range(0, len(fields), 4)
            ]
        )
    return samples


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value) -> str:
    """One spelling per value, so that same input gives byte-identical shards."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def write_json_atomic(path: str | os.PathLike, value, indent: int | None = 2) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path), open_new(tmp, "w") as f:
            f.write(json.dumps(value, indent=indent, sort_keys=True) + "\n")
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def not_a_dataset(path: Path) -> str:
    """Why `path` holds no viewkit dataset, and the fix."""
    if path.suffix in (".tgz", ".gz") or path.name.endswith(".tar.gz"):
        return (f"{path} is a compressed tar: DALI reads only uncompressed, indexed shards. "
                "Extract it and run `viewkit shard folder DIR OUT` to make a viewkit dataset")
    if path.is_file() and path.suffix in (".tar", ".idx", ".json", ".jsonl"):
        if (path.parent / MANIFEST_NAME).is_file():
            return f"{path} is a file of the dataset in {path.parent}: name that folder"
        return (f"{path} is a file, and its folder {path.parent} holds it without a viewkit manifest (dataset.json): "
                "shards from other tools lack the id/label components and indices; run `viewkit shard` on the images")
    if path.suffix == ".tar" or (path.is_dir() and any(path.glob("*.tar"))):
        return (f"{path} holds tars without a viewkit manifest (dataset.json): shards from other "
                "tools lack the id/label components and indices; run `viewkit shard` on the images")
    return f"{path}: no viewkit dataset (dataset.json) here; make one with `viewkit shard`"
