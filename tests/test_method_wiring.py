"""Wiring of the methods themselves, on hand-built features: the right pairing of queries,
positives and negatives gives the hand-computed loss, and the obvious mis-wirings do not."""

import math

import pytest
import torch
import torch.nn.functional as F

from viewkit.trainer.methods import regioncl
from viewkit.trainer.methods import build_method

from tiny import TinyBackbone

B, DIM, QUEUE, T = 4, 4, 5, 0.2


def hand_info_nce(queries, positives, queue, extra=None) -> float:
    """-log softmax of the positive among [positive, extra, queue], mean over queries, by loops."""
    total = 0.0
    for i, query in enumerate(queries):
        logits = [float(query @ positives[i]) / T]
        if extra is not None:
            logits.append(float(query @ extra[i]) / T)
        logits += [float(query @ negative) / T for negative in queue]
        total += -logits[0] + math.log(sum(math.exp(v) for v in logits))
    return total / len(queries)


@pytest.fixture
def regioncl_model(monkeypatch):
    torch.manual_seed(0)
    model = build_method("regioncl", TinyBackbone(), {"queue": QUEUE, "dim": DIM, "hidden": 8, "temperature": T})
    q, k = (F.normalize(torch.randn(B, DIM), dim=1) for _ in range(2))
    paste, canvas = torch.randn(B, DIM), torch.randn(B, DIM)
    # The encoder's outputs and the pooled regions fixed by hand; the projector an identity.
    monkeypatch.setattr(model.encoder, "update", lambda: None)
    monkeypatch.setattr(model.encoder, "query", lambda view: q)
    monkeypatch.setattr(model.encoder, "key", lambda view: k)
    monkeypatch.setattr(model.encoder, "projector", torch.nn.Identity())
    monkeypatch.setattr(model.backbone, "feature_map", lambda x: x)
    monkeypatch.setattr(regioncl, "check_composite", lambda *args: None)
    monkeypatch.setattr(regioncl, "pool_paste_and_canvas", lambda *args: (paste, canvas))
    return model, q, k, F.normalize(paste, dim=1), F.normalize(canvas, dim=1)


def test_regioncl_pairs_canvas_with_its_key_and_paste_with_the_source_key(regioncl_model):
    model, q, k, z_paste, z_canvas = regioncl_model
    queue = model.queue.keys.clone()
    source = torch.tensor([3, 2, 1, 0])  # composite i holds sample B-1-i's region
    image = torch.zeros(B, 3, 32, 32)
    batch = {"global": (image, image), "swap": image, "swap_box": torch.tensor([0, 0, 16, 16]), "swap_source": source}
    loss, parts = model(batch)
    instance = hand_info_nce(q, k, queue)
    canvas_term = hand_info_nce(z_canvas, k, queue, extra=z_paste)  # its own key; its paste as a negative
    paste_term = hand_info_nce(z_paste, k[source], queue, extra=z_canvas)  # the source's key; its canvas
    assert float(parts["loss_instance"]) == pytest.approx(instance, rel=1e-5)
    assert float(parts["loss_region"]) == pytest.approx((canvas_term + paste_term) / 2, rel=1e-5)
    assert float(loss) == pytest.approx(instance + (canvas_term + paste_term) / 2, rel=1e-5)
    # the mis-wirings differ: the paste paired with its own canvas's key, or no extra negative
    wrong_paste = hand_info_nce(z_paste, k, queue, extra=z_canvas)
    no_extra = (hand_info_nce(z_canvas, k, queue) + hand_info_nce(z_paste, k[source], queue)) / 2
    for wrong in ((canvas_term + wrong_paste) / 2, no_extra):
        assert abs(float(parts["loss_region"]) - wrong) > 1e-3


