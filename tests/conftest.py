"""Shared fixtures: the real data beside the checkout, and small sharded datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewkit.datasets.embedded import write_embedded_dataset
from viewkit.shards import sources
from viewkit.shards.writer import ShardOptions, write_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VIEWKIT_DATA", REPO.parent / "shared" / "data"))


def shared(name: str) -> Path:
    """A folder of ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (set VIEWKIT_DATA to the shared data folder)")
    return path


def make_embedded_source(folder: Path) -> dict:
    return write_embedded_dataset(folder, num_images=60, seed=0)


def make_embedded_shards(source: dict, out: Path) -> Path:
    write_dataset(sources.folder_items(source["images"]), out, split="train",
                  options=ShardOptions(shard_samples=16, workers=1), progress=False)
    return out


@pytest.fixture(scope="session")
def embedded_source(tmp_path_factory) -> dict:
    return make_embedded_source(tmp_path_factory.mktemp("embedded"))


@pytest.fixture(scope="session")
def embedded_shards(embedded_source, tmp_path_factory) -> Path:
    return make_embedded_shards(embedded_source, tmp_path_factory.mktemp("embedded-shards"))


def write_imagenet_tree(root: Path, classes: int = 200) -> Path:
    """ROOT/train/<wnid>/<wnid>_<n>.JPEG, one baseline RGB JPEG per class: the layout and
    counts of ../shared/data/imagenet-sample, made here so a clone without it runs the same checks."""
    generator = np.random.default_rng(0)
    for index in range(classes):
        wnid = f"n{1_000_000 + index * 37:08d}"
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        size = (int(generator.integers(40, 90)), int(generator.integers(40, 90)))
        pixels = generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{wnid}_{index}.JPEG", quality=90)
    return root


@pytest.fixture(scope="session", params=["generated", "real"])
def imagenet_source(request, tmp_path_factory) -> Path:
    """An ImageNet-layout folder of 200 classes with one image each: generated, or the real sample."""
    if request.param == "real":
        return shared("imagenet-sample")
    return write_imagenet_tree(tmp_path_factory.mktemp("imagenet-generated"))


@pytest.fixture(scope="session")
def imagenet_shards(imagenet_source, tmp_path_factory) -> Path:
    src = imagenet_source
    out = tmp_path_factory.mktemp("imagenet-shards")
    write_dataset(sources.imagenet_items(src, "train"), out, split="train",
                  options=ShardOptions(shard_samples=48, workers=2), progress=False)
    return out


@pytest.fixture(scope="session", params=["generated", "real"])
def coco_source(request, embedded_source, tmp_path_factory) -> tuple[Path, Path]:
    """(images folder, instances file): the embedded scenes' COCO file with one crowd box and
    one image left unannotated, or the real coco-tiny train split."""
    if request.param == "real":
        src = shared("coco-tiny")
        return src / "images" / "train2017", src / "annotations" / "instances_train2017.json"
    data = json.loads(Path(embedded_source["annotations"]).read_text())
    data["annotations"][0]["iscrowd"] = 1
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != data["images"][1]["id"]]
    path = tmp_path_factory.mktemp("coco-generated") / "instances.json"
    path.write_text(json.dumps(data))
    return Path(embedded_source["images"]), path


@pytest.fixture(scope="session")
def coco_source_shards(coco_source, tmp_path_factory) -> Path:
    images, annotations = coco_source
    out = tmp_path_factory.mktemp("coco-source-shards")
    write_dataset(sources.coco_items(images, annotations), out, split="train",
                  options=ShardOptions(shard_samples=10, workers=1, max_side=320), progress=False)
    return out


@pytest.fixture(scope="session")
def coco_shards(tmp_path_factory) -> Path:
    src = shared("coco-tiny")
    out = tmp_path_factory.mktemp("coco-shards")
    write_dataset(sources.coco_items(src / "images" / "train2017", src / "annotations" / "instances_train2017.json"),
                  out, split="train", options=ShardOptions(shard_samples=10, workers=1, max_side=320), progress=False)
    return out
