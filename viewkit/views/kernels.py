"""The view parameters of a batch, computed by numba kernels that DALI runs per sample.

Each kernel reads a sample's id and image shape plus a spec table (`viewkit.views.plan`)
and writes the DALI arguments of its views: resize windows (the flip folded in as a
reversed window), the table of windows handed to torch, the swap box. The operations'
kernels (colour matrices, blur sigmas, ...) are composed from their draws in
`viewkit.views.entry_points`. Draws come from `viewkit.views.draws`, so two
kernels that need the same window compute it alike, and a kernel holds no state.

choice: numba kernels over `fn.python_function`: DALI calls them on its worker threads
without the GIL (a python_function spends ~1.6 us of GIL time per sample and output, 40%
of a GPU step at 10k samples/s), and over DALI arithmetic on scalars (one operator per
number, run one after another: 379 CPU operators for the heavy multi-crop recipe).
DALI's numba operator takes at most 6 outputs, so views go three to a kernel. Their C
entry points are generated from the table in `viewkit.views.operators`.
"""

from __future__ import annotations

import numpy as np

from viewkit.views import draws
from viewkit.views.compiled import kernel
from viewkit.views.rows import (CROP, CROP_FLIP_P, CROP_LOG_RATIO_MAX, CROP_LOG_RATIO_MIN, CROP_SCALE_MAX,
                                CROP_SCALE_MIN, FIXED, IMAGE_SIZE, KIND, PAIR, PAIR_CROP, SAL_FALLBACK_MAX,
                                SAL_FALLBACK_MIN, SAL_FLIP_P, SAL_LOG_RATIO_MAX, SAL_LOG_RATIO_MIN, SAL_SCALE_MAX,
                                SAL_SCALE_MIN, SALIENCY,
                                STREAM, SWAP, SWAP_CELLS, SWAP_COUNT, SWAP_GRID, SWAP_SIZE, TABLE_BOX, TABLE_FLIP,
                                TABLE_HEIGHT, TABLE_PAIR_WINDOWS, TABLE_SCORE, TABLE_SWAP_CELLS, TABLE_WIDTH_PX, WHOLE,
                                WHOLE_FLIP_P)

EMPTY_REGIONS = np.zeros((0, 4), np.float32)  # side data of recipes without saliency crops
EMPTY_SCORES = np.zeros(0, np.float32)


@kernel
def _number(spec, row, column):
    return spec[row, column] / FIXED


@kernel
def _window(spec, row, sample_id, height, width, regions, scores):
    """x0, y0, x1, y1 (source pixels, before flip) and the flip of view row `row`."""
    seed, epoch = spec[0, 0], spec[0, 1]
    kind, stream = int(round(_number(spec, row, KIND))), int(round(_number(spec, row, STREAM)))
    if kind == CROP:
        x0, y0, x1, y1 = draws.crop_window(seed, epoch, sample_id, stream, height, width,
                                           _number(spec, row, CROP_SCALE_MIN), _number(spec, row, CROP_SCALE_MAX),
                                           _number(spec, row, CROP_LOG_RATIO_MIN),
                                           _number(spec, row, CROP_LOG_RATIO_MAX))
        return x0, y0, x1, y1, draws.drawn(seed, epoch, sample_id, stream, draws.FLIP, _number(spec, row, CROP_FLIP_P))
    if kind == WHOLE:
        return 0.0, 0.0, width, height, draws.drawn(seed, epoch, sample_id, stream, draws.FLIP,
                                                    _number(spec, row, WHOLE_FLIP_P))
    # SALIENCY: the pair's region, then this crop's jitter around it (or the fallback crop)
    return _saliency_window(spec, row, int(round(_number(spec, row, PAIR_CROP))), sample_id, height, width, regions,
                            scores)


@kernel
def _saliency_window(spec, row, crop, sample_id, height, width, regions, scores):
    seed, epoch = spec[0, 0], spec[0, 1]
    stream = int(round(_number(spec, row, STREAM)))
    view_stream = stream + 1 + crop
    flip = draws.drawn(seed, epoch, sample_id, view_stream, draws.FLIP, _number(spec, row, SAL_FLIP_P))
    pick = draws.region_pick(seed, epoch, sample_id, stream, scores)
    if pick < 0:
        x0, y0, x1, y1 = draws.crop_window(seed, epoch, sample_id, view_stream + 1_000_000, height, width,
                                           _number(spec, row, SAL_FALLBACK_MIN), _number(spec, row, SAL_FALLBACK_MAX),
                                           _number(spec, row, SAL_LOG_RATIO_MIN), _number(spec, row, SAL_LOG_RATIO_MAX))
        return x0, y0, x1, y1, flip
    region = regions[pick]
    x0, y0, x1, y1 = draws.jittered_window(seed, epoch, sample_id, view_stream, height, width, float(region[0]),
                                           float(region[1]), float(region[2]), float(region[3]),
                                           _number(spec, row, SAL_SCALE_MIN), _number(spec, row, SAL_SCALE_MAX),
                                           _number(spec, row, SAL_LOG_RATIO_MIN), _number(spec, row, SAL_LOG_RATIO_MAX))
    return x0, y0, x1, y1, flip


