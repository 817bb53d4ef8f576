"""Run viewkit end to end on the embedded default dataset (no download, no GPU needed).

    viewkit demo [--out viewkit-demo] [--images 4800] [--epochs 12]

Cuts scenes from scikit-image's photographs in random colours (training scenes from the
left half of each photograph, held-out scenes from the right half), shards and verifies
them, draws a contact sheet of multi-view batches, pretrains a ResNet-18 with SimCLR on the
CPU, and compares kNN accuracy on the held-out scenes (which photograph is this?) with the
same network at random init. The model never sees a label; the labels only score the kNN.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from viewkit.datasets.photo_crops import PHOTOGRAPHS, write_photo_crops
from viewkit.progress import ticking
from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest
from viewkit.shards.verify import verify_dataset
from viewkit.tools import info, preview, shard
from viewkit.writes import writing
from viewkit.tools.argtypes import recipe_help

# The demo's pretraining, measured on 2 cores (benchmarks/demo_check.py, docs/benchmarks.md).
# choice: SimCLR, whose in-batch negatives work from the first step (MoCo's queue of a few
# hundred steps' keys did not learn in the minutes a demo has); temperature 0.5, SimCLR's
# CIFAR-10 setting (Chen et al. 2020, appendix B.9) for small images and batches.
# choice: 32 px views on a stock ResNet-18; 4800 scenes for 12 epochs (444 steps, about 2.5
# minutes on 2 cores). 4800 scenes for 8 epochs led random init by more than 2400 for 16 (same
# steps, seed 0: +21 points against +13), but the loss can sit near its start for 100-200
# steps: at 8 epochs seed 1 led by 3 points, at 12 by 24 (docs/benchmarks.md, "The demo").
# choice: full-circle hue jitter and grayscale half the time, since the scenes' colours are
# random and the lesson is to look past them; no blur, which at 32 px wipes the structure.
# choice: lr 0.05 (base 0.1 at batch 128), wd 1e-5: of base lr 0.05, 0.1, 0.2, 0.4 and 0.8 tried on
# these scenes, 0.1 learned most; 0.8 barely moved the loss.
DEMO_TRAINING = {
    "method": "simclr", "method_options": {"temperature": 0.5}, "arch": "resnet18",
    "batch_size": 128, "base_lr": 0.1, "weight_decay": 1e-5, "warmup_epochs": 1,
    "recipe_overrides": {"global_size": 32, "global_scale": (0.2, 1.0), "augment_hue": 0.5, "augment_grayscale_p": 0.5,
                         "augment_blur_p": 0.0, "augment_brightness": 0.4, "augment_contrast": 0.4,
                         "augment_saturation": 0.4},
}
RESOLUTION = 32
K = 200  # `viewkit eval knn`'s default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="viewkit-demo", help="folder for everything the demo writes")
    parser.add_argument("--images", type=int, default=4800,
                        help="training scenes (default 4800); a quarter as many are held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="threads for sharding, views and torch (default: all cores)")
    parser.add_argument("--recipe", default="logo", help="recipe of the preview sheet: " + recipe_help())
    parser.add_argument("--epochs", type=int, default=12, help="pretraining epochs (default 12; 0 skips training)")


def make_shards(out: Path, images: int, held_out: int, seed: int, threads: int) -> dict:
    """Scenes in OUT/source and OUT/source-val, sharded into OUT/shards and OUT/shards-val;
    returns the manifests by split."""
    manifests = {}
    for count, half, source, target, split in ((images, "left", out / "source", out / "shards", "train"),
                                               (held_out, "right", out / "source-val", out / "shards-val", "val")):
        shutil.rmtree(source, ignore_errors=True)  # the demo's own folder: the scenes are drawn anew
        scenes = write_photo_crops(source, count, half, seed=seed + (split == "val"), progress=f"scenes {split}")
        shard_args = shard.build_args(["folder", scenes["images"], str(target), "--split", split,
                                       "--shard-samples", str(max(1, count // 4)),
                                       "--workers", str(threads), "--seed", str(seed), "--overwrite"])
        manifests[split] = shard.shard(shard_args)
    return manifests


def pretrain(out: Path, epochs: int, seed: int, threads: int = 0, progress: bool = True) -> None:
    """The demo's pretraining on OUT/shards into OUT/run (smaller batches for fewer than 512 scenes)."""
    from viewkit.trainer.config import TrainConfig
    from viewkit.trainer.engine import train

    scenes = read_manifest(out / "shards")["num_samples"]
    # checkpoint_every past the last epoch: only checkpoint-last.pt, a demo needs no history
    config = TrainConfig(**DEMO_TRAINING | {"batch_size": min(DEMO_TRAINING["batch_size"], max(2, scenes // 4))},
                         epochs=epochs, device="cpu", precision="fp32", seed=seed, threads=threads, log_every=10,
                         checkpoint_every=epochs + 1)
    shutil.rmtree(out / "run", ignore_errors=True)  # the demo's own folder: a second demo trains anew
    train(config, str(out / "shards"), out / "run", progress=progress)


def compare(out: Path, seed: int, threads: int = 0, progress: bool = True, ks: tuple[int, ...] = (K,)) -> dict:
    """kNN top-1 on OUT/shards-val (OUT/shards as the labelled memory) of the pretrained
    backbone and of the same network at random init: {"trained": {k: top1}, "random": {k: top1}}."""
    from viewkit.trainer.evaluate.backbone import load_backbone
    from viewkit.trainer.evaluate.knn import extract, knn_top1

    scores = {}
    for name, checkpoint in (("trained", str(out / "run" / "checkpoint-last.pt")), ("random", None)):
        backbone = load_backbone(checkpoint, checkpoint is None, DEMO_TRAINING["arch"], seed)
        features = [extract(backbone, str(out / split), resolution=RESOLUTION, threads=threads,
                            progress=f"features, {name}, {split}" if progress else None)
                    for split in ("shards", "shards-val")]
        scores[name] = {k: knn_top1(*features[0], *features[1], k=k) for k in ks}
    return scores


def _megabytes(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.perf_counter()
    held_out = max(len(PHOTOGRAPHS), args.images // 4)
    print(f"[1/5] cutting {args.images} training scenes from the left halves of {len(PHOTOGRAPHS)} scikit-image "
          f"photographs and {held_out} held-out ones from the right halves, in random colours; sharding them")
    manifests = make_shards(out, args.images, held_out, args.seed, args.threads)
    for split, target in (("train", out / "shards"), ("val", out / "shards-val")):
        print(shard.summary_line(manifests[split], str(target)))
    print("[2/5] verifying every shard and image")
    problems = verify_dataset(out / "shards") + verify_dataset(out / "shards-val")
    for problem in problems:
        print(f"BAD {problem}")
    if problems:
        return 1
    print(info.describe(manifests["train"] | {"root": str((out / "shards").resolve())}))
    print(f"[3/5] a batch of {args.recipe!r} views through the DALI CPU pipeline")
    sheet = out / f"preview-{args.recipe}.png"
    with ticking("  building the pipeline, drawing the sheet (the first run after an install compiles the view "
                 "kernels)", after=0.5):
        preview.contact_sheet(str(out / "shards"), args.recipe, n=6, augment=True, seed=args.seed).save(sheet)
    if args.epochs:
        print(f"[4/5] SimCLR pretraining of a ResNet-18 on {RESOLUTION} px views, {args.epochs} epoch{'s' * (args.epochs != 1)} on the CPU "
              "(no labels)")
        pretrain(out, args.epochs, args.seed, args.threads)
        print(f"[5/5] which photograph is each held-out scene from? kNN (k {K}) over the training scenes' features")
        scores = compare(out, args.seed, args.threads)
        trained, untrained = scores["trained"][K], scores["random"][K]
        print(f"kNN top-1 on {held_out} held-out scenes (chance {1 / len(PHOTOGRAPHS):.3f}): pretrained {trained:.3f}, "
              f"random init {untrained:.3f} ({100 * (trained - untrained):+.1f} points)")
    summary = {"seconds": round(time.perf_counter() - started, 1), "megabytes": round(_megabytes(out), 1),
               "images": args.images, "held_out": held_out, "epochs": args.epochs, "seed": args.seed, "k": K}
    if args.epochs:
        summary |= {"knn_trained": round(trained, 4), "knn_random": round(untrained, 4)}
    with writing(out / "summary.json"):
        (out / "summary.json").write_text(json.dumps(summary) + "\n")
    print(f"demo finished in {summary['seconds']:.0f} s; {summary['megabytes']:.0f} MB in {out} (summary.json)")
    print(f"  source scenes:        {out / 'source'}, {out / 'source-val'}")
    print(f"  shards:               {out / 'shards'}, {out / 'shards-val'}")
    print(f"  views contact sheet:  {sheet}")
    if args.epochs:
        print(f"  pretraining run:      {out / 'run'} (metrics.jsonl, tensorboard/, checkpoint-last.pt)")
    return 0
