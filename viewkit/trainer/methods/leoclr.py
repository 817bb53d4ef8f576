"""LeOCLR (Alkhalefi et al. 2024, "LeOCLR: Leveraging Original Images for Contrastive
Learning of Visual Representations"), on MoCo-v2. The original image X (resized, not
cropped) goes through the query encoder, the two random crops through the momentum
encoder; the crops are attracted to the original, not to each other:
L = l(u, sg(v1)) + l(u, sg(v2)), l the InfoNCE against the queue.

End-to-end variant (`end_to_end: true`, the paper's Sec. 5 and Table 5: "the two encoders
f_q and f_k are updated via backpropagation", 200 epochs, batch 256): one encoder, as
SimCLR's, with no stop-gradient and no queue; l is SimCLR's NT-Xent over the batch, so
L = NT-Xent(u, v1) + NT-Xent(u, v2). The crops still meet only the original: in each term
the negatives are the other images' originals and crops of that term, never the other crop.

choices: the queue takes the keys of crop 1 only, one key per image as in MoCo. End to end,
the paper gives no temperature or head: the variant keeps this method's (T 0.2, the MoCo-v2
head fc 2048-ReLU-fc 128, which is also SimCLR's) and, as viewkit's SimCLR, takes its
negatives from this rank's batch only.
"""

from __future__ import annotations


from viewkit.trainer.methods.losses import info_nce, nt_xent
from viewkit.trainer.methods.moco import MoCoV2
from viewkit.trainer.methods.simclr import SimCLR

DEFAULTS = {"dim": 128, "hidden": 2048, "queue": 65536, "momentum": 0.999, "temperature": 0.2, "end_to_end": False}


def build(arch: str, dim: int, hidden: int, queue: int, momentum: float, temperature: float, end_to_end: bool):
    # queue and momentum stay accepted end to end, where they mean nothing, so that any leoclr
    # config turns into the variant with one override: method_options.end_to_end=true.
    if end_to_end:
        return LeOCLREndToEnd(arch, dim, hidden, temperature)
    return LeOCLR(arch, dim, hidden, queue, momentum, temperature)


class LeOCLR(MoCoV2):
    """MoCo-v2's encoders and queue; the original image is the query, both crops the keys."""

    def forward(self, batch: dict):
        crop1, crop2 = batch["global"]
        u = self.encoder.query(batch["original"])
        v1, v2 = self.encoder.key(crop1), self.encoder.key(crop2)
        negatives = self.queue.keys.clone()
        loss = info_nce(u, v1, negatives, self.temperature) + info_nce(u, v2, negatives, self.temperature)
        self.queue.push(v1)
        return loss, {}


class LeOCLREndToEnd(SimCLR):
    """SimCLR's encoder and head; only the pairs the loss attracts differ."""

    def forward(self, batch: dict):
        crop1, crop2 = batch["global"]
        u, v1, v2 = (self.projector(self.backbone(images)) for images in (batch["original"], crop1, crop2))
        return nt_xent(u, v1, self.temperature) + nt_xent(u, v2, self.temperature), {}
