"""SimSiam (Chen & He 2021, "Exploring Simple Siamese Representation Learning").
Projector: 3 layers of 2048 with BN on every output (the last BN without affine, as the
official code); predictor 2048-512-2048 (fc-BN-ReLU-fc). Loss (Eq. 3):
D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2 with D the negative cosine. No momentum network.
The predictor's lr stays at the peak while the rest follows the schedule (section 4.2: "lr
not decayed" is the paper's setting, its official `--fix-pred-lr`); `fixed_predictor_lr:
false` decays it too.
"""

from __future__ import annotations


from viewkit.trainer.methods.base import Method
from viewkit.trainer.methods.losses import negative_cosine
from viewkit.trainer.nets import build_backbone, mlp

DEFAULTS = {"dim": 2048, "predictor_hidden": 512, "fixed_predictor_lr": True}


class SimSiam(Method):
    def __init__(self, arch: str, dim: int, predictor_hidden: int, fixed_predictor_lr: bool = True):
        super().__init__()
        self.backbone = build_backbone(arch)
        self.projector = mlp([self.backbone.dim, dim, dim, dim], last_batch_norm=True, last_affine=False)
        self.predictor = mlp([dim, predictor_hidden, dim])
        self.fixed_lr_modules = (self.predictor,) if fixed_predictor_lr else ()

    def forward(self, batch: dict):
        view1, view2 = batch["global"]
        z1, z2 = self.projector(self.backbone(view1)), self.projector(self.backbone(view2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2, {}
