"""Per-view photometric augmentation as DALI graph pieces, and the settings of the papers.

A view's pipeline after its crop: colour jitter + grayscale (one `fn.color_twist`),
Gaussian blur, solarisation, then flip + normalise (one `fn.crop_mirror_normalize`).
Random-apply never computes both branches: jitter and grayscale become identity
parameters of the same op when not drawn (an arithmetic blend of four scalars, not of
images), blur and solarisation run under DALI conditionals on the samples drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import nvidia.dali.math as dmath
from nvidia.dali import fn, types

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
    """Widest kernel used: odd, about 10% of the view (BYOL/SimCLR: 23 at 224 px, 9 at 96 px),
    and no wider than 2 * ceil(3 * max_sigma) + 1 taps."""
    window = int(round(0.1 * view_size))
    window = window + 1 if window % 2 == 0 else window
    return min(window, 2 * math.ceil(3 * max_sigma) + 1)


def _blur(image, sigma, view_size: int, max_sigma: float):
    # choice: each sample's kernel spans +-3 sigma (2 * ceil(3 sigma) + 1 taps, at most the
    # 10%-of-view kernel of the papers). Taps of the 23-wide kernel beyond 3 sigma carry
    # about 0.1-0.3% of the weight (well under a grey level), and blur was the costliest
    # op of a view on the CPU: half of the heavy multi-crop recipe's time with 23 taps.
    window = dmath.min(dmath.ceil(sigma * 3.0) * 2.0 + 1.0, float(blur_window(view_size, max_sigma)))
    return fn.gaussian_blur(image, window_size=fn.cast(window, dtype=types.INT32), sigma=sigma)


def _factor(spread: float, apply):
    return 1.0 + apply * fn.random.uniform(range=[-spread, spread])


def photometric(image, augment: Augment, view_size: int):
    """HWC uint8 -> HWC uint8 with jitter, grayscale, blur and solarisation drawn per sample."""
    if augment.color_jitter_p > 0 or augment.grayscale_p > 0:
        jitter = fn.cast(fn.random.coin_flip(probability=augment.color_jitter_p), dtype=types.FLOAT)
        keep_colour = 1.0 - fn.cast(fn.random.coin_flip(probability=augment.grayscale_p), dtype=types.FLOAT)
        # Grayscale is saturation 0 of the same op, after the jitter as in torchvision.
        # choice: one fused op in a fixed order (brightness, contrast, saturation, hue)
        # where torchvision shuffles the order; contrast pivots on mid-grey, not the mean.
        image = fn.color_twist(
            image,
            brightness=_factor(augment.brightness, jitter),
            contrast=_factor(augment.contrast, jitter),
            saturation=_factor(augment.saturation, jitter) * keep_colour,
            hue=jitter * fn.random.uniform(range=[-augment.hue, augment.hue]) * 360.0,
        )
    if augment.blur_p > 0:
        sigma = fn.random.uniform(range=list(augment.blur_sigma))
        if augment.blur_p >= 1.0:
            image = _blur(image, sigma, view_size, augment.blur_sigma[1])
        elif fn.random.coin_flip(probability=augment.blur_p):
            image = _blur(image, sigma, view_size, augment.blur_sigma[1])
    if augment.solarize_p > 0 and fn.random.coin_flip(probability=augment.solarize_p):
        image = solarize(image)
    return image


def solarize(image):
    """Pixels >= 128 become 255 - pixel (BYOL's threshold)."""
    bright = image >= 128
    return fn.cast(image + bright * (255 - 2 * fn.cast(image, dtype=types.INT16)), dtype=types.UINT8)


def flip_and_normalize(image, augment: Augment, dtype):
    """HWC uint8 -> HWC float, ImageNet-normalised, flipped where drawn; returns (view, flip)."""
    flip = fn.random.coin_flip(probability=augment.flip_p)  # drawn at p = 0 too: always a DataNode
    view = fn.crop_mirror_normalize(image, dtype=dtype, output_layout="HWC", mean=list(IMAGENET_MEAN),
                                    std=list(IMAGENET_STD), mirror=flip)
    return view, flip
