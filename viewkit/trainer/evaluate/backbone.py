"""The network evaluation and saliency read: a checkpoint's backbone, or the same
architecture untrained (the baseline), seeded."""

from __future__ import annotations

import torch

from viewkit.trainer import checkpoint as ckpt
from viewkit.trainer.nets import Backbone


def training_resolution(checkpoint: str) -> int:
    """The side of the views a checkpoint's network was trained on (its recipe's first global
    views): evaluating a network trained at 64 px on 224 px images measures another network."""
    from viewkit.trainer.config import TrainConfig
    from viewkit.views import families, recipes

    config = ckpt.load(checkpoint)["config"]
    known = {key: value for key, value in config.items() if key in TrainConfig.__dataclass_fields__}
    trained = TrainConfig(**known)
    recipe = recipes.get(trained.recipe_name, **trained.recipe_overrides)
    return next(size for family in families.of(recipe) for size in family.sizes(recipe))


def load_backbone(checkpoint: str | None, random_init: bool, arch: str | None, seed: int,
                  features: str = "pooled") -> torch.nn.Module:
    """`features` "fg": SCD's saliency-pooled foreground encoder, read from an SCD checkpoint."""
    state = ckpt.load(checkpoint) if checkpoint else None
    arch = arch or (state["arch"] if state else "resnet50")
    torch.manual_seed(seed)
    backbone = Backbone(arch)
    if state is not None and not random_init:
        backbone.load_torchvision_state(state["backbone"])
    elif not random_init:
        raise ValueError("give --checkpoint CKPT, or --random-init for the untrained baseline")
    if features == "fg":
        if state is None or random_init:
            raise ValueError("--features fg reads the saliency head from an SCD checkpoint: give --checkpoint")
        from viewkit.trainer.methods.scd import foreground_encoder

        return foreground_encoder(backbone, state["model"], checkpoint)
    return backbone
