"""LeOCLR's original view: the whole image resized to size x size, aspect not kept, no crop,
then its Augment. Outputs `original` [B, 3, S, S] and `original_flip` [B]."""

from __future__ import annotations

from dataclasses import dataclass, replace

from viewkit.views.augment import MOCO_V2, Augment
from viewkit.views.frames import View, frames
from viewkit.views.rows import TABLE_FLIP, WHOLE, row
from viewkit.views.tensors import image


@dataclass(frozen=True)
class Original:
    size: int = 224
    augment: Augment = MOCO_V2  # the MoCo-v2 augmentations; there is no crop to skip

    key = "original"
    regions = 0

    def __post_init__(self):
        if self.size < 8:
            raise ValueError(f"original.size {self.size} must be >= 8 px")

    def check(self, recipe) -> None:
        pass

    def plan(self, recipe, stream: int, keep):
        from viewkit.views.families import Planned

        a = keep(self.augment)
        view = View(row(WHOLE, stream, whole_flip_p=a.flip_p), a, stream)
        single = frames(self.key, self.size, [view], single=True)
        # the row carries its operations' numbers too: the single view's kernel reads them from the table
        view = replace(view, row=row(WHOLE, stream, whole_flip_p=a.flip_p, whole_size=self.size,
                                     whole_augment=single.operation_numbers(a)))
        return Planned((replace(single, views=(view,)),), (view.row,), 1)

    def draw(self, planned, context):
        return None

    def build(self, planned, drawn, outputs, context) -> dict:
        return {}

    def arrange(self, rows, batch, dtype) -> dict:
        return {"original": image(batch["original"], dtype), "original_flip": rows[:, 0, TABLE_FLIP] > 0.5}

    def sizes(self, recipe) -> list[int]:
        return [self.size]

    def baseline(self, photometric):
        from torchvision.transforms import v2

        transform = v2.Compose([v2.Resize((self.size, self.size), antialias=True),
                                *photometric(self.augment, self.size)])
        return (lambda image: {"original": transform(image)}), None

    def sketch(self, batch, row, sheet, colour) -> None:
        sheet.tile(batch["original"][row])

    def legend(self, colour) -> list:
        return [(f"original: whole image at {self.size} px (a tile)", (200, 200, 200))]
