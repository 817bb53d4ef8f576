"""Per-region reductions over a batch: native torch scatter_reduce, or torch-scatter.

torch-scatter is an optional extra (`pip install viewkit[scatter]`, a source build of
about 4.5 minutes where no wheel exists); native `scatter_reduce` gave identical maxima
and was faster on the CPU, so it is the default. Set VIEWKIT_SCATTER=torch_scatter to
use the extra.
"""

from __future__ import annotations

import os

import torch


def _backend() -> str:
    return os.environ.get("VIEWKIT_SCATTER", "native")


def segment_reduce(values: torch.Tensor, segments: torch.Tensor, num_segments: int, reduce: str) -> torch.Tensor:
    """values [n], segment ids [n] in [0, num_segments) -> [num_segments] ("amax" or "amin").
    Empty segments get -inf for amax and +inf for amin."""
    if _backend() == "torch_scatter":
        import torch_scatter

        function = torch_scatter.scatter_max if reduce == "amax" else torch_scatter.scatter_min
        fill = float("-inf") if reduce == "amax" else float("inf")
        out = torch.full((num_segments,), fill, dtype=values.dtype, device=values.device)
        result, _ = function(values, segments, dim=0, out=out)
        return result
    fill = float("-inf") if reduce == "amax" else float("inf")
    out = torch.full((num_segments,), fill, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, segments, values, reduce=reduce, include_self=True)
