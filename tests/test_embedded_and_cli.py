"""The embedded default dataset and the command line around it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from viewkit.datasets.embedded import CLASSES, SceneStyle, scene, shape_mask, write_embedded_dataset
from viewkit.datasets.photo_crops import PHOTOGRAPHS
from viewkit.tools.cli import main
from viewkit.tools.preview import legend
from viewkit.views import recipes


def test_scenes_are_deterministic_and_balanced(tmp_path):
    a = write_embedded_dataset(tmp_path / "a", num_images=12, seed=3)
    b = write_embedded_dataset(tmp_path / "b", num_images=12, seed=3)
    files_a = sorted(Path(a["images"]).rglob("*.jpg"))
    assert [p.read_bytes() for p in files_a] == [p.read_bytes() for p in sorted(Path(b["images"]).rglob("*.jpg"))]
    assert sorted(p.parent.name for p in files_a) == sorted(list(CLASSES) * 2)


def test_scene_style_sets_object_size_distractors_and_background():
    photos = [np.tile(np.array([[0], [255]], np.uint8), (60, 120))[..., None].repeat(3, axis=2)]  # stripes
    style = SceneStyle(main_radius=(0.4, 0.4), max_distractors=0, background_contrast=0.5)
    for seed in range(6):
        image, objects = scene(np.random.default_rng(seed), photos, label=CLASSES.index("disk"), style=style)
        assert len(objects) == 1  # no distractors
        x0, y0, x1, y1 = objects[0]["box"]
        assert abs((x1 - x0) - 2 * 0.4 * min(image.shape[:2])) <= 2  # a disk's box is its diameter
        outside = np.ones(image.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        # half contrast pulls the stripes (0 and 255 about a mean of 127.5) halfway in
        assert 62 <= image[outside].min() and image[outside].max() <= 193
    for bad in ({"main_radius": (0.3, 0.6)}, {"main_radius": (0.3, 0.2)}, {"max_distractors": -1},
                {"background_contrast": -0.5}):
        with pytest.raises(ValueError, match="SceneStyle"):
            SceneStyle(**bad)


def test_boxes_enclose_the_objects_exactly(tmp_path):
    result = write_embedded_dataset(tmp_path, num_images=12, seed=1)
    coco = json.loads(Path(result["annotations"]).read_text())
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for image in coco["images"]:
        anns = by_image[image["id"]]
        main_object = anns[0]
        assert CLASSES[main_object["category_id"] - 1] == image["file_name"].split("/")[0]
        for ann in anns:
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"]
            assert 0 < ann["area"] <= w * h
        distractor_areas = [a["bbox"][2] * a["bbox"][3] for a in anns[1:]]
        assert main_object["bbox"][2] * main_object["bbox"][3] > max(distractor_areas, default=0)


def test_shape_mask_box_is_its_bounding_box():
    mask = shape_mask("square", (100, 120), cx=60, cy=50, radius=20, angle=np.pi / 4)
    rows, cols = np.nonzero(mask)
    # A square with corners on a radius-20 circle, rotated 45 degrees: axis-aligned, side ~28.
    assert abs((cols.max() - cols.min() + 1) - 2 * 20 / np.sqrt(2)) <= 2
    assert abs(rows.mean() - 50) < 1 and abs(cols.mean() - 60) < 1


def test_demo_runs_and_reports(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo", "--out", str(demo), "--images", "24", "--threads", "1", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "24 written, 0 rejected" in out and "6 written, 0 rejected" in out and "demo finished" in out
    summary = json.loads((demo / "summary.json").read_text())
    assert f"random init {summary['knn_random']:.3f}" in out and f"pretrained {summary['knn_trained']:.3f}" in out
    assert summary["held_out"] == 6 and summary["megabytes"] > 0
    assert sorted(path.name for path in (demo / "run").glob("checkpoint*.pt")) == ["checkpoint-last.pt"]
    assert (demo / "preview-logo.png").exists()
    assert main(["info", str(demo / "shards")]) == 0
    assert "samples    24 of 24 inputs" in capsys.readouterr().out
    assert sorted(path.name for path in (demo / "source-val" / "images").iterdir()) == sorted(PHOTOGRAPHS)


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    assert main(["shard", "folder", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert f"{tmp_path}: no viewkit dataset (dataset.json) here" in capsys.readouterr().err
    (tmp_path / "images.tgz").write_bytes(b"\x1f\x8b\x08\x00")  # a gzip header: not a manifest to decode
    for command in ("info", "verify"):
        assert main([command, str(tmp_path / "images.tgz")]) == 2
        assert "images.tgz is a compressed tar: DALI reads only uncompressed" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_:
            main(["eval", "knn", "--random-init", "--train", str(tmp_path), "--val", str(tmp_path), "--device", "gpu"])
        assert exit_.value.code == 2
        assert "eval --device gpu: torch sees no CUDA GPU here; --device cpu" in capsys.readouterr().err
    assert main(["shard", "folder", str(tmp_path), str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'out'} lies inside the input folder {tmp_path}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["shard", "folder", str(tmp_path), str(tmp_path.parent / "o"), "--quality", "0"]) == 2
    assert "quality must be within 1..100" in capsys.readouterr().err


def test_preview_draws_every_view(embedded_shards, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["preview", str(embedded_shards), "--recipe", "regioncl", "--n", "3", "--out", str(out)]) == 0
    sheet = Image.open(out)
    # the legend strip, then 3 rows of two 112 px tile lines (+4 px gaps); source at 224 px high plus 3 view tiles.
    top = legend(recipes.get("regioncl")).height + 4
    assert sheet.height == top + 3 * (224 + 4)
    assert np.asarray(sheet)[:top - 4, :, :].max() == 255  # the legend is drawn
    assert "3 samples of recipe 'regioncl'" in capsys.readouterr().out
    pixels = np.asarray(sheet)
    assert ((pixels[..., 0] == 255) & (pixels[..., 1] == 0) & (pixels[..., 2] == 0)).sum() > 100  # swap boxes drawn


def test_preview_draws_patch_masks_as_tiles(embedded_shards, tmp_path):
    from viewkit.views.families import Crops, PatchMasks, Recipe

    recipe = Recipe("masked", crops=(Crops("views", count=1, size=32, scale=(0.5, 1.0)),),
                    families=(PatchMasks(mode="block", grid=(8, 8), ratio=0.4, min_block=4),))
    path = tmp_path / "masked.yaml"
    path.write_text(recipes.to_yaml(recipe))
    out = tmp_path / "sheet.png"
    assert main(["preview", str(embedded_shards), "--recipe", str(path), "--n", "2", "--out", str(out)]) == 0
    pixels = np.asarray(Image.open(out))
    top = legend(recipe).height + 4
    row = pixels[top:top + 224]
    # a mask tile: white kept patches and black masked ones, 14 px each (8 patches on 112 px)
    black, white = (row == 0).all(axis=-1).sum(), (row == 255).all(axis=-1).sum()
    assert black >= 0.3 * 112 * 112 * 0.9 and white >= 0.5 * 112 * 112 * 0.9, (black, white)


def test_preview_draws_a_stores_regions(embedded_shards, coco_shards, tmp_path, capsys):
    from viewkit.saliency import SaliencyStore
    from viewkit.loaders.dataset import open_dataset

    n = 60
    boxes = np.zeros((n, 8, 4), np.float32)
    boxes[:, 0] = [40, 40, 120, 120]  # source pixels; the sheet draws sources 224 px high (scale 0.70..1.17 here)
    scores = np.zeros((n, 8), np.float32)
    scores[:, 0] = 1.0
    SaliencyStore(tmp_path / "store").write(boxes, scores, np.ones(n, np.int32), source="test",
                                            shards=open_dataset(embedded_shards))

    def white_top_edges(sheet):
        """Per row: a 3 px white line across x 50..80 at y 25..50, the top edge of the region at any scale."""
        pixels = np.asarray(sheet)
        white = (pixels == 255).all(-1)
        top = legend(recipes.get("sgcl")).height + 4  # below the legend strip
        return [any(white[top + row * 228 + y, 50:80].all() for y in range(25, 51)) for row in range(3)]

    for with_store in (True, False):
        out = tmp_path / f"sheet-{with_store}.png"
        extra = ["--saliency", str(tmp_path / "store")] if with_store else []
        assert main(["preview", str(embedded_shards), "--recipe", "sgcl", "--n", "3", "--out", str(out), *extra]) == 0
        assert white_top_edges(Image.open(out)) == [with_store] * 3
        assert ("saliency crops are the fallback, random crops" in capsys.readouterr().out) is not with_store
    assert main(["preview", str(embedded_shards), "--recipe", "logo", "--saliency", str(tmp_path / "store")]) == 2
    assert "recipe 'logo' has no saliency crops" in capsys.readouterr().err
    assert main(["saliency", str(coco_shards), "--out", str(tmp_path / "coco"), "--source", "gt"]) == 0
    assert main(["preview", str(embedded_shards), "--recipe", "sgcl", "--saliency", str(tmp_path / "coco")]) == 2
    assert "was made for other shards" in capsys.readouterr().err
