"""Evidence of learning on real data: short CPU pretraining, then kNN against random init.

    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/train --split train
    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/val --split val
    python benchmarks/learning_check.py --shards SHARDS --runs runs/check [--methods moco_v2 byol ...]

For each method: `viewkit train configs/cpu/<method>.yaml`, then `viewkit eval knn` of the
last checkpoint and of the same network at random init (64 px, k 200, T 0.07). Prints a
markdown table: method, epochs, minutes, kNN top-1, random-init kNN top-1.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

METHODS = ["moco_v2", "byol", "simsiam", "simclr", "leoclr", "scd_moco", "scd_byol", "logo_moco", "logo_simsiam",
           "regioncl", "regioncl_simsiam", "sgcl"]


def viewkit(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "viewkit.tools.cli", *args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"viewkit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def knn(checkpoint_args: list[str], shards: Path) -> float:
    out = viewkit("eval", "knn", *checkpoint_args, "--train", str(shards / "train"), "--val", str(shards / "val"),
                  "--resolution", "64", "--device", "cpu")
    return float(re.findall(r"knn_top1=([0-9.]+)", out)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, type=Path)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--epochs", type=int, help="override the CPU configs' epochs")
    args = parser.parse_args()
    configs = Path(__file__).resolve().parents[1] / "configs" / "cpu"
    print("| method | epochs | minutes | kNN top-1 | random-init kNN top-1 |")
    print("| --- | --- | --- | --- | --- |")
    for method in args.methods:
        config = configs / f"{method}.yaml"
        settings = yaml.safe_load(config.read_text())
        epochs = args.epochs or settings["epochs"]
        started = time.perf_counter()
        viewkit("train", str(config), "--data", str(args.shards / "train"), "--out", str(args.runs / method),
                "--epochs", str(epochs), "--quiet")
        minutes = (time.perf_counter() - started) / 60
        trained = knn(["--checkpoint", str(args.runs / method / "checkpoint-last.pt")], args.shards)
        untrained = knn(["--random-init", "--arch", settings["arch"]], args.shards)
        print(f"| {method} | {epochs} | {minutes:.1f} | {trained:.3f} | {untrained:.3f} |", flush=True)


if __name__ == "__main__":
    main()
