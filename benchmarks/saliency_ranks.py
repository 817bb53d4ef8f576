"""A saliency refresh on 1 and on 2 CPU processes of this machine, in one run, and whether the
two stores agree.

    python benchmarks/saliency_ranks.py SHARDS [--arch resnet18] [--resolution 160] [--cores 2] \\
        [--json docs/measurements/saliency-ranks.jsonl]

Each side runs `torchrun --nproc_per_node N viewkit saliency ... --random-init --seed 0` with
the cores split evenly over its processes (`--threads cores / N`), so both sides use the
same CPU; the time includes each process's start (imports, the network) as a refresh's does.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from viewkit.loaders.dataset import open_dataset
    from viewkit.saliency import SaliencyStore
    from viewkit.tools.bench_common import machine
    from viewkit.trainer.checkpoint import git_revision

    seconds, stores = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for processes in (1, 2):
            out = Path(work) / f"ranks{processes}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                            "--master_port", str(free_port()), "-m", "viewkit.tools.cli", "saliency", args.shards,
                            "--out", str(out), "--random-init", "--arch", args.arch, "--resolution",
                            str(args.resolution), "--device", "cpu", "--threads", str(args.cores // processes),
                            "--seed", "0"], check=True, capture_output=True)
            seconds[str(processes)] = time.perf_counter() - started
            store = SaliencyStore(out)
            stores[processes] = (np.array(store.counts()), np.array(store.table().scores))
    images = open_dataset(args.shards).num_samples
    record = {"name": "saliency-ranks", "date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision(),
              "arch": args.arch, "resolution": args.resolution, "cores": args.cores, "images": images,
              "seconds": seconds, "speedup_2_over_1": seconds["1"] / seconds["2"],
              "same_counts": bool(np.array_equal(stores[1][0], stores[2][0])),
              "max_score_difference": float(np.abs(stores[1][1] - stores[2][1]).max()), "machine": machine(),
              "command": f"python benchmarks/saliency_ranks.py SHARDS --arch {args.arch} --resolution {args.resolution} "
                         f"--cores {args.cores}"}
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}, indent=1))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