@kernel
def rois(start0, end0, start1, end1, start2, end2, spec, sample_id, shape, regions, scores, first):
    """Windows of the (up to) three view rows from row `first` of the spec: one kernel for
    every chunk of three views, so that every chunk reads one spec (the table's for crops)."""
    outputs = (start0, end0, start1, end1, start2, end2)
    height, width = float(shape[0]), float(shape[1])
    for view in range(3):
        row = first + view
        if row >= spec.shape[0]:
            break
        kind = int(round(_number(spec, row, KIND)))
        if kind != CROP and kind != WHOLE and kind != SALIENCY:
            break
        x0, y0, x1, y1, flip = _window(spec, row, sample_id[0], height, width, regions, scores)
        start, end = outputs[2 * view], outputs[2 * view + 1]
        start[0], end[0] = y0, y1
        start[1], end[1] = (x1, x0) if flip else (x0, x1)  # a reversed window: resize flips it


@kernel
def _swap(spec, row, sample_id):
    """Cells of the swap box: x, y, width, height (RegionCL: sizes drawn independently)."""
    seed, epoch = spec[0, 0], spec[0, 1]
    stream = int(round(_number(spec, row, STREAM)))
    size, grid = int(round(_number(spec, row, SWAP_SIZE))), int(round(_number(spec, row, SWAP_GRID)))
    count = int(round(_number(spec, row, SWAP_COUNT)))
    grid_cells = size // grid
    cells_w = int(round(_number(spec, row, SWAP_CELLS + int(draws.uniform(seed, epoch, sample_id, stream, 0) * count))))
    cells_h = int(round(_number(spec, row, SWAP_CELLS + int(draws.uniform(seed, epoch, sample_id, stream, 1) * count))))
    cell_x = int(draws.uniform(seed, epoch, sample_id, stream, 2) * (grid_cells - cells_w + 1))
    cell_y = int(draws.uniform(seed, epoch, sample_id, stream, 3) * (grid_cells - cells_h + 1))
    return cell_x, cell_y, cells_w, cells_h, grid, size


@kernel
def swap(anchors, shapes, spec, sample_id):
    cell_x, cell_y, cells_w, cells_h, grid, size = _swap(spec, 1, sample_id[0])
    anchors[0, 0], anchors[0, 1], anchors[1, 0], anchors[1, 1] = 0, 0, cell_y * grid, cell_x * grid
    shapes[0, 0], shapes[0, 1], shapes[1, 0], shapes[1, 1] = size, size, cells_h * grid, cells_w * grid


@kernel
def _table(table, sample_id, shape, spec, regions, scores):
    height, width = float(shape[0]), float(shape[1])
    for out in range(spec.shape[0] - 1):
        row = out + 1
        kind = int(round(_number(spec, row, KIND)))
        if kind == CROP or kind == WHOLE:
            x0, y0, x1, y1, flip = _window(spec, row, sample_id, height, width, regions, scores)
            table[out, TABLE_BOX], table[out, TABLE_BOX + 1] = x0, y0
            table[out, TABLE_BOX + 2], table[out, TABLE_BOX + 3] = x1, y1
            table[out, TABLE_FLIP] = 1.0 if flip else 0.0
        elif kind == PAIR:
            seed, epoch = spec[0, 0], spec[0, 1]
            pick = draws.region_pick(seed, epoch, sample_id, int(round(_number(spec, row, STREAM))), scores)
            if pick < 0:
                table[out, TABLE_BOX], table[out, TABLE_BOX + 1] = 0.0, 0.0
                table[out, TABLE_BOX + 2], table[out, TABLE_BOX + 3] = width, height
                table[out, TABLE_SCORE] = 1.0
            else:
                for k in range(4):
                    table[out, TABLE_BOX + k] = regions[pick, k]
                table[out, TABLE_SCORE] = scores[pick]
            for crop in range(2):  # the pair's two windows, as the rois kernel cuts them
                x0, y0, x1, y1, _ = _saliency_window(spec, row, crop, sample_id, height, width, regions, scores)
                first = TABLE_PAIR_WINDOWS + 4 * crop
                table[out, first], table[out, first + 1], table[out, first + 2], table[out, first + 3] = x0, y0, x1, y1
        elif kind == IMAGE_SIZE:
            table[out, TABLE_HEIGHT], table[out, TABLE_WIDTH_PX] = height, width
        elif kind == SWAP:
            cell_x, cell_y, cells_w, cells_h, grid, _ = _swap(spec, row, sample_id)
            pixels = (cell_x * grid, cell_y * grid, (cell_x + cells_w) * grid, (cell_y + cells_h) * grid)
            cells = (cell_x, cell_y, cell_x + cells_w, cell_y + cells_h)
            for k in range(4):
                table[out, TABLE_BOX + k] = pixels[k]
                table[out, TABLE_SWAP_CELLS + k] = cells[k]


@kernel
def view_table(table, spec, sample_id, shape):
    _table(table, sample_id[0], shape, spec, EMPTY_REGIONS, EMPTY_SCORES)


@kernel
def view_table_saliency(table, spec, sample_id, shape, regions, scores):
    _table(table, sample_id[0], shape, spec, regions, scores)
