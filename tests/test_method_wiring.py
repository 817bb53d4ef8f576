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
