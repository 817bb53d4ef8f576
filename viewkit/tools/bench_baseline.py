"""The baseline of `viewkit bench`: the same views the way a competent user builds them
without viewkit. webdataset reads the same shards, PIL decodes each image once,
torchvision transforms v2 cut and augment every view, a DataLoader runs the workers.
"""

from __future__ import annotations

import random

import torch
import webdataset as wds
from torchvision.transforms import v2

from viewkit.views.augment import IMAGENET_MEAN, IMAGENET_STD, Augment, blur_window, geometry_only
from viewkit.views.families import Recipe
from viewkit.views.operations.random_erasing import RandomErasing

PREFETCH = 2  # batches each DataLoader worker prepares ahead (torch's default)
_MEAN = [m / 255 for m in IMAGENET_MEAN]
_STD = [s / 255 for s in IMAGENET_STD]


def paper_blur_window(size: int) -> int:
    """The papers' kernel, as BYOL/SimCLR implementations write it: odd, 10% of the view."""
    window = int(round(0.1 * size))
    return window + 1 if window % 2 == 0 else window


def photometric(augment: Augment, size: int, blur: str = "paper") -> list:
    steps = [v2.RandomHorizontalFlip(augment.flip_p)]
    if augment.color_jitter_p > 0:
        steps.append(v2.RandomApply([v2.ColorJitter(augment.brightness, augment.contrast, augment.saturation, augment.hue)],
                                    p=augment.color_jitter_p))
    if augment.grayscale_p > 0:
        steps.append(v2.RandomGrayscale(augment.grayscale_p))
    if augment.blur_p > 0:
        window = paper_blur_window(size) if blur == "paper" else blur_window(size, augment.blur_sigma[1])
        steps.append(v2.RandomApply([v2.GaussianBlur(window, augment.blur_sigma)], p=augment.blur_p))
    if augment.solarize_p > 0:
        steps.append(v2.RandomSolarize(128, p=augment.solarize_p))
    after = []
    for operation in augment.operations:
        if not isinstance(operation, RandomErasing):
            raise ValueError(f"viewkit bench: no torchvision baseline for operation {operation.name!r}; "
                             "use --baseline none")
        after.append(v2.RandomErasing(operation.p, operation.scale, operation.ratio, value=0))
    return steps + [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(_MEAN, _STD), *after]


def _region_crop(image, size: int, scale, ratio):
    """SGCL's fallback crop of the bench (no regions): a random-resized crop of the image."""
    return v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True)(image)


class RecipeTransform:
    """PIL image -> dict of view tensors, every view cut from the one decoded image."""

    def __init__(self, recipe: Recipe, augment: bool = True, blur: str = "paper"):
        self.recipe = recipe

        def chosen(a):
            return a if augment else geometry_only(a)

        self.families = [
            (family, [v2.Compose([v2.RandomResizedCrop(family.size, scale=family.scale, ratio=family.ratio, antialias=True),
                                  *photometric(chosen(family.augment(v)), family.size, blur)]) for v in range(family.count)])
            for family in recipe.crops
        ]
        self.original = None
        if recipe.original is not None:
            size = recipe.original.size
            self.original = v2.Compose([v2.Resize((size, size), antialias=True), *photometric(chosen(recipe.original.augment), size, blur)])
        self.saliency = None
        if recipe.saliency is not None:
            spec = recipe.saliency
            self.saliency = [v2.Compose(photometric(chosen(a), spec.size, blur)) for a in spec.augments]

    def __call__(self, image) -> dict:
        out = {}
        for family, transforms in self.families:
            out[family.name] = torch.stack([t(image) for t in transforms])
        if self.original is not None:
            out["original"] = self.original(image)
        if self.saliency is not None:
            spec = self.recipe.saliency
            crops = [self.saliency[c](_region_crop(image, spec.size, spec.fallback_scale, spec.ratio))
                     for _ in range(spec.pairs) for c in range(2)]
            out["saliency"] = torch.stack(crops)
        return out


def swap_collate(recipe: Recipe):
    """Default collation, plus RegionCL's batch-level swap as tensor ops when asked."""
    collate = torch.utils.data.default_collate
    if recipe.swap is None:
        return collate

    def with_swap(samples):
        batch = collate(samples)
        views = batch[recipe.swap.source][:, 0]
        size = views.shape[-1]
        cells = size // recipe.swap.grid
        w, h = random.choice(recipe.swap.cells), random.choice(recipe.swap.cells)
        x, y = random.randrange(cells - w + 1) * recipe.swap.grid, random.randrange(cells - h + 1) * recipe.swap.grid
        w, h = w * recipe.swap.grid, h * recipe.swap.grid
        composite = views.clone()
        composite[:, :, y : y + h, x : x + w] = views.flip(0)[:, :, y : y + h, x : x + w]
        batch["swap"] = composite
        return batch

    return with_swap


def tars_for_workers(tars: list[str], workers: int) -> list[str]:
    """webdataset gives each DataLoader worker its own tars; a worker left without one would
    sit idle and the baseline would run on fewer cores than viewkit, so short lists repeat."""
    return tars * -(-max(workers, 1) // len(tars))


def baseline_loader(tars: list[str], recipe: Recipe, batch_size: int, workers: int, augment: bool = True,
                    blur: str = "paper"):
    """blur="paper": the 10%-of-view kernel users write (23 taps at 224 px); "capped": the
    same +-3 sigma_max cap as viewkit's widest kernel (13 taps), for a like-for-like cost."""
    transform = RecipeTransform(recipe, augment, blur)
    tars = tars_for_workers(tars, workers)
    dataset = (wds.WebDataset(tars, shardshuffle=len(tars), nodesplitter=None, workersplitter=wds.split_by_worker,
                              empty_check=False)
               .repeat()
               .shuffle(1000)
               .decode("pil")
               .to_tuple("jpg", "cls")
               .map(lambda sample: transform(sample[0]) | {"label": int(sample[1])}))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                       collate_fn=swap_collate(recipe), persistent_workers=False,
                                       prefetch_factor=PREFETCH if workers else None)


def views_per_sample(recipe: Recipe) -> tuple[int, int]:
    """(views, output pixels) per source image."""
    views = pixels = 0
    for family in recipe.crops:
        views += family.count
        pixels += family.count * family.size**2
    if recipe.original is not None:
        views += 1
        pixels += recipe.original.size**2
    if recipe.saliency is not None:
        views += 2 * recipe.saliency.pairs
        pixels += 2 * recipe.saliency.pairs * recipe.saliency.size**2
    if recipe.swap is not None:
        source = next(c for c in recipe.crops if c.name == recipe.swap.source)
        views += 1
        pixels += source.size**2
    return views, pixels

