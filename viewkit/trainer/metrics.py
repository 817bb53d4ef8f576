"""What a run logs, on rank 0: metrics.jsonl (one row per logged step, plus kNN rows) and
TensorBoard (the same scalars, and a grid of the views once per epoch)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from viewkit.writes import writing


class MetricsLog:
    def __init__(self, out: Path, step: int, resumed_epoch: int):
        from torch.utils.tensorboard import SummaryWriter

        self.path = out / "metrics.jsonl"
        if step:
            forget_rows_after(self.path, step, resumed_epoch)
        # a new run truncates what a run killed before its first checkpoint logged
        self.file = open(self.path, "a" if step else "w")
        # purge_step: events a killed run logged after its last checkpoint are dropped, not doubled
        self.tensorboard = SummaryWriter(out / "tensorboard", purge_step=step + 1 if step else None)

    def row(self, row: dict, step: int) -> None:
        with writing(self.path):
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        for key, value in row.items():
            if value is not None and key not in ("step", "epoch"):
                self.tensorboard.add_scalar(key, value, step)

    def views(self, batch: dict, step: int, count: int = 8) -> None:
        """A grid of the first views of each family, de-normalised."""
        from viewkit.views.augment import IMAGENET_MEAN, IMAGENET_STD

        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) / 255
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) / 255
        for key, value in batch.items():
            if value.dim() == 5 and value.shape[2] == 3:  # [V, B, 3, S, S]: a view family
                images = value[0, :count].float().cpu() * std + mean
                self.tensorboard.add_images(f"views/{key}", images.clamp(0, 1), step)

    def close(self) -> None:
        self.file.close()
        self.tensorboard.close()


def forget_rows_after(path: Path, step: int, epoch: int) -> None:
    """A run killed after its last checkpoint logged steps that the resumed run trains again;
    its rows go, so each step and each kNN epoch appears once."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise ValueError(f"{path}: line {number} is not JSON ({line[:60]!r}); fix or move the file "
                                 f"before resuming") from None
            # a kill mid-write leaves a partial last row, written after the last checkpoint
    kept = [row for row in rows if (row["step"] <= step if "step" in row else row["epoch"] <= epoch)]
    path.write_text("".join(json.dumps(row) + "\n" for row in kept))
