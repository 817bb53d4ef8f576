"""LoGo (Zhang et al. 2022, "Leverage Your Local and Global Representations: A New
Self-Supervised Learning Strategy"), on MoCo-v2 (2 global + 2 local views), as the
authors' official code (`MoCo_LoGo`, `Regressor_softplus`, `train_moco`) trains it.

    L_gg = l(g1, k2) + l(g2, k1)                         globals attract (InfoNCE, queue)
    L_lg = sum over locals j and globals i of l(l_j, k_i)  locals attract to globals
    main = (L_gg + L_lg) / 6                              the mean of the six InfoNCE terms
    L_ll = softplus(r(l_1, l_2))                          locals of one image are pushed apart
r is a learned critic: an MLP on the concatenated (L2-normalised) local projections, with
hidden width 256 and BN, ending in one unbounded output. It is trained, on detached
inputs, with the logistic objective
    softplus(-r(l_1 + n, l_2 + n')) + softplus(r(l_1, l_2 of another image)),
both pair orders, averaged, with Gaussian noise n, n' of std 0.3 / sqrt(dim) on the
positive pairs; the encoder minimises L_ll through the critic's held weights. Keys of both
globals enter the queue.

Official code (default, `ll_mode="clip"`): L_ll takes its own encoder gradient, whose norm
is clipped to 0.015 x the norm of the main loss's gradient; the main gradient itself is
clipped at norm 100 over the query encoder (`clip_grad_norm_(encoder_q, 100)`, option
`grad_clip`), and the L_ll step carries its own weight decay, 1e-4 over the encoder's
parameters (option `ll_weight_decay`), on top of the main step's. Paper
(`ll_mode="lambda"`): L = main + lambda L_ll, lambda 5e-4 (MoCo) / 1e-4 (SimSiam), one
gradient, neither of the official code's two additions.
`critic_layers` counts the linear layers, the head included: the official critic has 3.

On SimSiam (`logo_simsiam`): l is SimSiam's D(p(x), sg(z(y))) and the critic sees the
L2-normalised projections z; the paper's lambda is 1e-4.

choices (where the official code's mechanics were not kept, the objective is):
- one optimizer step per iteration: the clipped L_ll gradient, and the L_ll step's weight
  decay (ll_weight_decay x the parameter), are added to the main gradient, clipped against
  this step's main gradient norm (before its clip at 100, as the official clip_grad_norm_
  returns it); the official code takes a separate SGD step for L_ll (its own momentum
  buffer), clipped against the previous step's main norm, and updates the key encoder on
  both forward passes;
- the critic trains in the same optimizer as the encoder, so its lr follows the schedule
  (the official critic has its own SGD at a constant lr);
- a local's negative partner is the next image's local (`roll(1)`), never itself; the
  official `flip(0)` pairs the middle image of an odd batch with itself;
- positive and negative pairs go through the critic in one batch, so its BatchNorm
  normalises both with the same statistics;
- L_gg and L_lg of the SimSiam variant are halved per pair as SimSiam's symmetric loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from viewkit.trainer.methods.base import Method
from viewkit.trainer.methods.losses import info_nce, negative_cosine
from viewkit.trainer.methods.moco import MomentumEncoder
from viewkit.trainer.methods.queue import KeyQueue
from viewkit.trainer.nets import build_backbone, mlp

SIMSIAM_DEFAULTS = {"dim": 2048, "predictor_hidden": 512, "ll_mode": "clip", "clip_ratio": 0.015, "ll_weight": 1e-4,
                    "critic_hidden": 256, "critic_layers": 3, "critic_noise": 0.3, "grad_clip": 100.0,
                    "ll_weight_decay": 1e-4,
                    "fixed_predictor_lr": True}  # choice: SimSiam's own setting (see trainer/simsiam.py)
DEFAULTS = {"dim": 128, "hidden": 2048, "queue": 4096, "momentum": 0.999, "temperature": 0.07,
            "ll_mode": "clip", "clip_ratio": 0.015, "ll_weight": 5e-4, "critic_hidden": 256, "critic_layers": 3,
            "critic_noise": 0.3, "grad_clip": 100.0, "ll_weight_decay": 1e-4}


def critic(dim: int, hidden: int, layers: int) -> nn.Sequential:
    """`layers` linear layers on a pair's concatenation [a, b]: BN + ReLU between, one output."""
    if layers < 1:
        raise ValueError(f"critic_layers {layers}: at least 1 (the output layer)")
    blocks: list[nn.Module] = []
    width = 2 * dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, 1))


