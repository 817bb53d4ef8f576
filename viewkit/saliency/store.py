"""SaliencyStore: one row of regions per sample id, memory-mapped, replaced atomically.

Layout: STORE is a symbolic link to a versioned folder STORE.vN holding boxes.npy
[N, K, 4] float32, scores.npy [N, K] float32, counts.npy [N] int32 and meta.json. A new
version is written beside the old one, then the link is swapped with os.replace (atomic
on POSIX): a crash mid-refresh leaves the previous store in place and readable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from viewkit.loaders.dataset import ShardSet
from viewkit.loaders.side_data import RegionTable
from viewkit.writes import writing


class SaliencyStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def exists(self) -> bool:
        return (self.path / "meta.json").exists()

    @property
    def meta(self) -> dict:
        if not self.exists():
            raise FileNotFoundError(f"{self.path}: no saliency store (make one with `viewkit saliency`)")
        return json.loads((self.path / "meta.json").read_text())

    def write(self, boxes: np.ndarray, scores: np.ndarray, counts: np.ndarray, *, source: str, epoch: int | None = None,
              checkpoint: str | None = None, shards: ShardSet | None = None) -> dict:
        """Writes a new version and swaps it in; returns its meta. The `shards` the regions
        belong to are recorded by fingerprint, so that a loader refuses them for other shards."""
        n, k = scores.shape
        if boxes.shape != (n, k, 4) or counts.shape != (n,):
            raise ValueError(f"boxes {boxes.shape}, scores {scores.shape}, counts {counts.shape} do not agree")
        previous = self.meta["version"] if self.exists() else 0
        version = previous + 1
        folder = self.path.with_name(f"{self.path.name}.v{version}")
        if folder.exists():
            shutil.rmtree(folder)  # left by a crash before its swap
        folder.mkdir(parents=True)
        meta = {"version": version, "num_samples": n, "max_regions": k, "source": source, "epoch": epoch,
                "checkpoint": checkpoint, "dataset": shards.name if shards else None,
                "dataset_fingerprint": shards.manifest["fingerprint"] if shards else None}
        try:
            with writing(folder):
                np.save(folder / "boxes.npy", boxes.astype(np.float32))
                np.save(folder / "scores.npy", scores.astype(np.float32))
                np.save(folder / "counts.npy", counts.astype(np.int32))
                (folder / "meta.json").write_text(json.dumps(meta, indent=2))
                for f in folder.iterdir():
                    with open(f, "rb") as handle:
                        os.fsync(handle.fileno())
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)  # the store in use stays as it was
            raise
        if self.path.exists() and not self.path.is_symlink():
            raise FileExistsError(f"{self.path} exists and is not a viewkit saliency store link")
        link = self.path.with_name(f".{self.path.name}.link")
        link.unlink(missing_ok=True)
        link.symlink_to(folder.name)
        os.replace(link, self.path)
        if previous:
            shutil.rmtree(self.path.with_name(f"{self.path.name}.v{previous}"), ignore_errors=True)
        return meta

    def table(self) -> RegionTable:
        """The regions as side data for ViewLoader (memory-mapped, not loaded)."""
        meta = self.meta
        boxes = np.load(self.path / "boxes.npy", mmap_mode="r")
        scores = np.load(self.path / "scores.npy", mmap_mode="r")
        return RegionTable(boxes, scores, version=f"{meta['source']} v{meta['version']} epoch {meta['epoch']}",
                           dataset=meta.get("dataset_fingerprint") or "", origin=f"saliency store {self.path}")

    def counts(self) -> np.ndarray:
        return np.load(self.path / "counts.npy", mmap_mode="r")
