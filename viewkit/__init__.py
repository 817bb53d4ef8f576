"""viewkit: multi-view SSL pretraining data on DALI, from WebDataset shards to a lean trainer."""

__version__ = "0.1.0"
