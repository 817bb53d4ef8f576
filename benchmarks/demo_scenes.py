"""Does the demo's pretraining read the main object's shape, and what about the scenes stops it?

    python benchmarks/demo_scenes.py --out runs/scenes/default --epochs 50
    # a larger main object, no distractors, a blurred background at half contrast:
    python benchmarks/demo_scenes.py --out runs/scenes/salient --epochs 50 --main-radius 0.32 0.42 \\
        --max-distractors 0 --background-blur 3 --background-contrast 0.5

Generates the demo's scenes in the given style (600 + 300 held out by default: more held-out
scenes than the demo's 120, for a smaller standard error), pretrains the demo's MoCo-v2
(`viewkit.tools.demo.pretrain_and_compare`) and prints kNN top-1 of the pretrained and the
random-init network, at k 20 and at the demo's k 200, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from viewkit.datasets.embedded import SceneStyle
from viewkit.tools.demo import make_shards, pretrain_and_compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--held-out", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--base-lr", type=float, default=0.06)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="DALI threads (torch's: OMP_NUM_THREADS)")
    defaults = SceneStyle()
    parser.add_argument("--main-radius", type=float, nargs=2, default=defaults.main_radius)
    parser.add_argument("--max-distractors", type=int, default=defaults.max_distractors)
    parser.add_argument("--background-blur", type=float, default=defaults.background_blur)
    parser.add_argument("--background-contrast", type=float, default=defaults.background_contrast)
    args = parser.parse_args()
    style = SceneStyle(tuple(args.main_radius), args.max_distractors, args.background_blur, args.background_contrast)
    started = time.perf_counter()
    make_shards(args.out, args.images, args.held_out, seed=0, workers=args.threads, style=style)
    scores = pretrain_and_compare(args.out, args.epochs, seed=0, batch_size=args.batch_size, resolution=args.resolution,
                                  base_lr=args.base_lr, ks=(20, 200), threads=args.threads)
    print(json.dumps({"style": vars(style), "epochs": args.epochs, "batch_size": args.batch_size, "base_lr": args.base_lr,
                      "resolution": args.resolution, "minutes": round((time.perf_counter() - started) / 60, 1),
                      **{name: {f"k{k}": round(v, 3) for k, v in by_k.items()} for name, by_k in scores.items()}}))


if __name__ == "__main__":
    main()
