"""Views cut at one size and processed together, as the frames of one sequence.

A view family (`viewkit.views.families`) plans its views as one or more `Frames`: each
view a window row (how its kernel draws the window) and an Augment (its operations). The
graph cuts every view of a `Frames` from the decoded image, stacks them and applies each
operation once over all frames (`viewkit.views.graph`).
"""

from __future__ import annotations

from dataclasses import dataclass

from viewkit.views import operations
from viewkit.views.augment import Augment
from viewkit.views.rows import AUGMENT, row


@dataclass(frozen=True)
class View:
    row: tuple[float, ...]  # its window row: kind, stream, numbers
    augment: Augment
    stream: int


@dataclass(frozen=True)
class Frames:
    name: str  # output key
    size: int
    views: tuple[View, ...]
    single: bool = False  # one view, processed as an image, not as frames (LeOCLR's original)
    # the kernel that draws the windows: "crop_rois" reads the views' rows of the table's spec
    # (a family that plans them there), "saliency_rois" a spec of their own and the regions
    rois: str = "crop_rois"
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


def frames(name: str, size: int, views: list[View], single: bool = False, rois: str = "crop_rois") -> Frames:
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
    return Frames(name, size, tuple(views), single, rois, tuple(sorted(applied, key=lambda kind: order[kind.stage])),
                  tuple(sorted(drawn, key=lambda kind: order[kind.stage])))
