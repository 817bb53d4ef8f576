"""Lists the inputs of a sharding run: ImageNet, COCO or a plain image folder.

Each source yields `SourceItem`s in a canonical order (sorted paths) plus the class
table; the writer shuffles them with the seed. Files that cannot be inputs (a non-image
extension) are returned as rejections, so that inputs = written + rejected holds.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from viewkit.shards.coco_file import load_coco, refuse_the_parent_folder
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

    coco = load_coco(Path(annotations))
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
    if not items and rejected:
        refuse_the_parent_folder(root, [r["path"] for r in rejected])
    return SourceListing("coco", str(root), items, classes, rejected)
