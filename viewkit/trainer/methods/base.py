"""What a method gives the engine: the contract every file of this folder follows.

    loss, metrics = method(batch)      forward: views in, a loss and floats to log out
    method.backward(loss)              loss.backward(), unless the method splits its gradient
    optimizer.step()
    method.after_step(step, total)     the one place where target networks follow (EMA)

plus `parameter_groups()` (a group may keep the peak lr: SimSiam's predictor), `backbone`
(what evaluation and saliency read), `on_epoch_start(start)` (work between epochs: SGCL's
saliency refresh, given an EpochStart, not the whole run) and `checkpoint_extras(out)` (what
a method adds to every checkpoint). A plain base class, not a Protocol: the defaults are
the common case and twelve methods need not repeat them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

if TYPE_CHECKING:
    from viewkit.trainer.nets import Backbone


@dataclass(frozen=True)
class EpochStart:
    """What a method may use between epochs: where the run is, its data and ranks, and the
    one thing it may change in the loader (per-sample regions)."""

    epoch: int
    first: bool  # the first epoch of this process (the run's start, or where it resumed)
    continues: bool  # resumed within this epoch: its start-of-epoch work was done before
    data: str
    out: Path
    rank: int
    world: int
    device: str
    threads: int
    set_side_data: Callable


class Method(nn.Module):
    backbone: Backbone
    # modules whose lr stays at the schedule's peak (SimSiam's `--fix-pred-lr`)
    fixed_lr_modules: tuple[nn.Module, ...] = ()
    # True when `backward` computes and averages gradients itself (torch.autograd.grad, which
    # DistributedDataParallel cannot see): the engine then does not wrap the method in DDP
    averages_own_gradients: bool = False

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def backward(self, loss) -> None:
        loss.backward()

    def after_step(self, step: int, total_steps: int) -> None:
        """After the optimizer step: momentum targets follow the online networks here, for
        every method (MoCo's official update before the keys of step t+1 is the same update)."""

    def on_epoch_start(self, start: EpochStart) -> None:
        """Before the loader starts epoch `start.epoch`."""

    def checkpoint_extras(self, out: Path) -> dict:
        """Entries a checkpoint holds beside the weights (`out`: the run folder)."""
        return {}

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters: one group, plus one marked `fixed_lr` for `fixed_lr_modules`."""
        fixed = {id(p) for module in self.fixed_lr_modules for p in module.parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in fixed]}]
        if fixed:
            groups.append({"params": [p for p in trainable if id(p) in fixed], "fixed_lr": True})
        return groups
