"""Evaluate a pretrained backbone on labelled shards.

    viewkit eval knn --checkpoint RUN/checkpoint-last.pt --train SHARDS --val SHARDS [--json FILE]
    viewkit eval knn --random-init --arch resnet18 --train SHARDS --val SHARDS

Prints `knn_top1=...` as its last line (weighted kNN, k 200, T 0.07, frozen features).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from viewkit.trainer import checkpoint as ckpt
from viewkit.trainer.knn import extract, knn_top1
from viewkit.trainer.nets import Backbone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", choices=["knn"], help="evaluation protocol")
    parser.add_argument("--checkpoint", help="viewkit checkpoint (viewkit train)")
    parser.add_argument("--random-init", action="store_true", help="the same network untrained: the baseline")
    parser.add_argument("--arch", help="architecture for --random-init (default: the checkpoint's, else resnet50)")
    parser.add_argument("--train", required=True, help="labelled shards to vote with")
    parser.add_argument("--val", required=True, help="labelled shards to score")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.07)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--json", help="write the result here (default: beside the checkpoint)")


def load_backbone(checkpoint: str | None, random_init: bool, arch: str | None, seed: int) -> Backbone:
    state = ckpt.load(checkpoint) if checkpoint else None
    arch = arch or (state["arch"] if state else "resnet50")
    torch.manual_seed(seed)
    backbone = Backbone(arch)
    if state is not None and not random_init:
        backbone.load_torchvision_state(state["backbone"])
    elif not random_init:
        raise ValueError("give --checkpoint CKPT, or --random-init for the untrained baseline")
    return backbone


def run(args: argparse.Namespace) -> int:
    backbone = load_backbone(args.checkpoint, args.random_init, args.arch, args.seed)
    backbone = backbone.to("cuda" if args.device == "gpu" else "cpu")
    train_set = extract(backbone, args.train, resolution=args.resolution, device=args.device)
    val_set = extract(backbone, args.val, resolution=args.resolution, device=args.device)
    top1 = knn_top1(*train_set, *val_set, k=args.k, temperature=args.temperature)
    result = {"protocol": "knn", "knn_top1": top1, "checkpoint": args.checkpoint, "random_init": args.random_init,
              "arch": backbone.arch, "train": args.train, "val": args.val, "k": args.k, "temperature": args.temperature,
              "resolution": args.resolution}
    target = args.json or (str(Path(args.checkpoint).with_suffix(".knn.json")) if args.checkpoint and not args.random_init else None)
    if target:
        Path(target).write_text(json.dumps(result, indent=2))
    print(f"knn_top1={top1:.4f}")
    return 0
