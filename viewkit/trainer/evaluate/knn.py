"""Weighted kNN on frozen features (Wu et al. 2018, as used by DINO/MoCo monitors):
k = 200 neighbours by cosine similarity, votes weighted by exp(sim / T), T = 0.07.

choice: features of the whole image resized to `resolution` squared (the original view,
no crop, no flip), pooled from the backbone's last map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from viewkit.views.augment import Augment
from viewkit.views.families import Original, Recipe


@torch.no_grad()
def extract(backbone: torch.nn.Module, dataset, *, resolution: int = 224, batch_size: int = 64, device: str = "cpu",
            threads: int = 0, normalize: bool = True, progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [N, C] (L2-normalised unless told not to) and labels [N], ordered by sample id.
    `progress`: a label for a progress bar (none without it)."""
    from viewkit.loaders.view_loader import ViewLoader

    loader = ViewLoader(dataset, Recipe("eval", original=Original(resolution, Augment(flip_p=0.0))), batch_size,
                        device=device, drop_last=False, shuffle=False, augment=False, rank=0, world_size=1,
                        threads=threads, build_ahead=False)  # one pass: no next epoch
    torch_device = torch.device("cuda" if device == "gpu" else "cpu")
    was_training = backbone.training
    backbone.eval()
    features, labels, ids = [], [], []
    for batch in tqdm(loader, desc=progress, unit="batch", leave=False, disable=progress is None):
        valid = batch["valid"].cpu()
        with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=torch_device.type == "cuda"):
            out = backbone(batch["original"].to(torch_device))
        out = F.normalize(out.float(), dim=1) if normalize else out.float()
        features.append(out.cpu()[valid])
        labels.append(batch["label"].cpu()[valid])
        ids.append(batch["id"].cpu()[valid])
    backbone.train(was_training)
    order = torch.argsort(torch.cat(ids))
    return torch.cat(features)[order], torch.cat(labels)[order]


def knn_top1(train_features: torch.Tensor, train_labels: torch.Tensor, val_features: torch.Tensor,
             val_labels: torch.Tensor, k: int = 200, temperature: float = 0.07) -> float:
    """Top-1 accuracy (fraction) of weighted kNN voting."""
    if (train_labels < 0).any() or (val_labels < 0).any():
        raise ValueError("kNN needs labelled shards (every label >= 0)")
    classes = int(max(train_labels.max(), val_labels.max())) + 1
    k = min(k, len(train_features))
    similarity = val_features @ train_features.T  # [V, N]
    top, index = similarity.topk(k, dim=1)
    weights = (top / temperature).exp()
    votes = torch.zeros(len(val_features), classes).scatter_add_(1, train_labels[index], weights)
    return (votes.argmax(1) == val_labels).float().mean().item()
