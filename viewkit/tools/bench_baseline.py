"""The baseline of `viewkit bench`: the same views the way a competent user builds them
without viewkit. webdataset reads the same shards, PIL decodes each image once,
torchvision transforms v2 cut and augment every view, a DataLoader runs the workers.
"""

from __future__ import annotations

import torch
import webdataset as wds
from torchvision.transforms import v2

from viewkit.views import families
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


class RecipeTransform:
    """PIL image -> dict of view tensors, every view cut from the one decoded image; each
    family's own torchvision baseline (its `baseline`), and the batch-level ones on collate."""

    def __init__(self, recipe: Recipe, augment: bool = True, blur: str = "paper"):
        def chosen(augment_settings, size):
            return photometric(augment_settings if augment else geometry_only(augment_settings), size, blur)

        self.per_image, self.per_batch = [], []
        for family in families.of(recipe):
            if family.baseline is None:
                raise ValueError(f"viewkit bench: no torchvision baseline for family {family.key!r}; "
                                 "use --baseline none")
            per_image, per_batch = family.baseline(chosen)
            self.per_image += [per_image] if per_image else []
            self.per_batch += [per_batch] if per_batch else []

    def __call__(self, image) -> dict:
        return {key: value for views in self.per_image for key, value in views(image).items()}

    def collate(self, samples):
        batch = torch.utils.data.default_collate(samples)
        for per_batch in self.per_batch:
            batch = per_batch(batch)
        return batch


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
                                       collate_fn=transform.collate, persistent_workers=False,
                                       prefetch_factor=PREFETCH if workers else None)


def views_per_sample(recipe: Recipe) -> tuple[int, int]:
    """(views, output pixels) per source image."""
    sizes = [size for family in families.of(recipe) for size in family.sizes(recipe)]
    return len(sizes), sum(size**2 for size in sizes)
