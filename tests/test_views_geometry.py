"""Views on the CPU backend: contract, determinism, and geometry checked pixel by pixel."""


import numpy as np
import pytest
import torch
from PIL import Image

from viewkit.views import recipes
from viewkit.views.augment import IMAGENET_MEAN, IMAGENET_STD
from viewkit.views.memory import views_of_images


def smooth_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Low-frequency colour images of different sizes: resampling differences stay small."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = 120 + 10 * (i % 7), 160 + 11 * (i % 3)  # aspects within (3/4, 4/3): no fallback crops
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        channels = [127 + 120 * np.sin(2 * np.pi * (a * xx + b * yy) + c) for a, b, c in rng.uniform(0.3, 1.5, (3, 3))]
        images.append(np.stack(channels, -1).clip(0, 255).astype(np.uint8))
    return images


def to_pixels(view: torch.Tensor) -> np.ndarray:
    """[3, S, S] normalised -> [S, S, 3] 0..255."""
    return view.float().permute(1, 2, 0).numpy() * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)


def reference_crop(image: np.ndarray, box, size: int, flip: bool) -> np.ndarray:
    x0, y0, x1, y1 = [float(v) for v in box]
    crop = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
    out = np.asarray(crop).astype(np.float64)
    return out[:, ::-1] if flip else out


@pytest.mark.parametrize("name", sorted(recipes.PRESETS))
def test_every_preset_keys_shapes_dtypes(name):
    recipe = recipes.get(name)
    out = views_of_images(smooth_images(3), recipe)[0]
    b = 3
    expected = {}
    for family in recipe.crops:
        s = family.size
        expected[family.name] = (family.count, b, 3, s, s)
        expected[f"{family.name}_boxes"] = (family.count, b, 4)
        expected[f"{family.name}_flips"] = (family.count, b)
    if recipe.original:
        expected |= {"original": (b, 3, recipe.original.size, recipe.original.size), "original_flip": (b,)}
    if recipe.saliency:
        t, s = recipe.saliency.pairs, recipe.saliency.size
        expected |= {"saliency": (t, 2, b, 3, s, s), "saliency_boxes": (t, 2, b, 4), "saliency_scores": (b, t),
                     "saliency_regions": (b, t, 4)}
    if recipe.swap:
        expected |= {"swap": (b, 3, 224, 224), "swap_mask": (b, 1, 224, 224), "swap_box": (4,), "swap_cells": (4,),
                     "swap_source": (b,)}
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    for key, value in out.items():
        if value.dim() >= 4 and value.shape[-3] == 3:
            assert value.dtype == torch.float32
            assert value.is_contiguous(memory_format=torch.channels_last) or value.dim() > 4


def test_same_seed_same_batches_other_seed_other():
    recipe = recipes.get("logo", global_size=64, local_size=32)
    images = smooth_images(4)
    a = views_of_images(images, recipe, seed=5, batches=2)
    b = views_of_images(images, recipe, seed=5, batches=2)
    c = views_of_images(images, recipe, seed=6, batches=1)
    for batch_a, batch_b in zip(a, b):
        assert all(torch.equal(batch_a[k], batch_b[k]) for k in batch_a)
    assert not torch.equal(a[0]["global"], a[1]["global"])  # batches differ within a run
    assert not torch.equal(a[0]["global_boxes"], c[0]["global_boxes"])


def test_bfloat16_output():
    out = views_of_images(smooth_images(2), recipes.get("moco_v2", dtype="bfloat16", global_size=32))[0]
    assert out["global"].dtype == torch.bfloat16 and out["global_boxes"].dtype == torch.float32


