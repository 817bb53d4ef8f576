"""Ncut saliency, regions and the store (SGCL step 1) on planted partitions and real COCO."""

import contextlib
import io
import os

import numpy as np
import pytest
import torch
from scipy.linalg import eigh

from viewkit.saliency import SaliencyStore, ncut_saliency, saliency_regions
from viewkit.saliency.ncut import affinity, fiedler_vectors, orient
from viewkit.saliency.scatter import segment_reduce
from viewkit.saliency.sources import gt_regions


def planted(blobs, size=20, channels=64, noise=0.3, seed=0):
    """Background direction plus noise, each blob (rows, cols, strength) a foreground direction."""
    generator = torch.Generator().manual_seed(seed)
    background, foreground = torch.randn(2, channels, generator=generator)
    features = background[:, None, None] + noise * torch.randn(channels, size, size, generator=generator)
    for rows, cols, strength in blobs:
        h, w = rows.stop - rows.start, cols.stop - cols.start
        direction = strength * foreground + (1 - strength) * background
        features[:, rows, cols] = direction[:, None, None] + noise * torch.randn(channels, h, w, generator=generator)
    return features


def halfway(saliency):
    """Cells above half of the map's range: the rule the affinity measurement was made with."""
    return saliency > (saliency.min() + saliency.max()) / 2


def iou(mask, rows, cols):
    plant = torch.zeros_like(mask)
    plant[rows, cols] = True
    return ((mask & plant).sum() / (mask | plant).sum()).item()


@pytest.mark.parametrize("rule", ["tokencut", "clamp"])
def test_planted_blob_mask_box_and_score(rule):
    rows, cols = slice(4, 10), slice(5, 12)
    features = planted([(rows, cols, 1.0)])[None]
    saliency = ncut_saliency(features, rule=rule)
    assert saliency.shape == (1, 20, 20) and saliency.max() > 0 and saliency.min() < 0  # Y itself, oriented
    assert iou(saliency[0] > saliency[0].mean(), rows, cols) >= 0.9
    boxes, scores, counts = saliency_regions(saliency, torch.tensor([[480, 640]]))
    assert counts.tolist() == [1] and scores[0, 0] == 1.0
    # Cells 5..11 x 4..9 of a 20 x 20 grid over a 640 x 480 image.
    assert boxes[0, 0].tolist() == [5 * 32, 4 * 24, 12 * 32, 10 * 24]


def test_two_blobs_strongest_first():
    strong, weak = (slice(2, 7), slice(2, 8), 1.0), (slice(12, 18), slice(11, 17), 0.7)
    saliency = ncut_saliency(planted([strong, weak], noise=0.2)[None])
    mask = saliency[0] > saliency[0].mean()
    assert iou(mask, slice(2, 7), slice(2, 8)) + iou(mask, slice(12, 18), slice(11, 17)) > 0  # both found
    boxes, scores, counts = saliency_regions(saliency, torch.tensor([[20, 20]]))
    assert counts.tolist() == [2]
    assert boxes[0, 0].tolist() == [2, 2, 8, 7] and boxes[0, 1].tolist() == [11, 12, 17, 18]
    assert scores[0, 0] == 1.0 and 0 < scores[0, 1] < 1.0


def test_affinity_rule_measurement():
    """The measurement behind the default affinity rule (see viewkit.saliency.ncut.affinity):
    TokenCut's binary rule is cleaner on signed, noisy features, but on non-negative
    (post-ReLU, like a ResNet's last map) features it saturates and loses the plant."""
    rows, cols = slice(5, 11), slice(6, 13)

    def mean_iou(rule, transform, noise):
        return float(np.mean([iou(halfway(ncut_saliency(transform(planted([(rows, cols, 1.0)], noise=noise, seed=s))[None],
                                                        rule=rule)[0]), rows, cols) for s in range(5)]))

    signed = {rule: mean_iou(rule, lambda f: f, 1.0) for rule in ("tokencut", "clamp")}
    assert signed["tokencut"] >= signed["clamp"] and signed["tokencut"] >= 0.9, signed
    relu = {rule: mean_iou(rule, torch.relu, 0.3) for rule in ("tokencut", "clamp")}
    assert relu["clamp"] >= 0.95 and relu["tokencut"] < 0.8, relu


