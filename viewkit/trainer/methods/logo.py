"""LoGo (Zhang et al. 2022, "Leverage Your Local and Global Representations: A New
Self-Supervised Learning Strategy"), on MoCo-v2 (2 global + 2 local views).

    L_gg = l(g1, g2) + l(g2, g1)                      globals attract (InfoNCE, queue)
    L_lg = sum over locals j and globals i of l(l_j, sg(g_i))   locals attract to globals
    L_ll = f(l_1, l_2)                                locals of one image are pushed apart
f is a learned critic (MLP on the concatenated embeddings, positive output) trained to
maximise Omega = E_pos f - E_neg f, negatives pairing a local crop with a local crop of
another image of the batch (here: the next image).

Official code (default, `ll_mode="clip"`): L_ll takes its own encoder gradient, whose norm
is clipped to 0.015 x the norm of the main loss's gradient, with a 3-layer critic with BN.
Paper (`ll_mode="lambda"`): L = L_gg + L_lg + lambda L_ll, lambda 5e-4 (MoCo) / 1e-4
(SimSiam), and `critic_layers=5`.

On SimSiam (`logo_simsiam`): l is SimSiam's D(p(x), sg(z(y))) and the critic sees the
L2-normalised projections z; the paper's lambda is 1e-4.

choices: critic input is the pair of L2-normalised (query) projections; the MoCo queue
takes the keys of global 1 only; L_gg and L_lg of the SimSiam variant are halved per pair
as SimSiam's symmetric loss.

choice, critic output (`critic_output`): Eq. 6 has no maximum over an unconstrained
f: R^n x R^n -> R+ (a critic that separates pairs at all can scale its output without
bound). With the paper's softplus (`"softplus"`, kept as an option) Omega grew to 4,865 and
L_ll to 5,986 by step 330 of the CPU logo_moco check, and a lone critic on separable
synthetic pairs (`train_critic` in tests/test_trainer_math.py) reached 8.6e20 in 200 SGD
steps, on the way to inf. The default `"sigmoid"` keeps f in (0, 1),
still positive, so Omega is in (-1, 1): near 1 for separable pairs, near 0 for unrelated ones.
choice: positive and negative pairs go through the critic in one batch, so its BatchNorm
normalises both with the same statistics (separate calls would let it tell them apart by
batch statistics alone).
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
                    "critic_hidden": 512, "critic_layers": 3, "critic_output": "sigmoid",
                    "fixed_predictor_lr": True}  # choice: SimSiam's own setting (see trainer/simsiam.py)
DEFAULTS = {"dim": 128, "hidden": 2048, "queue": 4096, "momentum": 0.999, "temperature": 0.07,
            "ll_mode": "clip", "clip_ratio": 0.015, "ll_weight": 5e-4, "critic_hidden": 512, "critic_layers": 3,
            "critic_output": "sigmoid"}
CRITIC_OUTPUTS = {"sigmoid": nn.Sigmoid, "softplus": nn.Softplus}


def critic(dim: int, hidden: int, layers: int, output: str = "sigmoid") -> nn.Sequential:
    if output not in CRITIC_OUTPUTS:
        raise ValueError(f"critic_output {output!r}: one of {sorted(CRITIC_OUTPUTS)}")
    blocks: list[nn.Module] = []
    width = 2 * dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, 1), CRITIC_OUTPUTS[output]())


def affinity(model: nn.Module, a: torch.Tensor, b: torch.Tensor, frozen: bool = False) -> torch.Tensor:
    """f on the positive pairs (a_i, b_i) and the negatives (a_i, b_{i-1}, another image's
    local), in one batch: ([B], [B]). `frozen`: no gradient reaches the critic's parameters
    and its BatchNorm running statistics are left alone."""
    pairs = torch.cat([torch.cat([a, b], dim=1), torch.cat([a, b.roll(1, dims=0)], dim=1)])
    if not frozen:
        scores = model(pairs).squeeze(1)
    else:
        held = {name: p.detach() for name, p in model.named_parameters()}
        buffers = {name: b.clone() for name, b in model.named_buffers()}
        scores = torch.func.functional_call(model, held | buffers, (pairs,)).squeeze(1)
    return scores.chunk(2)


def critic_terms(model: nn.Module, local1: torch.Tensor, local2: torch.Tensor):
    """Omega (trains the critic: its inputs are detached) and L_ll = E_pos f (trains the
    encoder: the critic's weights are held)."""
    positive, negative = affinity(model, local1.detach(), local2.detach())
    return positive.mean() - negative.mean(), affinity(model, local1, local2, frozen=True)[0].mean()


@dataclass
class SplitLoss:
    """The main loss and L_ll, kept apart for the clipped backward; logged as their sum."""

    main: torch.Tensor
    local_local: torch.Tensor

    def item(self) -> float:
        return (self.main.detach() + self.local_local.detach()).item()


def clipped_backward(method: nn.Module, loss: SplitLoss | torch.Tensor) -> None:
    """Official LoGo: the L_ll gradient, clipped to clip_ratio x |grad of the main loss|.
    Gradients are averaged over ranks here (DDP cannot see torch.autograd.grad)."""
    if isinstance(loss, torch.Tensor):  # ll_mode "lambda": one loss, DDP averages
        loss.backward()
        return
    main, local_local = loss.main, loss.local_local
    parameters = [p for p in method.parameters() if p.requires_grad]
    main_grads = torch.autograd.grad(main, parameters, retain_graph=True, allow_unused=True)
    ll_grads = torch.autograd.grad(local_local, parameters, allow_unused=True)

    def norm(grads):
        return torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))

    scale = torch.clamp(method.clip_ratio * norm(main_grads) / (norm(ll_grads) + 1e-12), max=1.0)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    for p, gm, gl in zip(parameters, main_grads, ll_grads):
        grad = torch.zeros_like(p) if gm is None else gm.clone()
        if gl is not None:
            grad += scale * gl
        if world > 1:
            dist.all_reduce(grad)
            grad /= world
        p.grad = grad


