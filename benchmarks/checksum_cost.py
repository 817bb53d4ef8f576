"""What `verify_checksums=True` (on by default in `viewkit train`) costs against a first epoch.

    python benchmarks/checksum_cost.py SHARDS [--recipe moco_v2] [--size 64] [--batch-size 64]
                                       [--threads 2] [--device cpu|gpu]

Measures, in one run: hashing every shard as the loader does (the page cache warm, as it is
after sharding or a first read), and one epoch of the loader without hashing. Prints
the hashing time as a share of that epoch and the hash rate, from which the cost on other
data follows (an ImageNet train set is about 140 GB); appends a JSON line to
docs/measurements/checksum-cost.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from viewkit import ViewLoader, recipes
from viewkit.loaders import dataset
from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest

MEASUREMENTS = Path(__file__).resolve().parents[1] / "docs" / "measurements" / "checksum-cost.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards")
    parser.add_argument("--recipe", default="moco_v2")
    parser.add_argument("--size", type=int, default=64, help="global view size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    manifest = read_manifest(args.shards)
    total_bytes = sum(s["bytes"] for s in manifest["shards"])
    for shard in manifest["shards"]:  # warm the page cache for both sides alike
        fmt.sha256_file(Path(manifest["root"]) / shard["tar"])
    dataset._HASHED.clear()
    started = time.perf_counter()
    dataset.open_dataset(args.shards, verify_checksums=True)
    hash_seconds = time.perf_counter() - started

    loader = ViewLoader(args.shards, recipes.get(args.recipe, global_size=args.size), args.batch_size,
                        device=args.device, threads=args.threads, drop_last=True)
    loader.set_epoch(0)
    started = time.perf_counter()
    batches = sum(1 for _ in loader)
    epoch_seconds = time.perf_counter() - started

    record = {
        "name": "checksum-cost", "command": "python benchmarks/checksum_cost.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "shards"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "samples": manifest["num_samples"], "shards": len(manifest["shards"]), "bytes": total_bytes,
        "hash_seconds": hash_seconds, "hash_mb_per_s": total_bytes / 1e6 / hash_seconds,
        "epoch_seconds": epoch_seconds, "epoch_batches": batches,
        "hash_share_of_first_epoch": hash_seconds / epoch_seconds,
        "imagenet_140gb_hash_seconds": 140e9 / (total_bytes / hash_seconds),
    }
    print(f"hashing {len(manifest['shards'])} shards ({total_bytes / 1e6:.0f} MB): {hash_seconds:.2f} s "
          f"({record['hash_mb_per_s']:.0f} MB/s); first epoch ({batches} batches of {args.recipe} at "
          f"{args.size} px, {args.device}, {args.threads} threads): {epoch_seconds:.1f} s; "
          f"hashing = {record['hash_share_of_first_epoch']:.1%} of it; ImageNet (140 GB) would hash in "
          f"{record['imagenet_140gb_hash_seconds']:.0f} s on this machine's {os.cpu_count()} cores, split over the ranks")
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    with open(MEASUREMENTS, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
