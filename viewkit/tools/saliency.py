"""Build a saliency store (regions by sample id) for SGCL's saliency-guided crops.

    viewkit saliency SHARDS --out STORE --checkpoint CKPT [--resolution 640] [--device gpu|cpu]
    viewkit saliency SHARDS --out STORE --arch resnet18 --random-init     # no checkpoint
    viewkit saliency SHARDS --out STORE --source gt        # COCO boxes from the shards
    viewkit saliency SHARDS --out STORE --source random    # SGCL's initialisation

A checkpoint is a torch file holding {"arch": torchvision ResNet name, "backbone":
state_dict}; `viewkit train` writes them.
"""

from __future__ import annotations

import argparse
import time

from viewkit.tools.argtypes import DEVICE_HELP, default_device, non_negative_int, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", help="dataset folder (holding dataset.json)")
    parser.add_argument("--out", required=True, help="store path (a link to its current version)")
    parser.add_argument("--source", choices=["ncut", "gt", "random"], default="ncut")
    parser.add_argument("--checkpoint", help="checkpoint with the backbone (ncut)")
    parser.add_argument("--arch", default="resnet50", help="torchvision ResNet for --random-init")
    parser.add_argument("--random-init", action="store_true", help="ncut on an untrained backbone (checks only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-init's weights")
    parser.add_argument("--resolution", type=positive_int, default=640, help="original view size (SGCL: 640)")
    parser.add_argument("--device", choices=["cpu", "gpu"], help=DEVICE_HELP)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--top-k", type=positive_int, default=8)
    parser.add_argument("--min-cells", type=positive_int, default=4)
    parser.add_argument("--threads", type=non_negative_int, default=0,
                        help="CPU threads: DALI's, and torch's on the CPU (default: all cores)")


def run(args: argparse.Namespace) -> int:
    # imported here: `viewkit saliency --help` and argument errors answer before torch and DALI load
    from viewkit.loaders.dataset import open_dataset
    from viewkit.saliency import SaliencyStore, sources
    from viewkit.trainer.devices import cpu_threads, setup_distributed
    from viewkit.trainer.evaluate.backbone import load_backbone

    args.device = args.device or default_device()
    started = time.perf_counter()
    if args.source == "random":
        num_samples = open_dataset(args.shards).num_samples
        boxes, scores, counts = sources.random_regions(num_samples, args.top_k)
        checkpoint = None
    elif args.source == "gt":
        boxes, scores, counts = sources.gt_regions(args.shards, args.top_k)
        checkpoint = None
    else:
        if not (args.checkpoint or args.random_init):
            raise ValueError("--source ncut needs --checkpoint CKPT (or --random-init for a check without training)")
        checkpoint = args.checkpoint
        # every rank builds the same network: the seed fixes --random-init's weights
        trunk = load_backbone(checkpoint, not checkpoint, None if checkpoint else args.arch, args.seed).trunk
        rank, world = setup_distributed(args.device)  # under torchrun each rank computes its share
        with cpu_threads(args.threads, args.device):
            boxes, scores, counts = sources.ncut_regions(args.shards, trunk, resolution=args.resolution,
                                                         batch_size=args.batch_size, device=args.device,
                                                         top_k=args.top_k, min_cells=args.min_cells,
                                                         threads=args.threads, rank=rank, world_size=world,
                                                         progress=rank == 0)
        if rank != 0:
            return 0  # rank 0 holds every row and writes the one store
    meta = SaliencyStore(args.out).write(boxes, scores, counts, source=args.source, checkpoint=checkpoint,
                                         shards=open_dataset(args.shards))
    seconds = time.perf_counter() - started
    print(f"{args.out}: version {meta['version']}, {len(counts)} samples, {int((counts > 0).sum())} with regions, "
          f"{counts.mean():.2f} regions on average, {len(counts) / seconds:.1f} img/s")
    return 0
