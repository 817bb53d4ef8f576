"""LeOCLR (Alkhalefi et al. 2024, "LeOCLR: Leveraging Original Images for Contrastive
Learning of Visual Representations"), on MoCo-v2. The original image X (resized, not
cropped) goes through the query encoder, the two random crops through the momentum
encoder; the crops are attracted to the original, not to each other:
L = l(u, sg(v1)) + l(u, sg(v2)), l the InfoNCE against the queue.

choice: the queue takes the keys of crop 1 only, one key per image as in MoCo.
"""

from __future__ import annotations

from torch import nn

from viewkit.trainer.losses import info_nce
from viewkit.trainer.moco import MomentumEncoder
from viewkit.trainer.queue import KeyQueue

DEFAULTS = {"dim": 128, "hidden": 2048, "queue": 65536, "momentum": 0.999, "temperature": 0.2}


class LeOCLR(nn.Module):
    def __init__(self, arch: str, dim: int, hidden: int, queue: int, momentum: float, temperature: float):
        super().__init__()
        self.encoder = MomentumEncoder(arch, dim, hidden, momentum)
        self.backbone = self.encoder.backbone
        self.queue = KeyQueue(queue, dim)
        self.temperature = temperature

    def forward(self, batch: dict):
        crop1, crop2 = batch["global"]
        self.encoder.update()
        u = self.encoder.query(batch["original"])
        v1, v2 = self.encoder.key(crop1), self.encoder.key(crop2)
        negatives = self.queue.keys.clone()
        loss = info_nce(u, v1, negatives, self.temperature) + info_nce(u, v2, negatives, self.temperature)
        self.queue.push(v1)
        return loss, {}

    def after_step(self, step: int, total_steps: int) -> None:
        pass
