"""SGCL on BYOL (saliency-guided contrastive learning on scene images). Per image, t = 4
regions drawn by saliency score P (viewkit's `saliency` views: crops B'_i, B''_i).

    L_intra = sum_i P_i^gamma * L(B'_i, B''_i),   L the (symmetrised) BYOL loss, gamma 0.5
    L_inter = mean over i and the l = 5 nearest neighbours n of the online prediction of
              B'_i in a memory queue of target projections: P_i^gamma * (2 - 2 cos(p, n))
    L = L_intra + L_inter

Target EMA 0.99 -> 1. Regions come from the SaliencyStore the trainer refreshes every
`saliency_interval` epochs (random crops before the first refresh).

choices: the queue holds L2-normalised target projections of B''_i (t x B a step, 65,536
by default) and L_inter is 0 until it holds l entries; per-image terms are averaged over
the batch; the predictions are symmetrised as in BYOL's Eq. 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from viewkit.trainer.losses import byol_loss
from viewkit.trainer.nets import Backbone, ema_update, frozen_copy, mlp
from viewkit.trainer.queue import gather_from_ranks
from viewkit.trainer.schedules import ema_momentum

DEFAULTS = {"dim": 256, "hidden": 4096, "base_momentum": 0.99, "gamma": 0.5, "neighbours": 5, "queue": 65536}


class SGCL(nn.Module):
    def __init__(self, arch, dim, hidden, base_momentum, gamma, neighbours, queue):
        super().__init__()
        self.backbone = Backbone(arch)
        self.projector, self.predictor = mlp([self.backbone.dim, hidden, dim]), mlp([dim, hidden, dim])
        self.target_backbone, self.target_projector = frozen_copy(self.backbone), frozen_copy(self.projector)
        self.base_momentum, self.gamma, self.neighbours = base_momentum, gamma, neighbours
        self.register_buffer("memory", torch.zeros(queue, dim))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    def online(self, images):
        return self.predictor(self.projector(self.backbone(images)))

    @torch.no_grad()
    def target(self, images):
        return self.target_projector(self.target_backbone(images))

    def inter_loss(self, prediction: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Weighted BYOL loss of each prediction to its l nearest neighbours in the memory."""
        if self.filled < self.neighbours:
            return prediction.sum() * 0.0
        memory = self.memory[: int(self.filled)]
        similarity = F.normalize(prediction, dim=1) @ memory.T  # [B, filled]
        nearest = memory[similarity.topk(self.neighbours, dim=1).indices]  # [B, l, D]
        losses = byol_loss(prediction[:, None, :].expand_as(nearest), nearest)  # [B, l]
        return (weight[:, None] * losses).mean()

    @torch.no_grad()
    def remember(self, projections: torch.Tensor) -> None:
        projections = gather_from_ranks(F.normalize(projections, dim=1))[-len(self.memory):]
        positions = (self.pointer + torch.arange(len(projections), device=projections.device)) % len(self.memory)
        self.memory[positions] = projections
        self.pointer.copy_((self.pointer + len(projections)) % len(self.memory))
        self.filled.copy_(torch.clamp(self.filled + len(projections), max=len(self.memory)))

    def forward(self, batch: dict):
        crops = batch["saliency"]  # [t, 2, B, 3, S, S]
        weights = batch["saliency_scores"].clamp_min(0) ** self.gamma  # [B, t]
        intra = inter = 0.0
        targets = []
        for i in range(crops.shape[0]):
            first, second = crops[i, 0], crops[i, 1]
            p1, p2 = self.online(first), self.online(second)
            z1, z2 = self.target(first), self.target(second)
            weight = weights[:, i]
            intra = intra + (weight * (byol_loss(p1, z2) + byol_loss(p2, z1))).mean()
            inter = inter + self.inter_loss(p1, weight)
            targets.append(z2)
        inter = inter / crops.shape[0]
        self.remember(torch.cat(targets))
        return intra + inter, {"loss_intra": intra.detach(), "loss_inter": inter.detach()}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        momentum = ema_momentum(step, total_steps, self.base_momentum)
        ema_update(self.target_backbone, self.backbone, momentum)
        ema_update(self.target_projector, self.projector, momentum)
