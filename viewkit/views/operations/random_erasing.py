"""Random erasing (Zhong et al. 2020, "Random Erasing Data Augmentation", Alg. 1; as
torchvision's RandomErasing): with probability `p`, a rectangle of area U(scale) x the
view's and aspect log-uniform in `ratio` is set to 0 after normalisation, i.e. to the
dataset's mean colour. Ten tries; when no rectangle fits, the view stays whole.

    Augment(operations=(RandomErasing(p=0.25),))
    augments: [{operations: [{random_erasing: {p: 0.25}}]}]      # YAML

choice: the fill is 0 (torchvision's default, value=0), not per-pixel noise
(value="random"): DALI's erase fills with a constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nvidia.dali import fn

from viewkit.views.compiled import kernel
from viewkit.views.draws import uniform

APPLIED = 64  # then four slots per try
TRIES = 10


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low < value[0] <= value[1] <= high:
        raise ValueError(f"random_erasing.{name}={value} must be (min, max) with {low} < min <= max <= {high}")


@kernel
def erased_box(seed, epoch, sample_id, stream, height, width, p, scale0, scale1, log_ratio0, log_ratio1):
    """torchvision's RandomErasing.get_params: y, x, h, w of the box; h = w = 0 when none."""
    if uniform(seed, epoch, sample_id, stream, APPLIED) >= p:
        return 0, 0, 0, 0
    area = height * width
    for attempt in range(TRIES):
        slot = APPLIED + 1 + 4 * attempt
        erase_area = area * (scale0 + (scale1 - scale0) * uniform(seed, epoch, sample_id, stream, slot))
        aspect = math.exp(log_ratio0 + (log_ratio1 - log_ratio0) * uniform(seed, epoch, sample_id, stream, slot + 1))
        h = int(round(math.sqrt(erase_area * aspect)))  # torchvision's own: h from area x aspect
        w = int(round(math.sqrt(erase_area / aspect)))
        if h < height and w < width:
            y = int(math.floor(uniform(seed, epoch, sample_id, stream, slot + 2) * (height - h + 1)))
            x = int(math.floor(uniform(seed, epoch, sample_id, stream, slot + 3) * (width - w + 1)))
            return y, x, h, w
    return 0, 0, 0, 0


@dataclass(frozen=True)
class RandomErasing:
    p: float = 0.0
    scale: tuple[float, float] = (0.02, 0.33)  # of the view's area
    ratio: tuple[float, float] = (0.3, 3.3)  # height / width, drawn log-uniformly

    name = "random_erasing"
    stage = "normalized"  # erased to 0 after normalising: the mean colour
    slots = (APPLIED, 1 + 4 * TRIES)
    outputs = (("float32", (3,)), ("float32", (3,)))  # (frame, y, x) and (1, h, w) of the box

    def __post_init__(self):
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"random_erasing.p={self.p} is not a probability in [0, 1]")
        _check_range("scale", self.scale, 0.0, 1.0)
        _check_range("ratio", self.ratio, 0.0, math.inf)

    def numbers(self) -> tuple[float, ...]:
        return self.p, *self.scale, math.log(self.ratio[0]), math.log(self.ratio[1])

    def active(self) -> bool:
        return self.p > 0

    @staticmethod
    @kernel
    def draw(seed, epoch, sample_id, stream, frame, size, numbers, anchor, shape):
        y, x, h, w = erased_box(seed, epoch, sample_id, stream, size, size, numbers[0], numbers[1], numbers[2],
                                numbers[3], numbers[4])
        anchor[0], anchor[1], anchor[2] = frame, y, x
        shape[0], shape[1], shape[2] = 1, h, w  # an empty box erases nothing

    @staticmethod
    def apply(frames, outputs, single):
        anchor, shape = outputs
        if single:  # one image: no frame axis
            return fn.erase(frames, anchor=anchor[1:], shape=shape[1:], axis_names="HW", fill_value=0.0)
        # every frame's box in one erase: the boxes are regions of the [F, S, S] sequence
        return fn.erase(frames, anchor=anchor, shape=shape, axis_names="FHW", fill_value=0.0)
