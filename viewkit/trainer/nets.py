"""Backbones (torchvision ResNets, no pretrained weights) and the MLP heads of the papers."""

from __future__ import annotations

import copy

import torch
import torchvision
from torch import nn


class Backbone(nn.Module):
    """A torchvision ResNet without its classifier: feature map and pooled features.

    `arch` is a torchvision ResNet name ("resnet18", "resnet50", ...), optionally with the
    suffix "-lowres": the same network without the stem's max-pool, so the last map has
    stride 16. choice (viewkit's, for views of 96 px and below such as the CPU checks): at
    64 px the standard stem leaves a 2 x 2 map; the papers' 224 px runs use the plain name.
    The weights are the same tensors either way (the max-pool has none).
    """

    def __init__(self, arch: str = "resnet50"):
        super().__init__()
        name, _, variant = arch.partition("-")
        if not name.startswith("resnet") or not hasattr(torchvision.models, name) or variant not in ("", "lowres"):
            raise ValueError(f"arch {arch!r}: a torchvision ResNet (resnet18, resnet50, ...), optionally with "
                             f"'-lowres' (no stem max-pool)")
        resnet = getattr(torchvision.models, name)(weights=None)
        self.arch = arch
        self.dim = resnet.fc.in_features  # 512 (resnet18/34) or 2048
        self.stride = 16 if variant == "lowres" else 32
        self.trunk = nn.Sequential(*list(resnet.children())[:-2])
        if variant == "lowres":
            self.trunk[3] = nn.Identity()

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)  # [B, C, H/stride, W/stride]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images).mean((2, 3))  # [B, C]

    _NAMES = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]

    def torchvision_state(self) -> dict:
        """State dict in torchvision ResNet names (for `viewkit saliency`, eval and other tools)."""
        return {f"{self._NAMES[int(k.split('.', 1)[0])]}.{k.split('.', 1)[1]}": v.detach().clone()
                for k, v in self.trunk.state_dict().items()}

    def load_torchvision_state(self, state: dict) -> None:
        index = {name: i for i, name in enumerate(self._NAMES)}
        self.trunk.load_state_dict({f"{index[k.split('.', 1)[0]]}.{k.split('.', 1)[1]}": v for k, v in state.items()
                                    if k.split(".", 1)[0] in index})


def build_backbone(arch: "str | Backbone") -> "Backbone":
    """A Backbone by name; a Backbone given is used as it is (tests inject a small CNN with
    the same attributes, so loss and wiring checks need no ResNet)."""
    return arch if isinstance(arch, Backbone) else Backbone(arch)


def mlp(dims: list[int], batch_norm: bool = True, last_batch_norm: bool = False, last_affine: bool = True) -> nn.Sequential:
    """Linear layers with BN + ReLU between them: dims [in, hidden, ..., out]."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=not (batch_norm and not last) and not (last and last_batch_norm)))
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU(inplace=True))
        elif last_batch_norm:
            layers.append(nn.BatchNorm1d(b, affine=last_affine))
    return nn.Sequential(*layers)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target/momentum network: same weights, no gradients."""
    target = copy.deepcopy(module)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    return target


@torch.no_grad()
def follow_byol_targets(method: nn.Module, step: int, total_steps: int) -> float:
    """The BYOL family's target (backbone and projector) one step nearer the online networks,
    its momentum from `base_momentum` to 1 on a cosine over the run; returns the momentum
    (SCD's semantic head follows with it). The MoCo family's constant-momentum copy is
    `MomentumEncoder.update` (methods/moco.py), on the same `ema_update`."""
    from viewkit.trainer.schedules import ema_momentum

    momentum = ema_momentum(step, total_steps, method.base_momentum)
    ema_update(method.target_backbone, method.backbone, momentum)
    ema_update(method.target_projector, method.projector, momentum)
    return momentum


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online; buffers (BN statistics) copied."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)