def _finish(method: nn.Module, main: torch.Tensor, local_local: torch.Tensor, metrics: dict):
    if method.ll_mode == "lambda":
        return main + method.ll_weight * local_local, metrics
    return SplitLoss(main, local_local), metrics


class LoGo(Method):
    def __init__(self, arch, dim, hidden, queue, momentum, temperature, ll_mode, clip_ratio, ll_weight, critic_hidden,
                 critic_layers, critic_output="sigmoid"):
        super().__init__()
        if ll_mode not in ("clip", "lambda"):
            raise ValueError(f"ll_mode {ll_mode!r}: 'clip' (official code) or 'lambda' (paper)")
        self.encoder = MomentumEncoder(arch, dim, hidden, momentum)
        self.backbone = self.encoder.backbone
        self.critic = critic(dim, critic_hidden, critic_layers, critic_output)
        self.queue = KeyQueue(queue, dim)
        self.temperature, self.ll_mode, self.clip_ratio, self.ll_weight = temperature, ll_mode, clip_ratio, ll_weight
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
        omega, local_local = critic_terms(self.critic, l[0], l[1])  # the encoder pushes locals apart
        self.queue.push(k[0])
        main = global_global + local_global - omega  # -omega trains the critic only (inputs detached)
        metrics = {"loss_gg": global_global.detach(), "loss_lg": local_global.detach(), "omega": omega.detach(),
                   "loss_ll": local_local.detach()}
        return _finish(self, main, local_local, metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        self.encoder.update()

    def backward(self, loss: SplitLoss | torch.Tensor) -> None:
        clipped_backward(self, loss)


class LoGoSimSiam(Method):
    """LoGo on SimSiam: SimSiam's projector/predictor, no momentum network, no queue."""

    def __init__(self, arch, dim, predictor_hidden, ll_mode, clip_ratio, ll_weight, critic_hidden, critic_layers,
                 critic_output="sigmoid", fixed_predictor_lr=True):
        super().__init__()
        if ll_mode not in ("clip", "lambda"):
            raise ValueError(f"ll_mode {ll_mode!r}: 'clip' (official code) or 'lambda' (paper)")
        self.backbone = build_backbone(arch)
        self.projector = mlp([self.backbone.dim, dim, dim, dim], last_batch_norm=True, last_affine=False)
        self.predictor = mlp([dim, predictor_hidden, dim])
        self.fixed_lr_modules = (self.predictor,) if fixed_predictor_lr else ()
        self.critic = critic(dim, critic_hidden, critic_layers, critic_output)
        self.ll_mode, self.clip_ratio, self.ll_weight = ll_mode, clip_ratio, ll_weight
        self.averages_own_gradients = ll_mode == "clip"

    def forward(self, batch: dict):
        z_g = [self.projector(self.backbone(view)) for view in batch["global"]]
        z_l = [self.projector(self.backbone(view)) for view in batch["local"]]
        p_g, p_l = [self.predictor(z) for z in z_g], [self.predictor(z) for z in z_l]
        global_global = negative_cosine(p_g[0], z_g[1]) / 2 + negative_cosine(p_g[1], z_g[0]) / 2
        local_global = sum(negative_cosine(p, z) / 2 for p in p_l for z in z_g)
        omega, local_local = critic_terms(self.critic, F.normalize(z_l[0], dim=1), F.normalize(z_l[1], dim=1))
        metrics = {"loss_gg": global_global.detach(), "loss_lg": local_global.detach(), "omega": omega.detach(),
                   "loss_ll": local_local.detach()}
        return _finish(self, global_global + local_global - omega, local_local, metrics)

    def backward(self, loss: SplitLoss | torch.Tensor) -> None:
        clipped_backward(self, loss)
