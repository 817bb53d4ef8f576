"""Each method's step written again from its paper, in a few plain lines, against the method
run through the engine (`train_one_epoch`): the loss, every parameter's gradient, the online
and target networks after each update and the queue, over three optimizer steps from the
same weights on the same batches. The references call nothing of viewkit's but the networks
they are handed (a tiny CNN and the method's MLPs, deep-copied at the start): no loss, EMA,
queue or schedule helper is shared, so a wiring mistake on either side shows.

Not compared: BatchNorm running statistics (a train-mode step never reads them, and their
update order between two forward passes is no part of any paper).

Changes that must fail, each applied to a copy of the code and the suite run (see the
closing notes of the issues that added them):
- moco: the keys pushed into the queue before the logits (positives become negatives)
- moco: 1 - m handed to the EMA
- moco: the key encoder's output not normalised
- byol: the predictor applied to the target branch too
- byol: the EMA momentum fixed at its base instead of BYOL's cosine to 1
- simsiam: the cosine without the stop-gradient on z
- simsiam: the predictor's lr decayed with the schedule although fixed_predictor_lr
- simclr: the temperature ignored (1.0)
- leoclr: the crops attracted to each other (crop 2 as the query)
- leoclr: the queue takes crop 2's keys
- leoclr end to end: the crops detached
- regioncl: the paste paired with its own image's key
- regioncl: no extra negative (the other region of the composite)
- regioncl: the other region not detached
- regioncl-s: the canvas predicting the source's key
- regioncl-s: `symmetric: true` ignored
- scd: the online branch returning (bg, fg)
- scd: the margin alpha on the background hinge instead of the foreground's
- scd: the semantic target (saliency head, projector) never updated
- scd: the triplet's weight 0.5 ignored
- scd-byol: `symmetric: true` ignored
- sgcl: the inter-image term without its score weights (P^gamma)
- sgcl: the intra-image term without its score weights
- sgcl: the memory keeping view 1's target projections instead of view 2's
- sgcl: the inter-image term not averaged over the region pairs
- sgcl: the target never following the online network
- logo: the main gradient not clipped at grad_clip (the official clip_grad_norm_ at 100)
- logo: no weight decay on the L_ll step
- logo: L_ll clipped against the main norm after its clip instead of before
- logo: lambda ignored in `ll_mode: lambda`
- logo: L_ll's gradient reaching the critic
- logo: only one global's keys queued
- logo: the six InfoNCE terms summed, not averaged
- logo: a local's negative partner its own image's other local
- logo-simsiam: the locals' projections not normalised for the critic
- engine: after_step called before optimizer.step()
- engine: after_step skipped (the target never moves)
"""

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from viewkit.trainer.config import TrainConfig
from viewkit.trainer.engine import train_one_epoch
from viewkit.trainer.methods import build_method
from viewkit.trainer.optimizers import make_optimizer
from viewkit.trainer.run import Run

from tiny import TinyBackbone

B, STEPS, SIZE, SEED = 4, 3, 32, 1234
WEIGHT_DECAY, SGD_MOMENTUM, BASE_LR = 1e-3, 0.9, 0.5
UNCOMPARED = ("running_mean", "running_var", "num_batches_tracked")


class Batches(list):
    """The engine's loader, as far as a step reads it: its length and its position."""

    steps_done = 0

    def state_dict(self) -> dict:
        return {"step": 0}


def fixed_batches(seed: int = 0, size: int = SIZE, original: bool = False, swap: bool = False) -> Batches:
    """Random views; with `swap`, RegionCL's composites with a one-cell box on the stride-32 grid."""
    generator = torch.Generator().manual_seed(seed)
    batches = Batches()
    for step in range(STEPS):
        batch = {"global": torch.randn(2, B, 3, size, size, generator=generator)}
        if original:
            batch["original"] = torch.randn(B, 3, size, size, generator=generator)
        if swap:
            batch["swap"] = torch.randn(B, 3, size, size, generator=generator)
            batch["swap_box"] = torch.tensor([[0, 0, 32, 32], [32, 0, 64, 32], [0, 32, 64, 64]][step])
            batch["swap_source"] = torch.arange(B - 1, -1, -1)
        batches.append(batch)
    return batches


