"""Compiles a recipe into DALI graph nodes: every view cut from one decoded image.

`build_views(image, shape, recipe, batch_size)` takes DataNodes (the decoded HWC uint8
image on "cpu" or "gpu", its shape on the CPU, and for saliency crops the side data) and
returns a dict of output DataNodes, per sample:

    <crops>          [V, S, S, 3]  views of a crop family, HWC, normalised
    <crops>_boxes    [V, 4]        crop windows x0, y0, x1, y1 in source pixels, before flip
    <crops>_flips    [V]           1 where the view was flipped
    original         [S, S, 3]     plus original_flip []
    saliency         [2t, S, S, 3] pair j's crops at 2j and 2j+1
    saliency_boxes   [2t, 4]
    saliency_scores  [t]           score of each drawn region (1.0 for fallback crops)
    saliency_regions [t, 4]        the drawn regions (the whole image for fallback crops)
    swap             [S, S, 3]     composite; swap_box [4] pixels, swap_cells [4] cells

`viewkit.views.outputs` turns these into the torch contract ([V, B, 3, S, S] and so on).
Views never read: a reader, an external source or a test feeds `image` and `shape`.
"""

from __future__ import annotations

import math

import nvidia.dali.math as dmath
from nvidia.dali import fn, types

from viewkit.views.augment import Augment, flip_and_normalize, geometry_only, photometric
from viewkit.views.families import Crops, Original, Recipe, RegionSwap, SaliencyCrops

_DALI_DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16, "bfloat16": types.FLOAT}


def _f(node):
    return fn.cast(node, dtype=types.FLOAT)


def _view(image, y0, x0, y1, x1, size: int, augment: Augment, dtype):
    """Crops the window (source pixels, floats) and resizes it in one op, then augments."""
    crop = fn.resize(image, roi_start=fn.stack(y0, x0), roi_end=fn.stack(y1, x1), roi_relative=False,
                     size=[size, size], interp_type=types.INTERP_LINEAR, antialias=True)
    crop = photometric(crop, augment, size)
    return flip_and_normalize(crop, augment, dtype)


def crop_family(image, shape, family: Crops, augment_on: bool, dtype) -> tuple[dict, list]:
    """Outputs of one crop family, and its views one by one (the swap takes the first)."""
    views, boxes, flips = [], [], []
    for index in range(family.count):
        anchor, extent = fn.random_crop_generator(shape, random_area=list(family.scale),
                                                  random_aspect_ratio=list(family.ratio))
        y0, x0 = _f(anchor[0]), _f(anchor[1])
        y1, x1 = y0 + _f(extent[0]), x0 + _f(extent[1])
        augment = family.augment(index) if augment_on else geometry_only(family.augment(index))
        view, flip = _view(image, y0, x0, y1, x1, family.size, augment, dtype)
        views.append(view)
        boxes.append(fn.stack(x0, y0, x1, y1))
        flips.append(fn.cast(flip, dtype=types.INT32))
    outputs = {family.name: fn.stack(*views), f"{family.name}_boxes": fn.stack(*boxes),
               f"{family.name}_flips": fn.stack(*flips)}
    return outputs, views


def original_view(image, spec: Original, augment_on: bool, dtype) -> dict:
    resized = fn.resize(image, size=[spec.size, spec.size], interp_type=types.INTERP_LINEAR, antialias=True)
    augment = spec.augment if augment_on else geometry_only(spec.augment)
    view, flip = flip_and_normalize(photometric(resized, augment, spec.size), augment, dtype)
    return {"original": view, "original_flip": fn.cast(flip, dtype=types.INT32)}


