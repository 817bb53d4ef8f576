"""Photometric settings of a view, and those of the papers.

The graph applies them per family of views (`viewkit.views.graph`): colour jitter and
grayscale as one colour matrix per frame, Gaussian blur with a sigma per frame,
solarisation, then normalisation, then any further `operations` (random erasing, or one
of your own: docs/extending.md); each operation's draw and graph are in its file under
`viewkit.views.operations`. Random apply is an identity frame (identity matrix, a sigma
too small to blur, an empty box), never a second branch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from viewkit.views.operations import OPERATIONS

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value} is not a probability in [0, 1]")


@dataclass(frozen=True)
class Augment:
    """Photometric settings of one view (torchvision semantics, applied in DALI)."""

    flip_p: float = 0.5  # horizontal flip
    color_jitter_p: float = 0.8  # chance to apply the four jitters below
    brightness: float = 0.4  # factor drawn from [1 - b, 1 + b]
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1  # fraction of a full turn, drawn from [-h, h]
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # pixels of the view
    solarize_p: float = 0.0  # invert pixels >= 128
    operations: tuple = ()  # further operations, applied in this order (viewkit.views.operations)

    def __post_init__(self):
        for name in ("flip_p", "color_jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            _check_probability(name, getattr(self, name))
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must lie in [0, 1] (factor range [1-x, 1+x])")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue={self.hue} must lie in [0, 0.5] (a fraction of a turn)")
        low, high = self.blur_sigma
        if not 0 < low <= high:
            raise ValueError(f"blur_sigma={self.blur_sigma} must be (low, high) with 0 < low <= high")
        if not isinstance(self.operations, tuple):
            raise ValueError(f"operations={self.operations!r} must be a tuple of operations")
        for operation in self.operations:
            if OPERATIONS.get(getattr(operation, "name", None)) is not type(operation):
                raise ValueError(f"operations: {operation!r} is not a declared operation "
                                 f"(known: {', '.join(sorted(OPERATIONS))}; see viewkit.views.operations.declare)")


# MoCo-v2 (Chen et al. 2020, moco/main_moco.py aug_plus): the same for both views.
MOCO_V2 = Augment()
# BYOL (Grill et al. 2020, Table 6): asymmetric views.
BYOL_VIEW1 = Augment(saturation=0.2, blur_p=1.0, solarize_p=0.0)
BYOL_VIEW2 = replace(BYOL_VIEW1, blur_p=0.1, solarize_p=0.2)
# SimCLR (Chen et al. 2020, appendix A): colour strength s = 1.0.
SIMCLR = Augment(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
# Geometry only: crops and flips stay, every photometric change is off.
GEOMETRY_ONLY = Augment(color_jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)


def geometry_only(augment: Augment) -> Augment:
    return replace(GEOMETRY_ONLY, flip_p=augment.flip_p)


def blur_window(view_size: int, max_sigma: float = 2.0) -> int:
    """A fixed kernel for the torchvision baseline (`viewkit bench --baseline-blur capped`):
    odd, about 10% of the view (BYOL/SimCLR: 23 at 224 px), and no wider than the
    2 * ceil(3 * max_sigma) + 1 taps the DALI graph uses at most."""
    window = int(round(0.1 * view_size))
    window = window + 1 if window % 2 == 0 else window
    return min(window, 2 * math.ceil(3 * max_sigma) + 1)
