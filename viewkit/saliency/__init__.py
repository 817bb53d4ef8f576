"""SGCL step 1: saliency regions from the model's features, and the store the loader joins.

    from viewkit.saliency import ncut_saliency, saliency_regions, SaliencyStore
"""

from viewkit.saliency.ncut import ncut_saliency
from viewkit.saliency.regions import saliency_regions
from viewkit.saliency.store import SaliencyStore

__all__ = ["SaliencyStore", "ncut_saliency", "saliency_regions"]
