"""COCO: boxes and categories equal pycocotools', crowd and empty images included."""

import contextlib
import io
import json

import numpy as np
import webdataset as wds
from pycocotools.coco import COCO

from tests.conftest import shared
from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest
from viewkit.shards import sources
from viewkit.shards.writer import ShardOptions, write_dataset


def load_coco(annotations) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(annotations))


def test_boxes_equal_pycocotools(coco_source, coco_source_shards):
    coco = load_coco(coco_source[1])
    manifest = read_manifest(coco_source_shards)
    cat_ids = sorted(coco.getCatIds())
    assert [c["id"] for c in manifest["classes"]] == cat_ids
    assert manifest["num_samples"] == len(coco.getImgIds())
    samples = list(wds.WebDataset([str(coco_source_shards / s["tar"]) for s in manifest["shards"]], shardshuffle=False))
    seen_crowd = seen_empty = 0
    for sample in samples:
        meta = json.loads(sample["json"])
        info = coco.imgs[meta["image_id"]]
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[meta["image_id"]], iscrowd=None)), key=lambda a: a["id"])
        sx = meta["stored_size"][0] / info["width"]
        sy = meta["stored_size"][1] / info["height"]
        expected = np.array([[a["bbox"][0] * sx, a["bbox"][1] * sy, (a["bbox"][0] + a["bbox"][2]) * sx,
                              (a["bbox"][1] + a["bbox"][3]) * sy] for a in anns]).reshape(-1, 4)
        boxes = np.frombuffer(sample["boxes.f32"], "<f4").reshape(-1, 4)
        np.testing.assert_allclose(boxes, expected, rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(np.array(meta["boxes"]).reshape(-1, 4), expected, atol=1e-9)
        categories = np.frombuffer(sample["categories.i64"], "<i8")
        assert categories.tolist() == [cat_ids.index(a["category_id"]) for a in anns] == meta["category_ids"]
        assert meta["coco_category_ids"] == [a["category_id"] for a in anns]
        assert meta["iscrowd"] == [a["iscrowd"] for a in anns]
        assert max(meta["stored_size"]) <= 320  # --max-side applied, boxes scaled with it
        seen_crowd += sum(meta["iscrowd"])
        seen_empty += len(anns) == 0
    crowd = sum(a["iscrowd"] for a in coco.dataset["annotations"])
    empty = sum(not coco.getAnnIds(imgIds=[i], iscrowd=None) for i in coco.getImgIds())
    assert seen_crowd == crowd > 0 and seen_empty == empty > 0  # crowd boxes and unannotated images kept


def test_images_only_without_annotations(tmp_path):
    src = shared("coco-tiny") / "images" / "val2017"
    manifest = write_dataset(sources.coco_items(src), tmp_path, split="unlabeled",
                             options=ShardOptions(workers=1), progress=False)
    assert manifest["num_samples"] == 6 and manifest["classes"] == []
    assert "boxes.f32" not in manifest["components"]
    sample = next(iter(wds.WebDataset(str(tmp_path / manifest["shards"][0]["tar"]), shardshuffle=False)))
    assert int(sample["cls"]) == -1 and "boxes.f32" not in sample


def test_annotations_for_another_image_size_are_rejected(tmp_path):
    src = shared("coco-tiny")
    data = json.loads((src / "annotations" / "instances_val2017.json").read_text())
    data["images"][0]["width"] += 7
    bad = tmp_path / "instances.json"
    bad.write_text(json.dumps(data))
    manifest = write_dataset(sources.coco_items(src / "images" / "val2017", bad), tmp_path / "out", split="val",
                             options=ShardOptions(workers=1), progress=False)
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert manifest["num_rejected"] == 1 and "annotations are for" in rejected[0]["reason"]
    assert rejected[0]["path"] == data["images"][0]["file_name"]