def through_the_engine(name: str, options: dict, batches: Batches, tmp_path: Path):
    """(the method as built, a record per step): loss, gradients, lr per group, and the state
    after the step and its after_step."""
    torch.manual_seed(0)
    method = build_method(name, TinyBackbone(), options)
    initial = copy.deepcopy(method)
    config = TrainConfig(method=name, method_options=options, epochs=1, batch_size=B, base_lr=BASE_LR * 256 / B,
                         weight_decay=WEIGHT_DECAY, momentum=SGD_MOMENTUM, warmup_epochs=0, device="cpu",
                         precision="fp32", log_every=1,
                         # choice: contiguous, as the references' batches: on the CPU, float32 gradients
                         # of the RegionCL step through channels_last composites differed from float64's
                         # by 1% (contiguous: 1e-6), so the comparison would measure the memory format
                         channels_last=False)
    optimizer = make_optimizer(config, method)
    run = Run(config, "unused", tmp_path, 0, 1, torch.device("cpu"), method, method, optimizer, batches, None,
              steps_per_epoch=len(batches), total_steps=len(batches))
    records, forward, after_step = [], method.forward, method.after_step

    def recorded_forward(batch):
        loss, extra = forward(batch)  # a tensor, or LoGo's main and L_ll kept apart (its .item() their sum)
        records.append({"loss": loss.detach().clone() if isinstance(loss, torch.Tensor) else torch.tensor(loss.item())})
        return loss, extra

    def recorded_after_step(step, total_steps):
        records[-1] |= {"grads": {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None},
                        "lrs": [group["lr"] for group in optimizer.param_groups], "step": step, "total": total_steps}
        after_step(step, total_steps)
        records[-1]["state"] = {k: v.clone() for k, v in method.state_dict().items()}

    method.forward, method.after_step = recorded_forward, recorded_after_step
    torch.manual_seed(SEED)  # what a step draws (LoGo's critic noise), the references draw again from here
    train_one_epoch(run, 0, batches, progress=False)
    assert len(records) == STEPS and all("state" in r for r in records), "after_step ran once per step"
    return initial, records


def sgd(groups: list[list[torch.nn.Parameter]]) -> torch.optim.SGD:
    return torch.optim.SGD([{"params": g} for g in groups], lr=0.0, momentum=SGD_MOMENTUM, weight_decay=WEIGHT_DECAY)


def reference_step(optimizer, loss, record: dict, model) -> dict:
    """Backward and an SGD step at the lr the engine used; returns the gradients."""
    for group, lr in zip(optimizer.param_groups, record["lrs"]):
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    return grads


def assert_same(record: dict, loss, grads: dict, model, step: int) -> None:
    assert float(loss.detach()) == pytest.approx(float(record["loss"]), rel=1e-4, abs=1e-5), f"loss at step {step}"
    assert grads.keys() == record["grads"].keys(), f"parameters with a gradient at step {step}"
    for name, grad in grads.items():
        torch.testing.assert_close(record["grads"][name], grad, rtol=1e-3, atol=1e-5,
                                   msg=lambda m: f"gradient of {name} at step {step}: {m}")
    for name, value in model.state_dict().items():
        if not name.endswith(UNCOMPARED):
            torch.testing.assert_close(record["state"][name], value, rtol=1e-3, atol=1e-5,
                                       msg=lambda m: f"{name} after step {step}: {m}")


def ema(target_modules, online_modules, m):
    with torch.no_grad():
        for target, online in zip(target_modules, online_modules):
            for t, o in zip(target.parameters(), online.parameters()):
                t.copy_(m * t + (1 - m) * o)


def enqueue(model, keys: torch.Tensor, pointer: int) -> int:
    """MoCo's dequeue and enqueue, by hand, into the model copy's ring (so its state compares);
    returns the next pointer."""
    with torch.no_grad():
        size = len(model.queue.keys)
        model.queue.keys[pointer:pointer + len(keys)] = keys
        pointer = (pointer + len(keys)) % size
        model.queue.pointer.fill_(pointer)
    return pointer


# --- MoCo v2: Algorithm 1 of He et al. 2020 ---------------------------------------------------


def test_moco_v2_is_algorithm_1(tmp_path):
    options = {"dim": 8, "hidden": 16, "queue": 12, "momentum": 0.9, "temperature": 0.2}
    batches = fixed_batches()
    model, records = through_the_engine("moco_v2", options, batches, tmp_path)
    encoder = model.encoder
    f_q = torch.nn.Sequential(encoder.backbone, encoder.projector)
    f_k = torch.nn.Sequential(encoder.key_backbone, encoder.key_projector)
    queue = model.queue.keys.T  # C x K, as the pseudo-code keeps it (a view: the copy's buffer follows)
    pointer, m, t = 0, options["momentum"], options["temperature"]
    optimizer = sgd([[p for p in f_q.parameters()]])
    for step, (batch, record) in enumerate(zip(batches, records)):
        x_q, x_k = batch["global"]
        q = F.normalize(f_q(x_q), dim=1)
        with torch.no_grad():
            k = F.normalize(f_k(x_k), dim=1)
        l_pos = torch.bmm(q.view(B, 1, -1), k.view(B, -1, 1)).view(B, 1)
        l_neg = torch.mm(q, queue)
        logits = torch.cat([l_pos, l_neg], dim=1) / t
        loss = F.cross_entropy(logits, torch.zeros(B, dtype=torch.long))
        grads = reference_step(optimizer, loss, record, model)
        with torch.no_grad():
            for key_param, query_param in zip(f_k.parameters(), f_q.parameters()):
                key_param.copy_(m * key_param + (1 - m) * query_param)
            queue[:, pointer:pointer + B] = k.T  # enqueue the newest, dequeue the oldest
            pointer = (pointer + B) % options["queue"]
            model.queue.pointer.fill_(pointer)  # the reference's pointer, into the state compared
        assert_same(record, loss, grads, model, step)


