"""MoCo-v2 (Chen, Fan, Girshick, He 2020, "Improved Baselines with Momentum Contrastive
Learning"; MoCo: He et al. 2020). Query encoder f_q with an MLP head fc(2048)-ReLU-fc(128);
key encoder f_k its momentum copy (m = 0.999); InfoNCE (Eq. 1 of MoCo) against a queue of
65,536 keys, temperature 0.2. Asymmetric as the official code: q from view 1, k from view 2.

choice: no shuffling BN across GPUs (MoCo's trick against BN leakage); with DDP use the
`sync_bn` option instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from viewkit.trainer.methods.base import Method
from viewkit.trainer.methods.losses import info_nce
from viewkit.trainer.methods.queue import KeyQueue
from viewkit.trainer.nets import build_backbone, ema_update, frozen_copy, mlp

DEFAULTS = {"dim": 128, "hidden": 2048, "queue": 65536, "momentum": 0.999, "temperature": 0.2}


class MomentumEncoder(nn.Module):
    """f_q (backbone + projector) and its momentum copy f_k: the part MoCo-based methods share."""

    def __init__(self, arch: str, dim: int, hidden: int, momentum: float):
        super().__init__()
        self.backbone = build_backbone(arch)
        self.projector = mlp([self.backbone.dim, hidden, dim], batch_norm=False)
        self.key_backbone, self.key_projector = frozen_copy(self.backbone), frozen_copy(self.projector)
        self.momentum = momentum

    def query(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(self.backbone(images)), dim=1)

    @torch.no_grad()
    def key(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key_projector(self.key_backbone(images)), dim=1)

    @torch.no_grad()
    def update(self) -> None:
        ema_update(self.key_backbone, self.backbone, self.momentum)
        ema_update(self.key_projector, self.projector, self.momentum)


class MoCoV2(Method):
    def __init__(self, arch: str, dim: int, hidden: int, queue: int, momentum: float, temperature: float):
        super().__init__()
        self.encoder = MomentumEncoder(arch, dim, hidden, momentum)
        self.backbone = self.encoder.backbone
        self.queue = KeyQueue(queue, dim)
        self.temperature = temperature

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        view1, view2 = batch["global"]  # [B, 3, S, S] each
        q, k = self.encoder.query(view1), self.encoder.key(view2)
        loss = info_nce(q, k, self.queue.keys.clone(), self.temperature)
        self.queue.push(k)
        return loss, {}

    def after_step(self, step: int, total_steps: int) -> None:
        self.encoder.update()
