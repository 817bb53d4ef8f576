"""View operations: random erasing, and an operation declared here, outside viewkit, used
from a recipe in Python and in YAML; each drawn per sample id like every view.

Changes that must fail, each applied to a copy and the suite run:
- random erasing's box drawn with h and w swapped
- random erasing applied before normalisation (fills 0 in pixels, not the mean colour)
- the frame index left out of the erase anchor (every box on frame 0)
- an operation's numbers read from the column of the one before it
- a view without the operation given another view's settings
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from viewkit.views import operations, recipes
from viewkit.views.augment import GEOMETRY_ONLY, IMAGENET_MEAN, IMAGENET_STD
from viewkit.views.compiled import kernel
from viewkit.views.draws import uniform
from viewkit.views.families import Crops, Original, Recipe
from viewkit.views.memory import views_of_images
from viewkit.views.operations.random_erasing import RandomErasing, erased_box

from test_views_keyed import outputs_by_id

POSTERIZE_SLOT = 200


@operations.declare
@dataclass(frozen=True)
class Posterize:
    """torchvision's RandomPosterize: keeps the top `bits` bits of each channel, with probability p."""

    p: float = 0.0
    bits: int = 8

    name = "posterize"
    stage = "pixels"
    slots = (POSTERIZE_SLOT, 1)
    outputs = (("uint8", (1, 1, 1)),)  # the mask each pixel is and-ed with

    def __post_init__(self):
        if not 0 <= self.bits <= 8:
            raise ValueError(f"posterize.bits={self.bits} must lie in [0, 8]")

    def numbers(self):
        return self.p, self.bits

    def active(self):
        return self.p > 0 and self.bits < 8

    @staticmethod
    @kernel
    def draw(seed, epoch, sample_id, stream, frame, size, numbers, mask):
        bits = int(numbers[1]) if uniform(seed, epoch, sample_id, stream, POSTERIZE_SLOT) < numbers[0] else 8
        mask[0, 0, 0] = (255 << (8 - bits)) & 255

    @staticmethod
    def apply(frames, outputs, single):
        mask, = outputs
        return frames & mask


def _pixels(view: torch.Tensor) -> np.ndarray:
    """[..., 3, S, S] normalised -> [..., S, S, 3] grey levels."""
    x = view.movedim(-3, -1).numpy().astype(np.float64)
    return x * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)


def _crops(*augments, count: int = 3, size: int = 32) -> Recipe:
    return Recipe("ops", crops=(Crops("views", count=count, size=size, scale=(0.5, 1.0), augments=augments),))


def _still(**changes):
    return replace(GEOMETRY_ONLY, flip_p=0.0, **changes)


GREY = np.full((48, 64, 3), 200, np.uint8)


def _erased(image_views: torch.Tensor) -> np.ndarray:
    """Where a view of GREY is 0 after normalising: a grey of 200 is not the mean colour."""
    return (image_views == 0).all(dim=-3).numpy()


def _reference_mask(sample_id: int, stream: int, size: int, erasing: RandomErasing) -> np.ndarray:
    y, x, h, w = erased_box(0, 0, sample_id, stream, size, size, erasing.p, *erasing.scale,
                            math.log(erasing.ratio[0]), math.log(erasing.ratio[1]))
    mask = np.zeros((size, size), bool)
    mask[y:y + h, x:x + w] = True
    return mask


def test_random_erasing_sets_the_drawn_box_of_each_view_to_the_mean_colour():
    erasing = RandomErasing(p=0.5)
    batches = views_of_images([GREY] * 4, _crops(_still(operations=(erasing,))), batches=3)
    erased_views = 0
    for k, batch in enumerate(batches):
        masks = _erased(batch["views"])  # [V, B, S, S]
        for view in range(3):
            for i in range(4):
                expected = _reference_mask(4 * k + i, view, 32, erasing)
                assert np.array_equal(masks[view, i], expected), (k, view, i)
                erased_views += expected.any()
    assert 0 < erased_views < 36  # some erased, some whole
    assert np.all(np.abs(batches[-1]["views"].numpy()[~np.broadcast_to(masks[:, :, None], (3, 4, 3, 32, 32))]) > 0.1)


