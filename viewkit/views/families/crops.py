"""Random-resized crops: torchvision's RandomResizedCrop sampling (`draws.crop_window`),
`count` views of `size` px, each with its Augment. Outputs `<name>` [V, B, 3, S, S],
`<name>_boxes` [V, B, 4] (x0, y0, x1, y1 source pixels, before flip), `<name>_flips` [V, B]."""

from __future__ import annotations

import math
from dataclasses import dataclass

from viewkit.views.augment import MOCO_V2, Augment
from viewkit.views.families.checks import check_augments, check_range
from viewkit.views.frames import View, frames
from viewkit.views.rows import CROP, TABLE_BOX, TABLE_FLIP, row
from viewkit.views.tensors import fresh
from viewkit.views.tensors import frames as frames_tensor


def log_range(ratio: tuple[float, float]) -> tuple[float, float]:
    return math.log(ratio[0]), math.log(ratio[1])


@dataclass(frozen=True)
class Crops:
    name: str  # output key: "global", "local", "views", ...
    count: int
    size: int
    scale: tuple[float, float]
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    augments: tuple[Augment, ...] = (MOCO_V2,)  # one for all views, or one per view

    regions = 0

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"crop family name {self.name!r} must be an identifier (it becomes an output key)")
        if self.count < 1 or self.size < 8:
            raise ValueError(f"{self.name}: count {self.count} >= 1 and size {self.size} >= 8 px required")
        check_range(f"{self.name}.scale", self.scale, 1e-4, 1.0)
        check_range(f"{self.name}.ratio", self.ratio, 1e-2, 1e2)
        check_augments(self.name, self.augments, self.count)

    @property
    def key(self) -> str:
        return self.name

    def augment(self, view: int) -> Augment:
        return self.augments[view if len(self.augments) > 1 else 0]

    def check(self, recipe) -> None:
        pass

    def plan(self, recipe, stream: int, keep):
        from viewkit.views.families import Planned

        views = []
        for index in range(self.count):
            a = keep(self.augment(index))
            window = row(CROP, stream + index, crop_scale_min=self.scale, crop_log_ratio_min=log_range(self.ratio),
                         crop_flip_p=a.flip_p)
            views.append(View(window, a, stream + index))
        return Planned((frames(self.name, self.size, views),), tuple(v.row for v in views), self.count)

    def draw(self, planned, context):
        return None

    def build(self, planned, drawn, outputs, context) -> dict:
        return {}

    def arrange(self, rows, batch, dtype) -> dict:
        return {self.name: frames_tensor(batch[self.name], dtype),
                f"{self.name}_boxes": fresh(rows[..., TABLE_BOX:TABLE_BOX + 4].transpose(0, 1)),
                f"{self.name}_flips": rows[..., TABLE_FLIP].transpose(0, 1) > 0.5}

    def sizes(self, recipe) -> list[int]:
        """The side of each view it cuts (`viewkit bench` counts views and pixels)."""
        return [self.size] * self.count

    def baseline(self, photometric):
        """`viewkit bench`'s torchvision baseline of the family: (per image, per batch)."""
        import torch
        from torchvision.transforms import v2

        transforms = [v2.Compose([v2.RandomResizedCrop(self.size, scale=self.scale, ratio=self.ratio, antialias=True),
                                  *photometric(self.augment(v), self.size)]) for v in range(self.count)]
        return (lambda image: {self.name: torch.stack([t(image) for t in transforms])}), None

    def sketch(self, batch, row, sheet, colour) -> None:
        for v in range(self.count):
            sheet.rectangle(batch[f"{self.name}_boxes"][v, row].tolist(), colour)
            sheet.tile(batch[self.name][v, row])

    def legend(self, colour) -> list:
        return [(f"{self.name}: {self.count} x {self.size} px, scale {self.scale[0]:g}-{self.scale[1]:g}", colour)]
