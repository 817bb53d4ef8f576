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
from viewkit.views.plan import TABLE, table_layout
from viewkit.views.rows import (TABLE_BOX, TABLE_FLIP, TABLE_HEIGHT, TABLE_PAIR_WINDOWS, TABLE_SCORE, TABLE_SWAP_CELLS,
                                TABLE_WIDTH_PX)

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _frames(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, V, S, S, 3] -> [V, B, 3, S, S], each view's [B, 3, S, S] channels_last: the one copy
    between DALI's memory and the user's tensor (the permute and any dtype cast ride on it)."""
    b, v, h, w, c = tensor.shape
    out = torch.empty((v, b, h, w, c), dtype=dtype, device=tensor.device)
    out.copy_(tensor.permute(1, 0, 2, 3, 4))
    return out.permute(0, 1, 4, 2, 3)


def _fresh(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy: small tensors never alias DALI's buffers."""
    return tensor.clone(memory_format=torch.contiguous_format)


def image_size(batch: dict[str, torch.Tensor], recipe: Recipe) -> torch.Tensor:
    """[B, 2] int64 source height, width of each sample (the loader adds it to the batch)."""
    return batch[TABLE][:, table_layout(recipe)["image_size"][0], TABLE_HEIGHT:TABLE_WIDTH_PX + 1].to(torch.int64)


def arrange(batch: dict[str, torch.Tensor], recipe: Recipe) -> dict[str, torch.Tensor]:
    """DALI outputs (batch first, views of DALI's memory) -> the contract above."""
    dtype = _TORCH_DTYPES[recipe.dtype]
    table = batch[TABLE]  # [B, R, 13]
    layout = table_layout(recipe)
    out = {}
    for family in recipe.crops:
        first, count = layout[family.name]
        rows = table[:, first : first + count]
        out[family.name] = _frames(batch[family.name], dtype)
        out[f"{family.name}_boxes"] = _fresh(rows[..., TABLE_BOX:TABLE_BOX + 4].transpose(0, 1))
        out[f"{family.name}_flips"] = rows[..., TABLE_FLIP].transpose(0, 1) > 0.5
    if recipe.original is not None:
        out["original"] = batch["original"].to(dtype=dtype, copy=True).permute(0, 3, 1, 2)  # [B, 3, S, S]
        out["original_flip"] = table[:, layout["original"][0], TABLE_FLIP] > 0.5
    if recipe.saliency is not None:
        first, t = layout["saliency"]
        rows = table[:, first : first + t]  # [B, t, 13]: region, score, window B', window B''
        b = rows.shape[0]
        out["saliency"] = _frames(batch["saliency"], dtype).unflatten(0, (t, 2))
        windows = rows[..., TABLE_PAIR_WINDOWS:TABLE_PAIR_WINDOWS + 8]
        out["saliency_boxes"] = _fresh(windows.reshape(b, t, 2, 4).permute(1, 2, 0, 3))
        out["saliency_scores"] = _fresh(rows[..., TABLE_SCORE])
        out["saliency_regions"] = _fresh(rows[..., TABLE_BOX:TABLE_BOX + 4])
    if recipe.swap is not None:
        row = table[0, layout["swap"][0]].to(torch.int64)  # sample 0's draw is the batch's box
        swap = batch["swap"].to(dtype=dtype, copy=True).permute(0, 3, 1, 2)
        b, _, h, w = swap.shape
        box = row[TABLE_BOX:TABLE_BOX + 4]
        out["swap"] = swap
        out["swap_box"] = box
        out["swap_cells"] = row[TABLE_SWAP_CELLS:TABLE_SWAP_CELLS + 4]
        mask = torch.zeros((b, 1, h, w), dtype=torch.bool, device=swap.device)
        mask[:, :, box[1] : box[3], box[0] : box[2]] = True
        out["swap_mask"] = mask
        out["swap_source"] = torch.arange(b - 1, -1, -1, device=swap.device)
    return out