def test_scd_triplet_has_its_foreground_and_background_hinges(monkeypatch):
    torch.manual_seed(1)
    model = build_method("scd_moco", TinyBackbone(), {"queue": QUEUE, "dim": DIM, "hidden": 8, "temperature": T,
                                                  "saliency_hidden": 8})
    z1_fg, z2_fg, z2_bg = (torch.randn(B, DIM) for _ in range(3))
    z1_bg = z2_fg + 0.1 * torch.randn(B, DIM)  # background that looks like the other view's foreground: bg hinge > 0
    feature = torch.randn(B, DIM, 1, 1)
    for name, value in (("update", lambda: None), ("projector", torch.nn.Identity()),
                        ("key_projector", torch.nn.Identity())):
        monkeypatch.setattr(model.encoder, name, value)
    monkeypatch.setattr(model.semantic, "update", lambda momentum: None)
    monkeypatch.setattr(model.backbone, "feature_map", lambda x: feature)
    monkeypatch.setattr(model.encoder.key_backbone, "feature_map", lambda x: feature)
    monkeypatch.setattr(model.semantic, "online", lambda feature_map: (z1_fg, z1_bg))
    monkeypatch.setattr(model.semantic, "target", lambda feature_map: (z2_fg, z2_bg))
    image = torch.zeros(B, 3, 32, 32)
    loss, parts = model({"global": (image, image)})

    cos = F.cosine_similarity
    fg = (cos(z1_fg, z2_bg) - cos(z1_fg, z2_fg) + 1.0).clamp_min(0)  # alpha = 1
    bg = (cos(z1_bg, z2_fg) - cos(z1_bg, z2_bg)).clamp_min(0)
    assert float(bg.sum()) > 0.5 and float(fg.sum()) > 0.5  # both hinges are live here
    assert float(parts["loss_triplet"]) == pytest.approx(float((0.5 * (fg + bg)).mean()), rel=1e-5)
    assert float(loss) == pytest.approx(float(parts["loss_contrastive"]) + 0.5 * float(parts["loss_triplet"]), rel=1e-5)


def test_logo_averages_its_six_terms_enqueues_both_globals_and_pushes_locals_apart(monkeypatch):
    from viewkit.trainer.methods import logo

    torch.manual_seed(2)
    model = build_method("logo_moco", TinyBackbone(), {"queue": 16, "dim": DIM, "hidden": 8, "temperature": T,
                                                       "critic_hidden": 8})
    queries = [F.normalize(torch.randn(B, DIM), dim=1) for _ in range(4)]  # global 0, global 1, local 0, local 1
    keys = [F.normalize(torch.randn(B, DIM), dim=1) for _ in range(2)]
    # each view is filled with its index, so the stand-in encoder knows which view it is given
    monkeypatch.setattr(model.encoder, "query", lambda view: queries[int(view.flatten()[0])])
    monkeypatch.setattr(model.encoder, "key", lambda view: keys[int(view.flatten()[0])])
    views = torch.arange(4.0).view(4, 1, 1, 1, 1)
    batch = {"global": views[:2].expand(2, B, 3, 32, 32), "local": views[2:].expand(2, B, 3, 16, 16)}
    queue = model.queue.keys.clone()
    torch.manual_seed(3)
    loss, parts = model(batch)

    g0, g1, l0, l1 = queries
    gg = hand_info_nce(g0, keys[1], queue) + hand_info_nce(g1, keys[0], queue)
    lg = sum(hand_info_nce(local, key, queue) for local in (l0, l1) for key in keys)
    assert float(parts["loss_gg"]) == pytest.approx(gg, rel=1e-5)
    assert float(parts["loss_lg"]) == pytest.approx(lg, rel=1e-5)
    assert float(loss.main.detach() - parts["loss_critic"]) == pytest.approx((gg + lg) / 6, rel=1e-5)
    wrong_globals = hand_info_nce(g0, keys[0], queue) + hand_info_nce(g1, keys[1], queue)  # each with its own key
    for wrong in (gg + lg, (wrong_globals + lg) / 6):  # summed, not averaged; globals mis-paired
        assert abs(float(loss.main.detach() - parts["loss_critic"]) - wrong) > 1e-3
    assert sorted(map(tuple, model.queue.keys[:2 * B].tolist())) == sorted(map(tuple, torch.cat(keys).tolist()))

    critic = model.critic
    with torch.no_grad():
        scores = critic(torch.cat([l0, l1], dim=1)).squeeze(1)
    assert float(parts["loss_ll"]) == pytest.approx(float(F.softplus(scores).mean()), rel=1e-5)
    assert abs(float(parts["loss_ll"]) - float(F.softplus(-scores).mean())) > 1e-3  # the critic's sign
    torch.manual_seed(3)  # the same noise draw as inside the method: n then n'
    std = 0.3 / DIM ** 0.5
    noise_a, noise_b = std * torch.randn_like(l0), std * torch.randn_like(l1)

    def critic_loss(noise: bool, positive_sign: float) -> float:
        a, b = (l0 + noise_a, l1 + noise_b) if noise else (l0, l1)
        a2, b2 = (l1 + noise_a, l0 + noise_b) if noise else (l1, l0)
        pairs = torch.cat([torch.cat([a, b], 1), torch.cat([a2, b2], 1), torch.cat([l0, l1.roll(1, 0)], 1),
                           torch.cat([l1, l0.roll(1, 0)], 1)])
        with torch.no_grad():
            s12, s21, n12, n21 = critic(pairs).squeeze(1).chunk(4)
        return float((0.5 * F.softplus(positive_sign * s12) + 0.5 * F.softplus(positive_sign * s21)
                      + 0.5 * F.softplus(-positive_sign * n12) + 0.5 * F.softplus(-positive_sign * n21)).mean())

    assert float(parts["loss_critic"]) == pytest.approx(critic_loss(noise=True, positive_sign=-1.0), rel=1e-5)
    for wrong in (critic_loss(noise=False, positive_sign=-1.0), critic_loss(noise=True, positive_sign=1.0)):
        assert abs(float(parts["loss_critic"]) - wrong) > 1e-4
    assert logo.SplitLoss is type(loss)  # clip mode: the encoder's L_ll gradient is taken apart


