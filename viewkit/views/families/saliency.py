"""SGCL's box-jittered crops: t regions drawn by score, two crops B', B'' around each.

Side data per sample: up to `max_regions` boxes (x0, y0, x1, y1 source pixels) with scores
in (0, 1]; padding rows have score 0. Samples without regions fall back to SGCL's
initialisation: random crops of `fallback_scale` of the image, score 1.0. Outputs
`saliency` [t, 2, B, 3, S, S], `saliency_boxes` [t, 2, B, 4], `saliency_scores` [B, t],
`saliency_regions` [B, t, 4].
"""

from __future__ import annotations

from dataclasses import dataclass

from viewkit.views.augment import BYOL_VIEW1, BYOL_VIEW2, Augment
from viewkit.views.families.checks import check_augments, check_range
from viewkit.views.families.crops import log_range
from viewkit.views.frames import View, frames
from viewkit.views.rows import PAIR, SALIENCY, TABLE_BOX, TABLE_PAIR_WINDOWS, TABLE_SCORE, row
from viewkit.views.tensors import fresh
from viewkit.views.tensors import frames as frames_tensor


@dataclass(frozen=True)
class SaliencyCrops:
    pairs: int = 4  # t
    size: int = 96
    scale: tuple[float, float] = (0.08, 1.0)  # of the region's area
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # drawn log-uniformly
    max_regions: int = 8  # K rows of side data per sample
    fallback_scale: tuple[float, float] = (0.08, 1.0)  # of the image, when a sample has no region
    augments: tuple[Augment, Augment] = (BYOL_VIEW1, BYOL_VIEW2)  # for B' and B''

    key = "saliency"

    def __post_init__(self):
        if self.pairs < 1 or self.max_regions < 1 or self.size < 8:
            raise ValueError(f"saliency: pairs {self.pairs}, max_regions {self.max_regions} >= 1, "
                             f"size {self.size} >= 8 required")
        check_range("saliency.scale", self.scale, 1e-4, 1.0)
        check_range("saliency.fallback_scale", self.fallback_scale, 1e-4, 1.0)
        check_range("saliency.ratio", self.ratio, 1e-2, 1e2)
        check_augments("saliency", self.augments, 2)

    @property
    def regions(self) -> int:
        return self.max_regions

    def check(self, recipe) -> None:
        pass

    def plan(self, recipe, stream: int, keep):
        from viewkit.views.families import Planned

        views, rows = [], []
        numbers = dict(sal_scale_min=self.scale, sal_log_ratio_min=log_range(self.ratio),
                       sal_fallback_min=self.fallback_scale)
        for pair in range(self.pairs):
            base = stream + 3 * pair  # the pick, then one stream per crop of the pair
            for crop in range(2):
                a = keep(self.augments[crop])
                views.append(View(row(SALIENCY, base, pair_index=pair, pair_crop=crop, sal_flip_p=a.flip_p, **numbers),
                                  a, base + 1 + crop))
            rows.append(row(PAIR, base, pair_index=pair, pair_crop=0, **numbers))
        # the windows read the regions: their own kernel and spec, not the table's
        return Planned((frames(self.key, self.size, views, rois="saliency_rois"),), tuple(rows), 3 * self.pairs)

    def draw(self, planned, context):
        return None

    def build(self, planned, drawn, outputs, context) -> dict:
        return {}

    def arrange(self, rows, batch, dtype) -> dict:
        b, t = rows.shape[:2]  # rows [B, t, 13]: region, score, window B', window B''
        windows = rows[..., TABLE_PAIR_WINDOWS:TABLE_PAIR_WINDOWS + 8]
        return {"saliency": frames_tensor(batch["saliency"], dtype).unflatten(0, (t, 2)),
                "saliency_boxes": fresh(windows.reshape(b, t, 2, 4).permute(1, 2, 0, 3)),
                "saliency_scores": fresh(rows[..., TABLE_SCORE]),
                "saliency_regions": fresh(rows[..., TABLE_BOX:TABLE_BOX + 4])}

    def sizes(self, recipe) -> list[int]:
        return [self.size] * (2 * self.pairs)

    def baseline(self, photometric):
        """Without regions (the bench has none): SGCL's fallback, random-resized crops."""
        import torch
        from torchvision.transforms import v2

        crop = v2.RandomResizedCrop(self.size, scale=self.fallback_scale, ratio=self.ratio, antialias=True)
        transforms = [v2.Compose(photometric(a, self.size)) for a in self.augments]

        def views(image):
            return {"saliency": torch.stack([transforms[c](crop(image)) for _ in range(self.pairs) for c in range(2)])}

        return views, None

    def sketch(self, batch, row, sheet, colour) -> None:
        for j in range(self.pairs):
            for crop in range(2):
                sheet.rectangle(batch["saliency_boxes"][j, crop, row].tolist(), colour, 1)
                sheet.tile(batch["saliency"][j, crop, row])
        for j in range(self.pairs):  # after the crops: the regions they jitter around stay visible
            sheet.rectangle(batch["saliency_regions"][row, j].tolist(), (255, 255, 255), 3)

    def legend(self, colour) -> list:
        return [("saliency regions", (255, 255, 255)),
                (f"saliency crops: {self.pairs} pairs x {self.size} px", colour)]
