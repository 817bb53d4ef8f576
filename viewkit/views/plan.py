"""A recipe laid out for the graph: its views grouped in families, each view with its stream.

The plan is fixed at build time (Python `if`s over the recipe); the numbers the kernels
need travel as one int64 table per kernel call (`spec`): row 0 holds the key (seed,
epoch), every other row one view or one output row, its columns named in rows.py, floats
in 32.32 fixed point (DALI constants have no float64, and the 32-bit floats they do have
would round the scales).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from viewkit.views.augment import Augment, geometry_only
from viewkit.views.families import Recipe
from viewkit.views.rows import AUGMENT, CROP, IMAGE_SIZE, PAIR, SALIENCY, SWAP, WHOLE, WIDTH, row

FIXED = float(2**32)
TABLE = "view_table"  # its output name
MAX_SWAP_CELLS = 6


@dataclass(frozen=True)
class View:
    row: tuple[float, ...]  # its window row: kind, stream, numbers
    augment: Augment
    stream: int


@dataclass(frozen=True)
class Family:
    """Views cut at one size and processed as the frames of one sequence."""

    name: str  # output key: a crop family's name, "original" or "saliency"
    size: int
    views: tuple[View, ...]

    @property
    def colour(self) -> bool:
        return any(v.augment.color_jitter_p > 0 or v.augment.grayscale_p > 0 for v in self.views)

    @property
    def blur(self) -> bool:
        return any(v.augment.blur_p > 0 for v in self.views)

    @property
    def solarize(self) -> bool:
        return any(v.augment.solarize_p > 0 for v in self.views)

    @property
    def single(self) -> bool:
        """LeOCLR's original: one view, processed as an image, not as frames."""
        return self.name == "original"

    def augment_rows(self) -> list[tuple[float, ...]]:
        return [row(AUGMENT, v.stream, augment_first=augment_numbers(v.augment)) for v in self.views]


@dataclass(frozen=True)
class Plan:
    families: tuple[Family, ...]
    table_rows: tuple[tuple[float, ...], ...]  # rows of the table, in order (see `table_layout`)
    swap_row: tuple[float, ...] | None

    def table_layout(self) -> dict[str, tuple[int, int]]:
        """Output name -> (first row, row count) in the table: windows of each family's views
        (saliency: one row per pair), then the image size, then the swap box."""
        layout, first = {}, 0
        for family in self.families:
            count = len(family.views) // 2 if family.name == "saliency" else len(family.views)
            layout[family.name] = (first, count)
            first += count
        layout["image_size"] = (first, 1)
        if self.swap_row is not None:
            layout["swap"] = (first + 1, 1)
        return layout


def augment_numbers(a: Augment) -> tuple[float, ...]:
    return (a.color_jitter_p, a.brightness, a.contrast, a.saturation, a.hue, a.grayscale_p, a.blur_p,
            a.blur_sigma[0], a.blur_sigma[1], a.solarize_p)


def _log(ratio: tuple[float, float]) -> tuple[float, float]:
    return math.log(ratio[0]), math.log(ratio[1])


def make_plan(recipe: Recipe, augment: bool = True) -> Plan:
    """Streams are numbered in recipe order, so a view's draws depend on the recipe's
    structure, not on the batch: the same sample gets the same views in every run."""
    keep = (lambda a: a) if augment else geometry_only
    families, table_rows, stream = [], [], 0
    for family in recipe.crops:
        views = []
        for index in range(family.count):
            a = keep(family.augment(index))
            window = row(CROP, stream, crop_scale_min=family.scale, crop_log_ratio_min=_log(family.ratio),
                         crop_flip_p=a.flip_p)
            views.append(View(window, a, stream))
            stream += 1
        families.append(Family(family.name, family.size, tuple(views)))
        table_rows += [v.row for v in views]
    if recipe.original is not None:
        a = keep(recipe.original.augment)
        # the row carries its photometrics too: the single view's kernel reads them from the table
        view = View(row(WHOLE, stream, whole_flip_p=a.flip_p, whole_augment=augment_numbers(a)), a, stream)
        stream += 1
        families.append(Family("original", recipe.original.size, (view,)))
        table_rows.append(view.row)
    if recipe.saliency is not None:
        spec, views = recipe.saliency, []
        for pair in range(spec.pairs):
            base = stream + 3 * pair  # the pick, then one stream per crop of the pair
            numbers = dict(sal_scale_min=spec.scale, sal_log_ratio_min=_log(spec.ratio),
                           sal_fallback_min=spec.fallback_scale)
            for crop in range(2):
                a = keep(spec.augments[crop])
                views.append(View(row(SALIENCY, base, pair_index=pair, pair_crop=crop, sal_flip_p=a.flip_p, **numbers),
                                  a, base + 1 + crop))
            table_rows.append(row(PAIR, base, pair_index=pair, pair_crop=0, **numbers))
        stream += 3 * spec.pairs
        families.append(Family("saliency", spec.size, tuple(views)))
    table_rows.append(row(IMAGE_SIZE, 0))
    swap_row = None
    if recipe.swap is not None:
        swap = recipe.swap
        if len(swap.cells) > MAX_SWAP_CELLS:
            raise ValueError(f"swap.cells {swap.cells}: at most {MAX_SWAP_CELLS} choices")
        source = next(c for c in recipe.crops if c.name == swap.source)
        swap_row = row(SWAP, stream, swap_grid=swap.grid, swap_size=source.size, swap_count=len(swap.cells),
                       swap_cells=swap.cells)
        table_rows.append(swap_row)
    return Plan(tuple(families), tuple(table_rows), swap_row)


def spec(rows, seed: int, epoch: int, pad_to: int = 0) -> np.ndarray:
    """[1 + rows, WIDTH] int64: the key row, then the rows in fixed point (zeros pad to `pad_to`)."""
    if not 0 <= seed < 2**63 or not 0 <= epoch < 2**63:
        raise ValueError(f"seed {seed} and epoch {epoch} must be non-negative 63-bit integers")
    table = np.zeros((1 + max(len(rows), pad_to), WIDTH), np.int64)
    table[0, :2] = seed, epoch
    for i, numbers in enumerate(rows, start=1):
        table[i, : len(numbers)] = np.round(np.asarray(numbers, np.float64) * FIXED).astype(np.int64)
    return table


@functools.lru_cache(maxsize=64)
def table_layout(recipe: Recipe) -> dict[str, tuple[int, int]]:
    """`Plan.table_layout` of a recipe, once per recipe: `arrange` reads it every batch."""
    return make_plan(recipe).table_layout()