def test_sgcl_weights_each_region_pair_by_its_score_and_pairs_the_two_crops_of_a_region(monkeypatch):
    torch.manual_seed(4)
    model = build_method("sgcl", TinyBackbone(), {"dim": DIM, "hidden": 8, "queue": 64, "neighbours": 2})
    t = 3  # region pairs per image
    online = [[torch.randn(B, DIM) for _ in range(2)] for _ in range(t)]
    target = [[torch.randn(B, DIM) for _ in range(2)] for _ in range(t)]
    # crop [i, j] of every image is filled with 10 i + j, so the stand-in networks know which crop they see
    crops = (10 * torch.arange(t).view(t, 1, 1, 1, 1, 1) + torch.arange(2).view(1, 2, 1, 1, 1, 1)).float()
    crops = crops.expand(t, 2, B, 3, 8, 8)

    def which(images):
        code = int(images.flatten()[0])
        return code // 10, code % 10

    monkeypatch.setattr(model, "online", lambda images: online[which(images)[0]][which(images)[1]])
    monkeypatch.setattr(model, "target", lambda images: target[which(images)[0]][which(images)[1]])
    scores = torch.rand(B, t)
    loss, parts = model({"saliency": crops, "saliency_scores": scores})

    def byol(p, z):
        return 2 - 2 * F.cosine_similarity(p, z, dim=1)

    def intra(weights, first=0, second=1):
        return sum((weights[:, i] * (byol(online[i][first], target[i][second])
                                     + byol(online[i][second], target[i][first]))).mean() for i in range(t))

    assert float(parts["loss_intra"]) == pytest.approx(float(intra(scores ** 0.5)), rel=1e-5)
    for wrong in (intra(torch.ones_like(scores)), intra(scores), intra(scores ** 0.5, first=0, second=0)):
        assert abs(float(parts["loss_intra"]) - float(wrong)) > 1e-4  # unweighted; gamma 1; each crop with itself
    assert float(parts["loss_inter"]) == 0.0  # the memory holds nothing before this step's targets
    assert torch.equal(model.memory[: t * B], F.normalize(torch.cat([target[i][1] for i in range(t)]), dim=1))


def test_leoclr_attracts_the_original_to_each_crop_key():
    torch.manual_seed(5)
    model = build_method("leoclr", TinyBackbone(), {"queue": QUEUE, "dim": DIM, "hidden": 8, "temperature": T})
    embeddings = [F.normalize(torch.randn(B, DIM), dim=1) for _ in range(3)]  # original, crop 1, crop 2
    model.encoder.query = lambda images: embeddings[int(images.flatten()[0])]
    model.encoder.key = lambda images: embeddings[int(images.flatten()[0])]
    views = torch.arange(3.0).view(3, 1, 1, 1, 1).expand(3, B, 3, 8, 8)
    queue = model.queue.keys.clone()
    loss, _ = model({"original": views[0], "global": views[1:]})
    u, v1, v2 = embeddings
    expected = hand_info_nce(u, v1, queue) + hand_info_nce(u, v2, queue)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    for wrong in (hand_info_nce(v1, v2, queue) + hand_info_nce(v2, v1, queue),  # crops to each other (MoCo's pairing)
                  hand_info_nce(v1, u, queue) + hand_info_nce(v2, u, queue)):  # crops as queries of the original
        assert abs(float(loss) - wrong) > 1e-3