def _scores(model: nn.Module, pairs: torch.Tensor, frozen: bool) -> torch.Tensor:
    """r on each row of `pairs`; `frozen`: no gradient reaches the critic's parameters and its
    BatchNorm running statistics are left alone."""
    if not frozen:
        return model(pairs).squeeze(1)
    held = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return torch.func.functional_call(model, held | buffers, (pairs,)).squeeze(1)


def critic_terms(model: nn.Module, local1: torch.Tensor, local2: torch.Tensor, noise: float):
    """(the critic's logistic loss on detached inputs, L_ll for the encoder with the critic held)."""
    a, b = local1.detach(), local2.detach()
    std = noise / a.shape[1] ** 0.5
    noise_a, noise_b = std * torch.randn_like(a), std * torch.randn_like(b)
    pairs = torch.cat([torch.cat([a + noise_a, b + noise_b], 1), torch.cat([b + noise_a, a + noise_b], 1),
                       torch.cat([a, b.roll(1, dims=0)], 1), torch.cat([b, a.roll(1, dims=0)], 1)])
    positive_12, positive_21, negative_12, negative_21 = _scores(model, pairs, frozen=False).chunk(4)
    critic_loss = (0.5 * F.softplus(-positive_12) + 0.5 * F.softplus(-positive_21)
                   + 0.5 * F.softplus(negative_12) + 0.5 * F.softplus(negative_21)).mean()
    local_local = F.softplus(_scores(model, torch.cat([local1, local2], 1), frozen=True)).mean()
    return critic_loss, local_local


@dataclass
class SplitLoss:
    """The main loss and L_ll, kept apart for the clipped backward; logged as their sum."""

    main: torch.Tensor
    local_local: torch.Tensor

    def item(self) -> float:
        return (self.main.detach() + self.local_local.detach()).item()


def clipped_backward(method: nn.Module, loss: SplitLoss | torch.Tensor) -> None:
    """Official LoGo: the encoder's main gradient clipped at norm `grad_clip`, plus the L_ll
    gradient clipped to clip_ratio x |the encoder's main gradient| and the L_ll step's weight
    decay. Gradients are averaged over ranks here (DDP cannot see torch.autograd.grad)."""
    if isinstance(loss, torch.Tensor):  # ll_mode "lambda": one loss, DDP averages
        loss.backward()
        return
    main, local_local = loss.main, loss.local_local
    parameters = [p for p in method.parameters() if p.requires_grad]
    main_grads = torch.autograd.grad(main, parameters, retain_graph=True, allow_unused=True)
    ll_grads = torch.autograd.grad(local_local, parameters, allow_unused=True)

    critic = {id(p) for p in method.critic.parameters()}

    def encoder_norm(grads):  # the encoder's gradient, as the official clip_grad_norm_ over encoder_q
        return torch.sqrt(sum((g.float() ** 2).sum() for p, g in zip(parameters, grads)
                              if g is not None and id(p) not in critic))

    main_norm = encoder_norm(main_grads)
    scale = torch.clamp(method.clip_ratio * main_norm / (encoder_norm(ll_grads) + 1e-12), max=1.0)
    main_scale = torch.clamp(method.grad_clip / (main_norm + 1e-6), max=1.0)  # as clip_grad_norm_
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    for p, gm, gl in zip(parameters, main_grads, ll_grads):
        encoder = id(p) not in critic
        grad = torch.zeros_like(p) if gm is None else gm * main_scale if encoder else gm.clone()
        if gl is not None:
            grad += scale * gl
        if world > 1:
            dist.all_reduce(grad)
            grad /= world
        if gl is not None and encoder:
            grad += method.ll_weight_decay * p.detach()
        p.grad = grad


def _finish(method: nn.Module, main: torch.Tensor, local_local: torch.Tensor, metrics: dict):
    if method.ll_mode == "lambda":
        return main + method.ll_weight * local_local, metrics
    return SplitLoss(main, local_local), metrics


