"""viewkit: multi-view SSL pretraining data on DALI, from WebDataset shards to a lean trainer.

    from viewkit import ViewLoader, recipes
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `viewkit shard` and friends should not pay for importing DALI and torch.
    if name == "ViewLoader":
        from viewkit.loaders.view_loader import ViewLoader

        return ViewLoader
    if name == "recipes":
        from viewkit.views import recipes

        return recipes
    raise AttributeError(f"module 'viewkit' has no attribute {name!r}")