def test_random_erasing_draws_torchvisions_boxes_at_its_rate():
    erasing = RandomErasing(p=0.5, scale=(0.05, 0.2), ratio=(0.5, 2.0))
    boxes = [erased_box(3, 1, i, 2, 40, 40, erasing.p, *erasing.scale, math.log(0.5), math.log(2.0))
             for i in range(4000)]
    drawn = [(y, x, h, w) for y, x, h, w in boxes if h]
    assert stats.binomtest(len(drawn), len(boxes), 0.5).pvalue > 1e-3
    for y, x, h, w in drawn:
        assert 0 <= y and y + h <= 40 and 0 <= x and x + w <= 40
        # torchvision rounds h, w from the drawn area and aspect: the area within rounding of the range
        assert 0.05 * 1600 - h - w - 1 <= h * w <= 0.2 * 1600 + h + w + 1
        assert 0.5 / 1.2 <= h / w <= 2.0 * 1.2 or min(h, w) < 5
    ys = np.array([y for y, _, h, _ in drawn]) / np.array([40 - h for _, _, h, _ in drawn]).clip(1)
    assert 0.4 < ys.mean() < 0.6  # placed uniformly


def test_random_erasing_on_the_single_original_view():
    erasing = RandomErasing(p=1.0)
    recipe = Recipe("whole", original=Original(32, _still(operations=(erasing,))))
    batch, = views_of_images([GREY] * 3, recipe)
    masks = _erased(batch["original"])
    for i in range(3):
        assert np.array_equal(masks[i], _reference_mask(i, 0, 32, erasing)), i
    assert masks.any()


def test_a_view_without_an_operation_is_left_alone_by_it():
    erasing = RandomErasing(p=1.0, scale=(0.2, 0.3))
    batch, = views_of_images([GREY] * 4, _crops(_still(operations=(erasing,)), _still(), count=2))
    masks = _erased(batch["views"])
    assert masks[0].any(axis=(1, 2)).all() and not masks[1].any()


def test_an_operation_declared_outside_viewkit_posterizes_frames_drawn_per_id():
    recipe = _crops(_still(operations=(Posterize(p=0.5, bits=3),)), count=4)
    batches = views_of_images([np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)] * 5, recipe,
                              batches=2)
    levels_seen = set()
    for k, batch in enumerate(batches):
        pixels = np.round(_pixels(batch["views"]))  # [V, B, S, S, 3]
        for view in range(4):
            for i in range(5):
                drawn = uniform(0, 0, 5 * k + i, view, POSTERIZE_SLOT) < 0.5
                levels = np.unique(pixels[view, i])
                levels_seen |= set(levels.tolist())
                assert (np.all(levels % 32 == 0)) == drawn, (k, view, i)
    assert len(levels_seen) > 32  # frames not posterized keep their grey levels


def test_an_operation_in_a_yaml_recipe_is_the_python_recipe_bit_for_bit(tmp_path):
    recipe = _crops(_still(operations=(Posterize(p=0.5, bits=2), RandomErasing(p=0.5))),
                    replace(GEOMETRY_ONLY, operations=(RandomErasing(p=0.7, ratio=(0.5, 2.0)),)), count=2)
    path = tmp_path / "mine.yaml"
    path.write_text(recipes.to_yaml(recipe))
    assert "posterize:" in path.read_text() and "random_erasing:" in path.read_text()
    loaded = recipes.get(str(path))
    assert loaded == recipe
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), np.uint8)
    python, yaml = (views_of_images([image] * 3, r, batches=2) for r in (recipe, loaded))
    for a, b in zip(python, yaml):
        assert torch.equal(a["views"], b["views"])


