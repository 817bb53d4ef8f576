"""One sample's tar members, and the inputs read and checked in order by a pool of threads.

Shared by the writer and the repair of single shards, so that a rewritten shard is the
same bytes as the one first written.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from viewkit.shards import format as fmt
from viewkit.shards.encode import Prepared, prepare_image
from viewkit.shards.sources import SourceItem


def prepare_tasks(listing, positions, options) -> list[tuple[str, int | None, int, bool]]:
    """The `prepare_file` arguments of the inputs at `positions`: writer and repair alike."""
    return [(listing.items[i].path, options.max_side, options.quality, options.full_check) for i in positions]


def prepare_file(args: tuple[str, int | None, int, bool]) -> Prepared:
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


def verdicts(listing, positions: list[int], options) -> list[str | None]:
    """Per input: None when it becomes a sample, else the reason it is rejected (the sample
    id does not change the verdict, so 0 stands in for it)."""
    reasons = []
    for position, task in zip(positions, prepare_tasks(listing, positions, options)):
        prepared = prepare_file(task)
        verdict = prepared.rejection or sample_components(0, listing.items[position], prepared)
        reasons.append(verdict if isinstance(verdict, str) else None)
    return reasons


def write_one_shard(listing, tar_path: Path, positions: list[int], first_id: int, prepared) -> tuple[dict, list[dict]]:
    """The shard of the inputs `positions` (indices into listing.items, in the shuffled order),
    sample ids from `first_id`, from their `prepared` results in the same order: (the tar's
    record, the inputs rejected). A Ray task writes with it."""
    from viewkit.shards.tarwriter import ShardWriter

    writer = ShardWriter(tar_path)
    rejected = fill_shard(listing, writer, positions, first_id, prepared)
    return writer.finish(), rejected


def fill_shard(listing, writer, positions: list[int], first_id: int, prepared) -> list[dict]:
    """The samples of `positions` added to `writer` (aborted on any error); the inputs rejected."""
    sample_id, rejected = first_id, []
    try:
        for item_index, result in zip(positions, prepared):
            item = listing.items[item_index]
            components = result.rejection or sample_components(sample_id, item, result)
            if isinstance(components, str):
                rejected.append({"path": item.rel, "reason": components})
            else:
                writer.add_sample(fmt.sample_key(sample_id), components, result.conversion)
                sample_id += 1
    except BaseException:
        writer.abort()
        raise
    return rejected


def prepare_chunk(chunk: list[tuple[str, int | None, int, bool]]) -> list[Prepared]:
    return [prepare_file(task) for task in chunk]


def in_order(pool: ThreadPoolExecutor, tasks: list, window: int, chunk: int = 16):
    """Prepared inputs in task order, at most `window` chunks in flight (pool.map would
    read every file at once). Chunks, because a future per file cost as much GIL time as
    checking a pass-through JPEG."""
    pending = deque()
    for start in range(0, len(tasks), chunk):
        pending.append(pool.submit(prepare_chunk, tasks[start : start + chunk]))
        if len(pending) >= window:
            yield from pending.popleft().result()
    while pending:
        yield from pending.popleft().result()


def component_table(has_boxes: bool) -> dict:
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
