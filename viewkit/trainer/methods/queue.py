"""MoCo's queue of negative keys, gathered over ranks before they enter it."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_from_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenates a [B, ...] tensor over the ranks (no gradient): the keys of the global batch."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class KeyQueue(nn.Module):
    """A ring of `size` L2-normalised keys [size, dim], random at the start as in MoCo."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        ring_write(self.keys, self.pointer, gather_from_ranks(keys.detach().to(self.keys.dtype)))


@torch.no_grad()
def ring_write(ring: torch.Tensor, pointer: torch.Tensor, rows: torch.Tensor) -> None:
    """Writes `rows` into `ring` from `pointer` on, wrapping, and advances the pointer: the
    state that writing them one by one leaves. More rows than the ring holds keep the last."""
    size, count = len(ring), len(rows)
    kept = rows[-size:]
    first = pointer + (count - len(kept))  # where the kept rows would have landed one by one
    ring[(first + torch.arange(len(kept), device=ring.device)) % size] = kept
    pointer.copy_((pointer + count) % size)
