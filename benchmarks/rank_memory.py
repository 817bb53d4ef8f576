"""What one rank's pipeline costs to build, in memory and time, as the dataset grows: a
reader given its part's index files against a reader of every shard (DALI's own split).

    python benchmarks/rank_memory.py [--sizes 10000 50000 200000] [--worlds 1 2 4] \\
        [--shard-samples 1000] [--json docs/measurements/rank-memory.jsonl]

For each size, N tiny JPEGs (16 x 16, benchmarks/shard_engines.py's tree) are sharded once;
then rank 0 of each world builds its first epoch's pipeline in a fresh process, each way,
alternating, and reports the growth of its resident memory over the build and the build's
wall time. Ratios (every shard / part) are of the same size and world, in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEASURE = """
import json, sys, time
from viewkit import ViewLoader, recipes

def rss_kb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))

shards, world, whole = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "whole"
loader = ViewLoader(shards, recipes.get("moco_v2", global_size=16), 8, device="cpu", threads=1, rank=0,
                    world_size=world, build_ahead=False)
loader.set_epoch(0)
loader._whole_reader = whole  # the reader viewkit built before part files: every shard, split by DALI
before = rss_kb()
started = time.perf_counter()
loader._start()
built = time.perf_counter() - started
after = rss_kb()
next(iter(loader))
print(json.dumps({"build_s": built, "rss_growth_mb": (after - before) / 1024, "first_batch_rss_mb": rss_kb() / 1024}))
"""


def measure(shards: Path, world: int, reader: str) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(shards), str(world), reader], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--shard-samples", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from shard_engines import tiny_tree

    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions, write_dataset
    from viewkit.tools.bench_common import machine
    from viewkit.trainer.checkpoint import git_revision

    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as scratch:
            source = tiny_tree(Path(scratch) / "src", size)
            shards = Path(scratch) / "shards"
            write_dataset(sources.imagenet_items(source, "train"), shards, split="train",
                          options=ShardOptions(shard_samples=args.shard_samples, workers=2), progress=False)
            for world in args.worlds:
                part, whole = measure(shards, world, "part"), measure(shards, world, "whole")
                row = {"samples": size, "world": world, "part": part, "every_shard": whole,
                       "memory_ratio": whole["rss_growth_mb"] / max(part["rss_growth_mb"], 1e-3),
                       "build_ratio": whole["build_s"] / part["build_s"]}
                rows.append(row)
                print(f"{size:>8} samples, world {world}: rank 0 build {part['build_s'] * 1e3:7.1f} ms, "
                      f"+{part['rss_growth_mb']:6.1f} MB with part files; {whole['build_s'] * 1e3:7.1f} ms, "
                      f"+{whole['rss_growth_mb']:6.1f} MB reading every shard "
                      f"(ratios {row['build_ratio']:.2f} time, {row['memory_ratio']:.2f} memory)", flush=True)
    if args.json:
        record = {"name": "rank-memory", "date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision(),
                  "command": "python benchmarks/rank_memory.py " + " ".join(
                      f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                      for k, v in vars(args).items() if k != "json"),
                  "machine": machine(), "rows": rows}
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
