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
| `<masks>` (e.g. `masks`) | [B, H, W] | bool | patch masks (random, block): True where a patch is masked |
| `<masks>_context` | [B, H, W] | bool | multi-block patch masks: the context block less the targets |
| `<masks>_targets` | [B, T, H, W] | bool | multi-block patch masks: each target block |
| `image_size` | [B, 2] | int64 | source height, width (loader) |
| `label`, `id` | [B] | int64 | class index (-1: none) and global sample id (loader) |

Image tensors are NCHW in shape and channels_last in memory (DALI writes HWC; this is
the layout convolutions on GPUs prefer), and every tensor is a fresh copy: it stays
valid after the next batch is fetched.
"""

from __future__ import annotations

import torch

from viewkit.views import families
from viewkit.views.families import Recipe
from viewkit.views.plan import TABLE, table_layout
from viewkit.views.rows import TABLE_HEIGHT, TABLE_WIDTH_PX

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def image_size(batch: dict[str, torch.Tensor], recipe: Recipe) -> torch.Tensor:
    """[B, 2] int64 source height, width of each sample (the loader adds it to the batch)."""
    return batch[TABLE][:, table_layout(recipe)["image_size"][0], TABLE_HEIGHT:TABLE_WIDTH_PX + 1].to(torch.int64)


def arrange(batch: dict[str, torch.Tensor], recipe: Recipe) -> dict[str, torch.Tensor]:
    """DALI outputs (batch first, views of DALI's memory) -> the contract above, each family's
    from its rows of the view table."""
    dtype = _TORCH_DTYPES[recipe.dtype]
    table = batch[TABLE]  # [B, R, 13]
    layout = table_layout(recipe)
    out = {}
    for family in families.of(recipe):
        first, count = layout[family.key]
        out |= family.arrange(table[:, first:first + count], batch, dtype)
    return out
