"""Evidence of learning on real data: short CPU pretraining, then kNN and a linear probe
against the same network at random init.

    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/train --split train
    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/val --split val
    python benchmarks/learning_check.py --shards SHARDS --runs runs/check [--methods moco_v2 byol ...]
    # two checks side by side on a 2-core machine, one core each, no oversubscription:
    python benchmarks/learning_check.py ... --threads 1 --methods byol & python ... --threads 1 --methods simsiam
    # the evaluations alone, on runs trained before:
    python benchmarks/learning_check.py --shards SHARDS --runs runs/check --evaluate-only

For each method: `viewkit train configs/cpu/<method>.yaml`, then `viewkit eval knn` (64 px,
k 200, T 0.07) and `viewkit eval linear` (a linear classifier on the frozen features) of the
last checkpoint and of the same network at random init. Prints a markdown table: method,
epochs, minutes, kNN top-1 trained / random init, linear top-1 trained / random init.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

METHODS = ["moco_v2", "byol", "simsiam", "simclr", "leoclr", "scd_moco", "scd_byol", "logo_moco", "logo_simsiam",
           "regioncl", "regioncl_simsiam", "sgcl"]


def viewkit(*args: str, threads: int = 0) -> str:
    env = os.environ | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    result = subprocess.run([sys.executable, "-m", "viewkit.tools.cli", *args], capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"viewkit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def evaluate(protocol: str, checkpoint_args: list[str], shards: Path, threads: int) -> float:
    out = viewkit("eval", protocol, *checkpoint_args, "--train", str(shards / "train"), "--val", str(shards / "val"),
                  "--resolution", "64", "--device", "cpu", threads=threads)
    return float(re.findall(rf"{protocol}_top1=([0-9.]+)", out)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, type=Path)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--epochs", type=int, help="override the CPU configs' epochs")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (default: all cores)")
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate RUNS/<method> as trained before")
    args = parser.parse_args()
    untrained = {}  # random-init scores by architecture: the same network for every method
    configs = Path(__file__).resolve().parents[1] / "configs" / "cpu"
    print("| method | epochs | minutes | kNN top-1 | random-init kNN | linear top-1 | random-init linear |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for method in args.methods:
        run = args.runs / method
        if args.evaluate_only:
            settings, minutes = yaml.safe_load((run / "config.yaml").read_text()), "-"
        else:
            config = configs / f"{method}.yaml"
            settings = yaml.safe_load(config.read_text()) | ({"epochs": args.epochs} if args.epochs else {})
            started = time.perf_counter()
            viewkit("train", str(config), "--data", str(args.shards / "train"), "--out", str(run),
                    "--epochs", str(settings["epochs"]), "--quiet", *([f"threads={args.threads}"] if args.threads else []),
                    threads=args.threads)
            minutes = f"{(time.perf_counter() - started) / 60:.1f}"
        trained = [evaluate(protocol, ["--checkpoint", str(run / "checkpoint-last.pt")], args.shards, args.threads)
                   for protocol in ("knn", "linear")]
        arch = settings["arch"]
        if arch not in untrained:
            untrained[arch] = [evaluate(protocol, ["--random-init", "--arch", arch], args.shards, args.threads)
                               for protocol in ("knn", "linear")]
        (knn, linear), (knn_random, linear_random) = trained, untrained[arch]
        print(f"| {method} | {settings['epochs']} | {minutes} | {knn:.3f} | {knn_random:.3f} | {linear:.3f} | "
              f"{linear_random:.3f} |", flush=True)


if __name__ == "__main__":
    main()
