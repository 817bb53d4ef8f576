"""SGCL on BYOL (saliency-guided contrastive learning on scene images). Per image, t = 4
regions drawn by saliency score P (viewkit's `saliency` views: crops B'_i, B''_i).

    L_intra = sum_i P_i^gamma * L(B'_i, B''_i),   L the (symmetrised) BYOL loss, gamma 0.5
    L_inter = mean over i and the l = 5 nearest neighbours n of the online prediction of
              B'_i in a memory queue of target projections: P_i^gamma * (2 - 2 cos(p, n))
    L = L_intra + L_inter

Target EMA 0.99 -> 1. Regions come from the SaliencyStore refreshed every
`saliency_interval` epochs (0: never; the paper's 100 of 800) by Ncut on the model's own
features at `saliency_resolution` px (640), random crops before the first refresh.

Region scores P follow Eq. 5 on S = Y, the Ncut partition vector itself (viewkit/saliency);
the store keeps each image's 8 strongest regions (the paper keeps all: choice, a fixed
store width), and the views draw t of them by P.

choices: the queue holds L2-normalised target projections of B''_i (t x B a step, 65,536
by default) and L_inter is 0 until it holds l entries; per-image terms are averaged over
the batch; L in L_intra is BYOL's symmetrised loss (its Eq. 3: both directions), while
L_inter's Eq. 10 has one direction, so Eq. 11 weighs intra : inter as 2 : 1 per region
pair; we read the paper's L as BYOL's own loss and keep it.

On SimCLR (`base: simclr`; the paper's "Extension to other frameworks", +3.2 mAP on VOC07,
given without equations): one encoder, no predictor or target, and L SimCLR's NT-Xent.
choices: L_intra weights each image's two NT-Xent anchors of pair i by P_i^gamma; L_inter
follows NNCLR, which the paper names as its source: each of the l nearest neighbours of
z(B'_i) in the queue (projections of B''_i, without gradient) stands in for z(B'_i) as the
anchor of an InfoNCE whose positive is z(B''_i) and whose negatives are the batch's other
z(B''); P_i^gamma-weighted, averaged over i, the neighbours and the batch. Temperature
`temperature` (0.1, viewkit's SimCLR default); the head keeps `dim` and `hidden`.
BYOL's `base_momentum` and SimCLR's `temperature` are accepted and unused by the other base.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from viewkit.trainer.methods.base import Method
from viewkit.trainer.methods.losses import byol_loss, nt_xent
from viewkit.trainer.methods.queue import gather_from_ranks, ring_write
from viewkit.trainer.nets import build_backbone, follow_byol_targets, frozen_copy, mlp

DEFAULTS = {"dim": 256, "hidden": 4096, "base_momentum": 0.99, "gamma": 0.5, "neighbours": 5, "queue": 65536,
            "base": "byol", "temperature": 0.1, "saliency_interval": 0, "saliency_resolution": 640}


def build(arch, dim, hidden, base_momentum, gamma, neighbours, queue, base, temperature, saliency_interval,
          saliency_resolution):
    if saliency_interval < 0 or saliency_resolution < 32:
        raise ValueError(f"sgcl: saliency_interval {saliency_interval} >= 0 (0: never) and saliency_resolution "
                         f"{saliency_resolution} >= 32 px")
    if base == "byol":
        method = SGCL(arch, dim, hidden, base_momentum, gamma, neighbours, queue)
    elif base == "simclr":
        method = SGCLSimCLR(arch, dim, hidden, gamma, neighbours, queue, temperature)
    else:
        raise ValueError(f"sgcl base {base!r}: 'byol' (the paper's) or 'simclr' (its extension)")
    method.saliency_interval, method.saliency_resolution = saliency_interval, saliency_resolution
    return method


def add_memory(model: nn.Module, size: int, dim: int) -> None:
    model.register_buffer("memory", torch.zeros(size, dim))
    model.register_buffer("filled", torch.zeros((), dtype=torch.long))
    model.register_buffer("pointer", torch.zeros((), dtype=torch.long))


def nearest_in_memory(model: nn.Module, queries: torch.Tensor, count: int) -> torch.Tensor | None:
    """The count nearest entries of the memory by cosine, [B, count, D]; None until it holds count."""
    if model.filled < count:
        return None
    memory = model.memory[: int(model.filled)]
    similarity = F.normalize(queries.detach(), dim=1) @ memory.T  # [B, filled]
    return memory[similarity.topk(count, dim=1).indices]


@torch.no_grad()
def remember(model: nn.Module, projections: torch.Tensor) -> None:
    projections = gather_from_ranks(F.normalize(projections, dim=1))
    ring_write(model.memory, model.pointer, projections)
    model.filled.copy_(torch.clamp(model.filled + len(projections), max=len(model.memory)))


class SaliencyGuided(Method):
    """SGCL's step 1 between epochs: every `saliency_interval` epochs the regions are found
    again by Ncut on the features of the backbone being trained, and the loader reads them."""

    saliency_interval, saliency_resolution = 0, 640  # set by `build` from the options

    def on_epoch_start(self, start) -> None:
        from viewkit.saliency.store import SaliencyStore

        interval, store = self.saliency_interval, start.out / "saliency-store"
        refresh = bool(interval and start.epoch and start.epoch % interval == 0 and not start.continues)
        if refresh:
            refresh_saliency(self, start)
        # a resumed run reads the regions it trained with
        if (refresh or start.first) and (store / "meta.json").exists():
            start.set_side_data(SaliencyStore(store).table())

    def checkpoint_extras(self, out) -> dict:
        """The saliency store's meta.json beside the weights: which regions the run trained on."""
        meta = out / "saliency-store" / "meta.json"
        return {"saliency_store": json.loads(meta.read_text()) if meta.exists() else None}


