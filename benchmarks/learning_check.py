"""Evidence of learning on real data: short CPU pretraining, then kNN and a linear probe
against the same network at random init.

    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/train --split train
    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/val --split val
    python benchmarks/learning_check.py --shards SHARDS --runs runs/check [--methods moco_v2 byol ...]
    # two checks side by side on a 2-core machine, one core each, no oversubscription:
    python benchmarks/learning_check.py ... --threads 1 --methods byol & python ... --threads 1 --methods simsiam
    # the evaluations alone, on runs trained before:
    python benchmarks/learning_check.py --shards SHARDS --runs runs/check --evaluate-only
    # runs cut off by a time limit go on from their last checkpoint (the same arguments again):
    python benchmarks/learning_check.py --shards SHARDS --runs runs/check --resume
    # six times the steps at 32 px (60 epochs, about 70 minutes per method on one core):
    # (--device gpu runs the same configs on a GPU)
    python benchmarks/learning_check.py --shards SHARDS --runs runs/long --schedule long32 --knn-every 10

For each method: `viewkit train configs/cpu/<method>.yaml` (with the schedule's overrides),
then `viewkit eval knn` (k 200, T 0.07) and `viewkit eval linear` (a linear classifier on the
frozen features) of the last checkpoint and of the same network at random init, at the
schedule's resolution. Prints a markdown table: method, epochs, minutes, kNN top-1 trained /
random init, linear top-1 trained / random init.
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

from viewkit.trainer.config import load_config

# The CPU configs as written (64 px, 10 epochs), or 60 epochs at 32 px, where a step costs
# about 2.5 times less. At 32 px every size in the recipe halves with the views: the blur
# sigma, LoGo's local crops, RegionCL's swap grid (one 16 px cell of the 2 x 2 grid, one
# position of the stride-16 map) and SGCL's region crops.
_VIEWS_32 = ["recipe_overrides.global_size=32", "recipe_overrides.augment_blur_sigma=[0.014,0.29]"]
SCHEDULES = {  # overrides for every method, and the view overrides by the method's recipe (default: "views")
    "short64": {"resolution": 64, "all": [], "views": [], "by_recipe": {}},
    "long32": {
        "resolution": 32,
        "all": ["epochs=60"],
        "views": _VIEWS_32,
        "by_recipe": {
            "leoclr": _VIEWS_32 + ["recipe_overrides.original_size=32"],
            "logo": _VIEWS_32 + ["recipe_overrides.local_size=16"],
            "regioncl": _VIEWS_32 + ["recipe_overrides.swap_grid=16", "recipe_overrides.swap_cells=[1]"],
            "sgcl": ["recipe_overrides.saliency_size=24", "recipe_overrides.augment_blur_sigma=[0.025,0.5]"],
        },
    },
}
METHODS = ["moco_v2", "byol", "simsiam", "simclr", "leoclr", "scd_moco", "scd_byol", "logo_moco", "logo_simsiam",
           "regioncl", "regioncl_simsiam", "sgcl"]


def viewkit(*args: str, threads: int = 0) -> str:
    env = os.environ | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    result = subprocess.run([sys.executable, "-m", "viewkit.tools.cli", *args], capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"viewkit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def evaluate(protocol: str, checkpoint_args: list[str], shards: Path, resolution: int, threads: int,
             device: str = "cpu") -> float:
    out = viewkit("eval", protocol, *checkpoint_args, "--train", str(shards / "train"), "--val", str(shards / "val"),
                  "--resolution", str(resolution), "--device", device, threads=threads)
    return float(re.findall(rf"{protocol}_top1=([0-9.]+)", out)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, type=Path)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="short64")
    parser.add_argument("--epochs", type=int, help="override the schedule's epochs")
    parser.add_argument("--knn-every", type=int, default=0, help="kNN monitor every N epochs during training")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (default: all cores)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                        help="gpu: the same configs (fp32, same batch and lr) with DALI and torch on the GPU")
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate RUNS/<method> as trained before")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUNS/<method> from its last checkpoint where it has one (a run cut off by a "
                             "time limit); its minutes are then this call's alone")
    args = parser.parse_args()
    schedule = SCHEDULES[args.schedule]
    resolution = schedule["resolution"]
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
            recipe = load_config(config).recipe_name
            overrides = schedule["all"] + schedule["by_recipe"].get(recipe, schedule["views"])
            overrides += [f"threads={args.threads}"] * bool(args.threads)
            overrides += [f"epochs={args.epochs}"] * bool(args.epochs)
            overrides += [f"device={args.device}"]
            if args.knn_every:
                overrides += [f"knn_every={args.knn_every}", f"knn_train={args.shards / 'train'}",
                              f"knn_val={args.shards / 'val'}", f"knn_resolution={resolution}"]
            resumed = args.resume and (run / "checkpoint-last.pt").exists()
            started = time.perf_counter()
            viewkit("train", str(config), "--data", str(args.shards / "train"), "--out", str(run), "--quiet",
                    *overrides, *["--resume"] * resumed, threads=args.threads)
            settings = yaml.safe_load((run / "config.yaml").read_text())
            minutes = f"{(time.perf_counter() - started) / 60:.1f}" + " (resumed)" * resumed
        trained = [evaluate(protocol, ["--checkpoint", str(run / "checkpoint-last.pt")], args.shards, resolution,
                            args.threads, args.device)
                   for protocol in ("knn", "linear")]
        arch = settings["arch"]
        if arch not in untrained:
            untrained[arch] = [evaluate(protocol, ["--random-init", "--arch", arch], args.shards, resolution, args.threads,
                                        args.device)
                               for protocol in ("knn", "linear")]
        (knn, linear), (knn_random, linear_random) = trained, untrained[arch]
        print(f"| {method} | {settings['epochs']} | {minutes} | {knn:.3f} | {knn_random:.3f} | {linear:.3f} | "
              f"{linear_random:.3f} |", flush=True)


if __name__ == "__main__":
    main()
