"""PyTorch Lightning: a LightningDataModule around ViewLoader (Lightning imported only here).

    datamodule = ViewDataModule("OUT/dataset.json", recipes.get("byol"), batch_size=256)
    lightning.Trainer(...).fit(model, datamodule=datamodule)

Rank and world size come from the Trainer; each epoch calls `set_epoch(current_epoch)`;
the loader's position is saved in Lightning checkpoints through state_dict.
"""

from __future__ import annotations

import lightning

from viewkit.loaders.view_loader import ViewLoader


class _Epochs:
    """What train_dataloader returns: sets the loader's epoch from the Trainer on each pass."""

    def __init__(self, loader: ViewLoader, datamodule: "ViewDataModule"):
        self.loader, self.datamodule = loader, datamodule

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        trainer = self.datamodule.trainer
        self.loader.set_epoch(trainer.current_epoch if trainer is not None else self.loader.epoch)
        return iter(self.loader)


class ViewDataModule(lightning.LightningDataModule):
    def __init__(self, dataset, recipe, batch_size: int, **loader_options):
        super().__init__()
        self.dataset, self.recipe, self.batch_size, self.loader_options = dataset, recipe, batch_size, loader_options
        self.loader: ViewLoader | None = None
        self._pending_state: dict | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.loader is None:
            options = dict(self.loader_options)
            if self.trainer is not None:
                options.setdefault("rank", self.trainer.global_rank)
                options.setdefault("world_size", self.trainer.world_size)
            self.loader = ViewLoader(self.dataset, self.recipe, self.batch_size, **options)
            if self._pending_state is not None:
                self.loader.load_state_dict(self._pending_state)

    def train_dataloader(self):
        return _Epochs(self.loader, self)

    def state_dict(self) -> dict:
        return {"loader": self.loader.state_dict()} if self.loader is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "loader" in state:
            self._pending_state = state["loader"]
            if self.loader is not None:
                self.loader.load_state_dict(state["loader"])
