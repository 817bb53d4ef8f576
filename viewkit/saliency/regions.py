"""Regions, boxes and scores from saliency maps (SGCL Eq. 4 and 5).

Threshold each map at its mean; connected components of the mask (scikit-image
`measure.label`, 8-connectivity: choice, the paper does not say; diagonal cells of one
object stay one region); drop components of fewer than `min_cells` cells; each region's
box is its cell bounding box mapped to source pixels; its score P = max(S in region) /
max(S) on S as given (for Ncut maps S = Y, as the paper). Strongest first, at most top_k:
choice, the paper keeps every region; top_k (8) bounds the store's width, and a scene
image rarely has more above-mean components of min_cells cells.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage import measure

from viewkit.saliency.scatter import segment_reduce


def label_components(mask: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """[B, h, w] bool -> labels [B, h, w] numbered across the batch (0: none), and the
    number of components of each image. Labelling runs on the CPU, image by image."""
    labels = np.zeros(mask.shape, dtype=np.int64)
    counts, offset = [], 0
    for i, image_mask in enumerate(mask.cpu().numpy()):
        image_labels, count = measure.label(image_mask, connectivity=2, return_num=True)
        labels[i] = np.where(image_labels > 0, image_labels + offset, 0)
        counts.append(count)
        offset += count
    return torch.from_numpy(labels).to(mask.device), counts


def saliency_regions(saliency: torch.Tensor, image_sizes: torch.Tensor, min_cells: int = 4, top_k: int = 8):
    """S [B, h, w] with a positive maximum, image_sizes [B, 2] (height, width) ->
    boxes [B, K, 4] (x0, y0, x1, y1 source pixels, strongest first), scores [B, K], counts [B]."""
    b, h, w = saliency.shape
    mask = saliency > saliency.mean((1, 2), keepdim=True)
    labels, _ = label_components(mask)
    total = int(labels.max())
    boxes = torch.zeros((b, top_k, 4), dtype=torch.float32, device=saliency.device)
    scores = torch.zeros((b, top_k), dtype=torch.float32, device=saliency.device)
    if total == 0:
        return boxes, scores, torch.zeros(b, dtype=torch.int64, device=saliency.device)
    flat_labels = labels.reshape(-1)
    inside = flat_labels > 0
    segment = flat_labels[inside] - 1  # [n] in [0, total)
    rows = torch.arange(h, device=saliency.device).repeat_interleave(w).repeat(b)[inside].float()
    cols = torch.arange(w, device=saliency.device).repeat(h * b)[inside].float()
    values = saliency.reshape(-1)[inside].float()
    image_of = torch.arange(b, device=saliency.device).repeat_interleave(h * w)[inside]
    cells = torch.bincount(segment, minlength=total)
    peak = segment_reduce(values, segment, total, "amax")
    row0, row1 = segment_reduce(rows, segment, total, "amin"), segment_reduce(rows, segment, total, "amax")
    col0, col1 = segment_reduce(cols, segment, total, "amin"), segment_reduce(cols, segment, total, "amax")
    owner = segment_reduce(image_of.float(), segment, total, "amax").long()
    max_saliency = saliency.reshape(b, -1).amax(-1).clamp_min(1e-12)
    # choice: a region above a negative mean can peak below zero, where Eq. 5 gives a negative
    # score (and P^gamma no number): such regions score 0, never drawn
    region_score = (peak / max_saliency[owner]).clamp(0.0, 1.0)
    heights, widths = image_sizes[owner, 0].float(), image_sizes[owner, 1].float()
    region_boxes = torch.stack([col0 * widths / w, row0 * heights / h, (col1 + 1) * widths / w,
                                (row1 + 1) * heights / h], -1)
    # Strongest first within each image, images in order: two stable sorts, no loop.
    kept = torch.nonzero(cells >= min_cells).reshape(-1)
    order = kept[torch.argsort(region_score[kept], descending=True, stable=True)]
    order = order[torch.argsort(owner[order], stable=True)]
    image = owner[order]
    per_image = torch.bincount(image, minlength=b)
    rank = torch.arange(len(order), device=saliency.device) - (torch.cumsum(per_image, 0) - per_image)[image]
    take = rank < top_k
    boxes[image[take], rank[take]] = region_boxes[order[take]]
    scores[image[take], rank[take]] = region_score[order[take]]
    return boxes, scores, per_image.clamp_max(top_k)
