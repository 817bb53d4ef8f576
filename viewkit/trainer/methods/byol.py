"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent"). Online: backbone, projector and
predictor, each MLP fc(4096)-BN-ReLU-fc(256); target: backbone + projector, an EMA of the
online ones with momentum from 0.99 to 1 along a cosine. Loss 2 - 2 cos(p, sg(z')) (Eq. 2),
symmetrised over the two views (Eq. 3) or, as SCD's default, asymmetric (one direction).
"""

from __future__ import annotations

import torch

from viewkit.trainer.methods.base import Method
from viewkit.trainer.methods.losses import byol_loss
from viewkit.trainer.nets import build_backbone, follow_byol_targets, frozen_copy, mlp

DEFAULTS = {"dim": 256, "hidden": 4096, "base_momentum": 0.99, "symmetric": True}


class BYOL(Method):
    def __init__(self, arch: str, dim: int, hidden: int, base_momentum: float, symmetric: bool):
        super().__init__()
        self.backbone = build_backbone(arch)
        self.projector = mlp([self.backbone.dim, hidden, dim])
        self.predictor = mlp([dim, hidden, dim])
        self.target_backbone, self.target_projector = frozen_copy(self.backbone), frozen_copy(self.projector)
        self.base_momentum, self.symmetric = base_momentum, symmetric

    def online(self, images: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.projector(self.backbone(images)))

    @torch.no_grad()
    def target(self, images: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_backbone(images))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        view1, view2 = batch["global"]
        loss = byol_loss(self.online(view1), self.target(view2)).mean()
        if self.symmetric:
            loss = loss + byol_loss(self.online(view2), self.target(view1)).mean()
        return loss, {}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        follow_byol_targets(self, step, total_steps)
