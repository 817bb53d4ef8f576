"""The LightningDataModule wrapper drives a real Trainer through epochs of views."""

import pytest
import torch

lightning = pytest.importorskip("lightning", reason="lightning is not installed (pip install -e '.[dev]')")

from viewkit import recipes  # noqa: E402
from viewkit.loaders.lightning import ViewDataModule  # noqa: E402


class MeanColour(lightning.LightningModule):
    """A linear map from each view's mean colour: enough to take real optimiser steps."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 3)
        self.seen = {0: [], 1: []}

    def training_step(self, batch, _):
        self.seen[self.current_epoch].extend(batch["id"][batch["valid"]].tolist())
        first, second = (batch["global"][v].float().mean((2, 3)) for v in range(2))
        return torch.nn.functional.mse_loss(self.linear(first), second)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_runs_epochs_with_the_datamodule(embedded_shards):
    datamodule = ViewDataModule(embedded_shards, recipes.get("moco_v2", global_size=32), batch_size=10,
                                device="cpu", threads=2, drop_last=False)
    model = MeanColour()
    trainer = lightning.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 12
    assert sorted(model.seen[0]) == sorted(model.seen[1]) == list(range(60))
    assert model.seen[0] != model.seen[1]  # the epoch was passed on: a new order
    assert datamodule.state_dict()["loader"]["epoch"] == 1
