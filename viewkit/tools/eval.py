"""Evaluate a pretrained backbone on labelled shards.

    viewkit eval knn --checkpoint RUN/checkpoint-last.pt --train SHARDS --val SHARDS [--json FILE]
    viewkit eval knn --random-init --arch resnet18 --train SHARDS --val SHARDS [--threads N]
    viewkit eval linear --checkpoint CKPT --train SHARDS --val SHARDS [--epochs 100] [--lr 0.1] [--optimizer sgd|lars]
    viewkit eval linear --checkpoint SCD_CKPT --features fg ...     # SCD's "fg" rows (Table 8)

Prints `knn_top1=...` (weighted kNN, k 200, T 0.07) or `linear_top1=...` (linear classifier on
frozen features, see viewkit.trainer.evaluate.linear) as its last line, after the JSON file it
wrote the result to (with --checkpoint or --json). --resolution defaults to the side of the checkpoint's training views.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from viewkit.tools.argtypes import DEVICE_HELP, default_device, non_negative_int, positive_float, positive_int
from viewkit.writes import writing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", choices=["knn", "linear"], help="evaluation protocol")
    parser.add_argument("--checkpoint", help="viewkit checkpoint (viewkit train)")
    parser.add_argument("--random-init", action="store_true", help="the same network untrained: the baseline")
    parser.add_argument("--arch", help="architecture for --random-init (default: the checkpoint's, else resnet50)")
    parser.add_argument("--train", required=True, help="labelled shards to vote with")
    parser.add_argument("--val", required=True, help="labelled shards to score")
    parser.add_argument("--resolution", type=positive_int,
                        help="side of the images (default: the checkpoint's training views, else 224)")
    parser.add_argument("--k", type=positive_int, default=200)
    parser.add_argument("--temperature", type=positive_float, default=0.07)
    parser.add_argument("--device", choices=["cpu", "gpu"], help=DEVICE_HELP)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--threads", type=non_negative_int, default=0,
                        help="CPU threads: DALI's, and torch's on the CPU (default: all cores)")
    parser.add_argument("--epochs", type=positive_int, default=100, help="linear: classifier epochs")
    parser.add_argument("--lr", type=positive_float, default=0.1, help="linear: peak learning rate (cosine)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="linear: classifier batch")
    parser.add_argument("--optimizer", choices=["sgd", "lars"], default="sgd", help="linear: optimiser")
    parser.add_argument("--features", choices=["pooled", "fg"], default="pooled",
                        help="pooled: global average of the last map; fg: SCD's saliency-pooled foreground "
                             "(scd_moco / scd_byol checkpoints)")
    parser.add_argument("--json", help="write the result here (default: beside the checkpoint)")


def run(args: argparse.Namespace) -> int:
    from viewkit.loaders.dataset import open_labelled_pair  # here: --help answers before torch and DALI load
    from viewkit.trainer.devices import cpu_threads

    args.device = args.device or default_device()
    if args.resolution is None:
        from viewkit.trainer.evaluate.backbone import training_resolution

        trained = bool(args.checkpoint and not args.random_init)
        args.resolution = training_resolution(args.checkpoint) if trained else 224
        print(f"resolution {args.resolution} px ({'as the checkpoint was trained' if trained else 'the default'})",
              flush=True)
    train, val = open_labelled_pair(args.train, args.val, f"{args.protocol} evaluation")
    args.same_dataset = train.root == val.root or train.manifest["fingerprint"] == val.manifest["fingerprint"]
    if args.same_dataset:  # choice: said, not refused: a score on the training set is a sanity check some want
        where = str(train.root) if train.root == val.root else f"{train.root} and its copy {val.root}"
        print(f"viewkit eval: warning: --train and --val are one dataset ({where}): the score measures recall of "
              "the training samples, not features; evaluate on held-out shards", file=sys.stderr, flush=True)
    if args.protocol == "knn" and args.k > train.num_samples:
        print(f"viewkit eval: warning: --k {args.k} is more neighbours than --train holds samples "
              f"({train.num_samples}): every training sample votes, as with --k {train.num_samples}",
              file=sys.stderr, flush=True)
    with cpu_threads(args.threads, args.device):
        return evaluate(args)


def evaluate(args: argparse.Namespace) -> int:
    from viewkit.trainer.evaluate.backbone import load_backbone
    from viewkit.trainer.evaluate.knn import extract, knn_top1
    from viewkit.trainer.evaluate.linear import linear_top1

    backbone = load_backbone(args.checkpoint, args.random_init, args.arch, args.seed, args.features)
    backbone = backbone.to("cuda" if args.device == "gpu" else "cpu")
    normalize = args.protocol == "knn"
    train_set = extract(backbone, args.train, resolution=args.resolution, device=args.device,
                        normalize=normalize, threads=args.threads, progress="features of --train")
    val_set = extract(backbone, args.val, resolution=args.resolution, device=args.device,
                      normalize=normalize, threads=args.threads, progress="features of --val")
    result = {"protocol": args.protocol, "checkpoint": args.checkpoint, "random_init": args.random_init,
              "arch": backbone.arch, "train": args.train, "val": args.val, "resolution": args.resolution, "features": args.features,
              "same_dataset": args.same_dataset}
    if args.protocol == "knn":
        top1 = knn_top1(*train_set, *val_set, k=args.k, temperature=args.temperature)
        result |= {"k": args.k, "k_used": min(args.k, len(train_set[0])), "temperature": args.temperature}
    else:
        top1 = linear_top1(*train_set, *val_set, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                           optimizer=args.optimizer, seed=args.seed, progress=True)
        result |= {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "optimizer": args.optimizer}
    result[f"{args.protocol}_top1"] = top1
    suffix = f".{args.protocol}{'-fg' if args.features == 'fg' else ''}.json"
    target = args.json or (str(Path(args.checkpoint).with_suffix(suffix)) if args.checkpoint and not args.random_init else None)
    try:
        if target:
            with writing(target):
                Path(target).write_text(json.dumps(result, indent=2) + "\n")
            print(f"result: {target}")
    finally:  # the score is the last line, and printed even when the write failed: no result is lost
        print(f"{args.protocol}_top1={top1:.4f}", flush=True)
    return 0