def test_batched_eigen_solve_equals_scipy():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(3, 8, 4, 5, generator=generator)
    edges = affinity(features, "clamp").double()
    ours = orient(fiedler_vectors(edges))
    for b in range(3):
        e = edges[b].numpy()
        d = np.diag(e.sum(1))
        _, vectors = eigh(d - e, d)
        theirs = orient(torch.from_numpy(vectors[:, 1])[None])[0]
        # Generalised eigenvectors are D-orthonormal in scipy; compare directions.
        np.testing.assert_allclose(ours[b] / ours[b].norm(), theirs / theirs.norm(), atol=1e-6)


def test_sign_rule_and_threshold():
    y = torch.tensor([[0.1, 0.2, -0.9, 0.3]])
    expected = torch.tensor([[-0.1, -0.2, 0.9, -0.3]])
    assert torch.equal(orient(y), expected)  # the largest |y| ends above the mean
    assert torch.equal(orient(-y), expected)
    saliency = torch.zeros(1, 6, 6)
    saliency[0, :2, :2] = 1.0  # 4 cells above the mean: kept
    saliency[0, 5, 5] = 1.0  # 1 cell: dropped by min_cells
    boxes, scores, counts = saliency_regions(saliency, torch.tensor([[6, 6]]), min_cells=4)
    assert counts.tolist() == [1] and boxes[0, 0].tolist() == [0, 0, 2, 2]


def test_region_score_is_eq_5_on_the_partition_vector_itself():
    """S = Y (SGCL, section 3.1), and P = max(S[B]) / max(S) on it: a min-max rescale first
    would raise a weak region's score (here 0.25 -> 0.5)."""
    features = planted([(slice(2, 7), slice(2, 8), 1.0)], noise=0.2)[None]
    y = orient(fiedler_vectors(affinity(features.float(), "clamp")))
    assert torch.allclose(ncut_saliency(features).reshape(1, -1), y)
    saliency = torch.full((1, 8, 8), -1.0)
    saliency[0, :2, :2] = 2.0  # the strongest region
    saliency[0, 5:7, 5:7] = 0.5  # a weak one: P = 0.5 / 2
    saliency[0, 0, 6:8] = torch.tensor([0.6, 0.6])  # too small for min_cells, but above the mean
    _, scores, counts = saliency_regions(saliency, torch.tensor([[8, 8]]), min_cells=4)
    assert counts.tolist() == [2] and scores[0, :2].tolist() == [1.0, 0.25]
    below_zero = torch.full((1, 8, 8), -4.0)
    below_zero[0, :2, :2] = 1.0
    below_zero[0, 5:7, 5:7] = -0.5  # above the mean (-3.4), below zero: Eq. 5 would be negative
    _, scores, counts = saliency_regions(below_zero, torch.tensor([[8, 8]]), min_cells=4)
    assert counts.tolist() == [2] and scores[0, :2].tolist() == [1.0, 0.0]


def test_flat_feature_map_gives_no_region():
    features = torch.ones(2, 16, 8, 8)
    saliency = ncut_saliency(features)
    assert torch.equal(saliency, torch.zeros(2, 8, 8))
    _, scores, counts = saliency_regions(saliency, torch.tensor([[64, 64], [64, 64]]))
    assert counts.tolist() == [0, 0] and scores.sum() == 0


