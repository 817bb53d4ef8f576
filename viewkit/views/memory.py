"""Views of in-memory images: the recipe's graph fed by `fn.external_source`.

For tests, notebooks and previews of arbitrary pictures; training reads shards through
`viewkit.loaders`. Runs on DALI's CPU backend.
"""

from __future__ import annotations

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types

from viewkit.views.families import Recipe
from viewkit.views.graph import build_views
from viewkit.views.outputs import arrange


def views_of_images(images: list[np.ndarray], recipe: Recipe, *, regions: list[np.ndarray] | None = None,
                    region_scores: list[np.ndarray] | None = None, augment: bool = True, seed: int = 0,
                    batches: int = 1, threads: int = 2, epoch: int = 0) -> list[dict[str, torch.Tensor]]:
    """`batches` batches of views of the same images (HWC uint8, one batch), arranged.

    Image i of batch k has sample id k * len(images) + i: the draws are keyed by sample id,
    so each batch gets new views of the same pictures."""
    batch_size = len(images)
    if recipe.regions and regions is None:
        k = recipe.regions
        regions = [np.zeros((k, 4), np.float32) for _ in images]
        region_scores = [np.zeros(k, np.float32) for _ in images]
    names, counter = [], iter(range(batches))

    def ids():
        first = next(counter) * batch_size
        return [np.array([first + i], np.int64) for i in range(batch_size)]

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed, prefetch_queue_depth=1)
    def pipeline():
        image = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        sample_id = fn.external_source(source=ids, batch=True, dtype=types.INT64)
        side = {}
        if recipe.regions:
            side = {"regions": fn.external_source(source=lambda: regions, batch=True, dtype=types.FLOAT),
                    "region_scores": fn.external_source(source=lambda: region_scores, batch=True, dtype=types.FLOAT)}
        outputs = build_views(image, fn.cast(image.shape(), dtype=types.INT64), sample_id, recipe, batch_size,
                              seed=seed, epoch=epoch, augment=augment, **side)
        names.extend(outputs)
        return tuple(outputs.values())

    pipe = pipeline()
    pipe.build()
    results = []
    for _ in range(batches):
        raw = pipe.run()
        batch = {name: torch.from_dlpack(tensors.as_tensor()) for name, tensors in zip(names, raw)}
        results.append(arrange(batch, recipe))
    return results
