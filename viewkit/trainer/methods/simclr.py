"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning"): projector
fc-ReLU-fc to 128, NT-Xent (Eq. 1) over the 2B views of the batch.

choice: temperature 0.1 (the paper's best with large batches, Table 5 / B.7); override
with method_options.temperature. Negatives come from this rank's batch only.
"""

from __future__ import annotations


from viewkit.trainer.methods.base import Method
from viewkit.trainer.methods.losses import nt_xent
from viewkit.trainer.nets import build_backbone, mlp

DEFAULTS = {"dim": 128, "hidden": 2048, "temperature": 0.1}


class SimCLR(Method):
    def __init__(self, arch: str, dim: int, hidden: int, temperature: float):
        super().__init__()
        self.backbone = build_backbone(arch)
        self.projector = mlp([self.backbone.dim, hidden, dim], batch_norm=False)
        self.temperature = temperature

    def forward(self, batch: dict):
        view1, view2 = batch["global"]
        return nt_xent(self.projector(self.backbone(view1)), self.projector(self.backbone(view2)), self.temperature), {}
