"""A recipe laid out for the graph: each family planned in turn, its streams numbered in
recipe order, its rows of the view table placed.

The plan is fixed at build time (Python `if`s over the recipe); the numbers the kernels
need travel as int64 spec tables (`viewkit.views.rows.spec`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from viewkit.views import families as family_specs
from viewkit.views.augment import geometry_only
from viewkit.views.families import Planned, Recipe
from viewkit.views.frames import Frames
from viewkit.views.rows import IMAGE_SIZE, row

TABLE = "view_table"  # its output name


@dataclass(frozen=True)
class Plan:
    families: tuple[tuple[object, Planned], ...]  # (family spec, its plan), in recipe order
    table_rows: tuple[tuple[float, ...], ...]  # rows of the table, in order (see `table_layout`)

    @property
    def frames(self) -> tuple[Frames, ...]:
        return tuple(f for _, planned in self.families for f in planned.frames)

    def table_layout(self) -> dict[str, tuple[int, int]]:
        """Family key -> (first row, row count) in the table, then the image size's row."""
        layout, first = {}, 0
        for family, planned in self.families:
            layout[family.key] = (first, len(planned.rows))
            first += len(planned.rows)
        layout["image_size"] = (first, 1)
        return layout


def make_plan(recipe: Recipe, augment: bool = True) -> Plan:
    """Streams are numbered in recipe order, so a view's draws depend on the recipe's
    structure, not on the batch: the same sample gets the same views in every run."""
    keep = (lambda a: a) if augment else geometry_only
    planned, stream = [], 0
    for family in family_specs.of(recipe):
        plan = replace(family.plan(recipe, stream, keep), stream=stream)
        planned.append((family, plan))
        stream += plan.streams
    table_rows = tuple(r for _, plan in planned for r in plan.rows) + (row(IMAGE_SIZE, 0),)
    return Plan(tuple(planned), table_rows)


@functools.lru_cache(maxsize=64)
def table_layout(recipe: Recipe) -> dict[str, tuple[int, int]]:
    """`Plan.table_layout` of a recipe, once per recipe: `arrange` reads it every batch."""
    return make_plan(recipe).table_layout()