def test_operations_give_a_sample_the_same_views_under_one_and_two_ranks(embedded_shards, tmp_path):
    recipe = replace(_crops(_still(operations=(Posterize(p=0.5, bits=3), RandomErasing(p=0.5))), count=2,
                            size=24), name="mine")
    path = tmp_path / "mine.yaml"
    path.write_text(recipes.to_yaml(recipe))
    one, two = (outputs_by_id(embedded_shards, str(path), world, batch_size, {"views": 1})
                for world, batch_size in ((1, 7), (2, 5)))
    assert sorted(one) == sorted(two) == list(range(60))
    assert all(torch.equal(one[i]["views"], two[i]["views"]) for i in one)
    erased = sum(int((one[i]["views"] == 0).all(dim=1).any(dim=(1, 2)).sum()) for i in one)
    assert 30 < erased < 90  # about half of 120 views


def test_a_declaration_that_breaks_the_contract_is_refused_naming_what_is_missing():
    @dataclass(frozen=True)
    class NoDraw:
        p: float = 0.0
        name, stage, slots, outputs = "no_draw", "pixels", (300, 1), (("float32", (1,)),)

        def numbers(self):
            return (self.p,)

        def active(self):
            return self.p > 0

        @staticmethod
        def apply(frames, outputs, single):
            return frames

    with pytest.raises(TypeError, match="top level"):
        operations.declare(NoDraw)
    NoDraw.__qualname__ = "NoDraw"
    with pytest.raises(TypeError, match="lacks `draw`"):
        operations.declare(NoDraw)
    NoDraw.draw = staticmethod(kernel(lambda *args: None))
    NoDraw.stage = "later"
    with pytest.raises(TypeError, match="stage 'later'"):
        operations.declare(NoDraw)
    with pytest.raises(ValueError, match="unknown operation 'posterise'.*posterize"):
        recipes.from_dict({"name": "r", "crops": [{"name": "v", "count": 1, "size": 16, "scale": [0.5, 1.0],
                                                   "augments": [{"operations": [{"posterise": {"p": 1.0}}]}]}]})
    with pytest.raises(ValueError, match="unknown settings \\['bit'\\]"):
        operations.from_plain({"posterize": {"bit": 3}})
    with pytest.raises(ValueError, match="not a declared operation"):
        replace(GEOMETRY_ONLY, operations=("erase",))


def test_an_edit_to_an_operation_outside_viewkit_reaches_its_cached_kernel(tmp_path):
    # the kernels of an operation declared elsewhere are cached like viewkit's own; an edit to
    # its file must not load the old machine code
    module = tmp_path / "my_operation.py"
    source = textwrap.dedent(Path(__file__).read_text().split("POSTERIZE_SLOT = 200")[1].split("def _pixels")[0])
    module.write_text("from dataclasses import dataclass\nfrom viewkit.views import operations\n"
                      "from viewkit.views.compiled import kernel\nfrom viewkit.views.draws import uniform\n"
                      "POSTERIZE_SLOT = 200\n" + source)
    probe = textwrap.dedent("""
        import numpy as np
        from dataclasses import replace
        from my_operation import Posterize
        from viewkit.views.augment import GEOMETRY_ONLY
        from viewkit.views.families import Crops, Recipe
        from viewkit.views.memory import views_of_images
        augment = replace(GEOMETRY_ONLY, flip_p=0.0, operations=(Posterize(p=1.0, bits=3),))
        recipe = Recipe("p", crops=(Crops("views", count=1, size=16, scale=(1.0, 1.0), augments=(augment,)),))
        image = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
        views = views_of_images([image], recipe)[0]["views"]
        pixels = views.movedim(-3, -1).numpy() * np.array([58.395, 57.12, 57.375]) + np.array([123.675, 116.28, 103.53])
        print(sorted(set((np.round(pixels) % 64).astype(int).ravel().tolist()))[:2])
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])])}

    def run() -> str:
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip()

    assert run() == "[0, 32]"  # 3 bits: multiples of 32
    assert run() == "[0, 32]"  # from the cache
    module.write_text(module.read_text().replace("bits = int(numbers[1]) if", "bits = 2 if"))
    assert run() == "[0]"  # the edit: 2 bits, multiples of 64
