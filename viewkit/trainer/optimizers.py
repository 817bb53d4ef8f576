"""Optimisers: LARS (You et al. 2017) for large batches, which torch lacks, and the run's SGD or
LARS over a method's parameter groups. LARS: biases and BN parameters
(1-d) get neither the trust ratio nor weight decay, as in BYOL/SimCLR/SGCL."""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust=trust))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:
                    update = update.add(p, alpha=group["weight_decay"])
                    weight_norm, update_norm = p.norm(), update.norm()
                    ratio = torch.where((weight_norm > 0) & (update_norm > 0),
                                        group["trust"] * weight_norm / update_norm, torch.ones_like(weight_norm))
                    update = update.mul(ratio)
                buffer = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buffer.mul_(group["momentum"]).add_(update)
                p.add_(buffer, alpha=-group["lr"])


def make_optimizer(config, method) -> torch.optim.Optimizer:
    """SGD or LARS over the method's parameter groups (see Method.parameter_groups)."""
    groups = method.parameter_groups()
    if config.optimizer == "lars":
        return LARS(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float, peak: float) -> None:
    """`lr` for every group but those marked `fixed_lr`, which keep the peak."""
    for group in optimizer.param_groups:
        group["lr"] = peak if group.get("fixed_lr") else lr
