"""Inputs that are legal but odd, or quietly damaged, end in a recorded rejection, a conversion
or one line naming the entry: never a lost sample, an aborted run or a traceback."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewkit.shards import format as fmt
from viewkit.shards import sources
from viewkit.shards.encode import JPEG_MAX_SIDE, prepare_image
from viewkit.shards.manifest import read_manifest
from viewkit.shards.verify import verify_dataset
from viewkit.shards.writer import ShardOptions, write_dataset
from viewkit.tools.cli import main

OPTIONS = ShardOptions(shard_samples=8, workers=1)


def _jpeg(seed: int = 0, size=(96, 64)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _first_half_with_an_end(data: bytes) -> bytes:
    """A JPEG cut in its scan, with an end marker appended: every header check passes, and
    libjpeg only warns ("premature end of data segment") and fills the rest with grey."""
    return data[: len(data) // 2] + b"\xff\xd9"


def test_a_jpeg_cut_in_its_scan_is_rejected_by_full_check_and_named_by_verify(tmp_path):
    half = _first_half_with_an_end(_jpeg())
    assert prepare_image(half, max_side=None, quality=90, full_check=False).rejection is None  # the header walk
    rejection = prepare_image(half, max_side=None, quality=90, full_check=True).rejection
    assert rejection.startswith("undecodable JPEG: damaged JPEG data") and "premature end" in rejection
    assert prepare_image(_jpeg(), max_side=None, quality=90, full_check=True).rejection is None

    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"{i}.jpg").write_bytes(_jpeg(i))
    (src / "cut.jpg").write_bytes(half)
    write_dataset(sources.folder_items(src), tmp_path / "out", split="train", options=OPTIONS, progress=False)
    problems = verify_dataset(tmp_path / "out", progress=False)
    assert len(problems) == 1 and "damaged JPEG data" in problems[0].message
    sample = next(json.loads(line) for line in _members(tmp_path / "out", problems[0].key))
    assert sample["source"] == "cut.jpg"

    full = tmp_path / "full"
    assert main(["shard", "folder", str(src), str(full), "--full-check", "--quiet", "--workers", "2"]) == 0
    rejected = [json.loads(line) for line in (full / fmt.REJECTED_NAME).open()]
    assert [r["path"] for r in rejected] == ["cut.jpg"]


def _members(out: Path, key: str):
    manifest = read_manifest(out)
    for shard in manifest["shards"]:
        for sample in fmt.parse_index(out / shard["index"]):
            if sample[0][3].startswith(key):
                _, offset, size, _ = next(c for c in sample if c[0] == fmt.METADATA)
                with open(out / shard["tar"], "rb") as f:
                    f.seek(offset)
                    yield f.read(size)


def test_a_side_longer_than_jpeg_allows_is_stored_scaled_and_the_run_goes_on(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.full((2, 70_000, 3), 200, np.uint8)).save(src / "long.png")
    (src / "plain.jpg").write_bytes(_jpeg())
    manifest = write_dataset(sources.folder_items(src), tmp_path / "out", split="train", options=OPTIONS,
                             progress=False)
    assert manifest["num_samples"] == 2 and manifest["num_rejected"] == 0
    meta = next(json.loads(m) for key in ("0000000000", "0000000001") for m in _members(tmp_path / "out", key)
                if json.loads(m)["source"] == "long.png")
    assert meta["original_size"] == [70_000, 2] and meta["stored_size"][0] == JPEG_MAX_SIDE
    assert "over JPEG's 65500" in meta["converted"]


def test_a_class_folder_linked_twice_is_refused_and_a_file_reached_twice_is_recorded(embedded_source, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(embedded_source["images"], src)
    (src / "disk-again").symlink_to(src / "disk", target_is_directory=True)
    with pytest.raises(ValueError, match="class folders disk and disk-again are the same folder"):
        sources.folder_items(src)
    (src / "disk-again").unlink()
    first = sorted((src / "ring").iterdir())[0]
    (src / "star" / "also-a-ring.jpg").symlink_to(first)
    listing = sources.folder_items(src)
    assert {"path": "star/also-a-ring.jpg", "reason": f"the same file as ring/{first.name} (reached twice "
            "through links)"} in listing.rejected
    assert not any(item.rel == "star/also-a-ring.jpg" for item in listing.items)

    imagenet = tmp_path / "imagenet"
    (imagenet / "train").mkdir(parents=True)
    (imagenet / "train" / "n00000001").symlink_to(src / "disk", target_is_directory=True)
    (imagenet / "train" / "n00000002").symlink_to(src / "disk", target_is_directory=True)
    with pytest.raises(ValueError, match="class folders n00000001 and n00000002 are the same folder"):
        sources.imagenet_items(imagenet, "train")


def _coco_file(embedded_source, tmp_path: Path, edit) -> Path:
    data = json.loads(Path(embedded_source["annotations"]).read_text())
    edit(data)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _set(key, value):
    return lambda data: data.update({key: value})


def _first(collection, key, value=None, delete=False):
    def edit(data):
        if delete:
            del data[collection][0][key]
        else:
            data[collection][0][key] = value
    return edit


def _second_image_takes_the_first_id(data):
    data["images"][1]["id"] = data["images"][0]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != data["images"][0]["id"]]


COCO_CASES = {
    "two images with one id": (_second_image_takes_the_first_id, "the id is given twice"),
    "an absolute file_name": (_first("images", "file_name", "/etc/hostname"), "is not a relative path inside"),
    "a file_name leaving the folder": (_first("images", "file_name", "../../x.jpg"), "is not a relative path inside"),
    "no area": (_first("annotations", "area", delete=True), "lacks ['area']"),
    "no bbox": (_first("annotations", "bbox", delete=True), "lacks ['bbox']"),
    "an unknown category": (_first("annotations", "category_id", 999), "category_id 999 is not in 'categories'"),
    "a string in images": (lambda d: d["images"].append("x.jpg"), "expected an object, found str"),
    "annotations null": (_set("annotations", None), "annotations: expected a list, found NoneType"),
    "a string bbox": (_first("annotations", "bbox", "1 2 3 4"), "is not [x, y, width, height]"),
    "an annotation of no image": (_first("annotations", "image_id", 10**9), "is not an image of the file"),
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_a_malformed_coco_file_ends_in_one_line_naming_the_entry(embedded_source, tmp_path, capsys, case):
    edit, said = COCO_CASES[case]
    annotations = _coco_file(embedded_source, tmp_path, edit)
    assert main(["shard", "coco", embedded_source["images"], str(tmp_path / "out"), "--annotations",
                 str(annotations), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(annotations) in err and said in err, err
    assert not (tmp_path / "out" / fmt.MANIFEST_NAME).exists()


def test_coco_src_one_folder_above_the_images_is_named_and_leaves_nothing(embedded_source, tmp_path, capsys):
    parent = tmp_path / "coco"
    shutil.copytree(embedded_source["images"], parent / "images")
    out = tmp_path / "out"
    assert main(["shard", "coco", str(parent), str(out), "--annotations", embedded_source["annotations"],
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"SRC is the images folder itself, so pass {parent / 'images'}" in err
    assert not out.exists() or list(out.iterdir()) == []


def test_shard_and_info_say_how_many_images_were_re_encoded_and_why(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.open(io.BytesIO(_jpeg(i))).save(src / f"{i}.png")
    Image.open(io.BytesIO(_jpeg(7))).convert("CMYK").save(src / "cmyk.jpg")
    (src / "plain.jpg").write_bytes(_jpeg(8))
    out = tmp_path / "out"
    assert main(["shard", "folder", str(src), str(out), "--quiet", "--workers", "1"]) == 0
    said = "4 re-encoded (3 x a PNG image, 1 x 4-component JPEG)"
    assert f"; of those written, {said}" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert f"stored     {said}" in capsys.readouterr().out
    assert main(["shard", "folder", str(src), str(out), "--quiet", "--workers", "1"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_a_header_declaring_65000_squared_pixels_is_stored_scaled_within_the_cap():
    """Random scan bytes behind a 65000 x 65000 header, just under the pixels-per-byte rule: a
    legal stream whatever it depicts, decoded at 1/8 scale and stored within MAX_PIXELS."""
    import struct

    from viewkit.shards.encode import MAX_PIXELS

    data = bytearray(_jpeg(size=(16, 16)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 65000, 65000)
    sos = data.index(b"\xff\xda")
    head = bytes(data[: sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0]])
    scan = np.random.default_rng(0).integers(0, 255, 65000 * 65000 // 2040, dtype=np.uint8).tobytes()
    prepared = prepare_image(head + scan.replace(b"\xff", b"\xfe") + b"\xff\xd9", max_side=None, quality=90,
                             full_check=False)
    assert prepared.rejection is None and prepared.conversion == f"over {MAX_PIXELS} pixels"
    assert prepared.original_size == (65000, 65000) and prepared.stored_size[0] * prepared.stored_size[1] <= MAX_PIXELS
    assert Image.open(io.BytesIO(prepared.jpeg)).size == prepared.stored_size
