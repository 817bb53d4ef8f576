"""The columns of a spec row, by name: the one schema the planner writes (families/) and the
kernels read (kernels.py). A row is one view, one pair or one table row; column 0 is its
kind, column 1 its stream (the counter its draws are keyed by), the rest depend on the kind.

Names are plain module integers: numba reads them as compile-time constants, so a kernel
that reads `spec[row, CROP_FLIP_P]` costs what `spec[row, 6]` did.

The numbers travel as one int64 table per kernel call (`spec`): row 0 holds the key (seed,
epoch), every other row one view or one output row, floats in 32.32 fixed point (DALI
constants have no float64, and the 32-bit floats they do have would round the scales).
"""

from __future__ import annotations

import numpy as np

FIXED = float(2**32)

# Row kinds (column KIND).
CROP, WHOLE, SALIENCY, IMAGE_SIZE, PAIR, SWAP, AUGMENT = range(1, 8)
WIDTH = 16  # columns of a row, at least (a row of many operations' numbers is longer)

KIND, STREAM = 0, 1

# CROP: a random-resized crop (area and log aspect ranges) and its flip probability
CROP_SCALE_MIN, CROP_SCALE_MAX, CROP_LOG_RATIO_MIN, CROP_LOG_RATIO_MAX, CROP_FLIP_P = 2, 3, 4, 5, 6

# WHOLE: the whole image (LeOCLR's original); its operations' numbers ride on the row, from
# WHOLE_AUGMENT (laid out as an AUGMENT row's)
WHOLE_FLIP_P, WHOLE_SIZE, WHOLE_AUGMENT = 2, 3, 4

# AUGMENT: one frame's operations: its side in pixels, then each drawn operation's numbers
# in turn, from AUGMENT_FIRST (frames.Frames.operation_numbers)
AUGMENT_SIZE, AUGMENT_FIRST = 2, 3

# SALIENCY (one crop of a pair; STREAM is the pair's pick stream) and PAIR (the pair's table row)
PAIR_INDEX, PAIR_CROP = 2, 3
SAL_SCALE_MIN, SAL_SCALE_MAX, SAL_LOG_RATIO_MIN, SAL_LOG_RATIO_MAX = 4, 5, 6, 7
SAL_FALLBACK_MIN, SAL_FALLBACK_MAX, SAL_FLIP_P = 8, 9, 10

# SWAP: RegionCL's box, its grid and the source view's size, then `count` cell choices
SWAP_GRID, SWAP_SIZE, SWAP_COUNT, SWAP_CELLS = 2, 3, 4, 5


def row(kind: int, stream: int, names: dict | None = None, **columns: float) -> tuple[float, ...]:
    """A row with named columns: `row(CROP, 3, crop_scale_min=0.2, ...)`; names are this
    module's constants in lower case (or those of `names`, a family's own columns). Columns
    not given are 0; a sequence fills from its column."""
    names = globals() if names is None else names
    values = {KIND: kind, STREAM: stream}
    for name, value in columns.items():
        column = names[name.upper()]
        for offset, number in enumerate(value if isinstance(value, (tuple, list)) else (value,)):
            values[column + offset] = number
    return tuple(values.get(column, 0.0) for column in range(max(values) + 1))


# The table the graph hands to torch (one float32 row per view, pair, image size and swap),
# read by outputs.arrange: a window or region x0, y0, x1, y1, then a flip flag (a pair: the
# region's score), then a pair's two crop windows; the swap row holds its box in pixels, then
# in cells; the image-size row height, width.
TABLE_BOX, TABLE_FLIP, TABLE_SCORE, TABLE_PAIR_WINDOWS = 0, 4, 4, 5
TABLE_SWAP_CELLS, TABLE_HEIGHT, TABLE_WIDTH_PX = 4, 0, 1
TABLE_WIDTH = 13


def spec(rows, seed: int, epoch: int) -> np.ndarray:
    """[1 + rows, columns] int64: the key row, then the rows in fixed point; WIDTH columns, or
    the longest row's."""
    if not 0 <= seed < 2**63 or not 0 <= epoch < 2**63:
        raise ValueError(f"seed {seed} and epoch {epoch} must be non-negative 63-bit integers")
    table = np.zeros((1 + len(rows), max([WIDTH, *map(len, rows)])), np.int64)
    table[0, :2] = seed, epoch
    for i, numbers in enumerate(rows, start=1):
        table[i, : len(numbers)] = np.round(np.asarray(numbers, np.float64) * FIXED).astype(np.int64)
    return table
