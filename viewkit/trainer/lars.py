"""LARS (You et al. 2017) for large batches; torch has none. Biases and BN parameters
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
