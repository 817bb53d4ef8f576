"""Sharding throughput with pass-through JPEGs against a plain tar copy of the same files.

    python benchmarks/shard_vs_tar.py [--src ../shared/data/imagenet-sample/train] [--copies 10] [--rounds 3]

Both sides read the same files (warm page cache) and write one tar stream to the same
disk; they run interleaved (A B A B ...) and the medians are compared, since the machine
is noisy. The baseline is Python's tarfile adding each file, i.e. what `tar -cf` does,
without viewkit's per-sample work (JPEG header walk, shuffle, index, json, hashes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from viewkit.shards import sources
from viewkit.shards.encode import passthrough_blocker, read_jpeg_header
from viewkit.shards.writer import ShardOptions, write_dataset


def make_input(src: Path, copies: int, root: Path) -> tuple[Path, int]:
    """`copies` copies of each pass-through JPEG (the case measured here), so that the
    run lasts long enough to time; returns the folder and how many files were left out."""
    data = root / "input"
    left_out = 0
    for class_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            content = f.read_bytes()
            if passthrough_blocker(content, read_jpeg_header(content), None) is not None:
                left_out += 1
                continue
            target = data / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for copy in range(copies):
                shutil.copy(f, target / f"{copy}_{f.name}")
    return data, left_out


def tar_copy(files: list[Path], out: Path) -> None:
    with tarfile.open(out, "w") as tar:
        for f in files:
            tar.add(f, arcname=str(f))
    os.sync()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/imagenet-sample/train"))
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, left_out = make_input(Path(args.src), args.copies, root)
        listing = sources.folder_items(data)
        files = [Path(i.path) for i in listing.items]
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} pass-through JPEGs ({left_out} source files needing conversion left out), "
              f"{total_mb:.0f} MB, {os.cpu_count()} cores")
        viewkit_times, tar_times = [], []
        for round_ in range(args.rounds):
            started = time.perf_counter()
            write_dataset(listing, root / f"shards{round_}", split="train",
                          options=ShardOptions(workers=args.workers), progress=False)
            os.sync()
            viewkit_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            tar_copy(files, root / f"copy{round_}.tar")
            tar_times.append(time.perf_counter() - started)
            shutil.rmtree(root / f"shards{round_}")
            (root / f"copy{round_}.tar").unlink()
            print(f"round {round_}: viewkit {len(files) / viewkit_times[-1]:.0f} img/s, tar copy {len(files) / tar_times[-1]:.0f} img/s")
        viewkit_rate = len(files) / statistics.median(viewkit_times)
        tar_rate = len(files) / statistics.median(tar_times)
        print(f"median: viewkit shard {viewkit_rate:.0f} img/s, plain tar copy {tar_rate:.0f} img/s, "
              f"ratio {viewkit_rate / tar_rate:.2f} (goal >= 0.80)")


if __name__ == "__main__":
    main()
