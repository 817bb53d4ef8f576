"""Where a run computes: its rank among the processes, its device, its share of the CPU."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def setup_distributed(device: str) -> tuple[int, int]:
    """(rank, world size) under torchrun's environment; (0, 1) without it."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if device == "gpu":  # before NCCL starts, so each rank's communicator binds its own GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "gpu" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@contextlib.contextmanager
def cpu_threads(threads: int, device: str):
    """torch's compute threads at `threads` on the CPU (0: torch's own setting), as before after.

    A command's `threads` is its share of the host's cores, for torch's compute as for
    DALI's: with torch's default (every core) two training runs side by side with threads=1
    each ran at 11 and 8 samples/s on 2 cores, against 34 and 30 with one torch thread each.
    Given back on return: train, eval and saliency are also called as functions."""
    if threads < 0:
        raise ValueError(f"threads {threads}: 0 (every core) or a positive count")
    given = torch.get_num_threads()
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(given)


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4 and value.shape[1] == 3:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out
