"""Does the kNN protocol hide what a network learned? Scores the issue's weighted kNN (k 200,
T 0.07, cosine) beside variants of it, for checkpoints and for the random-init network read
the same way:

    python benchmarks/knn_variants.py --train SHARDS/train --val SHARDS/val random RUN/checkpoint-last.pt ...

Variants: k 20; features centred on the training mean before the cosine; standardised per
channel before the cosine. A network that learned what kNN misses would gain on a variant
where random init does not.
"""

from __future__ import annotations

import argparse

import torch.nn.functional as F

from viewkit.trainer.evaluate.backbone import load_backbone
from viewkit.trainer.evaluate.knn import extract, knn_top1


def variants(train, train_labels, val, val_labels) -> dict[str, float]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    unit = lambda x: F.normalize(x, dim=1)  # noqa: E731
    return {
        "k200": knn_top1(unit(train), train_labels, unit(val), val_labels),
        "k20": knn_top1(unit(train), train_labels, unit(val), val_labels, k=20),
        "centred": knn_top1(unit(train - mean), train_labels, unit(val - mean), val_labels),
        "standardised": knn_top1(unit((train - mean) / std), train_labels, unit((val - mean) / std), val_labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--val", required=True)
    parser.add_argument("--arch", default="resnet18-lowres", help="for `random` (default resnet18-lowres)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("networks", nargs="+", help="checkpoints, or `random` for the random-init network (seed 0)")
    args = parser.parse_args()
    for network in args.networks:
        random_init = network == "random"
        backbone = load_backbone(None if random_init else network, random_init, args.arch if random_init else None, 0)
        train = extract(backbone, args.train, resolution=args.resolution, normalize=False)
        val = extract(backbone, args.val, resolution=args.resolution, normalize=False)
        scores = variants(*train, *val)
        print(network, " ".join(f"{name}={score:.3f}" for name, score in scores.items()), flush=True)


if __name__ == "__main__":
    main()
