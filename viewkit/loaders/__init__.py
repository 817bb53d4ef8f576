"""Shards into DALI view pipelines: ranks, epochs, resume, side data."""

from viewkit.loaders.side_data import RegionTable
from viewkit.loaders.view_loader import ViewLoader

__all__ = ["RegionTable", "ViewLoader"]
