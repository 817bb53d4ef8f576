"""RegionCL's composite: a grid-aligned region of sample B-1-i pasted into sample i.

One box per batch, width and height drawn independently from `cells` x `grid` px, made
from view 0 of crop family `source` after its augmentation. Outputs `swap` [B, 3, S, S],
`swap_mask` [B, 1, S, S], `swap_box` and `swap_cells` [4], `swap_source` [B].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nvidia.dali import fn

from viewkit.views.rows import SWAP, TABLE_BOX, TABLE_SWAP_CELLS, row, spec
from viewkit.views.tensors import image

MAX_CELLS = 6  # choices of a box side the swap row holds


@dataclass(frozen=True)
class RegionSwap:
    source: str = "global"
    grid: int = 32  # the backbone's stride: boxes cover whole cells of its feature map
    cells: tuple[int, ...] = (3, 4, 5)  # width and height drawn independently, in cells

    key = "swap"
    regions = 0

    def __post_init__(self):
        if self.grid < 1 or not self.cells or min(self.cells) < 1:
            raise ValueError(f"swap: grid {self.grid} and cells {self.cells} must be positive")
        if len(self.cells) > MAX_CELLS:
            raise ValueError(f"swap.cells {self.cells}: at most {MAX_CELLS} choices")

    def _source(self, recipe):
        return next((c for c in recipe.crops if c.name == self.source), None)

    def check(self, recipe) -> None:
        source = self._source(recipe)
        if source is None:
            raise ValueError(f"swap.source {self.source!r} is not a crop family of {[c.name for c in recipe.crops]}")
        if source.size % self.grid or max(self.cells) * self.grid >= source.size:
            raise ValueError(f"swap: {source.size} px views need a size divisible by grid {self.grid} "
                             f"and more than {max(self.cells)} cells, so that some canvas stays around the box")

    def plan(self, recipe, stream: int, keep):
        from viewkit.views.families import Planned

        swap_row = row(SWAP, stream, swap_grid=self.grid, swap_size=self._source(recipe).size,
                       swap_count=len(self.cells), swap_cells=self.cells)
        return Planned((), (swap_row,), 1)

    def draw(self, planned, context):
        from viewkit.views import operators

        return tuple(operators.call("swap", operators.constant(spec(planned.rows, context.seed, context.epoch)),
                                    context.sample_id))

    def build(self, planned, drawn, outputs, context) -> dict:
        """Sample i gets sample B-1-i's region of the source family's first view; one box per
        batch, sample 0's draw (so a batch's box follows from the samples in it)."""
        anchors, shapes = drawn
        first = [0] * context.batch_size
        anchors, shapes = fn.permute_batch(anchors, indices=first), fn.permute_batch(shapes, indices=first)
        view = outputs[self.source][0]
        reversed_batch = fn.permute_batch(view, indices=list(reversed(range(context.batch_size))))
        # Paste 0 lays sample i itself as the canvas, paste 1 the region of sample B-1-i.
        return {"swap": fn.multi_paste(view, reversed_batch, in_anchors=anchors, shapes=shapes, out_anchors=anchors)}

    def arrange(self, rows, batch, dtype) -> dict:
        box_row = rows[0, 0].to(torch.int64)  # sample 0's draw is the batch's box
        swap = image(batch["swap"], dtype)
        b, _, h, w = swap.shape
        box = box_row[TABLE_BOX:TABLE_BOX + 4]
        mask = torch.zeros((b, 1, h, w), dtype=torch.bool, device=swap.device)
        mask[:, :, box[1]:box[3], box[0]:box[2]] = True
        return {"swap": swap, "swap_box": box, "swap_cells": box_row[TABLE_SWAP_CELLS:TABLE_SWAP_CELLS + 4],
                "swap_mask": mask, "swap_source": torch.arange(b - 1, -1, -1, device=swap.device)}

    def sizes(self, recipe) -> list[int]:
        return [self._source(recipe).size]

    def baseline(self, photometric):
        """RegionCL's batch-level swap as tensor ops on the collated batch."""
        import random

        def swap(batch):
            views = batch[self.source][:, 0]
            cells = views.shape[-1] // self.grid
            w, h = random.choice(self.cells), random.choice(self.cells)
            x, y = random.randrange(cells - w + 1) * self.grid, random.randrange(cells - h + 1) * self.grid
            w, h = w * self.grid, h * self.grid
            composite = views.clone()
            composite[:, :, y:y + h, x:x + w] = views.flip(0)[:, :, y:y + h, x:x + w]
            batch["swap"] = composite
            return batch

        return None, swap

    def sketch(self, batch, row, sheet, colour) -> None:
        """The box (pixels of view 0) mapped back through view 0's crop window and flip."""
        size = int(batch[self.source].shape[-1])
        x0, y0, x1, y1 = batch[f"{self.source}_boxes"][0, row].tolist()
        bx0, by0, bx1, by1 = batch["swap_box"].tolist()
        if batch[f"{self.source}_flips"][0, row]:
            bx0, bx1 = size - bx1, size - bx0
        sx, sy = (x1 - x0) / size, (y1 - y0) / size
        sheet.rectangle([x0 + bx0 * sx, y0 + by0 * sy, x0 + bx1 * sx, y0 + by1 * sy], (255, 0, 0), 3)
        sheet.tile(batch["swap"][row], box=[v / size for v in batch["swap_box"].tolist()])

    def legend(self, colour) -> list:
        return [("swap box (pasted region of sample B-1-i)", (255, 0, 0))]
