"""Solarisation with probability `p`: pixels >= 128 inverted (BYOL's threshold).
Settings from `Augment`'s solarize_p."""

from __future__ import annotations

from dataclasses import dataclass

import nvidia.dali.math as dmath
from nvidia.dali import fn, types

from viewkit.views.compiled import kernel
from viewkit.views.draws import uniform

SOLARIZE = 49


@dataclass(frozen=True)
class Solarize:
    p: float = 0.0

    name = "solarize"
    stage = "pixels"
    slots = (SOLARIZE, 1)
    outputs = (("int16", (1, 1, 1)),)  # the limit below, broadcast over a frame's pixels

    def numbers(self) -> tuple[float, ...]:
        return (self.p,)

    def active(self) -> bool:
        return self.p > 0

    @staticmethod
    @kernel
    def draw(seed, epoch, sample_id, stream, frame, size, numbers, limit):
        # solarise as min(x, limit - x): 255 inverts pixels >= 128, 510 leaves every pixel be
        limit[0, 0, 0] = 255 if uniform(seed, epoch, sample_id, stream, SOLARIZE) < numbers[0] else 510

    @staticmethod
    def apply(frames, outputs, single):
        # three operators where the textbook form takes eight
        limit, = outputs
        return fn.cast(dmath.min(frames, limit - frames), dtype=types.UINT8)
