"""SCD: saliency-guided contrastive learning with fg/bg triplets, on MoCo-v2 and BYOL.

Saliency network M on the last feature map F: 1x1 conv (2048) - BN - ReLU - 1x1 conv (1)
- sigmoid. Foreground and background features by mask pooling:
    fg = sum(M * F) / sum(M),    bg = sum((1 - M) * F) / sum(1 - M).
A semantic projector (the base's projector architecture) maps them to z_fg, z_bg; view 2's
come from the momentum/target network. With f_s the cosine similarity and alpha = 1:
    L_d = 0.5 * (max(f_s(z1fg, z2bg) - f_s(z1fg, z2fg) + alpha, 0)
                 + max(f_s(z1bg, z2fg) - f_s(z1bg, z2bg), 0))
    L = L_c + 0.5 * L_d,   L_c the base's loss (MoCo-v2 InfoNCE, or BYOL asymmetric).

choices: the saliency head and semantic projector of view 2 are EMA copies updated with the
base's momentum (the paper takes view-2 embeddings "from the target network"); no
predictor on the semantic branch of SCD-BYOL; the hidden width of the saliency head is
2048 for every backbone. SCD-BYOL's `symmetric` option (off: the paper's asymmetric
loss) adds the same loss with the views' roles swapped, L_c and L_d alike, as BYOL's Eq. 3
does for L_c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from viewkit.trainer.methods.base import Method
from viewkit.trainer.methods.losses import byol_loss, info_nce
from viewkit.trainer.methods.moco import MomentumEncoder
from viewkit.trainer.methods.queue import KeyQueue
from viewkit.trainer.nets import Backbone, build_backbone, ema_update, follow_byol_targets, frozen_copy, mlp

MOCO_DEFAULTS = {"dim": 128, "hidden": 2048, "queue": 65536, "momentum": 0.999, "temperature": 0.2,
                 "alpha": 1.0, "weight": 0.5, "saliency_hidden": 2048}
BYOL_DEFAULTS = {"dim": 512, "hidden": 4096, "base_momentum": 0.99, "alpha": 1.0, "weight": 0.5,
                 "saliency_hidden": 2048, "symmetric": False}


def saliency_head(channels: int, hidden: int) -> nn.Sequential:
    """M: [B, C, h, w] -> [B, 1, h, w] in (0, 1)."""
    return nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, 1, 1), nn.Sigmoid())


def pool_foreground_background(feature_map: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6):
    """[B, C, h, w], [B, 1, h, w] -> fg [B, C], bg [B, C] (mask-weighted means)."""
    fg = (feature_map * mask).sum((2, 3)) / (mask.sum((2, 3)) + eps)
    bg = (feature_map * (1 - mask)).sum((2, 3)) / ((1 - mask).sum((2, 3)) + eps)
    return fg, bg


def triplet_loss(z1_fg, z1_bg, z2_fg, z2_bg, alpha: float) -> torch.Tensor:
    """L_d above, averaged over the batch; view-2 embeddings carry no gradient."""
    z2_fg, z2_bg = z2_fg.detach(), z2_bg.detach()
    cos = F.cosine_similarity
    fg_term = (cos(z1_fg, z2_bg) - cos(z1_fg, z2_fg) + alpha).clamp_min(0)
    bg_term = (cos(z1_bg, z2_fg) - cos(z1_bg, z2_bg)).clamp_min(0)
    return (0.5 * (fg_term + bg_term)).mean()


class ForegroundEncoder(nn.Module):
    """SCD's "fg" features for linear evaluation (Table 8): the backbone's last map pooled by
    the learned saliency mask, fg = sum(M * F) / sum(M), in place of global average pooling."""

    def __init__(self, backbone: Backbone, saliency: nn.Module):
        super().__init__()
        self.backbone, self.saliency, self.arch = backbone, saliency, backbone.arch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feature_map = self.backbone.feature_map(images)
        return pool_foreground_background(feature_map, self.saliency(feature_map))[0]


def foreground_encoder(backbone: Backbone, model_state: dict, source: str = "checkpoint") -> ForegroundEncoder:
    """The online saliency head from a scd_moco / scd_byol checkpoint's model state, on `backbone`."""
    prefix = "semantic.saliency."
    head_state = {k[len(prefix):]: v for k, v in model_state.items() if k.startswith(prefix)}
    if not head_state:
        raise ValueError(f"{source}: no SCD saliency head in it; fg features need a scd_moco or scd_byol checkpoint")
    head = saliency_head(backbone.dim, head_state["0.weight"].shape[0])
    head.load_state_dict(head_state)
    return ForegroundEncoder(backbone, head)


