"""The columns of a spec row, by name: the one schema the planner writes (plan.py) and the
kernels read (kernels.py). A row is one view, one pair or one table row; column 0 is its
kind, column 1 its stream (the counter its draws are keyed by), the rest depend on the kind.

Names are plain module integers: numba reads them as compile-time constants, so a kernel
that reads `spec[row, CROP_FLIP_P]` costs what `spec[row, 6]` did.
"""

from __future__ import annotations

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
# in turn, from AUGMENT_FIRST (plan.Family.operation_numbers)
AUGMENT_SIZE, AUGMENT_FIRST = 2, 3

# SALIENCY (one crop of a pair; STREAM is the pair's pick stream) and PAIR (the pair's table row)
PAIR_INDEX, PAIR_CROP = 2, 3
SAL_SCALE_MIN, SAL_SCALE_MAX, SAL_LOG_RATIO_MIN, SAL_LOG_RATIO_MAX = 4, 5, 6, 7
SAL_FALLBACK_MIN, SAL_FALLBACK_MAX, SAL_FLIP_P = 8, 9, 10

# SWAP: RegionCL's box, its grid and the source view's size, then `count` cell choices
SWAP_GRID, SWAP_SIZE, SWAP_COUNT, SWAP_CELLS = 2, 3, 4, 5


def row(kind: int, stream: int, **columns: float) -> tuple[float, ...]:
    """A row with named columns: `row(CROP, 3, crop_scale_min=0.2, ...)`; names are this
    module's constants in lower case. Columns not given are 0; a sequence fills from its column."""
    values = {KIND: kind, STREAM: stream}
    for name, value in columns.items():
        column = globals()[name.upper()]
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