def refresh_saliency(method: Method, start) -> None:
    """Regions by Ncut on the model's features, each rank computing its share of the samples
    (SGCL computes its maps on all GPUs); rank 0 gathers them and writes the store
    atomically, the other ranks wait, then read it."""
    from viewkit.loaders.dataset import open_dataset
    from viewkit.saliency.sources import ncut_regions
    from viewkit.saliency.store import SaliencyStore

    boxes, scores, counts = ncut_regions(start.data, method.backbone.trunk, resolution=method.saliency_resolution,
                                         device=start.device, progress=False, threads=start.threads,
                                         rank=start.rank, world_size=start.world)
    method.backbone.train()
    if start.rank == 0:
        SaliencyStore(start.out / "saliency-store").write(boxes, scores, counts, source="ncut", epoch=start.epoch,
                                                           shards=open_dataset(start.data))
        print(f"epoch {start.epoch}: saliency refreshed, {int((counts > 0).sum())} of {len(counts)} images with regions")
    if start.world > 1:
        torch.distributed.barrier()


class SGCL(SaliencyGuided):
    def __init__(self, arch, dim, hidden, base_momentum, gamma, neighbours, queue):
        super().__init__()
        self.backbone = build_backbone(arch)
        self.projector, self.predictor = mlp([self.backbone.dim, hidden, dim]), mlp([dim, hidden, dim])
        self.target_backbone, self.target_projector = frozen_copy(self.backbone), frozen_copy(self.projector)
        self.base_momentum, self.gamma, self.neighbours = base_momentum, gamma, neighbours
        add_memory(self, queue, dim)

    def online(self, images):
        return self.predictor(self.projector(self.backbone(images)))

    @torch.no_grad()
    def target(self, images):
        return self.target_projector(self.target_backbone(images))

    def inter_loss(self, prediction: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Weighted BYOL loss of each prediction to its l nearest neighbours in the memory."""
        nearest = nearest_in_memory(self, prediction, self.neighbours)  # [B, l, D]
        if nearest is None:
            return prediction.sum() * 0.0
        losses = byol_loss(prediction[:, None, :].expand_as(nearest), nearest)  # [B, l]
        return (weight[:, None] * losses).mean()

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
        remember(self, torch.cat(targets))
        return intra + inter, {"loss_intra": intra.detach(), "loss_inter": inter.detach()}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        follow_byol_targets(self, step, total_steps)


class SGCLSimCLR(SaliencyGuided):
    def __init__(self, arch, dim, hidden, gamma, neighbours, queue, temperature):
        super().__init__()
        self.backbone = build_backbone(arch)
        self.projector = mlp([self.backbone.dim, hidden, dim], batch_norm=False)
        self.gamma, self.neighbours, self.temperature = gamma, neighbours, temperature
        add_memory(self, queue, dim)

    def intra_loss(self, z1: torch.Tensor, z2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        per_anchor = nt_xent(z1, z2, self.temperature, reduction="none").view(2, -1)  # [2, B]
        return (weight * per_anchor.mean(0)).mean()

    def inter_loss(self, z1: torch.Tensor, z2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        nearest = nearest_in_memory(self, z1, self.neighbours)  # [B, l, D]
        if nearest is None:
            return z2.sum() * 0.0
        logits = torch.einsum("bld,kd->lbk", nearest, F.normalize(z2, dim=1)) / self.temperature  # [l, B, B]
        targets = torch.arange(len(z2), device=z2.device).expand(self.neighbours, -1)
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(self.neighbours, -1)
        return (weight * losses).mean()

    def forward(self, batch: dict):
        crops = batch["saliency"]  # [t, 2, B, 3, S, S]
        weights = batch["saliency_scores"].clamp_min(0) ** self.gamma  # [B, t]
        intra = inter = 0.0
        seconds = []
        for i in range(crops.shape[0]):
            z1, z2 = self.projector(self.backbone(crops[i, 0])), self.projector(self.backbone(crops[i, 1]))
            intra = intra + self.intra_loss(z1, z2, weights[:, i])
            inter = inter + self.inter_loss(z1, z2, weights[:, i])
            seconds.append(z2.detach())
        inter = inter / crops.shape[0]
        remember(self, torch.cat(seconds))
        return intra + inter, {"loss_intra": intra.detach(), "loss_inter": inter.detach()}
