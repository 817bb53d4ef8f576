"""Views of in-memory images: the recipe's graph fed by `fn.external_source`.

For tests, notebooks and previews of arbitrary pictures; training reads shards through
`viewkit.loaders`. Runs on DALI's CPU backend unless device_id is given.
"""

from __future__ import annotations

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def

from viewkit.views.families import Recipe
from viewkit.views.graph import build_views
from viewkit.views.outputs import arrange


def views_of_images(images: list[np.ndarray], recipe: Recipe, *, regions: list[np.ndarray] | None = None,
                    region_scores: list[np.ndarray] | None = None, augment: bool = True, seed: int = 0,
                    batches: int = 1, threads: int = 2) -> list[dict[str, torch.Tensor]]:
    """`batches` batches of views of the same images (HWC uint8, one batch), arranged."""
    batch_size = len(images)
    if recipe.saliency is not None and regions is None:
        k = recipe.saliency.max_regions
        regions = [np.zeros((k, 4), np.float32) for _ in images]
        region_scores = [np.zeros(k, np.float32) for _ in images]
    names = []

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed,
                  enable_conditionals=True, prefetch_queue_depth=1)
    def pipeline():
        image = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        side = {}
        if recipe.saliency is not None:
            side = {"regions": fn.external_source(source=lambda: regions, batch=True),
                    "region_scores": fn.external_source(source=lambda: region_scores, batch=True)}
        outputs = build_views(image, image.shape(), recipe, batch_size, augment=augment, **side)
        names.extend(outputs)
        return tuple(outputs.values())

    pipe = pipeline()
    pipe.build()
    results = []
    for _ in range(batches):
        raw = pipe.run()
        batch = {name: torch.from_numpy(np.asarray(tensors.as_array())) for name, tensors in zip(names, raw)}
        results.append(arrange(batch, recipe))
    return results
