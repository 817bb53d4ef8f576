"""Per-sample side data outside the shards: regions (boxes + scores) by sample id.

The join runs inside the DALI graph as one `fn.python_function` per batch doing a
vectorised numpy gather (not a Python call per sample). A table can be swapped between
epochs without touching the shards; the loader rebuilds only its pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RegionTable:
    """Up to K regions per sample id: boxes [N, K, 4] (x0, y0, x1, y1 source pixels),
    scores [N, K] in (0, 1], 0 marking an empty row. A sample whose scores are all 0
    (or whose id is beyond N) has no regions: the views fall back to random crops."""

    boxes: np.ndarray
    scores: np.ndarray
    version: str = ""  # what produced it, e.g. a checkpoint epoch; saved with loader state
    dataset: str = ""  # fingerprint of the shards its rows belong to (dataset.json); "": not recorded
    origin: str = ""  # where it was read from, for error messages

    def __post_init__(self):
        self.boxes = np.ascontiguousarray(self.boxes, dtype=np.float32)
        self.scores = np.ascontiguousarray(self.scores, dtype=np.float32)
        n, k = self.scores.shape
        if self.boxes.shape != (n, k, 4):
            raise ValueError(f"boxes {self.boxes.shape} must be [N, K, 4] with N, K = {n, k} of scores")
        if (self.scores < 0).any() or (self.scores > 1).any():
            raise ValueError("region scores must lie in [0, 1] (0: no region)")

    @property
    def max_regions(self) -> int:
        return self.scores.shape[1]

    @classmethod
    def empty(cls, num_samples: int, max_regions: int) -> "RegionTable":
        return cls(np.zeros((num_samples, max_regions, 4), np.float32), np.zeros((num_samples, max_regions), np.float32))

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ids [n] -> boxes [n, K, 4], scores [n, K]; unknown ids get no regions."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        known = (ids >= 0) & (ids < len(self.scores))
        safe = np.where(known, ids, 0)
        return self.boxes[safe] * known[:, None, None], self.scores[safe] * known[:, None]

    def join_batch(self, ids: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The DALI python_function body: a batch of [1] id arrays -> per-sample rows."""
        boxes, scores = self.lookup(np.concatenate([np.asarray(i).reshape(-1) for i in ids]))
        return list(boxes), list(scores)
