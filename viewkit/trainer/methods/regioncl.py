"""RegionCL on MoCo-v2 (Xu et al. 2022, "RegionCL: Exploring Contrastive Region Pairs for
Self-supervised Representation Learning"; official code). Instance branch: MoCo-v2's
InfoNCE of the unswapped query view against its key. Region branch: the swapped composite
(region of sample j = B-1-i pasted into sample i, viewkit's `swap` views) goes through
the query encoder; on its last feature map the paste cells and the canvas cells are
mean-pooled and sent through the same projector. The canvas of composite i has positive
k_i, its paste positive k_j; each has the other region of its own composite (stop-grad)
as one extra negative, plus the queue; T 0.2. L = L_instance + L_region.

choice: L_region is the mean over the 2B region queries (canvas and paste as one batch).

RegionCL-S (supplementary A.6, Algorithm 3) is the same swap on SimSiam: q, p and c go
through projector and predictor, k through the projector only, and
L = D(q, sg(k)) + (D(p, sg(k_src)) + D(c, sg(k))) / 2 with D SimSiam's negative cosine.
Algorithm 3 is one-directional (x^q predicts x^k), unlike SimSiam's symmetrised loss; it is
followed as written, the default. The text beside it says the learning objectives are kept
"the same as in SimSiam", whose loss is symmetric: `symmetric: true` (our option) makes the
instance term D(q, sg(k)) / 2 + D(q', sg(k')) / 2, x^k also predicting x^q, at the cost of one
more predictor pass (the backbone passes stay three). The region term is unchanged: the
composite is cut from x^q only. Heads and training settings are SimSiam's (A.7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from viewkit.trainer.methods.losses import info_nce, negative_cosine
from viewkit.trainer.methods.moco import MoCoV2
from viewkit.trainer.methods.simsiam import SimSiam

DEFAULTS = {"dim": 128, "hidden": 2048, "queue": 65536, "momentum": 0.999, "temperature": 0.2}
SIMSIAM_DEFAULTS = {"dim": 2048, "predictor_hidden": 512, "fixed_predictor_lr": True, "symmetric": False}


def pool_paste_and_canvas(feature_map: torch.Tensor, box: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C, h, w] and the pasted box in pixels (x0, y0, x1, y1) -> paste [B, C], canvas [B, C].

    The box must lie on the backbone's grid (`stride` px per map position): the swap grid
    of the recipe (`swap_grid`) is a multiple of the stride, so every position is wholly
    paste or wholly canvas, as in the paper's mask pooling.
    """
    _, _, h, w = feature_map.shape
    pixels = [int(v) for v in box.tolist()]
    if any(v % stride for v in pixels):
        raise ValueError(f"swap box {pixels} px is not on the backbone's {stride} px grid; "
                         f"set the recipe's swap_grid to a multiple of {stride}")
    x0, y0, x1, y1 = (v // stride for v in pixels)
    mask = torch.zeros(h, w, dtype=torch.bool, device=feature_map.device)
    mask[y0:y1, x0:x1] = True
    if mask.all() or not mask.any():
        raise ValueError(f"swap box {pixels} px leaves no paste or no canvas on a {h}x{w} map")
    return feature_map[:, :, mask].mean(-1), feature_map[:, :, ~mask].mean(-1)


def check_composite(composite: torch.Tensor, query_view: torch.Tensor, stride: int) -> None:
    if composite.shape[-1] != query_view.shape[-1] or composite.shape[-1] % stride:
        raise ValueError(f"RegionCL needs swap composites of the query view's size, a multiple of {stride} px "
                         f"(the backbone's stride); got {composite.shape[-1]} and {query_view.shape[-1]}")


class RegionCL(MoCoV2):
    """RegionCL-M: MoCo-v2's encoders and queue, plus the region-swap terms."""

    def forward(self, batch: dict):
        view1, view2 = batch["global"]
        composite = batch["swap"]
        check_composite(composite, view1, self.backbone.stride)
        q, k = self.encoder.query(view1), self.encoder.key(view2)
        negatives = self.queue.keys.clone()
        instance = info_nce(q, k, negatives, self.temperature)
        paste, canvas = pool_paste_and_canvas(self.backbone.feature_map(composite), batch["swap_box"],
                                              self.backbone.stride)
        z_paste = F.normalize(self.encoder.projector(paste), dim=1)
        z_canvas = F.normalize(self.encoder.projector(canvas), dim=1)
        queries = torch.cat([z_canvas, z_paste])
        positives = torch.cat([k, k[batch["swap_source"]]])
        other_region = torch.cat([z_paste, z_canvas]).detach()
        region = info_nce(queries, positives, negatives, self.temperature, extra_negatives=other_region)
        self.queue.push(k)
        return instance + region, {"loss_instance": instance.detach(), "loss_region": region.detach()}


class RegionCLSimSiam(SimSiam):
    """RegionCL-S: SimSiam's backbone and heads; the swap adds two region positives."""

    def __init__(self, arch: str, dim: int, predictor_hidden: int, fixed_predictor_lr: bool = True,
                 symmetric: bool = False):
        super().__init__(arch, dim, predictor_hidden, fixed_predictor_lr)
        self.symmetric = symmetric

    def forward(self, batch: dict):
        view_q, view_k = batch["global"]
        composite = batch["swap"]
        check_composite(composite, view_q, self.backbone.stride)
        paste, canvas = pool_paste_and_canvas(self.backbone.feature_map(composite), batch["swap_box"],
                                              self.backbone.stride)
        # One projector batch for q, p and c, as Fig. S3 draws it: its BN sees all three.
        projected = self.projector(torch.cat([self.backbone(view_q), paste, canvas]))
        q, p, c = self.predictor(projected).chunk(3)
        k = self.projector(self.backbone(view_k))
        instance = negative_cosine(q, k)
        if self.symmetric:
            instance = instance / 2 + negative_cosine(self.predictor(k), projected[: len(k)]) / 2
        region = (negative_cosine(p, k[batch["swap_source"]]) + negative_cosine(c, k)) / 2
        return instance + region, {"loss_instance": instance.detach(), "loss_region": region.detach()}
