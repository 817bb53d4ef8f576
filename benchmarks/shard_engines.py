"""The local engine against Ray on this machine, in one run, and what the Ray time per input
says about ImageNet-21k on a cluster.

    python benchmarks/shard_engines.py SRC [--split train] [--workers 2] [--rounds 2] \\
        [--json docs/measurements/shard-engines.jsonl]
    python benchmarks/shard_engines.py --tiny 100000 ...   # N tiny JPEGs made here, 1000 classes

SRC is an ImageNet-layout folder (SRC/<split>/<wnid>/*); `--tiny N` makes one of N 16 x 16
JPEGs in a temporary folder, where the per-input overhead of the engines, not decoding, is
what is timed: run it at several N to see that cost per input stay flat. Both engines shard it with the same
options into fresh folders, alternating, `--rounds` times each; the Ray side starts its
local Ray once, outside the timing, as a cluster would be running already. The outputs are
compared byte for byte. The estimate scales the Ray side's core-seconds per input to
14.2 million inputs on N nodes of 16 cores, and says it is a linear extrapolation that
leaves out the shared file system's bandwidth.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

IMAGENET_21K_INPUTS = 14_197_122  # the fall 2011 release


def shard_once(listing, out: Path, options, engine: str) -> float:
    from viewkit.shards.writer import write_dataset

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    write_dataset(listing, out, split="train", options=options, progress=False, engine=engine)
    return time.perf_counter() - started


def tiny_tree(root: Path, count: int) -> Path:
    """ROOT/train/<wnid>/<i>.JPEG, `count` 16 x 16 baseline JPEGs of one colour each, in 1000 classes."""
    import io

    from PIL import Image

    encoded = []
    for colour in range(256):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (colour, 255 - colour, colour // 2)).save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    for index in range(count):
        folder = root / "train" / f"n{index % 1000:08d}"
        if index < 1000:
            folder.mkdir(parents=True)
        (folder / f"{index}.JPEG").write_bytes(encoded[index % 256])
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, nargs="?")
    parser.add_argument("--tiny", type=int, help="make SRC here: this many tiny JPEGs")
    parser.add_argument("--split", default="train")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shard-samples", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import ray

    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions
    from viewkit.tools.bench_common import machine
    from viewkit.trainer.checkpoint import git_revision

    if (args.src is None) == (args.tiny is None):
        parser.error("give SRC or --tiny N")
    scratch = tempfile.TemporaryDirectory()
    source = tiny_tree(Path(scratch.name), args.tiny) if args.tiny else args.src
    listing = sources.imagenet_items(source, args.split)
    options = ShardOptions(shard_samples=args.shard_samples, workers=args.workers)
    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray_start = time.perf_counter() - started
    seconds = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.rounds):
            for engine in ("local", "ray"):
                seconds[engine].append(shard_once(listing, Path(work) / engine, options, engine))
        same = all((Path(work) / "ray" / p.name).read_bytes() == p.read_bytes() for p in (Path(work) / "local").iterdir())
    ray.shutdown()
    inputs = len(listing.items) + len(listing.rejected)
    median = {engine: statistics.median(values) for engine, values in seconds.items()}
    core_seconds_per_input = median["ray"] * args.workers / inputs
    record = {
        "name": "shard-engines", "date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision(),
        "inputs": inputs, "workers": args.workers, "rounds": args.rounds, "shard_samples": args.shard_samples,
        "seconds": seconds, "local_inputs_per_s": inputs / median["local"], "ray_inputs_per_s": inputs / median["ray"],
        "ray_over_local": median["ray"] / median["local"], "ray_start_seconds": ray_start, "identical_bytes": same,
        "ray_core_seconds_per_input": core_seconds_per_input,
        "imagenet21k_hours_by_nodes_of_16_cores": {
            str(nodes): IMAGENET_21K_INPUTS * core_seconds_per_input / (nodes * 16) / 3600 for nodes in (1, 4, 16, 64)},
        "machine": machine(),
        "command": "python benchmarks/shard_engines.py " + " ".join(
            f"{a}" for a in [*([args.src] if args.src else ["--tiny", args.tiny]), "--workers", args.workers,
                             "--rounds", args.rounds]),
    }
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}, indent=1))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")
    scratch.cleanup()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