def test_scatter_backends_agree():
    values = torch.tensor([0.5, 0.9, 0.1, 0.7, 0.3])
    segments = torch.tensor([0, 0, 1, 2, 2])
    assert segment_reduce(values, segments, 3, "amax").tolist() == pytest.approx([0.9, 0.1, 0.7])
    assert segment_reduce(values, segments, 3, "amin").tolist() == pytest.approx([0.5, 0.1, 0.3])
    pytest.importorskip("torch_scatter", reason="the [scatter] extra is not installed: native path only")
    os.environ["VIEWKIT_SCATTER"] = "torch_scatter"
    try:
        assert segment_reduce(values, segments, 3, "amax").tolist() == pytest.approx([0.9, 0.1, 0.7])
    finally:
        del os.environ["VIEWKIT_SCATTER"]


def test_store_round_trip_and_atomic_replace(tmp_path):
    store = SaliencyStore(tmp_path / "store")
    boxes = np.arange(5 * 8 * 4, dtype=np.float32).reshape(5, 8, 4)
    scores = np.full((5, 8), 0.5, np.float32)
    counts = np.full(5, 8, np.int32)
    assert store.write(boxes, scores, counts, source="ncut", epoch=100)["version"] == 1
    table = store.table()
    np.testing.assert_array_equal(table.boxes, boxes)
    assert table.version == "ncut v1 epoch 100" and store.meta["max_regions"] == 8
    # A refresh that dies before its swap leaves a half-written folder: the store still reads v1.
    (tmp_path / "store.v2").mkdir()
    (tmp_path / "store.v2" / "boxes.npy").write_bytes(b"torn")
    np.testing.assert_array_equal(SaliencyStore(tmp_path / "store").table().scores, scores)
    store.write(boxes + 1, scores, counts, source="ncut", epoch=200)
    assert store.meta["version"] == 2 and store.table().boxes[0, 0, 0] == 1.0
    assert not (tmp_path / "store.v1").exists()


