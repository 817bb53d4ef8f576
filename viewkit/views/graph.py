"""Compiles a recipe into DALI graph nodes: every view cut from one decoded image.

`build_views(image, shape, sample_id, recipe, seed=, epoch=)` takes DataNodes (the
decoded HWC uint8 image on "cpu" or "gpu", its [H, W, C] int64 shape and the [1] int64
sample id on the CPU, and for saliency crops the side data) and returns output DataNodes, per sample:

    <family>       [V, S, S, 3]  the views of a family (crop family name, "saliency": pair
                                 j's crops at 2j, 2j + 1), normalised; "original" [S, S, 3]
    view_table     [R, 13]       windows, flips, drawn regions and scores, image size and
                                 the swap box, rows laid out by `Plan.table_layout`
    swap           [S, S, 3]     RegionCL composite

The CPU part is a few numba kernels (`viewkit.views.kernels`, and one per family for its
operations) that draw every parameter of the sample's views at once. The image work is
one resize per view (the flip folded into its window), then per family: one stack into
frames, each operation once over all frames (`viewkit.views.operations`: colour matrix,
blur with per-frame sigma, solarise), one normalise, then the operations on normalised
frames (random erasing). Random apply is an identity frame (identity matrix, a sigma too
small to blur, an empty box), not a conditional.
`viewkit.views.outputs` turns the outputs into the torch contract.
"""

from __future__ import annotations

from nvidia.dali import fn, types

from viewkit.views import operators
from viewkit.views.augment import IMAGENET_MEAN, IMAGENET_STD
from viewkit.views.families import Recipe
from viewkit.views.plan import TABLE, Family, Plan, make_plan, spec

_DALI_DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16, "bfloat16": types.FLOAT}


def _constant(array):
    return types.Constant(array, dtype=types.INT64)


def _windows(plan: Plan, table_spec, sample_id, shape, side: tuple, seed: int, epoch: int) -> dict:
    """Family name -> [(roi_start, roi_end)] per view; three views to a kernel call. Crop views
    read their rows of the table's spec (they come first there, in this order)."""
    windows = {}
    for kind, families in (("crop_rois", [f for f in plan.families if f.name != "saliency"]),
                           ("saliency_rois", [f for f in plan.families if f.name == "saliency"])):
        views = [(family.name, view) for family in families for view in family.views]
        if not views:
            continue
        shared = table_spec if kind == "crop_rois" else _constant(spec([v.row for _, v in views], seed, epoch))
        for chunk in range(-(-len(views) // 3)):
            outputs = operators.call(kind, shared, sample_id, shape, *(side if kind == "saliency_rois" else ()),
                                     first=1 + 3 * chunk)
            for index, (name, _) in enumerate(views[3 * chunk : 3 * chunk + 3]):
                windows.setdefault(name, []).append((outputs[2 * index], outputs[2 * index + 1]))
    return windows


def _operations(family: Family, table_spec, sample_id, seed: int, epoch: int) -> dict:
    """Operation -> its drawn outputs for the family's frames. The single view's numbers ride
    in its table row: no constant of its own."""
    if not family.applied:
        return {}
    spec_node = table_spec if family.single else _constant(spec(family.augment_rows(), seed, epoch))
    return operators.draw_operations(family.drawn, family.single, spec_node, sample_id)


def _family(image, family: Family, windows: list, drawn: dict, dtype):
    """[V, S, S, 3] frames of a family (a single view: [S, S, 3]), its operations applied,
    normalised between the pixel and the normalized stages."""
    frames = [fn.resize(image, roi_start=start, roi_end=end, roi_relative=False, size=[family.size, family.size],
                        interp_type=types.INTERP_LINEAR, antialias=True) for start, end in windows]
    frames = frames[0] if family.single else fn.stack(*frames, axis=0, axis_name="F")
    for operation in family.applied:
        if operation.stage == "pixels":
            frames = operation.apply(frames, drawn[operation], family.single)
    frames = fn.crop_mirror_normalize(frames, dtype=dtype, output_layout="HWC" if family.single else "FHWC",
                                      mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    for operation in family.applied:
        if operation.stage == "normalized":
            frames = operation.apply(frames, drawn[operation], family.single)
    return frames


def _swap(view, anchors, shapes, batch_size: int):
    """RegionCL: sample i gets sample B-1-i's region of the source family's first view; one
    box per batch, sample 0's draw (so a batch's box follows from the samples in it)."""
    first = [0] * batch_size
    anchors, shapes = fn.permute_batch(anchors, indices=first), fn.permute_batch(shapes, indices=first)
    reversed_batch = fn.permute_batch(view, indices=list(reversed(range(batch_size))))
    # Paste 0 lays sample i itself as the canvas, paste 1 the region of sample B-1-i.
    return fn.multi_paste(view, reversed_batch, in_anchors=anchors, shapes=shapes, out_anchors=anchors)


def draw_parameters(plan: Plan, sample_id, shape, side: tuple, seed: int, epoch: int) -> dict:
    """Every CPU-side argument of the graph: the host stage, as DataNodes.

    windows: family -> [(roi_start, roi_end)]; operations: family -> {operation: nodes};
    table: [R, 13]; swap: (anchors, shapes) or None."""
    table_spec = _constant(spec(plan.table_rows, seed, epoch))
    parameters = {"windows": _windows(plan, table_spec, sample_id, shape, side, seed, epoch),
                  "operations": {f.name: _operations(f, table_spec, sample_id, seed, epoch) for f in plan.families}}
    table = "view_table_saliency" if side else "view_table"
    parameters["table"] = operators.call(table, table_spec, sample_id, shape, *side)
    parameters["swap"] = (tuple(operators.call("swap", _constant(spec([plan.swap_row], seed, epoch)), sample_id))
                          if plan.swap_row is not None else None)
    return parameters


def build_views(image, shape, sample_id, recipe: Recipe, batch_size: int, *, seed: int, epoch: int,
                regions=None, region_scores=None, augment: bool = True) -> dict:
    """All outputs of `recipe` for a batch; `augment=False` keeps geometry (crops, flips) only."""
    if recipe.saliency is not None and (regions is None or region_scores is None):
        raise ValueError(f"recipe {recipe.name!r} has saliency crops: pass regions and region_scores side data")
    plan = make_plan(recipe, augment)
    side = (regions, region_scores) if recipe.saliency is not None else ()
    parameters = draw_parameters(plan, sample_id, shape, side, seed, epoch)
    dtype = _DALI_DTYPES[recipe.dtype]
    outputs = {f.name: _family(image, f, parameters["windows"][f.name], parameters["operations"][f.name], dtype)
               for f in plan.families}
    outputs[TABLE] = parameters["table"]
    if recipe.swap is not None:
        outputs["swap"] = _swap(outputs[recipe.swap.source][0], *parameters["swap"], batch_size)
    return outputs