class LoGo(Method):
    def __init__(self, arch, dim, hidden, queue, momentum, temperature, ll_mode, clip_ratio, ll_weight, critic_hidden,
                 critic_layers, critic_noise, grad_clip=100.0, ll_weight_decay=1e-4):
        super().__init__()
        if ll_mode not in ("clip", "lambda"):
            raise ValueError(f"ll_mode {ll_mode!r}: 'clip' (official code) or 'lambda' (paper)")
        self.encoder = MomentumEncoder(arch, dim, hidden, momentum)
        self.backbone = self.encoder.backbone
        self.critic = critic(dim, critic_hidden, critic_layers)
        self.critic_noise = critic_noise
        self.queue = KeyQueue(queue, dim)
        self.temperature, self.ll_mode, self.clip_ratio, self.ll_weight = temperature, ll_mode, clip_ratio, ll_weight
        self.grad_clip, self.ll_weight_decay = grad_clip, ll_weight_decay
        self.averages_own_gradients = ll_mode == "clip"

    def forward(self, batch: dict):
        globals_, locals_ = batch["global"], batch["local"]
        negatives = self.queue.keys.clone()
        g = [self.encoder.query(view) for view in globals_]
        k = [self.encoder.key(view) for view in globals_]
        l = [self.encoder.query(view) for view in locals_]
        t = self.temperature
        global_global = info_nce(g[0], k[1], negatives, t) + info_nce(g[1], k[0], negatives, t)
        local_global = sum(info_nce(lj, ki, negatives, t) for lj in l for ki in k)
        critic_loss, local_local = critic_terms(self.critic, l[0], l[1], self.critic_noise)
        self.queue.push(torch.cat(k))
        # the critic's loss reaches only the critic (its inputs are detached)
        main = (global_global + local_global) / 6 + critic_loss
        metrics = {"loss_gg": global_global.detach(), "loss_lg": local_global.detach(),
                   "loss_critic": critic_loss.detach(), "loss_ll": local_local.detach()}
        return _finish(self, main, local_local, metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        self.encoder.update()

    def backward(self, loss: SplitLoss | torch.Tensor) -> None:
        clipped_backward(self, loss)


class LoGoSimSiam(Method):
    """LoGo on SimSiam: SimSiam's projector/predictor, no momentum network, no queue."""

    def __init__(self, arch, dim, predictor_hidden, ll_mode, clip_ratio, ll_weight, critic_hidden, critic_layers,
                 critic_noise, fixed_predictor_lr=True, grad_clip=100.0, ll_weight_decay=1e-4):
        super().__init__()
        if ll_mode not in ("clip", "lambda"):
            raise ValueError(f"ll_mode {ll_mode!r}: 'clip' (official code) or 'lambda' (paper)")
        self.backbone = build_backbone(arch)
        self.projector = mlp([self.backbone.dim, dim, dim, dim], last_batch_norm=True, last_affine=False)
        self.predictor = mlp([dim, predictor_hidden, dim])
        self.fixed_lr_modules = (self.predictor,) if fixed_predictor_lr else ()
        self.critic = critic(dim, critic_hidden, critic_layers)
        self.critic_noise = critic_noise
        self.ll_mode, self.clip_ratio, self.ll_weight = ll_mode, clip_ratio, ll_weight
        self.grad_clip, self.ll_weight_decay = grad_clip, ll_weight_decay
        self.averages_own_gradients = ll_mode == "clip"

    def forward(self, batch: dict):
        z_g = [self.projector(self.backbone(view)) for view in batch["global"]]
        z_l = [self.projector(self.backbone(view)) for view in batch["local"]]
        p_g, p_l = [self.predictor(z) for z in z_g], [self.predictor(z) for z in z_l]
        global_global = negative_cosine(p_g[0], z_g[1]) / 2 + negative_cosine(p_g[1], z_g[0]) / 2
        local_global = sum(negative_cosine(p, z) / 2 for p in p_l for z in z_g)
        critic_loss, local_local = critic_terms(self.critic, F.normalize(z_l[0], dim=1), F.normalize(z_l[1], dim=1),
                                                self.critic_noise)
        metrics = {"loss_gg": global_global.detach(), "loss_lg": local_global.detach(),
                   "loss_critic": critic_loss.detach(), "loss_ll": local_local.detach()}
        return _finish(self, global_global + local_global + critic_loss, local_local, metrics)

    def backward(self, loss: SplitLoss | torch.Tensor) -> None:
        clipped_backward(self, loss)
