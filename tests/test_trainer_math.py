"""Losses against hand computations, stop-gradients, EMA, queue, schedules, LARS, kNN."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from viewkit.trainer.evaluate.knn import knn_top1
from viewkit.trainer.optimizers import LARS
from viewkit.trainer.methods.losses import byol_loss, info_nce, negative_cosine, nt_xent
from viewkit.trainer.nets import ema_update, mlp
from viewkit.trainer.methods.queue import KeyQueue
from viewkit.trainer.schedules import ema_momentum, learning_rate

from tiny import TinyBackbone


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=1)


def test_info_nce_by_hand():
    q, k = unit([1.0, 0.0], [0.0, 1.0]), unit([1.0, 1.0], [0.0, 1.0])
    queue = unit([-1.0, 0.0], [0.0, -1.0], [1.0, -1.0])
    t = 0.2
    expected = 0.0
    for i in range(2):
        positive = math.exp(float(q[i] @ k[i]) / t)
        negatives = sum(math.exp(float(q[i] @ n) / t) for n in queue)
        expected += -math.log(positive / (positive + negatives)) / 2
    assert info_nce(q, k, queue, t).item() == pytest.approx(expected, rel=1e-12)
    extra = unit([0.5, 0.5], [1.0, 0.0])
    with_extra = 0.0
    for i in range(2):
        positive = math.exp(float(q[i] @ k[i]) / t)
        negatives = sum(math.exp(float(q[i] @ n) / t) for n in queue) + math.exp(float(q[i] @ extra[i]) / t)
        with_extra += -math.log(positive / (positive + negatives)) / 2
    assert info_nce(q, k, queue, t, extra).item() == pytest.approx(with_extra, rel=1e-12)


def test_byol_and_simsiam_losses_by_hand_and_stop_gradient():
    p = torch.tensor([[3.0, 4.0]], requires_grad=True)
    z = torch.tensor([[4.0, 3.0]], requires_grad=True)
    cos = 24 / 25
    assert byol_loss(p, z).item() == pytest.approx(2 - 2 * cos)
    assert negative_cosine(p, z).item() == pytest.approx(-cos)
    (byol_loss(p, z).sum() + negative_cosine(p, z)).backward()
    assert p.grad is not None and z.grad is None  # sg(z): no gradient reaches the target


def test_nt_xent_by_hand():
    z1, z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    t = 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    total = 0.0
    for i in range(4):
        j = (i + 2) % 4
        denominator = sum(math.exp(float(z[i] @ z[m]) / t) for m in range(4) if m != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denominator)
    assert nt_xent(z1, z2, t).item() == pytest.approx(total / 4, rel=1e-6)



def test_leoclr_end_to_end_attracts_each_crop_to_the_original_only_by_hand():
    """The variant's loss is NT-Xent(u, v1) + NT-Xent(u, v2) by hand: no term compares the two
    crops; gradients reach the crops (no stop-gradient end to end), unlike the MoCo variant."""
    from viewkit.trainer.methods.leoclr import build

    model = build(TinyBackbone(), dim=8, hidden=16, queue=64, momentum=0.99, temperature=0.5, end_to_end=True)
    model.backbone, model.projector = torch.nn.Flatten(), torch.nn.Identity()  # embeddings = the inputs
    original = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    crop1 = torch.tensor([[1.0, 1.0], [-1.0, 1.0]], requires_grad=True)
    crop2 = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    loss, _ = model({"original": original, "global": [crop1, crop2]})
    t, expected = 0.5, 0.0
    for crop in (crop1, crop2):
        z = F.normalize(torch.cat([original, crop.detach()]), dim=1).double()  # u_1, u_2, v_1, v_2
        for i in range(4):
            denominator = sum(math.exp(float(z[i] @ z[m]) / t) for m in range(4) if m != i)
            expected += -math.log(math.exp(float(z[i] @ z[(i + 2) % 4]) / t) / denominator) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert crop1.grad.abs().sum() > 0 and crop2.grad.abs().sum() > 0

    momentum_variant = build(TinyBackbone(), dim=8, hidden=16, queue=64, momentum=0.99, temperature=0.2,
                             end_to_end=False)
    images = [torch.randn(4, 3, 32, 32, requires_grad=True) for _ in range(3)]
    loss, _ = momentum_variant({"original": images[0], "global": images[1:]})
    loss.backward()
    assert images[0].grad.abs().sum() > 0 and images[1].grad is None and images[2].grad is None  # sg(v1), sg(v2)

def test_ema_update_and_momentum_schedule():
    online, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = target.weight.detach().clone()
    ema_update(target, online, 0.9)
    assert torch.allclose(target.weight, 0.9 * before + 0.1 * online.weight)
    assert ema_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert ema_momentum(100, 100, 0.99) == pytest.approx(1.0)
    assert ema_momentum(50, 100, 0.99) == pytest.approx(0.995)


def test_queue_is_a_ring():
    queue = KeyQueue(5, 2)
    queue.push(torch.ones(3, 2))
    assert queue.pointer.item() == 3 and (queue.keys[:3] == 1).all()
    queue.push(torch.full((3, 2), 2.0))
    assert queue.pointer.item() == 1
    assert queue.keys[:, 0].tolist() == [2.0, 1.0, 1.0, 2.0, 2.0]


def test_learning_rate_schedule():
    assert learning_rate(0, 100, 1.0, warmup_steps=10) == pytest.approx(0.1)
    assert learning_rate(9, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert learning_rate(10, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert learning_rate(55, 100, 1.0, warmup_steps=10) == pytest.approx(0.5)
    assert learning_rate(100, 100, 1.0, warmup_steps=10) == pytest.approx(0.0)


def test_lars_step_by_hand():
    weight = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    bias = torch.nn.Parameter(torch.tensor([1.0]))
    weight.grad, bias.grad = torch.tensor([[0.6, 0.8]]), torch.tensor([0.5])
    LARS([weight, bias], lr=0.1, momentum=0.9, weight_decay=0.0, trust=0.001).step()
    ratio = 0.001 * 5.0 / 1.0  # trust * |w| / |g|
    assert torch.allclose(weight, torch.tensor([[3.0 - 0.1 * ratio * 0.6, 4.0 - 0.1 * ratio * 0.8]]))
    assert torch.allclose(bias, torch.tensor([1.0 - 0.1 * 0.5]))  # 1-d: no trust ratio


def test_weighted_knn_by_hand():
    train = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1])
    val = F.normalize(torch.tensor([[1.0, 0.05], [0.1, 1.0]]), dim=1)
    assert knn_top1(train, labels, val, torch.tensor([0, 1]), k=2) == 1.0
    # k = 3: class 1's single close neighbour outweighs class 0's two far ones for val 1.
    assert knn_top1(train, labels, val, torch.tensor([0, 1]), k=3, temperature=0.07) == 1.0
    with pytest.raises(ValueError, match="labelled"):
        knn_top1(train, torch.tensor([-1, 0, 1]), val, torch.tensor([0, 1]))


def test_mlp_shapes_match_the_papers():
    byol_head = mlp([2048, 4096, 256])
    assert [type(m).__name__ for m in byol_head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    simsiam_projector = mlp([2048, 2048, 2048, 2048], last_batch_norm=True, last_affine=False)
    assert type(simsiam_projector[-1]).__name__ == "BatchNorm1d" and not simsiam_projector[-1].affine
    moco_head = mlp([2048, 2048, 128], batch_norm=False)
    assert [type(m).__name__ for m in moco_head] == ["Linear", "ReLU", "Linear"]


def test_lowres_backbone_drops_only_the_stem_max_pool():
    from viewkit.trainer.nets import Backbone

    torch.manual_seed(0)
    standard, lowres = Backbone("resnet18"), Backbone("resnet18-lowres")
    assert standard.feature_map(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2) and standard.stride == 32
    assert lowres.feature_map(torch.randn(1, 3, 64, 64)).shape == (1, 512, 4, 4) and lowres.stride == 16
    lowres.load_torchvision_state(standard.torchvision_state())  # the same tensors, names unchanged
    images = torch.randn(2, 3, 64, 64)
    standard.eval(), lowres.eval()
    with torch.no_grad():
        stem = standard.trunk[:3](images)
        expected = standard.trunk[4:](stem)  # the standard trunk with its max-pool skipped
        assert torch.allclose(lowres.feature_map(images), expected, atol=1e-5)
    with pytest.raises(ValueError, match="'-lowres'"):
        Backbone("resnet18-tiny")


def test_scd_mask_pooling_and_triplet_terms_by_hand():
    from viewkit.trainer.methods.scd import pool_foreground_background, triplet_loss

    feature_map = torch.arange(8.0).reshape(1, 2, 2, 2)  # channels [[0,1],[2,3]] and [[4,5],[6,7]]
    mask = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]])
    fg, bg = pool_foreground_background(feature_map, mask, eps=0.0)
    assert torch.allclose(fg, torch.tensor([[(0 + 0.5 * 2) / 1.5, (4 + 0.5 * 6) / 1.5]]))
    assert torch.allclose(bg, torch.tensor([[(1 + 0.5 * 2 + 3) / 2.5, (5 + 0.5 * 6 + 7) / 2.5]]))
    z1fg = torch.tensor([[1.0, 0.0]], requires_grad=True)
    z1bg = torch.tensor([[0.0, 1.0]], requires_grad=True)
    z2fg = torch.tensor([[1.0, 1.0]], requires_grad=True)
    z2bg = torch.tensor([[0.0, 1.0]], requires_grad=True)
    c = 1 / math.sqrt(2)
    # fg term: max(cos(z1fg, z2bg) - cos(z1fg, z2fg) + 1, 0) = 0 - c + 1; bg term: max(c - 1, 0) = 0.
    loss = triplet_loss(z1fg, z1bg, z2fg, z2bg, alpha=1.0)
    assert loss.item() == pytest.approx(0.5 * (1 - c))
    loss.backward()
    assert z1fg.grad is not None and z2fg.grad is None and z2bg.grad is None  # view 2 from the target: sg


def test_scd_byol_symmetric_is_both_directions_of_the_asymmetric_loss():
    from viewkit.trainer.methods.scd import SCDBYOL

    options = {"dim": 16, "hidden": 32, "base_momentum": 0.99, "alpha": 1.0, "weight": 0.5,
               "saliency_hidden": 8}
    torch.manual_seed(0)
    asymmetric = SCDBYOL(TinyBackbone(), **options, symmetric=False).train()
    symmetric = SCDBYOL(TinyBackbone(), **options, symmetric=True).train()
    symmetric.load_state_dict(asymmetric.state_dict())
    views = torch.randn(2, 4, 3, 64, 64)
    forward, parts = asymmetric({"global": views})
    backward, back_parts = asymmetric({"global": views.flip(0)})
    assert forward.item() == pytest.approx((parts["loss_contrastive"] + 0.5 * parts["loss_triplet"]).item(), rel=1e-6)
    both, both_parts = symmetric({"global": views})
    assert both.item() == pytest.approx((forward + backward).item(), rel=1e-5)
    assert both_parts["loss_triplet"].item() == pytest.approx((parts["loss_triplet"] + back_parts["loss_triplet"]).item(),
                                                              rel=1e-5)
    views.requires_grad_(True)
    asymmetric({"global": views})[0].backward()
    assert views.grad[0].abs().sum() > 0 and not views.grad[1].any()  # view 2 only through the target: sg
    views.grad = None
    symmetric({"global": views})[0].backward()
    assert views.grad[0].abs().sum() > 0 and views.grad[1].abs().sum() > 0


def test_regioncl_mask_pooling_equals_manual_pooling_on_the_swap_cells():
    from viewkit.trainer.methods.regioncl import pool_paste_and_canvas

    feature_map = torch.randn(2, 4, 7, 7)  # a 224 px view at stride 32
    box = torch.tensor([32, 64, 128, 192])  # x0, y0, x1, y1 px: map columns 1-3, rows 2-5
    paste, canvas = pool_paste_and_canvas(feature_map, box, stride=32)
    inside = [(y, x) for y in range(7) for x in range(7) if 2 <= y < 6 and 1 <= x < 4]
    outside = [(y, x) for y in range(7) for x in range(7) if (y, x) not in inside]
    assert torch.allclose(paste, torch.stack([feature_map[:, :, y, x] for y, x in inside]).mean(0))
    assert torch.allclose(canvas, torch.stack([feature_map[:, :, y, x] for y, x in outside]).mean(0))
    with pytest.raises(ValueError, match="no paste or no canvas"):
        pool_paste_and_canvas(feature_map, torch.tensor([0, 0, 224, 224]), stride=32)
    with pytest.raises(ValueError, match="not on the backbone's 32 px grid.*swap_grid"):
        pool_paste_and_canvas(feature_map, torch.tensor([16, 64, 128, 192]), stride=32)
    fine = feature_map.repeat_interleave(2, 2).repeat_interleave(2, 3)  # the same view at stride 16
    fine_paste, fine_canvas = pool_paste_and_canvas(fine, box, stride=16)
    assert torch.allclose(fine_paste, paste) and torch.allclose(fine_canvas, canvas)
    # A 16 px swap grid on a stride-16 map: a box of one cell is one map position.
    one_cell_paste, _ = pool_paste_and_canvas(fine, torch.tensor([16, 48, 32, 64]), stride=16)
    assert torch.equal(one_cell_paste, fine[:, :, 3, 1])


def test_regioncl_simsiam_loss_is_algorithm_3_by_hand():
    """L = D(q, sg(k)) + (D(p, sg(k_src)) + D(c, sg(k))) / 2, q/p/c from one projector batch."""
    from viewkit.trainer.methods.regioncl import RegionCLSimSiam, pool_paste_and_canvas

    torch.manual_seed(0)
    model = RegionCLSimSiam(TinyBackbone(), dim=16, predictor_hidden=8).train()
    views = torch.randn(2, 4, 3, 64, 64)
    batch = {"global": views, "swap": torch.randn(4, 3, 64, 64), "swap_box": torch.tensor([0, 0, 32, 64]),
             "swap_source": torch.tensor([3, 2, 1, 0])}
    loss, parts = model(batch)
    paste, canvas = pool_paste_and_canvas(model.backbone.feature_map(batch["swap"]), batch["swap_box"], 32)
    q, p, c = model.predictor(model.projector(torch.cat([model.backbone(views[0]), paste, canvas]))).chunk(3)
    k = model.projector(model.backbone(views[1]))
    cos = lambda a, b: F.cosine_similarity(a, b, dim=1).mean()  # noqa: E731
    expected = -cos(q, k) + (-cos(p, k[[3, 2, 1, 0]]) - cos(c, k)) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["loss_region"].item() == pytest.approx(((-cos(p, k.flip(0)) - cos(c, k)) / 2).item(), rel=1e-5)
    views.requires_grad_(True)
    model(batch)[0].backward()
    assert views.grad[0].abs().sum() > 0 and not views.grad[1].any()  # sg(k): x^k gets no gradient

    torch.manual_seed(0)
    symmetric = RegionCLSimSiam(TinyBackbone(), dim=16, predictor_hidden=8, symmetric=True).train()
    symmetric.load_state_dict(model.state_dict())
    views.grad = None
    loss, parts = symmetric(batch)
    with torch.no_grad():
        z_q = model.projector(torch.cat([model.backbone(views[0]), paste, canvas]))[:4]
        q_k = model.predictor(k)
    expected = (-cos(q, k) - cos(q_k, z_q)) / 2 + (-cos(p, k.flip(0)) - cos(c, k)) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert views.grad[0].abs().sum() > 0 and views.grad[1].abs().sum() > 0  # each view now predicts the other


def logo_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {"global": torch.randn(2, 4, 3, 32, 32, generator=generator),
            "local": torch.randn(2, 4, 3, 16, 16, generator=generator)}


def test_logo_clips_the_local_local_gradient_and_spares_the_critic():
    from viewkit.trainer.methods.logo import LoGo

    torch.manual_seed(0)
    model = LoGo(TinyBackbone(), dim=16, hidden=32, queue=32, momentum=0.99, temperature=0.07, ll_mode="clip",
                 clip_ratio=0.015, ll_weight=5e-4, critic_hidden=8, critic_layers=3, critic_noise=0.3)
    loss, _ = model(logo_batch())
    main, local_local = loss.main, loss.local_local
    parameters = [p for p in model.parameters() if p.requires_grad]
    critic_ids = {id(p) for p in model.critic.parameters()}
    g_main = torch.autograd.grad(main, parameters, retain_graph=True, allow_unused=True)
    g_ll = torch.autograd.grad(local_local, parameters, retain_graph=True, allow_unused=True)
    model.backward(loss)
    difference = torch.sqrt(sum(((p.grad - (gm if gm is not None else 0)) ** 2).sum() for p, gm in zip(parameters, g_main)))
    encoder_norm = torch.sqrt(sum((g ** 2).sum() for p, g in zip(parameters, g_main)
                                  if g is not None and id(p) not in critic_ids))
    ll_norm = torch.sqrt(sum((g ** 2).sum() for g in g_ll if g is not None))
    assert difference.item() == pytest.approx(min(ll_norm.item(), 0.015 * encoder_norm.item()), rel=1e-4)
    assert all(g is None or not g.abs().sum() for p, g in zip(parameters, g_ll) if id(p) in critic_ids)


def test_logo_critic_separates_positive_pairs_and_its_loss_is_bounded_below():
    """The official logistic objective: softplus(-r(pos)) + softplus(r(neg)) >= 0, so the
    critic converges (r positive on pairs of one image, negative on pairs of two) instead of
    scaling its output without bound as Omega = E_pos f - E_neg f lets a positive f do."""
    from viewkit.trainer.methods.logo import critic, critic_terms

    torch.manual_seed(0)
    model = critic(4, 16, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    anchors = F.normalize(torch.randn(64, 4), dim=1)
    partners = F.normalize(anchors + 0.05 * torch.randn(64, 4), dim=1)  # same image: close
    for _ in range(300):
        loss, _ = critic_terms(model, anchors, partners, noise=0.3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert 0 <= loss.item() < 0.2
    model.eval()
    with torch.no_grad():
        positive = model(torch.cat([anchors, partners], 1)).squeeze(1)
        negative = model(torch.cat([anchors, partners.roll(1, 0)], 1)).squeeze(1)
    assert (positive > 0).float().mean() > 0.9 and (negative < 0).float().mean() > 0.9
    assert positive.abs().max() < 50  # bounded: the loss is flat once pairs are separated


@pytest.mark.parametrize("method", ["logo_moco", "logo_simsiam"])
def test_logo_critic_is_the_official_mlp(method):
    from viewkit.trainer.methods import build_method

    head = build_method(method, TinyBackbone(), {}).critic
    linear = [m for m in head if isinstance(m, torch.nn.Linear)]
    assert len(linear) == 3 and linear[0].out_features == 256 and isinstance(head[-1], torch.nn.Linear)
    assert len([m for m in build_method(method, TinyBackbone(), {"critic_layers": 5}).critic
                if isinstance(m, torch.nn.Linear)]) == 5  # the paper's count: 5 linear layers, the head included


def test_logo_frozen_critic_pass_leaves_batchnorm_statistics_alone():
    from viewkit.trainer.methods.logo import critic, critic_terms

    torch.manual_seed(0)
    model = critic(4, 16, 3)
    reference = copy.deepcopy(model)
    local1, local2 = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    torch.manual_seed(1)
    critic_terms(model, local1, local2, noise=0.3)
    torch.manual_seed(1)  # the critic's own pass, alone, on the same noisy pairs
    a, b = local1.detach(), local2.detach()
    noise_a, noise_b = 0.15 * torch.randn_like(a), 0.15 * torch.randn_like(b)
    reference(torch.cat([torch.cat([a + noise_a, b + noise_b], 1), torch.cat([b + noise_a, a + noise_b], 1),
                         torch.cat([a, b.roll(1, 0)], 1), torch.cat([b, a.roll(1, 0)], 1)]))
    assert torch.allclose(model[1].running_mean, reference[1].running_mean)
    assert torch.allclose(model[1].running_var, reference[1].running_var)


def test_sgcl_weights_and_nearest_neighbours_by_hand():
    from viewkit.trainer.methods.sgcl import SGCL, remember

    model = SGCL(TinyBackbone(), dim=2, hidden=8, base_momentum=0.99, gamma=0.5, neighbours=2, queue=4)
    assert model.inter_loss(torch.ones(1, 2), torch.ones(1)).item() == 0.0  # memory still empty
    remember(model, torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]]))
    prediction = torch.tensor([[1.0, 0.2]])
    weight = torch.tensor([0.25]) ** 0.5  # P = 0.25, gamma = 0.5
    # Nearest two by cosine: [1, 0] and [1, 1]/sqrt(2).
    p = F.normalize(prediction, dim=1)[0]
    expected = sum(2 - 2 * float(p @ F.normalize(torch.tensor(n), dim=0)) for n in ([1.0, 0.0], [1.0, 1.0])) / 2
    assert model.inter_loss(prediction, weight).item() == pytest.approx(0.5 * expected, rel=1e-5)



def test_sgcl_on_simclr_weights_nt_xent_and_takes_neighbours_as_anchors_by_hand():
    from viewkit.trainer.methods.sgcl import build, remember

    model = build(TinyBackbone(), dim=2, hidden=8, base_momentum=0.99, gamma=0.5, neighbours=2, queue=4, base="simclr",
                  temperature=0.5, saliency_interval=0, saliency_resolution=640)
    z1 = torch.tensor([[1.0, 0.2], [-0.3, 1.0]], requires_grad=True)
    z2 = torch.tensor([[1.0, 1.0], [0.5, -1.0]], requires_grad=True)
    weight = torch.tensor([0.25, 0.81]) ** 0.5  # P = 0.25 and 0.81, gamma = 0.5
    t = 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1).double().detach()
    per_anchor = []
    for i in range(4):
        denominator = sum(math.exp(float(z[i] @ z[m]) / t) for m in range(4) if m != i)
        per_anchor.append(-math.log(math.exp(float(z[i] @ z[(i + 2) % 4]) / t) / denominator))
    intra = sum(float(weight[b]) * (per_anchor[b] + per_anchor[b + 2]) / 2 for b in range(2)) / 2
    assert model.intra_loss(z1, z2, weight).item() == pytest.approx(intra, rel=1e-5)
    assert model.intra_loss(z1, z2, torch.ones(2)).item() == pytest.approx(nt_xent(z1, z2, t).item(), rel=1e-6)

    assert model.inter_loss(z1, z2, weight).item() == 0.0  # memory still empty
    stored = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]]
    remember(model, torch.tensor(stored))
    memory = F.normalize(torch.tensor(stored, dtype=torch.float64), dim=1)
    # By cosine: image 0 ([1, 0.2]) is nearest [1, 0] and [1, 1]; image 1 ([-0.3, 1]) [0, 1] and [1, 1].
    neighbours = {0: [memory[0], memory[3]], 1: [memory[1], memory[3]]}
    positives = z[2:]
    inter = 0.0
    for b in range(2):
        for n in neighbours[b]:
            logits = [float(n @ positives[k]) / t for k in range(2)]
            inter += float(weight[b]) * -math.log(math.exp(logits[b]) / sum(math.exp(x) for x in logits)) / 4
    loss = model.inter_loss(z1, z2, weight)
    assert loss.item() == pytest.approx(inter, rel=1e-5)
    loss.backward()
    assert z1.grad is None and z2.grad.abs().sum() > 0  # z(B'_i) only picks its neighbours

@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_linear_probe_learns_separable_features(optimizer):
    from viewkit.trainer.evaluate.linear import linear_top1

    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=generator) * 3
    labels = torch.arange(3).repeat(60)
    features = centres[labels] + torch.randn(180, 16, generator=generator)
    top1 = linear_top1(features[:150], labels[:150], features[150:], labels[150:], epochs=30, lr=0.5 if optimizer == "sgd" else 5.0,
                       batch_size=32, optimizer=optimizer)
    assert top1 == 1.0
    shuffled = labels[torch.randperm(180, generator=generator)]
    assert linear_top1(features[:150], shuffled[:150], features[150:], shuffled[150:], epochs=30) < 0.6  # no signal
