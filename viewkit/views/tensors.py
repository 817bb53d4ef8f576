"""DALI's per-sample outputs as the tensors users get: the copies the families' `arrange` make."""

from __future__ import annotations

import torch


def frames(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, V, S, S, 3] -> [V, B, 3, S, S], each view's [B, 3, S, S] channels_last: the one copy
    between DALI's memory and the user's tensor (the permute and any dtype cast ride on it)."""
    b, v, h, w, c = tensor.shape
    out = torch.empty((v, b, h, w, c), dtype=dtype, device=tensor.device)
    out.copy_(tensor.permute(1, 0, 2, 3, 4))
    return out.permute(0, 1, 4, 2, 3)


def image(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, S, S, 3] -> [B, 3, S, S] channels_last, a copy."""
    return tensor.to(dtype=dtype, copy=True).permute(0, 3, 1, 2)


def fresh(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy: small tensors never alias DALI's buffers."""
    return tensor.clone(memory_format=torch.contiguous_format)
