"""The output contract: DALI's per-sample outputs arranged as the tensors users get.

For a batch of B samples (S: a family's view size, V: its view count, t: saliency pairs):

| key | shape | dtype | meaning |
| --- | --- | --- | --- |
| `<family>` (e.g. `global`, `local`) | [V, B, 3, S, S] | recipe dtype | views, ImageNet-normalised |
| `<family>_boxes` | [V, B, 4] | float32 | crop window x0, y0, x1, y1 in source pixels, before flip |
| `<family>_flips` | [V, B] | bool | view was flipped horizontally |
| `original` | [B, 3, S, S] | recipe dtype | whole image resized to S x S (LeOCLR) |
| `original_flip` | [B] | bool | |
| `saliency` | [t, 2, B, 3, S, S] | recipe dtype | crops B', B'' of each drawn region (SGCL) |
| `saliency_boxes` | [t, 2, B, 4] | float32 | their windows in source pixels |
| `saliency_scores` | [B, t] | float32 | score P of each drawn region (1.0 for fallback crops) |
| `saliency_regions` | [B, t, 4] | float32 | the drawn regions (whole image for fallback crops) |
| `swap` | [B, 3, S, S] | recipe dtype | RegionCL composite: sample B-1-i's region pasted into sample i |
| `swap_mask` | [B, 1, S, S] | bool | True inside the pasted box |
| `swap_box` | [4] | int64 | x0, y0, x1, y1 pixels of the box (one per batch) |
| `swap_cells` | [4] | int64 | the same in cells of the swap grid (`swap_grid` px, default 32) |
| `swap_source` | [B] | int64 | B-1-i: whose region composite i holds |
| `image_size` | [B, 2] | int64 | source height, width (loader) |
| `label`, `id` | [B] | int64 | class index (-1: none) and global sample id (loader) |

Image tensors are NCHW in shape and channels_last in memory (DALI writes HWC; this is
the layout convolutions on GPUs prefer), and every tensor is a fresh copy: it stays
valid after the next batch is fetched.
"""

from __future__ import annotations

import torch

from viewkit.views.families import Recipe

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _views(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, V, S, S, 3] -> [V, B, 3, S, S], each view's [B, 3, S, S] channels_last."""
    b, v, h, w, c = tensor.shape
    out = torch.empty((v, b, h, w, c), dtype=dtype, device=tensor.device)
    out.copy_(tensor.permute(1, 0, 2, 3, 4))
    return out.permute(0, 1, 4, 2, 3)


def _image(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, S, S, 3] -> [B, 3, S, S] channels_last."""
    return tensor.to(dtype=dtype, copy=True).permute(0, 3, 1, 2)


def arrange(batch: dict[str, torch.Tensor], recipe: Recipe) -> dict[str, torch.Tensor]:
    """DALI outputs (batch first, as DALIGenericIterator gives them) -> the contract above."""
    dtype = _TORCH_DTYPES[recipe.dtype]
    out = {}
    for family in recipe.crops:
        out[family.name] = _views(batch[family.name], dtype)
        out[f"{family.name}_boxes"] = batch[f"{family.name}_boxes"].transpose(0, 1).contiguous()
        out[f"{family.name}_flips"] = batch[f"{family.name}_flips"].transpose(0, 1).to(torch.bool)
    if recipe.original is not None:
        out["original"] = _image(batch["original"], dtype)
        out["original_flip"] = batch["original_flip"].reshape(-1).to(torch.bool)
    if recipe.saliency is not None:
        b, views, s, _, c = batch["saliency"].shape
        t = views // 2
        crops = batch["saliency"].reshape(b, t * 2, s, s, c)
        arranged = _views(crops, dtype)  # [2t, B, 3, S, S]
        out["saliency"] = arranged.reshape(t, 2, b, c, s, s) if arranged.is_contiguous() else arranged.unflatten(0, (t, 2))
        out["saliency_boxes"] = batch["saliency_boxes"].transpose(0, 1).reshape(t, 2, b, 4).contiguous()
        out["saliency_scores"] = batch["saliency_scores"].reshape(b, t).clone()
        out["saliency_regions"] = batch["saliency_regions"].reshape(b, t, 4).clone()
    if recipe.swap is not None:
        swap = _image(batch["swap"], dtype)
        b, _, h, w = swap.shape
        box = batch["swap_box"][0].to(torch.int64)
        out["swap"] = swap
        out["swap_box"] = box
        out["swap_cells"] = batch["swap_cells"][0].to(torch.int64)
        mask = torch.zeros((b, 1, h, w), dtype=torch.bool, device=swap.device)
        mask[:, :, box[1] : box[3], box[0] : box[2]] = True
        out["swap_mask"] = mask
        out["swap_source"] = torch.arange(b - 1, -1, -1, device=swap.device)
    return out
