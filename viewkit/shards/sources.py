"""Lists the inputs of a sharding run: ImageNet, COCO or a plain image folder.

Each source yields `SourceItem`s in a canonical order (sorted paths) plus the class
table; the writer shuffles them with the seed. Files that cannot be inputs (a non-image
extension) are returned as rejections, so that inputs = written + rejected holds.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from viewkit.shards.encode import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class SourceItem:
    path: str  # absolute path of the input file
    rel: str  # path relative to the source root: what metadata and reports show
    label: int  # class index, -1 when the source has none
    class_name: str | None = None
    coco: dict | None = field(default=None, compare=False)  # annotations, see coco_items


@dataclass
class SourceListing:
    kind: str
    root: str
    items: list[SourceItem]
    classes: list[dict]  # [{"index", "id", "name"}]
    rejected: list[dict]  # [{"path", "reason"}] known before any decoding


def _walk_files(top: Path, rel_to: Path) -> tuple[list[Path], list[dict]]:
    """Every file under `top` in sorted order, and the entries that cannot be inputs.

    Symlinked folders and files are followed: ImageNet subsets are often folders of links,
    and `Path.rglob` (before Python 3.13) skips linked folders without a word. A link
    that points nowhere, or back into its own ancestry, is a rejection, so that
    inputs = written + rejected holds.
    """
    files, rejected = [], []

    def reject(path: Path, reason: str) -> None:
        rejected.append({"path": path.relative_to(rel_to).as_posix(), "reason": reason})

    def visit(folder: Path, ancestors: frozenset[str]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            reject(folder, f"unreadable folder ({e.strerror or e})")
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError as e:  # ELOOP: a link that points at itself
                reject(path, f"symlink that cannot be resolved ({e.strerror or e})")
                continue
            if is_dir:
                real = os.path.realpath(path)
                if real in ancestors:
                    reject(path, f"symlink loop: points back to its ancestor {real}")
                else:
                    visit(path, ancestors | {real})
            elif is_file:
                files.append(path)
            elif entry.is_symlink():
                reject(path, f"dangling symlink to {os.readlink(path)}")
            else:
                reject(path, "not a regular file")

    visit(top, frozenset({os.path.realpath(top)}))
    # One file reached twice (two links to it, a folder linked twice) would be stored twice,
    # maybe under two labels: the first in sorted order is the input, the others rejections.
    unique, first_of = [], {}
    for path in sorted(files):
        try:
            stat = path.stat()
        except OSError as e:
            reject(path, f"unreadable ({e.strerror or e})")
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in first_of:
            reject(path, f"the same file as {first_of[key].relative_to(rel_to).as_posix()} (reached twice through links)")
        else:
            first_of[key] = path
            unique.append(path)
    return unique, rejected


def _refuse_linked_twice(folders: list[Path]) -> None:
    """Two class folders that are one folder would give its images two labels."""
    seen = {}
    for folder in folders:
        real = os.path.realpath(folder)
        if real in seen:
            raise ValueError(f"class folders {seen[real].name} and {folder.name} are the same folder ({real}) "
                             "through a link: its images would carry two labels; remove one of them")
        seen[real] = folder


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _not_image(root: Path, path: Path) -> dict:
    return {"path": path.relative_to(root).as_posix(), "reason": f"not an image file ({path.suffix or 'no extension'})"}


def folder_items(src: str | os.PathLike) -> SourceListing:
    """Class sub-folders (index = position in the sorted folder names), or a flat folder (label -1)."""
    root = Path(src).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items, rejected = [], []
    if not class_dirs:
        classes = []
        files, rejected = _walk_files(root, root)
        for path in files:
            if _is_image(path):
                items.append(SourceItem(str(path), path.relative_to(root).as_posix(), -1))
            else:
                rejected.append(_not_image(root, path))
        return SourceListing("folder", str(root), items, classes, rejected)
    _refuse_linked_twice(class_dirs)
    classes = [{"index": i, "id": d.name, "name": d.name} for i, d in enumerate(class_dirs)]
    index_of = {c["id"]: c["index"] for c in classes}
    files, rejected = _walk_files(root, root)
    for path in files:
        rel = path.relative_to(root)
        if len(rel.parts) == 1 or rel.parts[0].startswith("."):
            rejected.append({"path": rel.as_posix(), "reason": "outside any class folder"})
            continue
        if not _is_image(path):
            rejected.append(_not_image(root, path))
            continue
        items.append(SourceItem(str(path), rel.as_posix(), index_of[rel.parts[0]], rel.parts[0]))
    return SourceListing("folder", str(root), items, classes, rejected)


def _synset_names(root: Path) -> dict[str, str]:
    mapping = root / "LOC_synset_mapping.txt"
    if not mapping.exists():
        return {}
    names = {}
    for line in mapping.read_text().splitlines():
        if line.strip():
            wnid, _, name = line.partition(" ")
            names[wnid] = name.strip()
    return names


def _read_val_labels(path: Path) -> dict[str, str]:
    """filename stem -> label token (a wnid or an integer class index)."""
    labels = {}
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    labels[row["ImageId"]] = row["PredictionString"].split()[0]
                except (KeyError, IndexError):
                    raise ValueError(f"{path}: expected columns ImageId,PredictionString") from None
        return labels
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{line_number}: expected 'filename label', got {line!r}")
        labels[Path(parts[0]).stem] = parts[1]
    return labels


def imagenet_items(src: str | os.PathLike, split: str, labels_file: str | None = None) -> SourceListing:
    """SRC/<split>/<wnid>/*, or for val a flat SRC/val/* with a label file.

    Class index = position of the wnid in the sorted wnid list (torchvision ImageFolder).
    The wnid list comes from LOC_synset_mapping.txt when present, else SRC/train's folders,
    else the split's own folders, so that train and val agree on indices.
    """
    root = Path(src).resolve()
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: no such folder (expected SRC/{split}/<wnid>/*)")
    names = _synset_names(root)
    wnid_dirs = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if names:
        wnids, known_from = sorted(names), f"the wnids of {root / 'LOC_synset_mapping.txt'}"
    elif (root / "train").is_dir() and split != "train":
        wnids = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        known_from = f"the folders under {root / 'train'}"
    else:
        wnids, known_from = wnid_dirs, f"the folders under {split_dir}"
    index_of = {w: i for i, w in enumerate(wnids)}
    items, rejected = [], []
    if wnid_dirs:
        _refuse_linked_twice([split_dir / name for name in wnid_dirs])
        unknown = sorted(set(wnid_dirs) - set(index_of))
        if unknown:
            raise ValueError(f"{split_dir}: folders {unknown[:5]} are not in the class list")
        files, rejected = _walk_files(split_dir, root)
        for path in files:
            rel = path.relative_to(root).as_posix()
            parts = path.relative_to(split_dir).parts
            if len(parts) == 1:
                rejected.append({"path": rel, "reason": "outside any class folder"})
            elif not _is_image(path):
                rejected.append(_not_image(root, path))
            else:
                items.append(SourceItem(str(path), rel, index_of[parts[0]], names.get(parts[0], parts[0])))
    else:
        label_path = Path(labels_file) if labels_file else root / "LOC_val_solution.csv"
        if not label_path.exists():
            raise FileNotFoundError(
                f"{split_dir} is flat and {label_path} does not exist: pass --labels FILE "
                "(LOC_val_solution.csv or lines of 'filename label')"
            )
        labels = _read_val_labels(label_path)
        if not wnids:
            wnids = sorted({t for t in labels.values() if not t.lstrip("-").isdigit()})
            index_of = {w: i for i, w in enumerate(wnids)}
            known_from = f"the wnids of {label_path.name}"
        files, rejected = _walk_files(split_dir, root)
        for path in files:
            rel = path.relative_to(root).as_posix()
            token = labels.get(path.stem)
            if not _is_image(path):
                rejected.append(_not_image(root, path))
            elif token is None:
                rejected.append({"path": rel, "reason": f"no label in {label_path.name}"})
            elif token.lstrip("-").isdigit():
                index = int(token)
                wnid = wnids[index] if 0 <= index < len(wnids) else None
                items.append(SourceItem(str(path), rel, index, names.get(wnid, wnid)))
            elif token in index_of:
                items.append(SourceItem(str(path), rel, index_of[token], names.get(token, token)))
            else:
                rejected.append({"path": rel, "reason": f"label {token!r} is not a known wnid (known: {known_from})"})
    classes = [{"index": i, "id": w, "name": names.get(w, w)} for i, w in enumerate(wnids)]
    return SourceListing("imagenet", str(root), items, classes, rejected)


def _load_coco(path: Path):
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


def coco_items(images: str | os.PathLike, annotations: str | None = None) -> SourceListing:
    """COCO images with their instances (read with pycocotools), or images only.

    Every image of the annotation file is an input, annotated or not; a listed file
    that is missing is a rejection. Category index = position of the COCO category id
    in the sorted id list.
    """
    root = Path(images).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if annotations is None:
        items = []
        files, rejected = _walk_files(root, root)
        for path in files:
            if _is_image(path):
                items.append(SourceItem(str(path), path.relative_to(root).as_posix(), -1))
            else:
                rejected.append(_not_image(root, path))
        return SourceListing("coco", str(root), items, [], rejected)

    coco = _load_coco(Path(annotations))
    category_ids = sorted(coco.getCatIds())
    index_of = {c: i for i, c in enumerate(category_ids)}
    classes = [{"index": index_of[c], "id": c, "name": coco.cats[c]["name"]} for c in category_ids]
    items, rejected = [], []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        path = root / info["file_name"]
        if not path.is_file():
            rejected.append({"path": info["file_name"], "reason": "listed in the annotations but missing"})
            continue
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None)), key=lambda a: a["id"])
        record = {
            "image_id": image_id,
            "annotated_size": [info["width"], info["height"]],
            # COCO bbox is [x, y, w, h]; stored as corners.
            "boxes": [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
            "category_ids": [index_of[a["category_id"]] for a in anns],
            "coco_category_ids": [a["category_id"] for a in anns],
            "iscrowd": [int(a.get("iscrowd", 0)) for a in anns],
            "area": [float(a["area"]) for a in anns],
            "annotation_ids": [a["id"] for a in anns],
        }
        items.append(SourceItem(str(path), info["file_name"], -1, None, record))
    return SourceListing("coco", str(root), items, classes, rejected)
