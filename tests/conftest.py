"""Shared fixtures: the real data beside the checkout, and small sharded datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def embedded_source(tmp_path_factory) -> dict:
    return write_embedded_dataset(tmp_path_factory.mktemp("embedded"), num_images=60, seed=0)


@pytest.fixture(scope="session")
def embedded_shards(embedded_source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embedded-shards")
    write_dataset(sources.folder_items(embedded_source["images"]), out, split="train",
                  options=ShardOptions(shard_samples=16, workers=1), progress=False)
    return out


@pytest.fixture(scope="session")
def imagenet_shards(tmp_path_factory) -> Path:
    src = shared("imagenet-sample")
    out = tmp_path_factory.mktemp("imagenet-shards")
    write_dataset(sources.imagenet_items(src, "train"), out, split="train",
                  options=ShardOptions(shard_samples=48, workers=2), progress=False)
    return out


@pytest.fixture(scope="session")
def coco_shards(tmp_path_factory) -> Path:
    src = shared("coco-tiny")
    out = tmp_path_factory.mktemp("coco-shards")
    write_dataset(sources.coco_items(src / "images" / "train2017", src / "annotations" / "instances_train2017.json"),
                  out, split="train", options=ShardOptions(shard_samples=10, workers=1, max_side=320), progress=False)
    return out
