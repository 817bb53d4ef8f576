"""Every random draw of a view, as a pure function of (seed, epoch, sample id, stream, slot).

A counter-based generator: the draw is a hash of its coordinates, so a sample gets the
same views whatever batch it lands in, however many ranks read the data, and wherever a
run resumes. Compiled with numba: DALI runs these on its own CPU threads, per sample,
without the GIL (`viewkit.views.kernels`). Called from Python too (tests, references).

Slots of a view's stream: 0-39 the crop's tries, 40 flip, then each operation's own
(`viewkit.views.operations`: colour 41-46, blur 47-48, solarise 49, random erasing 64-104).
"""

from __future__ import annotations

import math

import numpy as np

from viewkit.views.compiled import kernel

FLIP = 40


@kernel
def _mix(x):
    """splitmix64's finaliser: a bijection of uint64 with full avalanche."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@kernel
def uniform(seed, epoch, sample_id, stream, slot):
    """U[0, 1) keyed by its coordinates (53 bits)."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    x = _mix(np.uint64(seed) * golden + np.uint64(1))
    x = _mix(x + np.uint64(epoch) * golden)
    x = _mix(x + np.uint64(sample_id) * golden)
    x = _mix(x + np.uint64(stream) * np.uint64(4096) + np.uint64(slot))
    return float(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel
def crop_window(seed, epoch, sample_id, stream, height, width, scale0, scale1, log_ratio0, log_ratio1):
    """torchvision's RandomResizedCrop.get_params: 10 tries of area U(scale) and aspect
    log-uniform, then a centre crop with the aspect clamped. Returns x0, y0, x1, y1."""
    area = height * width
    for attempt in range(10):
        target = area * (scale0 + (scale1 - scale0) * uniform(seed, epoch, sample_id, stream, 4 * attempt))
        aspect = math.exp(log_ratio0 + (log_ratio1 - log_ratio0) * uniform(seed, epoch, sample_id, stream, 4 * attempt + 1))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            x = int(math.floor(uniform(seed, epoch, sample_id, stream, 4 * attempt + 2) * (width - w + 1)))
            y = int(math.floor(uniform(seed, epoch, sample_id, stream, 4 * attempt + 3) * (height - h + 1)))
            return float(x), float(y), float(x + w), float(y + h)
    in_ratio = width / height
    low, high = math.exp(log_ratio0), math.exp(log_ratio1)
    if in_ratio < low:
        w, h = width, int(round(width / low))
    elif in_ratio > high:
        h, w = height, int(round(height * high))
    else:
        w, h = width, height
    x, y = (width - w) // 2, (height - h) // 2
    return float(x), float(y), float(x + w), float(y + h)


@kernel
def region_pick(seed, epoch, sample_id, stream, scores):
    """Index of a region drawn with probability proportional to its score; -1 when all are 0."""
    total = 0.0
    for score in scores:
        total += max(float(score), 0.0)
    if total <= 0.0:
        return -1
    target = uniform(seed, epoch, sample_id, stream, 0) * total
    running = 0.0
    last = 0
    for k in range(scores.shape[0]):
        if scores[k] > 0:
            running += float(scores[k])
            last = k
            if target < running:
                return k
    return last


@kernel
def jittered_window(seed, epoch, sample_id, stream, height, width, rx0, ry0, rx1, ry1, scale0, scale1,
                    log_ratio0, log_ratio1):
    """SGCL's box jitter: area U(scale) x region area, aspect log-uniform, centre uniform
    in the region, window clamped to the image (at least 1 px a side before clamping)."""
    area = (scale0 + (scale1 - scale0) * uniform(seed, epoch, sample_id, stream, 0)) * (rx1 - rx0) * (ry1 - ry0)
    ratio = math.exp(log_ratio0 + (log_ratio1 - log_ratio0) * uniform(seed, epoch, sample_id, stream, 1))
    half_w = max(math.sqrt(area * ratio), 1.0) * 0.5
    half_h = max(math.sqrt(area / ratio), 1.0) * 0.5
    cx = rx0 + uniform(seed, epoch, sample_id, stream, 2) * (rx1 - rx0)
    cy = ry0 + uniform(seed, epoch, sample_id, stream, 3) * (ry1 - ry0)
    x0, x1 = min(max(cx - half_w, 0.0), width), min(max(cx + half_w, 0.0), width)
    y0, y1 = min(max(cy - half_h, 0.0), height), min(max(cy + half_h, 0.0), height)
    return x0, y0, x1, y1


@kernel
def drawn(seed, epoch, sample_id, stream, slot, probability):
    return uniform(seed, epoch, sample_id, stream, slot) < probability
