"""The loader refuses shards that would train wrong data without an error: counts that
disagree with the manifest, and (with verify_checksums) bytes that changed."""

import json
import shutil

import pytest

from viewkit import ViewLoader, recipes
from viewkit.loaders import dataset
from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest


@pytest.fixture
def copy_of(embedded_shards, tmp_path):
    shutil.copytree(embedded_shards, tmp_path / "ds")
    return tmp_path / "ds"


def _loader(shards, **kwargs):
    return ViewLoader(shards, recipes.get("moco_v2", global_size=32), 4, device="cpu", threads=1, **kwargs)


def test_a_count_that_disagrees_with_the_index_is_refused(copy_of):
    manifest = json.loads((copy_of / fmt.MANIFEST_NAME).read_text())
    last = manifest["shards"][-1]
    last["samples"] += 1  # would deliver a sample twice, marked valid; the counts still add up
    manifest["num_samples"] += 1
    manifest["num_inputs"] += 1
    last["inputs"][1] += 1
    (copy_of / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"{last['index']}: holds 12 samples, .* says 13"):
        _loader(copy_of)
    last["samples"] -= 1  # now only the total is off: the manifest itself is refused, naming the field
    (copy_of / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="dataset.json: num_samples: 61, but the shards hold 60"):
        _loader(copy_of)


def test_changed_bytes_are_caught_by_verify_checksums_once_per_process(copy_of, monkeypatch):
    shard = read_manifest(copy_of)["shards"][2]
    _, offset, size, _ = fmt.parse_index(copy_of / shard["index"])[3][0]
    with open(copy_of / shard["tar"], "r+b") as f:  # a few flipped bytes inside a JPEG: DALI decodes it anyway
        f.seek(offset + size // 2)
        f.write(b"\x13\x37\x13\x37")
    _loader(copy_of)  # sizes and indices are intact: only hashing sees it
    with pytest.raises(ValueError, match=rf"{shard['tar']}: sha256 differs from the manifest"):
        _loader(copy_of, verify_checksums=True)



def test_each_shard_is_hashed_once_per_process(embedded_shards, monkeypatch):
    hashed, sha256_file = [], fmt.sha256_file
    monkeypatch.setattr(dataset, "_HASHED", {})
    monkeypatch.setattr(fmt, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    for _ in range(3):  # e.g. a loader per epoch, and one per evaluation
        _loader(embedded_shards, verify_checksums=True)
    assert len(hashed) == len(set(hashed)) == len(read_manifest(embedded_shards)["shards"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=True), "batch_size=True must be a positive integer"),
    (dict(rank="1", world_size=2), "rank='1' must be an integer"),
    (dict(rank=0, world_size=61, drop_last=False), "world size 61 is larger than the 60 samples"),
])
def test_arguments_that_would_fail_later_are_refused_at_construction(embedded_shards, kwargs, message):
    kwargs = dict(batch_size=4) | kwargs
    with pytest.raises(ValueError, match=message):
        ViewLoader(embedded_shards, "moco_v2", kwargs.pop("batch_size"), device="cpu", **kwargs)


def test_a_finished_epoch_is_not_iterated_again_and_its_state_resumes_the_next(embedded_shards):
    loader = _loader(embedded_shards, seed=4)
    loader.set_epoch(0)
    assert len(list(loader)) == len(loader)
    with pytest.raises(RuntimeError, match=r"epoch 0 is over: call set_epoch\(1\)"):
        list(loader)
    resumed = _loader(embedded_shards, seed=4)
    resumed.load_state_dict(loader.state_dict())
    fresh = _loader(embedded_shards, seed=4)
    fresh.set_epoch(1)
    assert resumed.epoch == 1
    assert [b["id"].tolist() for b in resumed] == [b["id"].tolist() for b in fresh]
