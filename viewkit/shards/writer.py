"""Writes a listing as shuffled, equal-count WebDataset shards; resumes after a kill.

Inputs are shuffled with the seed, read and checked (converted where needed) by a pool
of threads in that order, and streamed into shards of `samples_per_shard` accepted samples each. Sample
ids are given in the shuffled order, so ids are contiguous 0..N-1 whatever is rejected.
After each shard a line goes to a journal (`.progress.jsonl`) with the input position
reached; a restarted run with the same inputs and options checks the finished shards'
hashes and carries on from there, producing the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from viewkit.shards import format as fmt
from viewkit.shards.encode import Prepared, prepare_image
from viewkit.shards.sources import SourceItem, SourceListing
from viewkit.shards.tarwriter import ShardWriter

JOURNAL_NAME = ".progress.jsonl"
# Tar overhead of one sample: a header per component, padding of the image, and one
# block of data for each small component (cls, json, id, label).
_SAMPLE_OVERHEAD_BYTES = 5 * fmt.TAR_BLOCK + fmt.TAR_BLOCK // 2 + 4 * fmt.TAR_BLOCK


@dataclass(frozen=True)
class ShardOptions:
    shard_size: int = 1_000_000_000  # bytes per shard, a target: counts are what is exact
    shard_samples: int | None = None  # fixes samples per shard, overriding shard_size
    max_side: int | None = None  # downscale larger images to this longest side, re-encoding
    quality: int = 90  # JPEG quality of re-encoded images
    workers: int = 0  # reading/converting threads; 0: all cores
    seed: int = 0  # global shuffle
    full_check: bool = False  # also decode pass-through JPEGs (about 30x slower)

    def __post_init__(self):
        if self.shard_size <= 0:
            raise ValueError(f"shard_size must be positive bytes, got {self.shard_size}")
        if self.shard_samples is not None and self.shard_samples <= 0:
            raise ValueError(f"shard_samples must be positive, got {self.shard_samples}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side {self.max_side} is too small (at least 16 px)")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be within 1..100, got {self.quality}")


def _prepare_file(args: tuple[str, int | None, int, bool]) -> Prepared:
    path, max_side, quality, full_check = args
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return Prepared(None, None, None, None, f"unreadable: {e.strerror or e}")
    return prepare_image(data, max_side=max_side, quality=quality, full_check=full_check)


def _coco_fields(record: dict, prepared: Prepared) -> tuple[dict, np.ndarray, np.ndarray] | str:
    """Boxes scaled to the stored image, or the reason the annotations do not fit it."""
    annotated = tuple(record["annotated_size"])
    if annotated != prepared.original_size:
        return f"annotations are for {annotated[0]}x{annotated[1]}, image is {prepared.original_size[0]}x{prepared.original_size[1]}"
    sx = prepared.stored_size[0] / annotated[0]
    sy = prepared.stored_size[1] / annotated[1]
    boxes = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in record["boxes"]]
    fields = {
        "image_id": record["image_id"],
        "boxes": boxes,
        "category_ids": record["category_ids"],
        "coco_category_ids": record["coco_category_ids"],
        "iscrowd": record["iscrowd"],
        "area": [a * sx * sy for a in record["area"]],
        "annotation_ids": record["annotation_ids"],
    }
    box_array = np.asarray(boxes, dtype="<f4").reshape(-1, 4)
    category_array = np.asarray(record["category_ids"], dtype="<i8")
    return fields, box_array, category_array


def sample_components(sample_id: int, item: SourceItem, prepared: Prepared) -> list[tuple[str, bytes]] | str:
    """The tar members of one sample, or a rejection reason."""
    meta = {
        "id": sample_id,
        "label": item.label,
        "class_name": item.class_name,
        "source": item.rel,
        "original_size": list(prepared.original_size),
        "stored_size": list(prepared.stored_size),
        "converted": prepared.conversion,
        "image_crc32": prepared.crc32,  # lets `verify` name the sample a flipped byte hit
    }
    extra = []
    if item.coco is not None:
        coco = _coco_fields(item.coco, prepared)
        if isinstance(coco, str):
            return coco
        fields, boxes, categories = coco
        meta.update(fields)
        extra = [(fmt.BOXES, boxes.tobytes()), (fmt.CATEGORIES, categories.tobytes())]
    return [
        (fmt.IMAGE, prepared.jpeg),
        (fmt.CLASS_TEXT, str(item.label).encode("ascii")),
        (fmt.METADATA, fmt.canonical_json(meta).encode("ascii")),
        (fmt.SAMPLE_ID, np.array([sample_id], dtype="<i8").tobytes()),
        (fmt.LABEL, np.array([item.label], dtype="<i8").tobytes()),
        *extra,
    ]


def _prepare_chunk(chunk: list[tuple[str, int | None, int, bool]]) -> list[Prepared]:
    return [_prepare_file(task) for task in chunk]


def _in_order(pool: ThreadPoolExecutor, tasks: list, window: int, chunk: int = 16):
    """Prepared inputs in task order, at most `window` chunks in flight (pool.map would
    read every file at once). Chunks, because a future per file cost as much GIL time as
    checking a pass-through JPEG."""
    pending = deque()
    for start in range(0, len(tasks), chunk):
        pending.append(pool.submit(_prepare_chunk, tasks[start : start + chunk]))
        if len(pending) >= window:
            yield from pending.popleft().result()
    while pending:
        yield from pending.popleft().result()


def _fingerprint(listing: SourceListing, split: str, options: ShardOptions) -> str:
    """Everything the output bytes depend on: inputs (with size and mtime) and options."""
    digest = hashlib.sha256()
    output_options = {k: v for k, v in asdict(options).items() if k != "workers"}
    digest.update(fmt.canonical_json([fmt.FORMAT_VERSION, listing.kind, split, output_options, listing.classes]).encode())
    for item in listing.items:
        stat = os.stat(item.path)
        digest.update(fmt.canonical_json([item.rel, item.label, stat.st_size, stat.st_mtime_ns, item.coco]).encode())
    return digest.hexdigest()


def _read_journal(out: Path, fingerprint: str) -> list[dict]:
    """Shards finished by an earlier run of the same job whose files are intact."""
    journal = out / JOURNAL_NAME
    if not journal.exists():
        return []
    lines = journal.read_text().splitlines()
    try:
        header = json.loads(lines[0])
    except (IndexError, json.JSONDecodeError):
        return []
    if header.get("fingerprint") != fingerprint:
        raise FileExistsError(
            f"{out} holds an unfinished run with other inputs or options; "
            "pass --overwrite to start again or choose another output folder"
        )
    done = []
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # torn last line from a kill
        tar, index = out / record["tar"], out / record["index"]
        if not (tar.exists() and index.exists()):
            break
        if fmt.sha256_file(tar) != record["sha256"] or fmt.sha256_file(index) != record["index_sha256"]:
            break
        done.append(record)
    return done


def clear_output(out: Path) -> None:
    """Removes what an earlier viewkit run wrote there, and nothing else."""
    for path in out.iterdir():
        if path.name in (fmt.MANIFEST_NAME, fmt.REJECTED_NAME, JOURNAL_NAME) or path.suffix in (".tar", ".idx", ".tmp"):
            path.unlink()


def samples_per_shard(listing: SourceListing, options: ShardOptions) -> int:
    if options.shard_samples:
        return options.shard_samples
    if not listing.items:
        return 1
    mean_bytes = sum(os.path.getsize(i.path) for i in listing.items) / len(listing.items)
    return max(1, int(options.shard_size // (mean_bytes + _SAMPLE_OVERHEAD_BYTES)))


def write_dataset(listing: SourceListing, out: str | os.PathLike, *, split: str, options: ShardOptions,
                  overwrite: bool = False, progress: bool = True, after_shard=None) -> dict:
    """Shards `listing` into `out`; returns the manifest. `after_shard(record)` is a test hook."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(listing, split, options)
    manifest_path = out / fmt.MANIFEST_NAME
    if overwrite:
        clear_output(out)
    elif manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("fingerprint") == fingerprint:
            return manifest | {"already_complete": True}
        raise FileExistsError(f"{manifest_path} is another dataset; pass --overwrite or choose another folder")

    per_shard = samples_per_shard(listing, options)
    order = list(range(len(listing.items)))
    random.Random(options.seed).shuffle(order)
    done = _read_journal(out, fingerprint)
    journal = out / JOURNAL_NAME
    with open(journal, "w") as f:  # rewritten: drops any torn or unverified tail
        f.write(json.dumps({"fingerprint": fingerprint}) + "\n")
        for record in done:
            f.write(json.dumps(record) + "\n")
    shards = [{k: r[k] for k in ("tar", "index", "samples", "bytes", "sha256", "index_sha256", "first_id")} for r in done]
    rejected = [r for record in done for r in record["rejected"]]
    position = done[-1]["next_input"] if done else 0
    next_id = sum(s["samples"] for s in shards)
    prefix = split or "data"

    workers = options.workers or os.cpu_count() or 1
    tasks = [(listing.items[i].path, options.max_side, options.quality, options.full_check) for i in order[position:]]
    # Threads, not processes: Pillow releases the GIL while decoding, converting and
    # encoding (measured: 2 threads convert as fast as 2 processes), and pass-through
    # bytes then need no pickling between processes (which halved throughput).
    pool = ThreadPoolExecutor(workers, thread_name_prefix="viewkit-shard")
    results = _in_order(pool, tasks, window=4 * workers)
    started = time.perf_counter()
    bar = tqdm(total=len(order), initial=position, unit="img", desc=f"shard {prefix}", disable=not progress)
    writer, shard_rejected = None, []
    try:
        for position, prepared in enumerate(results, start=position + 1):
            item = listing.items[order[position - 1]]
            components = prepared.rejection or sample_components(next_id, item, prepared)
            if isinstance(components, str):
                shard_rejected.append({"path": item.rel, "reason": components})
            else:
                if writer is None:
                    writer = ShardWriter(out / f"{fmt.shard_name(prefix, len(shards))}.tar")
                    first_id = next_id
                writer.add_sample(fmt.sample_key(next_id), components)
                next_id += 1
            bar.update(1)
            if writer is not None and (len(writer.samples) == per_shard or position == len(order)):
                record = writer.finish() | {"first_id": first_id}
                writer = None
                shards.append(record)
                rejected += shard_rejected
                with open(journal, "a") as f:
                    f.write(json.dumps(record | {"next_input": position, "rejected": shard_rejected}) + "\n")
                shard_rejected = []
                bar.set_postfix(shards=len(shards), rejected=len(rejected) + len(listing.rejected))
                if after_shard is not None:
                    after_shard(record)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    rejected += shard_rejected
    rejected = sorted(listing.rejected + rejected, key=lambda r: r["path"])
    with open(out / (fmt.REJECTED_NAME + ".tmp"), "w") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rejected)
    os.replace(out / (fmt.REJECTED_NAME + ".tmp"), out / fmt.REJECTED_NAME)
    manifest = {
        "format": fmt.FORMAT_NAME,
        "version": fmt.FORMAT_VERSION,
        "source": listing.kind,
        "split": split,
        "num_samples": next_id,
        "num_inputs": len(listing.items) + len(listing.rejected),
        "num_rejected": len(rejected),
        "samples_per_shard": per_shard,
        "classes": listing.classes,
        "components": _component_table(has_boxes=any(i.coco is not None for i in listing.items)),
        "shards": shards,
        "options": {k: v for k, v in asdict(options).items() if k != "workers"},
        "fingerprint": fingerprint,
    }
    fmt.write_json_atomic(manifest_path, manifest)
    journal.unlink()
    manifest["seconds"] = time.perf_counter() - started
    return manifest


def _component_table(has_boxes: bool) -> dict:
    table = {
        fmt.IMAGE: "RGB baseline JPEG",
        fmt.CLASS_TEXT: "class index as ASCII integer",
        fmt.METADATA: "sample metadata (docs/format.md)",
        fmt.SAMPLE_ID: "global sample id, int64 LE",
        fmt.LABEL: "class index, int64 LE, -1 if none",
    }
    if has_boxes:
        table[fmt.BOXES] = "float32 LE [n, 4] x0 y0 x1 y1 stored pixels"
        table[fmt.CATEGORIES] = "int64 LE [n] contiguous category index"
    return table