def saliency_crops(image, shape, regions, scores, spec: SaliencyCrops, augment_on: bool, dtype) -> dict:
    """SGCL: t regions drawn with probability proportional to score, two jittered crops each.

    Each crop: area = U(scale) x region area, aspect log-uniform in ratio, centre uniform in
    the region, window clamped to the image. Without regions (all scores 0): random crops
    of fallback_scale of the image (SGCL's initialisation) with score 1.0.
    """
    height, width = _f(shape[0]), _f(shape[1])
    total = fn.reductions.sum(scores)
    none = _f(total <= 0.0)  # 1.0 when the sample has no region
    has = 1.0 - none
    probabilities = (scores + none) / (total + none * spec.max_regions)
    views, boxes, drawn_scores, drawn_regions = [], [], [], []
    log_ratio = [math.log(r) for r in spec.ratio]
    for _ in range(spec.pairs):
        pick = fn.random.choice(spec.max_regions, p=probabilities)
        region = regions[pick]
        drawn_scores.append(scores[pick] * has + none)
        rx0 = region[0] * has
        ry0 = region[1] * has
        rx1 = region[2] * has + width * none
        ry1 = region[3] * has + height * none
        drawn_regions.append(fn.stack(rx0, ry0, rx1, ry1))
        for crop in range(2):
            area = fn.random.uniform(range=list(spec.scale)) * (rx1 - rx0) * (ry1 - ry0)
            ratio = dmath.exp(fn.random.uniform(range=log_ratio))
            half_w = dmath.max(dmath.sqrt(area * ratio), 1.0) * 0.5
            half_h = dmath.max(dmath.sqrt(area / ratio), 1.0) * 0.5
            cx = rx0 + fn.random.uniform(range=[0.0, 1.0]) * (rx1 - rx0)
            cy = ry0 + fn.random.uniform(range=[0.0, 1.0]) * (ry1 - ry0)
            jx0, jx1 = dmath.clamp(cx - half_w, 0.0, width), dmath.clamp(cx + half_w, 0.0, width)
            jy0, jy1 = dmath.clamp(cy - half_h, 0.0, height), dmath.clamp(cy + half_h, 0.0, height)
            anchor, extent = fn.random_crop_generator(shape, random_area=list(spec.fallback_scale),
                                                      random_aspect_ratio=list(spec.ratio))
            fy0, fx0 = _f(anchor[0]), _f(anchor[1])
            fy1, fx1 = fy0 + _f(extent[0]), fx0 + _f(extent[1])
            # A blend of window coordinates (scalars), not of images: one crop is cut.
            x0, x1 = jx0 * has + fx0 * none, jx1 * has + fx1 * none
            y0, y1 = jy0 * has + fy0 * none, jy1 * has + fy1 * none
            augment = spec.augments[crop] if augment_on else geometry_only(spec.augments[crop])
            view, _ = _view(image, y0, x0, y1, x1, spec.size, augment, dtype)
            views.append(view)
            boxes.append(fn.stack(x0, y0, x1, y1))
    return {"saliency": fn.stack(*views), "saliency_boxes": fn.stack(*boxes),
            "saliency_scores": fn.stack(*drawn_scores), "saliency_regions": fn.stack(*drawn_regions)}


def region_swap(view, spec: RegionSwap, size: int, batch_size: int) -> dict:
    """RegionCL composite from the augmented view (HWC): sample i gets sample B-1-i's region.

    One box per batch: drawn per sample, then sample 0's draw is broadcast to the batch.
    Width and height in cells are drawn independently from spec.cells; the top-left cell
    uniformly among those that keep the box inside (the official code's clamp after an
    unaligned draw is not copied: it breaks the grid alignment).
    """
    grid_cells = size // spec.grid
    first = [0] * batch_size

    def per_batch(node):
        return fn.permute_batch(node, indices=first)

    cells_w = per_batch(fn.random.choice(list(spec.cells)))
    cells_h = per_batch(fn.random.choice(list(spec.cells)))
    cell_x = per_batch(dmath.floor(fn.random.uniform(range=[0.0, 1.0]) * _f(grid_cells - cells_w + 1)))
    cell_y = per_batch(dmath.floor(fn.random.uniform(range=[0.0, 1.0]) * _f(grid_cells - cells_h + 1)))
    cell_x, cell_y = fn.cast(cell_x, dtype=types.INT32), fn.cast(cell_y, dtype=types.INT32)
    cells_w, cells_h = fn.cast(cells_w, dtype=types.INT32), fn.cast(cells_h, dtype=types.INT32)
    x, y, w, h = cell_x * spec.grid, cell_y * spec.grid, cells_w * spec.grid, cells_h * spec.grid
    zero, full = types.Constant(0, dtype=types.INT32), types.Constant(size, dtype=types.INT32)
    anchors = fn.stack(fn.stack(zero, zero), fn.stack(y, x))  # [2 pastes, (H, W)]
    shapes = fn.stack(fn.stack(full, full), fn.stack(h, w))
    reversed_batch = fn.permute_batch(view, indices=list(reversed(range(batch_size))))
    # Paste 0 lays sample i itself as the canvas, paste 1 the region of sample B-1-i.
    composite = fn.multi_paste(view, reversed_batch, in_anchors=anchors, shapes=shapes, out_anchors=anchors)
    return {"swap": composite, "swap_box": fn.stack(x, y, x + w, y + h),
            "swap_cells": fn.stack(cell_x, cell_y, cell_x + cells_w, cell_y + cells_h)}


def build_views(image, shape, recipe: Recipe, batch_size: int, *, regions=None, region_scores=None,
                augment: bool = True) -> dict:
    """All outputs of `recipe` for a batch; `augment=False` keeps geometry (crops, flips) only."""
    dtype = _DALI_DTYPES[recipe.dtype]
    outputs, views_of = {}, {}
    for family in recipe.crops:
        family_outputs, views_of[family.name] = crop_family(image, shape, family, augment, dtype)
        outputs.update(family_outputs)
    if recipe.original is not None:
        outputs.update(original_view(image, recipe.original, augment, dtype))
    if recipe.saliency is not None:
        if regions is None or region_scores is None:
            raise ValueError(f"recipe {recipe.name!r} has saliency crops: pass regions and region_scores side data")
        outputs.update(saliency_crops(image, shape, regions, region_scores, recipe.saliency, augment, dtype))
    if recipe.swap is not None:
        source = next(c for c in recipe.crops if c.name == recipe.swap.source)
        outputs.update(region_swap(views_of[source.name][0], recipe.swap, source.size, batch_size))
    return outputs