class SemanticBranch(nn.Module):
    """Saliency head + semantic projector, and their momentum copies for view 2."""

    def __init__(self, channels: int, saliency_hidden: int, projector: nn.Module):
        super().__init__()
        self.saliency = saliency_head(channels, saliency_hidden)
        self.projector = projector
        self.target_saliency, self.target_projector = frozen_copy(self.saliency), frozen_copy(self.projector)

    def online(self, feature_map: torch.Tensor):
        fg, bg = pool_foreground_background(feature_map, self.saliency(feature_map))
        return self.projector(fg), self.projector(bg)

    @torch.no_grad()
    def target(self, feature_map: torch.Tensor):
        fg, bg = pool_foreground_background(feature_map, self.target_saliency(feature_map))
        return self.target_projector(fg), self.target_projector(bg)

    @torch.no_grad()
    def update(self, momentum: float) -> None:
        ema_update(self.target_saliency, self.saliency, momentum)
        ema_update(self.target_projector, self.projector, momentum)


class SCDMoCo(Method):
    """SCD on MoCo-v2 (bs 256, lr 0.06)."""

    def __init__(self, arch, dim, hidden, queue, momentum, temperature, alpha, weight, saliency_hidden):
        super().__init__()
        self.encoder = MomentumEncoder(arch, dim, hidden, momentum)
        self.backbone = self.encoder.backbone
        channels = self.backbone.dim
        self.semantic = SemanticBranch(channels, saliency_hidden, mlp([channels, hidden, dim], batch_norm=False))
        self.queue = KeyQueue(queue, dim)
        self.temperature, self.alpha, self.weight = temperature, alpha, weight

    def forward(self, batch: dict):
        view1, view2 = batch["global"]
        map1 = self.backbone.feature_map(view1)
        q = F.normalize(self.encoder.projector(map1.mean((2, 3))), dim=1)
        with torch.no_grad():
            map2 = self.encoder.key_backbone.feature_map(view2)
            k = F.normalize(self.encoder.key_projector(map2.mean((2, 3))), dim=1)
        contrastive = info_nce(q, k, self.queue.keys.clone(), self.temperature)
        triplet = triplet_loss(*self.semantic.online(map1), *self.semantic.target(map2), self.alpha)
        self.queue.push(k)
        return contrastive + self.weight * triplet, {"loss_contrastive": contrastive.detach(), "loss_triplet": triplet.detach()}

    def after_step(self, step: int, total_steps: int) -> None:
        self.encoder.update()
        self.semantic.update(self.encoder.momentum)


class SCDBYOL(Method):
    """SCD on BYOL, asymmetric (one direction, SCD's default; bs 512, lr 0.05), 4096/512 heads."""

    def __init__(self, arch, dim, hidden, base_momentum, alpha, weight, saliency_hidden, symmetric):
        super().__init__()
        self.backbone = build_backbone(arch)
        channels = self.backbone.dim
        self.projector, self.predictor = mlp([channels, hidden, dim]), mlp([dim, hidden, dim])
        self.target_backbone, self.target_projector = frozen_copy(self.backbone), frozen_copy(self.projector)
        self.semantic = SemanticBranch(channels, saliency_hidden, mlp([channels, hidden, dim]))
        self.base_momentum, self.alpha, self.weight, self.symmetric = base_momentum, alpha, weight, symmetric

    def one_direction(self, online_view: torch.Tensor, target_view: torch.Tensor):
        """L_c and L_d with `online_view` through the online network, `target_view` through the target."""
        online_map = self.backbone.feature_map(online_view)
        prediction = self.predictor(self.projector(online_map.mean((2, 3))))
        with torch.no_grad():
            target_map = self.target_backbone.feature_map(target_view)
            target = self.target_projector(target_map.mean((2, 3)))
        contrastive = byol_loss(prediction, target).mean()
        triplet = triplet_loss(*self.semantic.online(online_map), *self.semantic.target(target_map), self.alpha)
        return contrastive, triplet

    def forward(self, batch: dict):
        view1, view2 = batch["global"]
        contrastive, triplet = self.one_direction(view1, view2)
        if self.symmetric:
            contrastive_back, triplet_back = self.one_direction(view2, view1)
            contrastive, triplet = contrastive + contrastive_back, triplet + triplet_back
        return contrastive + self.weight * triplet, {"loss_contrastive": contrastive.detach(), "loss_triplet": triplet.detach()}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        self.semantic.update(follow_byol_targets(self, step, total_steps))
