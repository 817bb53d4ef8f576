"""Schedules as pure functions of the step."""

from __future__ import annotations

import math


def learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int = 0, final: float = 0.0) -> float:
    """Linear warm-up to `peak`, then cosine decay to `final`."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def ema_momentum(step: int, total_steps: int, base: float) -> float:
    """BYOL's target momentum: base -> 1 along a cosine (Grill et al. 2020, section 3.2)."""
    return 1 - (1 - base) * (math.cos(math.pi * step / max(1, total_steps)) + 1) / 2
