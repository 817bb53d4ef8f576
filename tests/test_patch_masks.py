"""The patch-mask family: MAE's random masks, BEiT's block masks and I-JEPA's multi-block
context and target masks, each equal to a copy of the authors' generator driven by the
same keyed draws, per sample id, through the loader on one and two ranks.

Changes that must fail, each applied to a copy and the suite run:
- MAE's keep count rounded up instead of truncated
- BEiT's overlap rule dropped (a block that adds nothing new still counts)
- I-JEPA's block placed with an inclusive upper bound
- the context not kept clear of the targets
- the masks keyed by batch position instead of sample id
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from viewkit.views import recipes
from viewkit.views.augment import GEOMETRY_ONLY
from viewkit.views.draws import uniform
from viewkit.views.families import Crops, PatchMasks, Recipe
from viewkit.views.memory import views_of_images
from viewkit.views.plan import make_plan

from test_views_keyed import outputs_by_id

IMAGE = np.random.default_rng(0).integers(0, 256, (40, 48, 3), np.uint8)


def _recipe(masks: PatchMasks) -> Recipe:
    views = Crops("views", count=2, size=16, scale=(0.5, 1.0), augments=(GEOMETRY_ONLY,))
    return Recipe("masked", crops=(views,), families=(masks,))


def _stream(recipe: Recipe) -> int:
    return next(planned.stream for family, planned in make_plan(recipe).families if isinstance(family, PatchMasks))


def _draws(sample_id: int, stream: int):
    return lambda slot: uniform(0, 0, sample_id, stream, slot)


def mae_reference(u, height: int, width: int, ratio: float) -> np.ndarray:
    """models_mae.py random_masking, its torch.rand noise replaced by the keyed draws."""
    patches = height * width
    len_keep = int(patches * (1 - ratio))
    noise = np.array([u(k) for k in range(patches)])
    ids_shuffle = np.argsort(noise, kind="stable")
    mask = np.ones(patches)
    mask[ids_shuffle[:len_keep]] = 0
    return mask.reshape(height, width).astype(bool)


class BeitReference:
    """BEiT's masking_generator.MaskingGenerator, random.uniform / random.randint replaced by
    the keyed draws (four per attempt, ten attempts per _mask call)."""

    def __init__(self, u, input_size, num_masking_patches, min_num_patches=4, max_num_patches=None,
                 min_aspect=0.3, max_aspect=None):
        self.u, self.calls = u, 0
        self.height, self.width = input_size
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))

    def _mask(self, mask, max_mask_patches):
        delta = 0
        for attempt in range(10):
            slot = 4 * (10 * self.calls + attempt)
            target_area = self.min_num_patches + (max_mask_patches - self.min_num_patches) * self.u(slot)
            low, high = self.log_aspect_ratio
            aspect_ratio = math.exp(low + (high - low) * self.u(slot + 1))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < self.width and h < self.height:
                top = int(self.u(slot + 2) * (self.height - h + 1))
                left = int(self.u(slot + 3) * (self.width - w + 1))
                num_masked = mask[top: top + h, left: left + w].sum()
                if 0 < h * w - num_masked <= max_mask_patches:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i, j] == 0:
                                mask[i, j] = 1
                                delta += 1
                if delta > 0:
                    break
        self.calls += 1
        return delta

    def __call__(self):
        mask = np.zeros(shape=(self.height, self.width), dtype=int)
        mask_count = 0
        while mask_count < self.num_masking_patches:
            max_mask_patches = min(self.num_masking_patches - mask_count, self.max_num_patches)
            delta = self._mask(mask, max_mask_patches)
            if delta == 0:
                break
            mask_count += delta
        return mask.astype(bool)


def ijepa_reference(u, height, width, npred=4, pred_scale=(0.15, 0.2), enc_scale=(0.85, 1.0),
                    aspect_ratio=(0.75, 1.5), min_keep=10):
    """I-JEPA's multiblock.MaskCollator for one sample (nenc 1, allow_overlap False), its
    torch.rand / torch.randint replaced by the keyed draws; block sizes per sample."""

    def sample_block_size(rand, scale, aspect_scale):
        mask_scale = scale[0] + rand * (scale[1] - scale[0])
        max_keep = int(height * width * mask_scale)
        aspect = aspect_scale[0] + rand * (aspect_scale[1] - aspect_scale[0])
        h, w = int(round(math.sqrt(max_keep * aspect))), int(round(math.sqrt(max_keep / aspect)))
        while h >= height:
            h -= 1
        while w >= width:
            w -= 1
        return h, w

    def sample_block_mask(first_slot, size, acceptable_regions=None):
        h, w = size
        tries, timeout, attempt = 0, 20, 0
        while True:
            top = int(u(first_slot + 2 * attempt) * (height - h))
            left = int(u(first_slot + 2 * attempt + 1) * (width - w))
            mask = np.zeros((height, width), int)
            mask[top:top + h, left:left + w] = 1
            if acceptable_regions is not None:
                for k in range(max(len(acceptable_regions) - tries, 0)):
                    mask *= acceptable_regions[k]
            if mask.sum() > min_keep or attempt + 1 == 20 * (npred + 1):  # the bound is ours
                complement = np.ones((height, width), int)
                complement[top:top + h, left:left + w] = 0
                return mask, complement
            timeout -= 1
            if timeout == 0:
                tries, timeout = tries + 1, 20
            attempt += 1

    p_size = sample_block_size(u(0), pred_scale, aspect_ratio)
    e_size = sample_block_size(u(1), enc_scale, (1.0, 1.0))
    per_block = 2 * 20 * (npred + 1)
    targets, complements = [], []
    for t in range(npred):
        mask, complement = sample_block_mask(2 + t * per_block, p_size)
        targets.append(mask)
        complements.append(complement)
    context, _ = sample_block_mask(2 + npred * per_block, e_size, complements)
    return context.astype(bool), np.stack(targets).astype(bool)


def _masks(masks: PatchMasks, batches: int = 2, batch_size: int = 4):
    recipe = _recipe(masks)
    return recipe, views_of_images([IMAGE] * batch_size, recipe, batches=batches)


def test_random_masks_are_maes_random_masking():
    recipe, batches = _masks(PatchMasks(mode="random", grid=(7, 9), ratio=0.6))
    stream = _stream(recipe)
    for k, batch in enumerate(batches):
        assert batch["masks"].shape == (4, 7, 9) and batch["masks"].dtype == torch.bool
        for i in range(4):
            expected = mae_reference(_draws(4 * k + i, stream), 7, 9, 0.6)
            assert np.array_equal(batch["masks"][i].numpy(), expected), (k, i)
            assert expected.sum() == 63 - int(63 * 0.4)


def test_block_masks_are_beits_masking_generator():
    recipe, batches = _masks(PatchMasks(mode="block", grid=(14, 14), ratio=75 / 196, min_block=16), batches=3)
    stream = _stream(recipe)
    counts = []
    for k, batch in enumerate(batches):
        for i in range(4):
            expected = BeitReference(_draws(4 * k + i, stream), (14, 14), 75, min_num_patches=16)()
            assert np.array_equal(batch["masks"][i].numpy(), expected), (k, i)
            counts.append(int(expected.sum()))
    assert min(counts) >= 60 and max(counts) <= 75  # BEiT stops at 75, or when a block adds nothing
    assert len({tuple(batch["masks"][i].flatten().tolist()) for batch in batches for i in range(4)}) == 12


def test_multiblock_masks_are_ijepas_collator_per_sample():
    recipe, batches = _masks(PatchMasks(mode="multiblock", grid=(16, 16)), batches=2)
    stream = _stream(recipe)
    for k, batch in enumerate(batches):
        assert batch["masks_context"].shape == (4, 16, 16) and batch["masks_targets"].shape == (4, 4, 16, 16)
        for i in range(4):
            context, targets = ijepa_reference(_draws(4 * k + i, stream), 16, 16)
            assert np.array_equal(batch["masks_context"][i].numpy(), context), (k, i)
            assert np.array_equal(batch["masks_targets"][i].numpy(), targets), (k, i)
            sizes = {int(t.sum()) for t in targets}
            # one block size: 15-20% of the grid, as I-JEPA rounds its sides (6 x 9 for 51 patches)
            assert len(sizes) == 1 and 0.12 * 256 <= sizes.pop() <= 0.25 * 256
            assert not (context & targets.any(axis=0)).any()  # the context leaves every target out
            assert context.sum() > 10


def test_patch_masks_are_the_same_per_id_under_one_and_two_ranks_and_from_yaml(embedded_shards, tmp_path):
    recipe = replace(_recipe(PatchMasks(name="tokens", mode="multiblock", grid=(8, 8), targets=2, min_keep=2)),
                     name="tokens")
    path = tmp_path / "tokens.yaml"
    path.write_text(recipes.to_yaml(recipe))
    assert "patch_masks:" in path.read_text() and recipes.get(str(path)) == recipe
    keys = {"tokens_context": 0, "tokens_targets": 0}
    one, two = (outputs_by_id(embedded_shards, str(path), world, batch_size, keys, seed=2)
                for world, batch_size in ((1, 7), (2, 5)))
    assert sorted(one) == sorted(two) == list(range(60))
    assert all(torch.equal(one[i][key], two[i][key]) for i in one for key in keys)
    assert len({tuple(one[i]["tokens_context"].flatten().tolist()) for i in one}) > 30  # ids draw their own


def test_patch_mask_settings_are_checked_with_the_fix_named():
    with pytest.raises(ValueError, match="mode 'blocks' is not one of"):
        PatchMasks(mode="blocks")
    with pytest.raises(ValueError, match="ratio 1.0 must lie in"):
        PatchMasks(ratio=1.0)
    with pytest.raises(ValueError, match="target_scale"):
        PatchMasks(target_scale=(0.3, 0.2))
    with pytest.raises(ValueError, match="unknown family 'patch_mask'.*did you mean 'patch_masks'"):
        recipes.from_dict({"name": "r", "crops": [{"name": "v", "count": 1, "size": 16, "scale": [0.5, 1.0]}],
                           "families": [{"patch_mask": {"mode": "random"}}]})
    with pytest.raises(ValueError, match="must be unique"):
        Recipe("r", crops=(Crops("masks", 1, 16, (0.5, 1.0)),), families=(PatchMasks(),))
