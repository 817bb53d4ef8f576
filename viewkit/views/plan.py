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
from dataclasses import dataclass, replace

import numpy as np

from viewkit.views import operations
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
    single: bool = False  # LeOCLR's original: one view, processed as an image, not as frames
    applied: tuple[type, ...] = ()  # operations some view needs, in order (viewkit.views.operations)
    drawn: tuple[type, ...] = ()  # operations its view kernel draws: `applied` and the papers'

    def operation_numbers(self, augment: Augment) -> tuple[float, ...]:
        """The numbers of each drawn operation for a view, in turn (an operation the view
        does not use: its defaults, which leave a frame as it is)."""
        mine = {type(o): o for o in operations.of(augment)}
        return tuple(n for kind in self.drawn for n in mine.get(kind, kind()).numbers())

    def augment_rows(self) -> list[tuple[float, ...]]:
        return [row(AUGMENT, v.stream, augment_size=self.size, augment_first=self.operation_numbers(v.augment))
                for v in self.views]


def _family(name: str, size: int, views: list[View], single: bool = False) -> Family:
    """choice: when a family applies any operation its kernel draws the papers' three too
    (each a few draws a frame): every preset then needs one view kernel, compiled once,
    whichever of colour, blur and solarise its families use."""
    applied = []
    for view in views:
        for operation in operations.of(view.augment):
            if operation.active() and type(operation) not in applied:
                applied.append(type(operation))
    papers = [kind for kind in operations.PAPERS if kind not in applied]
    drawn = tuple(applied + papers) if applied else ()
    order = {stage: index for index, stage in enumerate(operations.STAGES)}
    return Family(name, size, tuple(views), single, tuple(sorted(applied, key=lambda kind: order[kind.stage])),
                  tuple(sorted(drawn, key=lambda kind: order[kind.stage])))


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
        families.append(_family(family.name, family.size, views))
        table_rows += [v.row for v in views]
    if recipe.original is not None:
        a = keep(recipe.original.augment)
        size = recipe.original.size
        view = View(row(WHOLE, stream, whole_flip_p=a.flip_p), a, stream)
        family = _family("original", size, [view], single=True)
        # the row carries its operations' numbers too: the single view's kernel reads them from the table
        view = replace(view, row=row(WHOLE, stream, whole_flip_p=a.flip_p, whole_size=size,
                                     whole_augment=family.operation_numbers(a)))
        stream += 1
        families.append(replace(family, views=(view,)))
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
        families.append(_family("saliency", spec.size, views))
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
    """[1 + rows, columns] int64: the key row, then the rows in fixed point (zeros pad to
    `pad_to` rows); WIDTH columns, or the longest row's."""
    if not 0 <= seed < 2**63 or not 0 <= epoch < 2**63:
        raise ValueError(f"seed {seed} and epoch {epoch} must be non-negative 63-bit integers")
    table = np.zeros((1 + max(len(rows), pad_to), max([WIDTH, *map(len, rows)])), np.int64)
    table[0, :2] = seed, epoch
    for i, numbers in enumerate(rows, start=1):
        table[i, : len(numbers)] = np.round(np.asarray(numbers, np.float64) * FIXED).astype(np.int64)
    return table


@functools.lru_cache(maxsize=64)
def table_layout(recipe: Recipe) -> dict[str, tuple[int, int]]:
    """`Plan.table_layout` of a recipe, once per recipe: `arrange` reads it every batch."""
    return make_plan(recipe).table_layout()
