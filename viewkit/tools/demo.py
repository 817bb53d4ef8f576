"""Run viewkit end to end on the embedded default dataset (no download, no GPU needed).

    viewkit demo [--out viewkit-demo] [--images 600]

Generates scenes on scikit-image's photographs, shards them, verifies the shards,
draws a contact sheet of multi-view batches and prints what was written where.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from viewkit.datasets.embedded import write_embedded_dataset
from viewkit.shards.verify import verify_dataset
from viewkit.tools import info, preview, shard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="viewkit-demo", help="folder for everything the demo writes")
    parser.add_argument("--images", type=int, default=600, help="number of generated scenes (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="threads for sharding (default: all cores)")
    parser.add_argument("--recipe", default="logo", help="recipe of the preview sheet (default logo)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.perf_counter()
    print(f"[1/4] generating {args.images} scenes in {out / 'source'}")
    source = write_embedded_dataset(out / "source", num_images=args.images, seed=args.seed)
    print("[2/4] sharding them")
    shard_args = shard.build_args(["folder", source["images"], str(out / "shards"), "--split", "train",
                                   "--shard-samples", str(max(1, args.images // 4)),
                                   "--workers", str(args.workers), "--seed", str(args.seed), "--overwrite"])
    manifest = shard.shard(shard_args)
    print(shard.summary_line(manifest, str(out / "shards")))
    print("[3/4] verifying every shard and image")
    problems = verify_dataset(out / "shards", progress=False)
    for problem in problems:
        print(f"BAD {problem}")
    if problems:
        return 1
    print(info.describe(manifest | {"root": str((out / "shards").resolve())}))
    print(f"[4/4] a batch of {args.recipe!r} views through the DALI CPU pipeline")
    sheet = out / f"preview-{args.recipe}.png"
    preview.contact_sheet(str(out / "shards"), args.recipe, n=6, augment=True, seed=args.seed).save(sheet)
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    print(f"  source images + COCO annotations: {out / 'source'}")
    print(f"  shards:                           {out / 'shards'}")
    print(f"  views contact sheet:              {sheet}")
    return 0
