"""Gaussian blur with probability `p` and sigma drawn from U(sigma_min, sigma_max) pixels of
the view (torchvision's GaussianBlur as SimCLR/BYOL use it). Settings from `Augment`'s
blur_p and blur_sigma. Not applied: a sigma too small to blur, not a second branch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nvidia.dali import fn

from viewkit.views.compiled import kernel
from viewkit.views.draws import uniform

BLUR, SIGMA = 47, 48
# A sigma this small gives DALI's 3-tap kernel [0, 1, 0]: the frame passes unchanged. Random
# apply of blur per frame, without a conditional.
NO_BLUR_SIGMA = 1e-3


@kernel
def blur_sigma(seed, epoch, sample_id, stream, blur_p, sigma0, sigma1):
    if uniform(seed, epoch, sample_id, stream, BLUR) < blur_p:
        return sigma0 + (sigma1 - sigma0) * uniform(seed, epoch, sample_id, stream, SIGMA)
    return NO_BLUR_SIGMA


@dataclass(frozen=True)
class GaussianBlur:
    p: float = 0.0
    sigma_min: float = 0.1
    sigma_max: float = 2.0

    name = "blur"
    stage = "pixels"
    slots = (BLUR, 2)
    outputs = (("float32", (1,)), ("int32", (1,)))  # sigma, window (taps)

    def numbers(self) -> tuple[float, ...]:
        return self.p, self.sigma_min, self.sigma_max

    def active(self) -> bool:
        return self.p > 0

    @staticmethod
    @kernel
    def draw(seed, epoch, sample_id, stream, frame, size, numbers, sigma, window):
        drawn = blur_sigma(seed, epoch, sample_id, stream, numbers[0], numbers[1], numbers[2])
        sigma[0] = drawn
        # +-3 sigma (DALI's own window for a sigma); 1 tap for a frame left unblurred: no work
        window[0] = 1 if drawn == NO_BLUR_SIGMA else 2 * int(math.ceil(3.0 * drawn)) + 1

    @staticmethod
    def apply(frames, outputs, single):
        from viewkit.views.operations import per_frame

        sigma, window = outputs
        # choice: the window spans +-3 sigma; BYOL's 23 taps at 224 px reach past that with
        # weights under 0.3% (less than a grey level). On the CPU backend an unblurred frame
        # gets 1 tap (no work); on the GPU, 3 taps of a tiny sigma cost less than the
        # operator that would pass the windows.
        taps = {"window_size": per_frame(window, single)} if frames.device == "cpu" else {}
        return fn.gaussian_blur(frames, sigma=per_frame(sigma, single), **taps)
