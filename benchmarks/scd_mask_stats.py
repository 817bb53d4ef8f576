"""Does an SCD checkpoint's saliency mask follow the image, or only the position on the map?

    python benchmarks/scd_mask_stats.py --checkpoint RUN/checkpoint-last.pt --val SHARDS/val --resolution 64

Runs the online backbone and saliency head M over every image of --val (whole image resized,
as the kNN readout sees it) and prints the mean mask at each position of the last feature map,
the mean foreground fraction, and the share of the mask's variance that is left once each
position's mean over the images is removed. A share near 0 means M is a fixed spatial split:
fg and bg pool the same places in every image, whatever it shows. Last, the mask of an image
with no content (every pixel the normalisation mean, zeros after it): whatever structure it
has, the network draws from its own edges (padding), not from the image.
"""

from __future__ import annotations

import argparse

import torch

from viewkit.trainer.evaluate.backbone import load_backbone
from viewkit.trainer.evaluate.knn import extract


class FlatMask(torch.nn.Module):
    """images -> M flattened to [B, h * w], shaped like features so knn.extract can gather it."""

    def __init__(self, checkpoint: str):
        super().__init__()
        self.encoder = load_backbone(checkpoint, random_init=False, arch=None, seed=0, features="fg")
        self.arch = self.encoder.arch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder.saliency(self.encoder.backbone.feature_map(images)).flatten(1)


def mask_stats(masks: torch.Tensor) -> dict:
    """masks [N, positions] -> mean by position, fg fraction, image-dependent share of the variance."""
    by_position = masks.mean(0)
    return {"positions": masks.shape[1], "mean_by_position": by_position.tolist(),
            "foreground_fraction": masks.mean().item(), "foreground_fraction_std": masks.mean(1).std().item(),
            "image_dependent_share": ((masks - by_position).var() / masks.var()).item()}


def print_map(values: list[float], side: int) -> None:
    for row in range(side):
        print("  " + " ".join(f"{v:.2f}" for v in values[row * side:(row + 1) * side]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a scd_moco or scd_byol checkpoint")
    parser.add_argument("--val", required=True, help="shard directory of the images to read the mask on")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    mask_model = FlatMask(args.checkpoint)
    masks, _ = extract(mask_model, args.val, resolution=args.resolution, normalize=False,
                       threads=args.threads)
    stats = mask_stats(masks)
    side = int(stats["positions"] ** 0.5)
    print(f"{args.checkpoint}: {masks.shape[0]} images, {side} x {side} map")
    print_map(stats["mean_by_position"], side)
    print(f"foreground fraction {stats['foreground_fraction']:.3f} (std over images "
          f"{stats['foreground_fraction_std']:.3f}); image-dependent share of the mask's variance "
          f"{stats['image_dependent_share']:.2f}")
    mask_model.eval()
    with torch.no_grad():
        blank = mask_model(torch.zeros(1, 3, args.resolution, args.resolution))[0].tolist()
    print("mask of a blank image:")
    print_map(blank, side)


if __name__ == "__main__":
    main()
