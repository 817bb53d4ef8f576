"""Corrupt and quirky inputs: converted or rejected as the data README says, nothing lost."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from tests.conftest import shared
from viewkit.shards import format as fmt
from viewkit.shards import sources
from viewkit.shards.encode import passthrough_blocker, prepare_image, read_jpeg_header
from viewkit.shards.verify import verify_dataset
from viewkit.shards.writer import ShardOptions, write_dataset

CONVERTED = {"pil_sample_cmyk.jpg", "hopper_gray.jpg", "png_named.jpeg", "bmp_named.jpeg", "tiff_named.jpeg",
             "junk_jpeg_header.jpg", "truncated_app14.jpg"}
PASSED = {"hopper.jpg"}
REJECTED = {"truncated_jpeg.jpg", "truncated_image.png", "truncated_end_chunk.png", "broken.png", "empty.jpg",
            "lossless_12bit.jpg"}


def write_quirky_files(folder: Path) -> tuple[set, set, set]:
    """The kinds of ../shared/data/corrupt-and-quirky, made with Pillow: (converted, passed, rejected)."""
    folder.mkdir()
    generator = np.random.default_rng(0)
    # smooth colour fields, as photographs mostly are: a JPEG re-encode keeps them within a few levels
    picture = Image.fromarray(generator.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((64, 48), Image.BICUBIC)
    picture.save(folder / "plain.jpg", quality=92)
    picture.convert("CMYK").save(folder / "cmyk.jpg", quality=92)
    picture.convert("L").save(folder / "gray.jpg", quality=92)
    picture.save(folder / "png_named.jpeg", format="PNG")
    picture.save(folder / "bmp_named.jpeg", format="BMP")
    whole = io.BytesIO()
    picture.save(whole, format="JPEG", quality=92)
    (folder / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    png = io.BytesIO()
    picture.save(png, format="PNG")
    (folder / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    return ({"cmyk.jpg", "gray.jpg", "png_named.jpeg", "bmp_named.jpeg"}, {"plain.jpg"},
            {"truncated.jpg", "truncated.png", "empty.jpg"})


@pytest.mark.parametrize("source", ["generated", "real"])
def test_each_file_converted_passed_or_rejected(source, tmp_path):
    if source == "real":
        src, converted, passed, rejected_names = shared("corrupt-and-quirky"), CONVERTED, PASSED, REJECTED
    else:
        src = tmp_path / "quirky"
        converted, passed, rejected_names = write_quirky_files(src)
    assert {p.name for p in src.iterdir()} == converted | passed | rejected_names
    out = tmp_path / "out"
    manifest = write_dataset(sources.folder_items(src), out, split="q", options=ShardOptions(workers=1), progress=False)
    rejected = {json.loads(line)["path"]: json.loads(line)["reason"] for line in (out / "rejected.jsonl").read_text().splitlines()}
    assert set(rejected) == rejected_names and all(rejected.values())
    assert manifest["num_inputs"] == manifest["num_samples"] + manifest["num_rejected"] == len(list(src.iterdir()))
    samples = {json.loads(s["json"])["source"]: s for s in wds.WebDataset(str(out / manifest["shards"][0]["tar"]), shardshuffle=False)}
    assert set(samples) == converted | passed
    for name, sample in samples.items():
        meta = json.loads(sample["json"])
        assert (meta["converted"] is None) == (name in passed), name
        header = read_jpeg_header(sample["jpg"])
        assert passthrough_blocker(sample["jpg"], header, None) is None, name  # stored bytes are clean JPEGs
        stored = np.asarray(Image.open(io.BytesIO(sample["jpg"])))
        original = np.asarray(Image.open(src / name).convert("RGB"))
        assert stored.shape == original.shape, name
        # Re-encoding at quality 90 (4:2:0 chroma) keeps the picture: the mean error stays
        # a few levels even on these tiny saturated-red test images, the colours unshifted.
        assert np.abs(stored.astype(int) - original).mean() < 10, name
        assert np.abs(stored.mean((0, 1)) - original.mean((0, 1))).max() < 3, name
    assert verify_dataset(out, progress=False) == []  # DALI decodes every stored image


def test_exif_rotation_is_applied(tmp_path):
    array = np.zeros((40, 100, 3), np.uint8)
    array[:, :10] = 255  # a white bar on the left edge
    image = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    prepared = prepare_image(buffer.getvalue(), max_side=None, quality=90, full_check=False)
    assert prepared.conversion == "EXIF orientation 6"
    assert prepared.stored_size == (40, 100)
    upright = np.asarray(Image.open(io.BytesIO(prepared.jpeg)))
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 40  # the bar is now at the top


def test_progressive_and_max_side(tmp_path):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", progressive=True)
    prepared = prepare_image(buffer.getvalue(), max_side=200, quality=90, full_check=False)
    assert prepared.conversion.startswith("JPEG SOF marker 0xC2")
    assert prepared.original_size == (500, 300) and prepared.stored_size == (200, 120)
    assert read_jpeg_header(prepared.jpeg).sof_marker == 0xC0


def test_full_check_rejects_a_damaged_passthrough_jpeg():
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    sos = data.index(b"\xff\xda")
    # Header intact, but the scan names Huffman tables 3/3 that were never defined.
    damaged = data[: sos + 6] + bytes([data[sos + 6], 0x33]) + data[sos + 8 :]
    assert prepare_image(damaged, max_side=None, quality=90, full_check=False).rejection is None
    assert "undecodable" in prepare_image(damaged, max_side=None, quality=90, full_check=True).rejection


def test_non_images_and_stray_files_are_rejected_not_dropped(tmp_path):
    src = tmp_path / "src"
    (src / "cats").mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(src / "cats" / "a.jpg")
    (src / "cats" / "notes.txt").write_text("hello")
    Image.new("RGB", (32, 32), "blue").save(src / "stray.png")
    manifest = write_dataset(sources.folder_items(src), tmp_path / "out", split="x", options=ShardOptions(workers=1), progress=False)
    reasons = {json.loads(line)["path"]: json.loads(line)["reason"] for line in (tmp_path / "out" / fmt.REJECTED_NAME).read_text().splitlines()}
    assert manifest["num_samples"] == 1
    assert reasons == {"cats/notes.txt": "not an image file (.txt)", "stray.png": "outside any class folder"}


def test_32_bit_integer_tiff_saturates_instead_of_wrapping():
    for value, expected in ((0, 0), (25_600, 100), (70_000, 255), (2**31 - 1, 255), (-5, 0)):
        image = Image.fromarray(np.full((16, 16), value, np.int32), mode="I")
        data = io.BytesIO()
        image.save(data, format="TIFF")
        prepared = prepare_image(data.getvalue(), max_side=None, quality=95, full_check=False)
        assert prepared.rejection is None
        pixels = np.asarray(Image.open(io.BytesIO(prepared.jpeg)).convert("L"), dtype=float)
        assert abs(pixels.mean() - expected) <= 2, (value, pixels.mean())


def test_huge_images_are_downscaled_and_lying_headers_rejected():
    from viewkit.shards.encode import MAX_PIXELS

    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (5000, 9000, 3), dtype=np.uint8))
    data = io.BytesIO()
    big.save(data, format="JPEG", quality=50)
    prepared = prepare_image(data.getvalue(), max_side=None, quality=90, full_check=False)
    assert prepared.rejection is None and prepared.conversion == f"over {MAX_PIXELS} pixels"
    assert prepared.original_size == (9000, 5000)
    width, height = prepared.stored_size
    assert width * height <= MAX_PIXELS and abs(width / height - 9000 / 5000) < 0.01

    small = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(small, format="JPEG")
    lying = bytearray(small.getvalue())
    sof = lying.index(b"\xff\xc0")
    lying[sof + 5 : sof + 9] = (65000).to_bytes(2, "big") * 2  # height, width: 65000 x 65000 over 16 x 16 data
    rejected = prepare_image(bytes(lying), max_side=None, quality=90, full_check=False)
    assert rejected.jpeg is None and "declares 65000x65000 pixels, far too many for its" in rejected.rejection


@pytest.mark.parametrize("kind,name", [("PNG", "PNG"), ("BMP", "BMP"), ("TIFF", "TIFF"), ("GIF", "GIF"), ("WEBP", "WebP")])
def test_other_formats_are_recorded_as_what_they_are(kind, name):
    data = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(data, format=kind)
    assert prepare_image(data.getvalue(), max_side=None, quality=90, full_check=False).conversion == f"a {name} image"
