"""What a method gives the engine: the contract every file of this folder follows.

    loss, metrics = method(batch)      forward: views in, a loss and floats to log out
    method.backward(loss)              loss.backward(), unless the method splits its gradient
    optimizer.step()
    method.after_step(step, total)     the one place where target networks follow (EMA)

plus `parameter_groups()` (a group may keep the peak lr: SimSiam's predictor), `backbone`
(what evaluation and saliency read) and `on_epoch_start(epoch, run)` (work between epochs:
SGCL's saliency refresh). A plain base class, not a Protocol: the defaults are the common
case and twelve methods need not repeat them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from viewkit.trainer.nets import Backbone
    from viewkit.trainer.run import Run


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

    def on_epoch_start(self, epoch: int, run: Run) -> None:
        """Before the loader starts epoch `epoch`; `run` gives the config, loader, paths and ranks."""

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters: one group, plus one marked `fixed_lr` for `fixed_lr_modules`."""
        fixed = {id(p) for module in self.fixed_lr_modules for p in module.parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in fixed]}]
        if fixed:
            groups.append({"params": [p for p in trainable if id(p) in fixed], "fixed_lr": True})
        return groups