@pytest.mark.parametrize("name", ["logo", "leoclr", "byol"])
def test_views_equal_the_source_cut_at_their_windows(name):
    recipe = recipes.get(name)
    images = smooth_images(4)
    out = views_of_images(images, recipe, augment=False, seed=1)[0]
    for family in recipe.crops:
        for v in range(family.count):
            for i, image in enumerate(images):
                box = out[f"{family.name}_boxes"][v, i]
                x0, y0, x1, y1 = box.tolist()
                assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
                expected = reference_crop(image, box, family.size, bool(out[f"{family.name}_flips"][v, i]))
                error = np.abs(to_pixels(out[family.name][v, i]) - expected)
                assert error.mean() < 2.0 and np.percentile(error, 99) < 12, (family.name, v, i, error.mean())
    if recipe.original:
        for i, image in enumerate(images):
            expected = reference_crop(image, (0, 0, image.shape[1], image.shape[0]), 224, bool(out["original_flip"][i]))
            assert np.abs(to_pixels(out["original"][i]) - expected).mean() < 2.0


def test_crop_area_and_ratio_over_many_draws():
    recipe = recipes.get("logo", global_size=16, local_size=16, local_count=4)
    images = smooth_images(50)
    batches = views_of_images(images, recipe, augment=False, batches=5, seed=2)
    areas = {"global": [], "local": []}
    ratios = {"global": [], "local": []}
    for batch in batches:
        for family in ("global", "local"):
            boxes = batch[f"{family}_boxes"].reshape(-1, 4).double()
            image_area = torch.tensor([im.shape[0] * im.shape[1] for im in images], dtype=torch.float64)
            image_area = image_area.repeat(boxes.shape[0] // len(images))
            w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            areas[family] += (w * h / image_area).tolist()
            ratios[family] += (w / h).tolist()
    for family, (low, high) in (("global", (0.4, 1.0)), ("local", (0.05, 0.4))):
        area, ratio = np.array(areas[family]), np.array(ratios[family])
        assert len(area) >= 500
        # Window sides are whole pixels: allow the rounding of a ~140 px image side.
        assert area.min() >= low * 0.95 and area.max() <= high * 1.02, family
        assert ratio.min() >= 0.75 * 0.95 and ratio.max() <= 4 / 3 * 1.05, family
        # Spread across the range: every quarter of it is used.
        quarters = np.histogram(area, bins=4, range=(low, high))[0]
        assert (quarters > 0.05 * len(area)).all(), (family, quarters)
        log_quarters = np.histogram(np.log(ratio), bins=4, range=(np.log(0.75), np.log(4 / 3)))[0]
        assert (log_quarters > 0.1 * len(ratio)).all(), (family, log_quarters)


def test_region_swap_composites_pixel_for_pixel():
    recipe = recipes.get("regioncl")
    images = smooth_images(5)
    seen_sizes, seen_corners = set(), set()
    for batch in views_of_images(images, recipe, augment=False, batches=6, seed=4):
        x0, y0, x1, y1 = batch["swap_box"].tolist()
        assert all(v % 32 == 0 for v in (x0, y0, x1, y1)) and 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
        assert x1 - x0 in (96, 128, 160) and y1 - y0 in (96, 128, 160)
        assert batch["swap_cells"].tolist() == [x0 // 32, y0 // 32, x1 // 32, y1 // 32]
        seen_sizes.add((x1 - x0, y1 - y0))
        seen_corners.add((x0, y0))
        query, swap, mask = batch["global"][0], batch["swap"], batch["swap_mask"]
        b = len(images)
        assert batch["swap_source"].tolist() == list(range(b - 1, -1, -1))
        expected_mask = torch.zeros(224, 224, dtype=torch.bool)
        expected_mask[y0:y1, x0:x1] = True
        for i in range(b):
            assert torch.equal(mask[i, 0], expected_mask)
            inside = swap[i][:, expected_mask]
            assert torch.equal(inside, query[b - 1 - i][:, expected_mask])
            assert torch.equal(swap[i][:, ~expected_mask], query[i][:, ~expected_mask])
    assert len(seen_sizes) > 2 and len(seen_corners) > 2
