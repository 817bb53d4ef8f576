"""A COCO instances file, checked entry by entry before pycocotools indexes it.

The file is untrusted input: an entry of the wrong type, an image id given twice, a
`file_name` that leaves the images folder or an annotation of an unknown category ends in
one line naming the file and the entry, never in a traceback or a silently lost image.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path


def load_coco(path: Path):
    """pycocotools' COCO of an instances file, or one line saying what is wrong with the file."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such annotation file")
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e.__class__.__name__}: {str(e)[:80]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: not a COCO instances file (no 'images' list; keys: "
                         f"{sorted(data)[:8] if isinstance(data, dict) else type(data).__name__})")
    _validate_coco(data, path)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints timings
        coco.createIndex()
    return coco


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_coco(data: dict, path: Path) -> None:
    """The parts of an instances file that sharding reads, checked before pycocotools indexes it,
    so a malformed file ends in one line naming the entry, not in a traceback."""

    def fail(where: str, why: str):
        raise ValueError(f"{path}: {where}: {why}")

    for key in ("annotations", "categories"):
        data.setdefault(key, [])
        if not isinstance(data[key], list):
            fail(key, f"expected a list, found {type(data[key]).__name__}")
    seen_ids, seen_files = {}, {}
    for position, image in enumerate(data["images"]):
        where = f"images[{position}]"
        if not isinstance(image, dict):
            fail(where, f"expected an object, found {type(image).__name__}")
        missing = [k for k in ("id", "file_name", "width", "height") if k not in image]
        if missing:
            fail(f"image {image.get('id', image.get('file_name', '?'))!r}",
                 f"lacks {missing}; COCO instances files give every image its id, file_name, width and height")
        if isinstance(image["id"], bool) or not isinstance(image["id"], int):
            fail(where, f"id {image['id']!r} is not an integer")
        name = image["file_name"]
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts \
                or "\\" in name:
            fail(f"image {image['id']}", f"file_name {name!r} is not a relative path inside the images folder")
        for key in ("width", "height"):
            if isinstance(image[key], bool) or not isinstance(image[key], int) or image[key] < 1:
                fail(f"image {image['id']}", f"{key} {image[key]!r} is not a positive integer")
        if image["id"] in seen_ids:
            fail(f"image {image['id']}", f"the id is given twice ({seen_ids[image['id']]!r} and {name!r}); "
                                         "one of the two would be lost")
        if name in seen_files:
            fail(f"image {image['id']}", f"file_name {name!r} is listed twice (also image {seen_files[name]})")
        seen_ids[image["id"]], seen_files[name] = name, image["id"]
    categories = set()
    for position, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or isinstance(category.get("id"), bool) \
                or not isinstance(category.get("id"), int) or not isinstance(category.get("name"), str):
            fail(f"categories[{position}]", "expected an object with an integer id and a string name")
        categories.add(category["id"])
    annotation_ids = set()
    for position, annotation in enumerate(data["annotations"]):
        where = f"annotations[{position}]"
        if not isinstance(annotation, dict):
            fail(where, f"expected an object, found {type(annotation).__name__}")
        missing = [k for k in ("id", "image_id", "category_id", "bbox", "area") if k not in annotation]
        if missing:
            fail(f"annotation {annotation.get('id', '?')!r}", f"lacks {missing}")
        where = f"annotation {annotation['id']!r}"
        if annotation["id"] in annotation_ids:
            fail(where, "the id is given twice")
        annotation_ids.add(annotation["id"])
        if annotation["image_id"] not in seen_ids:
            fail(where, f"image_id {annotation['image_id']!r} is not an image of the file")
        if annotation["category_id"] not in categories:
            fail(where, f"category_id {annotation['category_id']!r} is not in 'categories'")
        box = annotation["bbox"]
        if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box) or box[2] < 0 or box[3] < 0:
            fail(where, f"bbox {box!r} is not [x, y, width, height] of finite numbers, sizes >= 0")
        if not _number(annotation["area"]) or annotation["area"] < 0:
            fail(where, f"area {annotation['area']!r} is not a finite number >= 0")
        if annotation.get("iscrowd", 0) not in (0, 1) or isinstance(annotation.get("iscrowd"), float):
            fail(where, f"iscrowd {annotation.get('iscrowd')!r} is not 0 or 1")


def refuse_the_parent_folder(root: Path, missing: list[str]) -> None:
    """Every listed image missing, but there one folder down: SRC named the folder above the
    images (`coco/` for `coco/images/`, `coco/train2017/`), a slip worth one line, not a run."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / missing[0]).is_file():
            raise ValueError(f"{root}: none of the {len(missing)} images the annotations list is here, and "
                             f"{missing[0]} is in {folder}: SRC is the images folder itself, so pass {folder}")
