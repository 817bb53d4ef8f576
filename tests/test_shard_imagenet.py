"""ImageNet layout: counts, labels, shuffling, equal shards, determinism, readers."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest
from viewkit.shards import sources
from viewkit.shards.writer import ShardOptions, write_dataset


def read_samples(root: Path) -> list[dict]:
    manifest = read_manifest(root)
    urls = [str(root / s["tar"]) for s in manifest["shards"]]
    return list(wds.WebDataset(urls, shardshuffle=False))


def test_counts_labels_and_classes(imagenet_source, imagenet_shards):
    src = imagenet_source / "train"
    manifest = read_manifest(imagenet_shards)
    wnids = sorted(p.name for p in src.iterdir())
    assert manifest["num_samples"] == 200 and manifest["num_rejected"] == 0
    assert [c["id"] for c in manifest["classes"]] == wnids
    samples = read_samples(imagenet_shards)
    assert len(samples) == 200
    for sample in samples:
        meta = json.loads(sample["json"])
        wnid = meta["source"].split("/")[1]
        assert int(sample["cls"]) == wnids.index(wnid) == meta["label"]
        assert np.frombuffer(sample["label.i64"], "<i8")[0] == meta["label"]
        assert np.frombuffer(sample["id.i64"], "<i8")[0] == meta["id"] == int(sample["__key__"])
        assert (src / meta["source"].split("/", 1)[1]).exists()
    assert sorted(json.loads(s["json"])["id"] for s in samples) == list(range(200))


def test_globally_shuffled_equal_shards(imagenet_shards):
    manifest = read_manifest(imagenet_shards)
    assert [s["samples"] for s in manifest["shards"]] == [48, 48, 48, 48, 8]
    labels = [int(s["cls"]) for s in read_samples(imagenet_shards)]
    # Sorted input (label order) must not survive: the first shard spans the label range.
    assert labels != sorted(labels)
    assert max(labels[:48]) - min(labels[:48]) > 150


def test_passthrough_bytes_are_untouched(imagenet_source, imagenet_shards):
    src = imagenet_source
    passed = 0
    for sample in read_samples(imagenet_shards):
        meta = json.loads(sample["json"])
        if meta["converted"] is None:
            assert sample["jpg"] == (src / meta["source"]).read_bytes()
            passed += 1
    assert passed > 150  # nearly all ImageNet files already are RGB baseline JPEGs


def test_index_files_equal_wds2idx(imagenet_shards, tmp_path):
    if shutil.which("wds2idx") is None:
        pytest.skip("DALI's wds2idx script is not on PATH")
    for shard in read_manifest(imagenet_shards)["shards"]:
        theirs = tmp_path / shard["index"]
        subprocess.run(["wds2idx", str(imagenet_shards / shard["tar"]), str(theirs)], check=True, capture_output=True)
        assert theirs.read_bytes() == (imagenet_shards / shard["index"]).read_bytes()


def test_same_seed_same_bytes_other_seed_other_order(imagenet_source, tmp_path):
    listing = sources.imagenet_items(imagenet_source, "train")
    runs = {}
    for name, seed, workers in (("a", 0, 1), ("b", 0, 2), ("c", 1, 2)):
        write_dataset(listing, tmp_path / name, split="train", options=ShardOptions(shard_samples=64, seed=seed, workers=workers), progress=False)
        runs[name] = {p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())}
    assert runs["a"] == runs["b"]
    assert runs["a"]["train-000000.tar"] != runs["c"]["train-000000.tar"]


def test_dali_reads_the_shards(imagenet_shards):
    from nvidia.dali import fn, pipeline_def, types

    manifest = read_manifest(imagenet_shards)

    @pipeline_def(batch_size=50, num_threads=2, device_id=None)
    def read():
        jpg, sid, label = fn.readers.webdataset(
            paths=[str(imagenet_shards / s["tar"]) for s in manifest["shards"]],
            index_paths=[str(imagenet_shards / s["index"]) for s in manifest["shards"]],
            ext=["jpg", "id.i64", "label.i64"], dtypes=[types.UINT8, types.INT64, types.INT64],
            random_shuffle=False, name="reader")
        image = fn.decoders.image(jpg, device="cpu")
        return image.shape(), sid, label

    pipe = read()
    pipe.build()
    ids, labels = [], []
    for _ in range(4):
        shapes, sid, label = pipe.run()
        ids += [int(np.asarray(sid[i])[0]) for i in range(len(sid))]
        labels += [int(np.asarray(label[i])[0]) for i in range(len(label))]
        assert all(np.asarray(shapes[i])[2] == 3 for i in range(len(shapes)))
    assert sorted(ids) == list(range(200))
    by_id = {json.loads(s["json"])["id"]: int(s["cls"]) for s in read_samples(imagenet_shards)}
    assert labels == [by_id[i] for i in ids]


def write_flat_val(source: Path, tmp_path: Path, label_format: str) -> Path:
    """A flat ImageNet val folder made from the sample images, with a label file."""
    src = source / "train"
    root = tmp_path / "imagenet"
    (root / "val").mkdir(parents=True)
    wnids = sorted(p.name for p in src.iterdir())[:5]
    for wnid in wnids:
        (root / "train" / wnid).mkdir(parents=True)
    rows = []
    for i, wnid in enumerate(wnids):
        image = next((src / wnid).iterdir())
        name = f"ILSVRC2012_val_{i:08d}"
        shutil.copy(image, root / "val" / f"{name}.JPEG")
        rows.append((name, wnid, i))
    if label_format == "csv":
        lines = ["ImageId,PredictionString"] + [f"{n},{w} 1 2 30 40" for n, w, _ in rows]
        (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    else:
        (root / "val.txt").write_text("".join(f"{n}.JPEG {i}\n" for n, _, i in rows))
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} name of {w}\n" for w in wnids))
    return root


@pytest.mark.parametrize("label_format", ["csv", "txt"])
def test_flat_val_with_label_file(imagenet_source, tmp_path, label_format):
    root = write_flat_val(imagenet_source, tmp_path, label_format)
    labels = str(root / "val.txt") if label_format == "txt" else None
    listing = sources.imagenet_items(root, "val", labels)
    assert [(Path(i.rel).stem[-1], i.label, i.class_name.startswith("name of n")) for i in listing.items] == [
        (str(k), k, True) for k in range(5)]
    assert [c["name"] for c in listing.classes] == [f"name of {c['id']}" for c in listing.classes]


def test_flat_val_without_labels_is_a_clear_error(imagenet_source, tmp_path):
    root = write_flat_val(imagenet_source, tmp_path, "txt")
    with pytest.raises(FileNotFoundError, match="--labels"):
        sources.imagenet_items(root, "val")
