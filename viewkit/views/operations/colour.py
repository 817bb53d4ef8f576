"""Colour jitter then grayscale, as one affine colour map per frame (torchvision's
ColorJitter(brightness, contrast, saturation, hue) applied with probability `jitter_p`,
then RandomGrayscale(`grayscale_p`)). Settings from `Augment`'s fields of the same names."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from nvidia.dali import fn, types

from viewkit.views.compiled import kernel
from viewkit.views.draws import uniform

JITTER, BRIGHTNESS, CONTRAST, SATURATION, HUE, GRAYSCALE = range(41, 47)

# DALI's colour twist is this affine map (checked against fn.color_twist to a grey level):
# out = b * (c * (M x - 128) + 128), M = YIQ->RGB . hue rotation . saturation . RGB->YIQ.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


@kernel
def colour_matrix(seed, epoch, sample_id, stream, jitter_p, brightness, contrast, saturation, hue, grayscale_p, out):
    """Writes the [3, 4] affine map of jitter + grayscale into `out` (identity when not drawn)."""
    applied = 1.0 if uniform(seed, epoch, sample_id, stream, JITTER) < jitter_p else 0.0
    b = 1.0 + applied * brightness * (2.0 * uniform(seed, epoch, sample_id, stream, BRIGHTNESS) - 1.0)
    c = 1.0 + applied * contrast * (2.0 * uniform(seed, epoch, sample_id, stream, CONTRAST) - 1.0)
    s = 1.0 + applied * saturation * (2.0 * uniform(seed, epoch, sample_id, stream, SATURATION) - 1.0)
    h = applied * hue * (2.0 * uniform(seed, epoch, sample_id, stream, HUE) - 1.0) * 2.0 * math.pi
    if uniform(seed, epoch, sample_id, stream, GRAYSCALE) < grayscale_p:
        s = 0.0  # grayscale: saturation 0 after the jitter, as torchvision orders them
    rotate = np.zeros((3, 3))
    rotate[0, 0] = 1.0
    rotate[1, 1], rotate[1, 2] = s * math.cos(h), s * math.sin(h)
    rotate[2, 1], rotate[2, 2] = -s * math.sin(h), s * math.cos(h)
    for i in range(3):  # YIQ->RGB . rotate . RGB->YIQ, by hand: numba's matmul needs BLAS from scipy
        for j in range(3):
            total = 0.0
            for k in range(3):
                for m in range(3):
                    total += YIQ_TO_RGB[i, k] * rotate[k, m] * RGB_TO_YIQ[m, j]
            out[i, j] = b * c * total
        out[i, 3] = b * 128.0 * (1.0 - c)


@dataclass(frozen=True)
class ColourJitter:
    jitter_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    grayscale_p: float = 0.0

    name = "colour"
    stage = "pixels"
    slots = (JITTER, 6)
    outputs = (("float32", (3, 4)),)  # the affine map of `fn.coord_transform`

    def numbers(self) -> tuple[float, ...]:
        return self.jitter_p, self.brightness, self.contrast, self.saturation, self.hue, self.grayscale_p

    def active(self) -> bool:
        return self.jitter_p > 0 or self.grayscale_p > 0

    @staticmethod
    @kernel
    def draw(seed, epoch, sample_id, stream, frame, size, numbers, matrix):
        colour_matrix(seed, epoch, sample_id, stream, numbers[0], numbers[1], numbers[2], numbers[3], numbers[4],
                      numbers[5], matrix)

    @staticmethod
    def apply(frames, outputs, single):
        from viewkit.views.operations import per_frame

        matrix, = outputs
        return fn.coord_transform(frames, MT=per_frame(matrix, single), dtype=types.UINT8)