def test_gt_source_equals_pycocotools(coco_source, coco_source_shards):
    from pycocotools.coco import COCO
    import json
    import webdataset as wds

    from viewkit.shards import format as fmt
    from viewkit.shards.manifest import read_manifest

    coco_shards = coco_source_shards
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(coco_source[1]))
    boxes, scores, counts = gt_regions(coco_shards, top_k=50)
    manifest = read_manifest(coco_shards)
    for sample in wds.WebDataset([str(coco_shards / s["tar"]) for s in manifest["shards"]], shardshuffle=False):
        meta = json.loads(sample["json"])
        info = coco.imgs[meta["image_id"]]
        sx, sy = meta["stored_size"][0] / info["width"], meta["stored_size"][1] / info["height"]
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[meta["image_id"]])) if not a["iscrowd"]]
        expected = sorted(([a["bbox"][0] * sx, a["bbox"][1] * sy, (a["bbox"][0] + a["bbox"][2]) * sx,
                            (a["bbox"][1] + a["bbox"][3]) * sy] for a in anns),
                          key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        row = meta["id"]
        assert counts[row] == len(expected)
        np.testing.assert_allclose(boxes[row, : counts[row]], np.array(expected).reshape(-1, 4), rtol=1e-5, atol=1e-3)
        assert (scores[row, : counts[row]] == 1.0).all() and (scores[row, counts[row]:] == 0).all()


def test_store_joins_by_id_through_the_loader(embedded_shards, tmp_path):
    from dataclasses import replace

    from viewkit import ViewLoader, recipes

    n = 60
    boxes = np.zeros((n, 8, 4), np.float32)
    scores = np.zeros((n, 8), np.float32)
    boxes[:, 0] = np.stack([np.arange(n), np.arange(n), np.arange(n) + 30, np.arange(n) + 30], 1)
    scores[:, 0] = 1.0
    counts = np.ones(n, np.int32)
    store = SaliencyStore(tmp_path / "store")
    store.write(boxes, scores, counts, source="test")
    recipe = recipes.get("sgcl")
    recipe = replace(recipe, saliency=replace(recipe.saliency, size=16))
    loader = ViewLoader(embedded_shards, recipe, 12, device="cpu", threads=2, side_data=store.table(), drop_last=False)
    for batch in loader:
        ids = batch["id"]
        expected = torch.stack([ids, ids, ids + 30, ids + 30], 1).float()
        assert torch.equal(batch["saliency_regions"][:, 0], expected)
    assert loader.state_dict()["side_data_version"] == "test v1 epoch None"



def test_regions_of_other_shards_are_refused(embedded_shards, coco_shards, tmp_path, capsys):
    """Rows join by sample id: another dataset's regions would land on the wrong images."""
    from viewkit import ViewLoader, recipes
    from viewkit.loaders import RegionTable
    from viewkit.tools.cli import main

    assert main(["saliency", str(coco_shards), "--out", str(tmp_path / "coco"), "--source", "gt"]) == 0
    assert SaliencyStore(tmp_path / "coco").meta["dataset"] == str(coco_shards)
    coco_regions = SaliencyStore(tmp_path / "coco").table()
    assert len(coco_regions.scores) != 60
    coco_regions.boxes, coco_regions.scores = np.zeros((60, 8, 4), np.float32), np.zeros((60, 8), np.float32)
    with pytest.raises(ValueError, match=f"saliency store {tmp_path / 'coco'} was made for other shards .* "
                                         f"not {embedded_shards}"):
        ViewLoader(embedded_shards, recipes.get("sgcl"), 12, device="cpu", side_data=coco_regions)
    short = RegionTable(np.zeros((59, 8, 4)), np.zeros((59, 8)))
    with pytest.raises(ValueError, match=f"side data has 59 rows, {embedded_shards} holds 60 samples"):
        ViewLoader(embedded_shards, recipes.get("sgcl"), 12, device="cpu", side_data=short)
    loader = ViewLoader(embedded_shards, recipes.get("sgcl"), 12, device="cpu")
    with pytest.raises(ValueError, match="was made for other shards"):
        loader.set_side_data(coco_regions)


def test_saliency_command_builds_stores(embedded_shards, coco_shards, tmp_path, capsys, monkeypatch):
    from viewkit.saliency import sources
    from viewkit.tools.cli import main

    threads, ncut = [], sources.ncut_regions
    monkeypatch.setattr(sources, "ncut_regions", lambda *a, **k: threads.append(torch.get_num_threads()) or ncut(*a, **k))
    given = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["saliency", str(embedded_shards), "--out", str(tmp_path / "ncut"), "--arch", "resnet18",
                     "--random-init", "--resolution", "128", "--batch-size", "20", "--device", "cpu", "--threads", "1"]) == 0
        assert threads == [1] and torch.get_num_threads() == 2  # --threads bounds torch too, for this command only
    finally:
        torch.set_num_threads(given)
    store = SaliencyStore(tmp_path / "ncut")
    assert store.meta["num_samples"] == 60 and store.meta["source"] == "ncut"
    assert main(["saliency", str(coco_shards), "--out", str(tmp_path / "gt"), "--source", "gt"]) == 0
    assert (SaliencyStore(tmp_path / "gt").counts() > 0).sum() == 30  # 32 images, 2 without annotations
    assert main(["saliency", str(embedded_shards), "--out", str(tmp_path / "x")]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_overlapped_refresh_equals_the_sequential_one(embedded_shards):
    """The CPU labelling on a worker thread must not change or lose any sample's regions."""
    from viewkit.saliency.sources import ncut_regions
    from viewkit.trainer.nets import Backbone

    torch.manual_seed(0)
    trunk = Backbone("resnet18").trunk
    kwargs = dict(resolution=160, batch_size=16, device="cpu", min_cells=2, progress=False, threads=2)
    overlapped = ncut_regions(embedded_shards, trunk, overlap=True, **kwargs)
    sequential = ncut_regions(embedded_shards, trunk, overlap=False, **kwargs)
    for a, b in zip(overlapped, sequential):
        assert np.array_equal(a, b)
    boxes, scores, counts = overlapped
    assert len(counts) == 60 and (counts > 0).all()  # every sample written (60 = 3 full batches + 12)
    assert (scores[:, 0] == 1.0).all()  # the region holding the map's peak scores 1 (Eq. 5)