# --- BYOL: Grill et al. 2020, section 3.1 and Algorithm 1 -------------------------------------


def test_byol_is_its_algorithm(tmp_path):
    options = {"dim": 8, "hidden": 16, "base_momentum": 0.9, "symmetric": True}
    batches = fixed_batches(1)
    model, records = through_the_engine("byol", options, batches, tmp_path)
    online = torch.nn.Sequential(model.backbone, model.projector)
    target = torch.nn.Sequential(model.target_backbone, model.target_projector)
    predictor = model.predictor
    optimizer = sgd([list(online.parameters()) + list(predictor.parameters())])

    def regression(p, z):  # Eq. 2: || p / ||p|| - z / ||z|| ||^2
        return ((F.normalize(p, dim=-1) - F.normalize(z, dim=-1)) ** 2).sum(-1)

    for step, (batch, record) in enumerate(zip(batches, records)):
        v, v_prime = batch["global"]
        with torch.no_grad():
            z_prime, z = target(v_prime), target(v)
        loss = regression(predictor(online(v)), z_prime).mean() + regression(predictor(online(v_prime)), z).mean()
        grads = reference_step(optimizer, loss, record, model)
        tau = 1 - (1 - options["base_momentum"]) * (math.cos(math.pi * record["step"] / record["total"]) + 1) / 2
        with torch.no_grad():
            for xi, theta in zip(target.parameters(), online.parameters()):
                xi.copy_(tau * xi + (1 - tau) * theta)
        assert_same(record, loss, grads, model, step)


# --- SimSiam: Algorithm 1 of Chen & He 2021 ---------------------------------------------------


def test_simsiam_is_algorithm_1(tmp_path):
    options = {"dim": 16, "predictor_hidden": 8, "fixed_predictor_lr": True}
    batches = fixed_batches(2)
    model, records = through_the_engine("simsiam", options, batches, tmp_path)
    f = torch.nn.Sequential(model.backbone, model.projector)
    h = model.predictor
    optimizer = sgd([list(f.parameters()), list(h.parameters())])

    def D(p, z):  # negative cosine similarity, z detached: the stop-gradient
        z = z.detach()
        p, z = F.normalize(p, dim=1), F.normalize(z, dim=1)
        return -(p * z).sum(dim=1).mean()

    for step, (batch, record) in enumerate(zip(batches, records)):
        x1, x2 = batch["global"]
        z1, z2 = f(x1), f(x2)
        p1, p2 = h(z1), h(z2)
        loss = D(p1, z2) / 2 + D(p2, z1) / 2
        peak = BASE_LR
        assert record["lrs"][1] == pytest.approx(peak), "the predictor keeps the peak lr (fix-pred-lr)"
        grads = reference_step(optimizer, loss, record, model)
        assert_same(record, loss, grads, model, step)
    assert records[-1]["lrs"][0] < BASE_LR, "the rest follows the cosine"


# --- SimCLR: Chen et al. 2020, Eq. 1 and Algorithm 1 ------------------------------------------


def test_simclr_is_algorithm_1(tmp_path):
    options = {"dim": 8, "hidden": 16, "temperature": 0.3}
    batches = fixed_batches(3)
    model, records = through_the_engine("simclr", options, batches, tmp_path)
    f, g = model.backbone, model.projector
    optimizer = sgd([list(f.parameters()) + list(g.parameters())])
    tau = options["temperature"]
    for step, (batch, record) in enumerate(zip(batches, records)):
        x1, x2 = batch["global"]
        z = [None] * (2 * B)  # z_{2k-1}, z_{2k}: the two views of image k, interleaved as the paper
        z1, z2 = g(f(x1)), g(f(x2))
        for k in range(B):
            z[2 * k], z[2 * k + 1] = z1[k], z2[k]

        def sim(u, v):
            return (u @ v) / (u.norm() * v.norm())

        def l(i, j):
            numerator = torch.exp(sim(z[i], z[j]) / tau)
            denominator = sum(torch.exp(sim(z[i], z[k]) / tau) for k in range(2 * B) if k != i)
            return -torch.log(numerator / denominator)

        loss = sum(l(2 * k, 2 * k + 1) + l(2 * k + 1, 2 * k) for k in range(B)) / (2 * B)
        grads = reference_step(optimizer, loss, record, model)
        assert_same(record, loss, grads, model, step)


