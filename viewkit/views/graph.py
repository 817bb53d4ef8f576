"""Compiles a recipe into DALI graph nodes: every view cut from one decoded image.

`build_views(image, shape, sample_id, recipe, seed=, epoch=)` takes DataNodes (the
decoded HWC uint8 image on "cpu" or "gpu", its [H, W, C] int64 shape and the [1] int64
sample id on the CPU, and for saliency crops the side data) and returns output DataNodes,
per sample: each family's (`viewkit.views.families`), and

    view_table     [R, 13]       windows, flips, drawn regions and scores, boxes and the
                                 image size, rows laid out by `Plan.table_layout`

The CPU part is a few numba kernels (`viewkit.views.kernels`, one per family for its
operations, and a family's own) that draw every parameter of the sample's views at once.
The image work is one resize per view (the flip folded into its window), then per
`Frames`: one stack into frames, each operation once over all frames
(`viewkit.views.operations`: colour matrix, blur with per-frame sigma, solarise), one
normalise, then the operations on normalised frames (random erasing). Random apply is an
identity frame (identity matrix, a sigma too small to blur, an empty box), not a
conditional. `viewkit.views.outputs` turns the outputs into the torch contract.
"""

from __future__ import annotations

from nvidia.dali import fn, types

from viewkit.views import operators
from viewkit.views.augment import IMAGENET_MEAN, IMAGENET_STD
from viewkit.views.families import Context, Recipe
from viewkit.views.frames import Frames
from viewkit.views.plan import TABLE, Plan, make_plan
from viewkit.views.rows import spec

_DALI_DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16, "bfloat16": types.FLOAT}


def _chunks(rows: list[int]) -> list[list[int]]:
    """Runs of at most three consecutive spec rows: one window kernel each."""
    chunks = []
    for r in rows:
        if chunks and len(chunks[-1]) < 3 and chunks[-1][-1] == r - 1:
            chunks[-1].append(r)
        else:
            chunks.append([r])
    return chunks


def _windows(plan: Plan, table_spec, context: Context) -> dict:
    """Frames name -> [(roi_start, roi_end)] per view. Views whose window rows are a family's
    first rows of the table read the table's spec; the others (saliency crops) a spec of
    their own, with the regions."""
    windows, first = {}, 1  # spec row 0 is the key
    by_kernel = {"crop_rois": [], "saliency_rois": []}
    for _, planned in plan.families:
        index = first
        for frames in planned.frames:
            for view in frames.views:
                by_kernel[frames.rois].append((frames.name, view, index))
                index += 1
        first += len(planned.rows)
    for kind, views in by_kernel.items():
        if not views:
            continue
        if kind == "crop_rois":
            shared, rows, side = table_spec, [index for *_, index in views], ()
        else:  # a spec of their own rows, in order
            shared = operators.constant(spec([v.row for _, v, _ in views], context.seed, context.epoch))
            rows, side = list(range(1, len(views) + 1)), context.side
        at = {r: name for (name, _, _), r in zip(views, rows)}
        for chunk in _chunks(rows):
            outputs = operators.call(kind, shared, context.sample_id, context.shape, *side, first=chunk[0])
            for k, r in enumerate(chunk):
                windows.setdefault(at[r], []).append((outputs[2 * k], outputs[2 * k + 1]))
    return windows


def _operations(frames: Frames, table_spec, context: Context) -> dict:
    """Operation -> its drawn outputs for the frames. The single view's numbers ride in its
    table row: no constant of its own."""
    if not frames.applied:
        return {}
    if frames.single:
        return operators.draw_operations(frames.drawn, True, table_spec, context.sample_id)
    spec_node = operators.constant(spec(frames.augment_rows(), context.seed, context.epoch))
    return operators.draw_operations(frames.drawn, False, spec_node, context.sample_id)


def _cut(image, frames: Frames, windows: list, drawn: dict, dtype):
    """[V, S, S, 3] frames (a single view: [S, S, 3]), their operations applied, normalised
    between the pixel and the normalized stages."""
    views = [fn.resize(image, roi_start=start, roi_end=end, roi_relative=False, size=[frames.size, frames.size],
                       interp_type=types.INTERP_LINEAR, antialias=True) for start, end in windows]
    node = views[0] if frames.single else fn.stack(*views, axis=0, axis_name="F")
    for operation in frames.applied:
        if operation.stage == "pixels":
            node = operation.apply(node, drawn[operation], frames.single)
    node = fn.crop_mirror_normalize(node, dtype=dtype, output_layout="HWC" if frames.single else "FHWC",
                                    mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    for operation in frames.applied:
        if operation.stage == "normalized":
            node = operation.apply(node, drawn[operation], frames.single)
    return node


def draw_parameters(plan: Plan, context: Context) -> dict:
    """Every CPU-side argument of the graph: the host stage, as DataNodes.

    windows: frames -> [(roi_start, roi_end)]; operations: frames -> {operation: nodes};
    table: [R, 13]; families: family key -> its own kernels' nodes (or None)."""
    table_spec = operators.constant(spec(plan.table_rows, context.seed, context.epoch))
    table = "view_table_saliency" if context.side else "view_table"
    return {"windows": _windows(plan, table_spec, context),
            "operations": {f.name: _operations(f, table_spec, context) for f in plan.frames},
            "table": operators.call(table, table_spec, context.sample_id, context.shape, *context.side),
            "families": {family.key: family.draw(planned, context) for family, planned in plan.families}}


def build_views(image, shape, sample_id, recipe: Recipe, batch_size: int, *, seed: int, epoch: int,
                regions=None, region_scores=None, augment: bool = True) -> dict:
    """All outputs of `recipe` for a batch; `augment=False` keeps geometry (crops, flips) only."""
    if recipe.regions and (regions is None or region_scores is None):
        raise ValueError(f"recipe {recipe.name!r} has saliency crops: pass regions and region_scores side data")
    plan = make_plan(recipe, augment)
    context = Context(sample_id, shape, (regions, region_scores) if recipe.regions else (), seed, epoch, batch_size)
    parameters = draw_parameters(plan, context)
    dtype = _DALI_DTYPES[recipe.dtype]
    outputs = {f.name: _cut(image, f, parameters["windows"][f.name], parameters["operations"][f.name], dtype)
               for f in plan.frames}
    outputs[TABLE] = parameters["table"]
    for family, planned in plan.families:
        outputs |= family.build(planned, parameters["families"][family.key], outputs, context)
    return outputs
