"""Run viewkit end to end on the embedded default dataset (no download, no GPU needed).

    viewkit demo [--out viewkit-demo] [--images 600]

Generates scenes on scikit-image's photographs (a train and a held-out split), shards
and verifies them, draws a contact sheet of multi-view batches, pretrains a ResNet-18
with MoCo-v2 for a few epochs on the CPU, compares kNN accuracy with the same network at
random init, and prints what was written where.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from viewkit.datasets.embedded import SceneStyle, write_embedded_dataset
from viewkit.shards.verify import verify_dataset
from viewkit.tools import info, preview, shard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="viewkit-demo", help="folder for everything the demo writes")
    parser.add_argument("--images", type=int, default=600, help="number of generated scenes (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="threads for sharding (default: all cores)")
    parser.add_argument("--recipe", default="logo", help="recipe of the preview sheet (default logo)")
    parser.add_argument("--epochs", type=int, default=5, help="pretraining epochs (default 5; 0 skips training)")


def pretrain_and_compare(out: Path, epochs: int, seed: int, batch_size: int = 64, resolution: int = 64,
                         base_lr: float = 0.06, ks: tuple[int, ...] = (200,), threads: int = 0) -> dict:
    """A short real pretraining on OUT/shards, then kNN on OUT/shards-val of its backbone and
    of the untrained network: {"trained": {k: top1}, "random": {k: top1}}."""
    from viewkit.trainer.evaluate.backbone import load_backbone
    from viewkit.trainer.config import TrainConfig
    from viewkit.trainer.evaluate.knn import extract, knn_top1
    from viewkit.trainer.engine import train

    config = TrainConfig(method="moco_v2", method_options={"queue": 1024, "momentum": 0.99}, arch="resnet18",
                         epochs=epochs, batch_size=batch_size, base_lr=base_lr, warmup_epochs=1, device="cpu",
                         precision="fp32", recipe_overrides={"global_size": resolution}, seed=seed, log_every=5,
                         threads=threads)
    shutil.rmtree(out / "run", ignore_errors=True)  # the demo's own folder: a second demo trains anew
    train(config, str(out / "shards"), out / "run", progress=False)
    scores = {}
    for name, checkpoint in (("trained", str(out / "run" / "checkpoint-last.pt")), ("random", None)):
        backbone = load_backbone(checkpoint, checkpoint is None, "resnet18", seed)
        train_set = extract(backbone, str(out / "shards"), resolution=resolution, threads=threads)
        val_set = extract(backbone, str(out / "shards-val"), resolution=resolution, threads=threads)
        scores[name] = {k: knn_top1(*train_set, *val_set, k=k) for k in ks}
    return scores


def make_shards(out: Path, images: int, held_out: int, seed: int, workers: int, style: SceneStyle = SceneStyle()) -> dict:
    """Scenes in OUT/source and OUT/source-val, sharded into OUT/shards and OUT/shards-val;
    returns the manifests by split."""
    source = write_embedded_dataset(out / "source", num_images=images, seed=seed, style=style)
    val_source = write_embedded_dataset(out / "source-val", num_images=held_out, seed=seed + 1, style=style)
    manifests = {}
    for scenes, target, split in ((source, out / "shards", "train"), (val_source, out / "shards-val", "val")):
        shard_args = shard.build_args(["folder", scenes["images"], str(target), "--split", split,
                                       "--shard-samples", str(max(1, images // 4)),
                                       "--workers", str(workers), "--seed", str(seed), "--overwrite"])
        manifests[split] = shard.shard(shard_args)
    return manifests


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.perf_counter()
    held_out = max(12, args.images // 5)
    print(f"[1/4] generating {args.images} + {held_out} held-out scenes in {out / 'source'}, and sharding them")
    manifests = make_shards(out, args.images, held_out, args.seed, args.workers)
    for split, target in (("train", out / "shards"), ("val", out / "shards-val")):
        print(shard.summary_line(manifests[split], str(target)))
    manifest = manifests["train"]
    print("[2/4] verifying every shard and image")
    problems = verify_dataset(out / "shards", progress=False) + verify_dataset(out / "shards-val", progress=False)
    for problem in problems:
        print(f"BAD {problem}")
    if problems:
        return 1
    print(info.describe(manifest | {"root": str((out / "shards").resolve())}))
    print(f"[3/4] a batch of {args.recipe!r} views through the DALI CPU pipeline")
    sheet = out / f"preview-{args.recipe}.png"
    preview.contact_sheet(str(out / "shards"), args.recipe, n=6, augment=True, seed=args.seed).save(sheet)
    if args.epochs:
        print(f"[4/4] MoCo-v2 pretraining, ResNet-18 on 64 px views, {args.epochs} epochs on the CPU")
        scores = pretrain_and_compare(out, args.epochs, args.seed, batch_size=min(64, max(2, args.images // 4)))
        trained, untrained = scores["trained"][200], scores["random"][200]
        print(f"kNN top-1 on the held-out scenes: pretrained {trained:.3f}, random init {untrained:.3f}")
        if trained <= untrained:
            print("  (on these scenes short CPU pretraining does not beat random init at reading the main object's "
                  "shape; docs/results.md has the Imagenette runs, where it does)")
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    print(f"  source images + COCO annotations: {out / 'source'}")
    print(f"  shards:                           {out / 'shards'}")
    print(f"  views contact sheet:              {sheet}")
    if args.epochs:
        print(f"  pretraining run:                  {out / 'run'} (metrics.jsonl, tensorboard/, checkpoint-last.pt)")
    return 0