def nt_xent_as_written(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's Eq. 1 over the 2N views (a_k, b_k interleaved), by loops: L = 1/2N sum_k
    [l(2k-1, 2k) + l(2k, 2k-1)], l(i, j) = -log exp(sim_ij / tau) / sum_{k != i} exp(sim_ik / tau)."""
    z = [v for pair in zip(a, b) for v in pair]

    def sim(u, v):
        return (u @ v) / (u.norm() * v.norm())

    def l(i, j):
        return -torch.log(torch.exp(sim(z[i], z[j]) / tau)
                          / sum(torch.exp(sim(z[i], z[k]) / tau) for k in range(len(z)) if k != i))

    return sum(l(2 * k, 2 * k + 1) + l(2 * k + 1, 2 * k) for k in range(len(a))) / len(z)


def info_nce_as_written(query, positive, negatives, t, extra=None):
    """MoCo's Eq. 1 by loops: -log exp(q.k+ / t) / (exp(q.k+ / t) + sum_k- exp(q.k- / t)), mean."""
    losses = []
    for i in range(len(query)):
        logits = [query[i] @ positive[i]] + ([query[i] @ extra[i]] if extra is not None else [])
        logits += [query[i] @ negative for negative in negatives]
        logits = torch.stack(logits) / t
        losses.append(-(logits[0] - torch.logsumexp(logits, 0)))
    return torch.stack(losses).mean()


# --- LeOCLR: Alkhalefi et al. 2024, Fig. 2 and Eq. 1 ------------------------------------------


def test_leoclr_attracts_both_crops_to_the_original(tmp_path):
    options = {"dim": 8, "hidden": 16, "queue": 12, "momentum": 0.9, "temperature": 0.2, "end_to_end": False}
    batches = fixed_batches(4, original=True)
    model, records = through_the_engine("leoclr", options, batches, tmp_path)
    encoder = model.encoder
    f_q = torch.nn.Sequential(encoder.backbone, encoder.projector)
    f_k = torch.nn.Sequential(encoder.key_backbone, encoder.key_projector)
    queue, pointer, m, t = model.queue.keys, 0, options["momentum"], options["temperature"]
    optimizer = sgd([list(f_q.parameters())])
    for step, (batch, record) in enumerate(zip(batches, records)):
        crop1, crop2 = batch["global"]
        u = F.normalize(f_q(batch["original"]), dim=1)  # the original image is the query
        with torch.no_grad():
            v1, v2 = F.normalize(f_k(crop1), dim=1), F.normalize(f_k(crop2), dim=1)
        negatives = queue.clone()
        loss = info_nce_as_written(u, v1, negatives, t) + info_nce_as_written(u, v2, negatives, t)
        grads = reference_step(optimizer, loss, record, model)
        ema([f_k], [f_q], m)
        pointer = enqueue(model, v1, pointer)  # one key per image: crop 1's (our choice, in leoclr.py)
        assert_same(record, loss, grads, model, step)


def test_leoclr_end_to_end_is_two_nt_xent_terms_through_one_encoder(tmp_path):
    options = {"dim": 8, "hidden": 16, "queue": 12, "momentum": 0.9, "temperature": 0.2, "end_to_end": True}
    batches = fixed_batches(5, original=True)
    model, records = through_the_engine("leoclr", options, batches, tmp_path)
    f = torch.nn.Sequential(model.backbone, model.projector)
    optimizer = sgd([list(f.parameters())])
    for step, (batch, record) in enumerate(zip(batches, records)):
        crop1, crop2 = batch["global"]
        u, v1, v2 = f(batch["original"]), f(crop1), f(crop2)  # no stop-gradient end to end
        loss = nt_xent_as_written(u, v1, 0.2) + nt_xent_as_written(u, v2, 0.2)
        grads = reference_step(optimizer, loss, record, model)
        assert_same(record, loss, grads, model, step)


# --- RegionCL: Xu et al. 2022, Sec. 3 (RegionCL-M) and Algorithm 3 (RegionCL-S) --------------


def regions(feature_map: torch.Tensor, box: torch.Tensor, stride: int = 32):
    """Mean of the map's cells inside the pasted box and of those outside, cell by cell."""
    x0, y0, x1, y1 = (int(v) // stride for v in box)
    inside, outside = [], []
    for y in range(feature_map.shape[2]):
        for x in range(feature_map.shape[3]):
            (inside if x0 <= x < x1 and y0 <= y < y1 else outside).append(feature_map[:, :, y, x])
    return torch.stack(inside).mean(0), torch.stack(outside).mean(0)


def test_regioncl_m_is_moco_plus_the_swapped_regions(tmp_path):
    options = {"dim": 8, "hidden": 16, "queue": 12, "momentum": 0.9, "temperature": 0.2}
    batches = fixed_batches(6, size=64, swap=True)
    model, records = through_the_engine("regioncl", options, batches, tmp_path)
    encoder = model.encoder
    backbone, projector = encoder.backbone, encoder.projector
    f_k = torch.nn.Sequential(encoder.key_backbone, encoder.key_projector)
    queue, pointer, m, t = model.queue.keys, 0, options["momentum"], options["temperature"]
    optimizer = sgd([list(backbone.parameters()) + list(projector.parameters())])
    for step, (batch, record) in enumerate(zip(batches, records)):
        x_q, x_k = batch["global"]
        q = F.normalize(projector(backbone(x_q)), dim=1)
        with torch.no_grad():
            k = F.normalize(f_k(x_k), dim=1)
        negatives = queue.clone()
        instance = info_nce_as_written(q, k, negatives, t)
        paste, canvas = regions(backbone.feature_map(batch["swap"]), batch["swap_box"])
        z_paste, z_canvas = F.normalize(projector(paste), dim=1), F.normalize(projector(canvas), dim=1)
        source = batch["swap_source"]
        # the canvas keeps its own image's key, the paste takes its source's; the other region
        # of the same composite is one more negative
        canvas_term = [info_nce_as_written(z_canvas[i:i + 1], k[i:i + 1], negatives, t, z_paste[i:i + 1].detach())
                       for i in range(B)]
        paste_term = [info_nce_as_written(z_paste[i:i + 1], k[source[i]][None], negatives, t,
                                          z_canvas[i:i + 1].detach()) for i in range(B)]
        loss = instance + torch.stack(canvas_term + paste_term).mean()
        grads = reference_step(optimizer, loss, record, model)
        ema([encoder.key_backbone, encoder.key_projector], [backbone, projector], m)
        pointer = enqueue(model, k, pointer)
        assert_same(record, loss, grads, model, step)


@pytest.mark.parametrize("symmetric", [False, True])
def test_regioncl_s_is_algorithm_3(tmp_path, symmetric):
    options = {"dim": 16, "predictor_hidden": 8, "fixed_predictor_lr": True, "symmetric": symmetric}
    batches = fixed_batches(7, size=64, swap=True)
    model, records = through_the_engine("regioncl_simsiam", options, batches, tmp_path)
    backbone, projector, predictor = model.backbone, model.projector, model.predictor
    optimizer = sgd([list(backbone.parameters()) + list(projector.parameters()), list(predictor.parameters())])

    def D(p, z):
        return -(F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(1).mean()

    for step, (batch, record) in enumerate(zip(batches, records)):
        x_q, x_k = batch["global"]
        paste, canvas = regions(backbone.feature_map(batch["swap"]), batch["swap_box"])
        # q, p and c through one projector batch and one predictor batch (Fig. S3; our reading)
        projected = projector(torch.cat([backbone(x_q), paste, canvas]))
        q, p, c = predictor(projected).chunk(3)
        k = projector(backbone(x_k))
        instance = D(q, k) if not symmetric else D(q, k) / 2 + D(predictor(k), projected[:B]) / 2
        loss = instance + (D(p, k[batch["swap_source"]]) + D(c, k)) / 2
        grads = reference_step(optimizer, loss, record, model)
        assert_same(record, loss, grads, model, step)


# --- SCD: fg/bg triplet on the learned saliency mask (SCD paper, Sec. 3, Eq. 1-5) ------------


def masked_means(feature_map: torch.Tensor, mask: torch.Tensor):
    """fg = sum(M F) / sum(M), bg = sum((1 - M) F) / sum(1 - M), per image."""
    fg = torch.stack([(feature_map[i] * mask[i]).sum((1, 2)) / mask[i].sum() for i in range(len(mask))])
    bg = torch.stack([(feature_map[i] * (1 - mask[i])).sum((1, 2)) / (1 - mask[i]).sum() for i in range(len(mask))])
    return fg, bg


def triplet_as_written(z1_fg, z1_bg, z2_fg, z2_bg, alpha):
    """L_d = 0.5 (max(f_s(z1fg, z2bg) - f_s(z1fg, z2fg) + alpha, 0) + max(f_s(z1bg, z2fg) - f_s(z1bg, z2bg), 0)),
    f_s the cosine similarity, view 2 from the target network (no gradient); batch mean."""
    def f_s(a, b):
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    z2_fg, z2_bg = z2_fg.detach(), z2_bg.detach()
    fg = torch.relu(f_s(z1_fg, z2_bg) - f_s(z1_fg, z2_fg) + alpha)
    bg = torch.relu(f_s(z1_bg, z2_fg) - f_s(z1_bg, z2_bg))
    return (0.5 * (fg + bg)).mean()


def test_scd_on_moco_is_infonce_plus_half_the_triplet(tmp_path):
    options = {"dim": 8, "hidden": 16, "queue": 12, "momentum": 0.9, "temperature": 0.2, "alpha": 1.0,
               "weight": 0.5, "saliency_hidden": 8}
    batches = fixed_batches(8, size=64)
    model, records = through_the_engine("scd_moco", options, batches, tmp_path)
    encoder, semantic = model.encoder, model.semantic
    queue, pointer, m, t = model.queue.keys, 0, options["momentum"], options["temperature"]
    online = [encoder.backbone, encoder.projector, semantic.saliency, semantic.projector]
    target = [encoder.key_backbone, encoder.key_projector, semantic.target_saliency, semantic.target_projector]
    optimizer = sgd([[p for module in online for p in module.parameters()]])
    for step, (batch, record) in enumerate(zip(batches, records)):
        x1, x2 = batch["global"]
        map1 = encoder.backbone.feature_map(x1)
        q = F.normalize(encoder.projector(map1.mean((2, 3))), dim=1)
        with torch.no_grad():
            map2 = encoder.key_backbone.feature_map(x2)
            k = F.normalize(encoder.key_projector(map2.mean((2, 3))), dim=1)
            z2_fg, z2_bg = (semantic.target_projector(v) for v in masked_means(map2, semantic.target_saliency(map2)))
        z1_fg, z1_bg = (semantic.projector(v) for v in masked_means(map1, semantic.saliency(map1)))
        loss = info_nce_as_written(q, k, queue.clone(), t) + 0.5 * triplet_as_written(z1_fg, z1_bg, z2_fg, z2_bg, 1.0)
        grads = reference_step(optimizer, loss, record, model)
        ema(target, online, m)
        pointer = enqueue(model, k, pointer)
        assert_same(record, loss, grads, model, step)


@pytest.mark.parametrize("symmetric", [False, True])
def test_scd_on_byol_is_the_byol_loss_plus_half_the_triplet(tmp_path, symmetric):
    options = {"dim": 8, "hidden": 16, "base_momentum": 0.9, "alpha": 1.0, "weight": 0.5, "saliency_hidden": 8,
               "symmetric": symmetric}
    batches = fixed_batches(9, size=64)
    model, records = through_the_engine("scd_byol", options, batches, tmp_path)
    semantic = model.semantic
    online = [model.backbone, model.projector, semantic.saliency, semantic.projector]
    target = [model.target_backbone, model.target_projector, semantic.target_saliency, semantic.target_projector]
    optimizer = sgd([[p for module in online + [model.predictor] for p in module.parameters()]])

    def direction(x_online, x_target):
        online_map = model.backbone.feature_map(x_online)
        p = model.predictor(model.projector(online_map.mean((2, 3))))
        with torch.no_grad():
            target_map = model.target_backbone.feature_map(x_target)
            z = model.target_projector(target_map.mean((2, 3)))
            z2 = [semantic.target_projector(v) for v in masked_means(target_map, semantic.target_saliency(target_map))]
        z1 = [semantic.projector(v) for v in masked_means(online_map, semantic.saliency(online_map))]
        byol = (2 - 2 * (F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(1)).mean()
        return byol + 0.5 * triplet_as_written(*z1, *z2, 1.0)

    for step, (batch, record) in enumerate(zip(batches, records)):
        x1, x2 = batch["global"]
        loss = direction(x1, x2) + (direction(x2, x1) if symmetric else 0)
        grads = reference_step(optimizer, loss, record, model)
        tau = 1 - (1 - options["base_momentum"]) * (math.cos(math.pi * record["step"] / record["total"]) + 1) / 2
        ema(target, online, tau)
        assert_same(record, loss, grads, model, step)


# --- SGCL on BYOL: Eq. 9-11 of the SGCL paper -------------------------------------------------


def saliency_batches(seed: int, pairs: int = 2) -> Batches:
    generator = torch.Generator().manual_seed(seed)
    return Batches({"saliency": torch.randn(pairs, 2, B, 3, SIZE, SIZE, generator=generator),
                    "saliency_scores": torch.rand(B, pairs, generator=generator) * 2 - 0.2}  # some below 0
                   for _ in range(STEPS))


def test_sgcl_is_weighted_intra_plus_inter_image_byol(tmp_path):
    options = {"dim": 8, "hidden": 16, "base_momentum": 0.9, "gamma": 0.5, "neighbours": 3, "queue": 12,
               "base": "byol", "temperature": 0.1}
    batches = saliency_batches(10)
    model, records = through_the_engine("sgcl", options, batches, tmp_path)
    online = torch.nn.Sequential(model.backbone, model.projector)
    target = torch.nn.Sequential(model.target_backbone, model.target_projector)
    predictor = model.predictor
    optimizer = sgd([list(online.parameters()) + list(predictor.parameters())])
    size, written = options["queue"], 0  # the memory of target projections, a ring of `size` rows

    def l(p, z):  # BYOL's regression loss, z without gradient
        return ((F.normalize(p, dim=-1) - F.normalize(z.detach(), dim=-1)) ** 2).sum(-1)

    for step, (batch, record) in enumerate(zip(batches, records)):
        crops, scores = batch["saliency"], batch["saliency_scores"]
        weight = scores.clamp_min(0) ** options["gamma"]  # P^gamma, a negative score weighing nothing
        filled = min(written, size)
        memory = model.memory[:filled].clone()
        intra, inter, seen = 0.0, 0.0, []
        for i in range(len(crops)):
            p1, p2 = predictor(online(crops[i, 0])), predictor(online(crops[i, 1]))
            with torch.no_grad():
                z1, z2 = target(crops[i, 0]), target(crops[i, 1])
            intra = intra + (weight[:, i] * (l(p1, z2) + l(p2, z1))).mean()
            if filled >= options["neighbours"]:
                similarity = F.normalize(p1.detach(), dim=1) @ memory.T
                nearest = memory[similarity.topk(options["neighbours"], dim=1).indices]  # [B, l, D]
                inter = inter + (weight[:, i, None] * l(p1[:, None, :].expand_as(nearest), nearest)).mean()
            seen.append(F.normalize(z2, dim=1))
        loss = intra + inter / len(crops)
        grads = reference_step(optimizer, loss, record, model)
        with torch.no_grad():
            for row in torch.cat(seen):  # one by one into the ring
                model.memory[written % size] = row
                written += 1
            model.pointer.fill_(written % size)
            model.filled.fill_(min(written, size))
        tau = 1 - (1 - options["base_momentum"]) * (math.cos(math.pi * record["step"] / record["total"]) + 1) / 2
        ema([target], [online], tau)
        assert_same(record, loss, grads, model, step)
    assert float(records[-1]["loss"]) != 0 and written > size, "the inter-image term ran and the ring wrapped"


# --- LoGo: Zhang et al. 2022 (Eq. 3-6) as the official code trains it -------------------------


def logo_batches(seed: int) -> Batches:
    generator = torch.Generator().manual_seed(seed)
    return Batches({"global": torch.randn(2, B, 3, SIZE, SIZE, generator=generator),
                    "local": torch.randn(2, B, 3, 16, 16, generator=generator)} for _ in range(STEPS))


def logo_critic_terms(critic, l1, l2, noise):
    """The critic's logistic objective on detached locals (noisy positive pairs of both orders,
    negatives paired with the next image's local) and L_ll = softplus(r(l1, l2)) through the
    critic's weights held still."""
    a, b = l1.detach(), l2.detach()
    std = noise / a.shape[1] ** 0.5
    n_a, n_b = std * torch.randn_like(a), std * torch.randn_like(b)
    rows = critic(torch.cat([torch.cat([a + n_a, b + n_b], 1), torch.cat([b + n_a, a + n_b], 1),
                             torch.cat([a, b.roll(1, 0)], 1), torch.cat([b, a.roll(1, 0)], 1)])).squeeze(1)
    pos12, pos21, neg12, neg21 = rows.chunk(4)
    softplus = F.softplus
    critic_loss = (0.5 * softplus(-pos12) + 0.5 * softplus(-pos21) + 0.5 * softplus(neg12) + 0.5 * softplus(neg21)).mean()
    held = copy.deepcopy(critic).requires_grad_(False)  # today's weights, no gradient to them
    local_local = softplus(held(torch.cat([l1, l2], 1)).squeeze(1)).mean()
    return critic_loss, local_local


def logo_gradients(model, critic, main, local_local, options):
    """The official code's two gradients in one: the encoder's main gradient clipped at
    grad_clip, plus the L_ll gradient clipped to clip_ratio x the main norm (before its clip),
    plus the L_ll step's weight decay on the encoder."""
    params = [p for p in model.parameters() if p.requires_grad]
    in_critic = {id(p) for p in critic.parameters()}
    g_main = torch.autograd.grad(main, params, retain_graph=True, allow_unused=True)
    g_ll = torch.autograd.grad(local_local, params, allow_unused=True)

    def norm(grads):
        return math.sqrt(sum(float((g ** 2).sum()) for p, g in zip(params, grads) if g is not None and id(p) not in in_critic))

    main_norm = norm(g_main)
    clip = min(1.0, options["grad_clip"] / (main_norm + 1e-6))
    ll_scale = min(1.0, options["clip_ratio"] * main_norm / (norm(g_ll) + 1e-12))
    for p, gm, gl in zip(params, g_main, g_ll):
        encoder = id(p) not in in_critic
        grad = torch.zeros_like(p) if gm is None else gm * (clip if encoder else 1.0)
        if gl is not None:
            grad = grad + ll_scale * gl + (options["ll_weight_decay"] * p.detach() if encoder else 0)
        p.grad = grad


def logo_step(optimizer, record, model, loss_or_parts, options):
    for group, lr in zip(optimizer.param_groups, record["lrs"]):
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    if isinstance(loss_or_parts, tuple):
        logo_gradients(model, model.critic, *loss_or_parts, options)
    else:
        loss_or_parts.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    return grads


LOGO_OPTIONS = {"dim": 8, "hidden": 16, "queue": 16, "momentum": 0.9, "temperature": 0.2, "clip_ratio": 0.015,
                "ll_weight": 0.5, "critic_hidden": 8, "critic_layers": 3, "critic_noise": 0.3,
                # small enough that the clip at "100" bites, large enough that the decay shows
                "grad_clip": 0.5, "ll_weight_decay": 0.1}


@pytest.mark.parametrize("ll_mode", ["clip", "lambda"])
def test_logo_on_moco_is_the_official_step(tmp_path, ll_mode):
    options = LOGO_OPTIONS | {"ll_mode": ll_mode}
    batches = logo_batches(11)
    model, records = through_the_engine("logo_moco", options, batches, tmp_path)
    encoder = model.encoder
    f_q = torch.nn.Sequential(encoder.backbone, encoder.projector)
    f_k = torch.nn.Sequential(encoder.key_backbone, encoder.key_projector)
    queue, pointer, m, t = model.queue.keys, 0, options["momentum"], options["temperature"]
    optimizer = sgd([[p for p in model.parameters() if p.requires_grad]])
    torch.manual_seed(SEED)
    for step, (batch, record) in enumerate(zip(batches, records)):
        negatives = queue.clone()
        g = [F.normalize(f_q(v), dim=1) for v in batch["global"]]
        with torch.no_grad():
            k = [F.normalize(f_k(v), dim=1) for v in batch["global"]]
        l = [F.normalize(f_q(v), dim=1) for v in batch["local"]]
        gg = info_nce_as_written(g[0], k[1], negatives, t) + info_nce_as_written(g[1], k[0], negatives, t)
        lg = sum(info_nce_as_written(lj, ki, negatives, t) for lj in l for ki in k)
        critic_loss, local_local = logo_critic_terms(model.critic, l[0], l[1], options["critic_noise"])
        main = (gg + lg) / 6 + critic_loss
        if ll_mode == "clip":
            loss, parts = main + local_local, (main, local_local)
        else:  # the paper: one loss, L = main + lambda L_ll
            loss = parts = main + options["ll_weight"] * local_local
        grads = logo_step(optimizer, record, model, parts, options)
        ema([f_k], [f_q], m)
        for key in k:  # both globals' keys enter the queue
            pointer = enqueue(model, key, pointer)
        assert_same(record, loss, grads, model, step)


def test_logo_on_simsiam_is_the_official_step(tmp_path):
    options = {key: LOGO_OPTIONS[key] for key in ("clip_ratio", "ll_weight", "critic_hidden", "critic_layers",
                                                  "critic_noise", "grad_clip", "ll_weight_decay")}
    options |= {"dim": 16, "predictor_hidden": 8, "ll_mode": "clip", "fixed_predictor_lr": True}
    batches = logo_batches(12)
    model, records = through_the_engine("logo_simsiam", options, batches, tmp_path)
    f, h = torch.nn.Sequential(model.backbone, model.projector), model.predictor
    rest = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in h.parameters())]
    optimizer = sgd([rest, list(h.parameters())])

    def D(p, z):
        return -(F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(1).mean()

    torch.manual_seed(SEED)
    for step, (batch, record) in enumerate(zip(batches, records)):
        z_g, z_l = [f(v) for v in batch["global"]], [f(v) for v in batch["local"]]
        p_g, p_l = [h(z) for z in z_g], [h(z) for z in z_l]
        gg = D(p_g[0], z_g[1]) / 2 + D(p_g[1], z_g[0]) / 2
        lg = sum(D(p, z) / 2 for p in p_l for z in z_g)
        critic_loss, local_local = logo_critic_terms(model.critic, F.normalize(z_l[0], dim=1),
                                                     F.normalize(z_l[1], dim=1), options["critic_noise"])
        main = gg + lg + critic_loss
        grads = logo_step(optimizer, record, model, (main, local_local), options)
        assert_same(record, main + local_local, grads, model, step)


def test_logo_defaults_are_the_official_codes():
    from viewkit.trainer.methods import logo

    for defaults in (logo.DEFAULTS, logo.SIMSIAM_DEFAULTS):
        assert defaults["grad_clip"] == 100.0 and defaults["ll_weight_decay"] == 1e-4
        assert defaults["clip_ratio"] == 0.015 and defaults["ll_mode"] == "clip"


def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
    """As DINO and MAE: a diverged step ends the run in one line, before any checkpoint of it."""
    options = {"dim": 8, "hidden": 16, "temperature": 0.3}
    method = build_method("simclr", TinyBackbone(), options)
    config = TrainConfig(method="simclr", method_options=options, epochs=1, batch_size=B, device="cpu",
                         precision="fp32", channels_last=False)
    run = Run(config, "unused", tmp_path, 0, 1, torch.device("cpu"), method, method,
              make_optimizer(config, method), fixed_batches(13), None)
    forward = method.forward
    method.forward = lambda batch: (forward(batch)[0] * (float("nan") if run.step == 1 else 1.0), {})
    # steps counted as metrics.jsonl counts them: NaN from the second step on, "step 2"
    with pytest.raises(ValueError, match=r"step 2 \(epoch 0\): the loss is nan; the run stops without a checkpoint"):
        train_one_epoch(run, 0, run.loader, progress=False)
    assert not (tmp_path / "checkpoint-last.pt").exists()
