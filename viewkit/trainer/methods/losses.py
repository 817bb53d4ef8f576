"""The loss functions the methods share, each as its paper writes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float,
             extra_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """MoCo's InfoNCE (He et al. 2020, Eq. 1): query [B, D] and its positive key [B, D]
    (both L2-normalised, key without gradient), negatives from queue [K, D] and, per
    query, extra_negatives [B, D] (RegionCL). Mean over the batch."""
    positive = (query * key).sum(1, keepdim=True)  # [B, 1]
    negatives = query @ queue.T  # [B, K]
    logits = [positive, negatives]
    if extra_negatives is not None:
        logits.insert(1, (query * extra_negatives).sum(1, keepdim=True))
    logits = torch.cat(logits, 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z') per sample (Grill et al. 2020, Eq. 2); target without gradient. [B]."""
    return 2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=-1)


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)) (Chen & He 2021, Eq. 1 and 3), batch mean."""
    return -F.cosine_similarity(prediction, target.detach(), dim=-1).mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, reduction: str = "mean") -> torch.Tensor:
    """SimCLR's NT-Xent over the 2B views of a batch (Chen et al. 2020, Eq. 1); with
    reduction "none", one loss per anchor [2B]: z1's anchors, then z2's."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # [2B, D]
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    b = len(z1)
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(similarity, targets, reduction=reduction)
