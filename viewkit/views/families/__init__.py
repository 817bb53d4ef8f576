"""View families: what a recipe is made of, one file each.

Sizes are pixels of the output view, scales are fractions of the source image's area
(or of a region's area for saliency crops), ratios are width / height.

A family is a frozen dataclass of its settings, checked when built, that declares
(see `patch_masks.py`, and docs/extending.md):

    key        its output's name, the prefix of its other outputs' names
    regions    rows of saliency side data a sample needs (SGCL's regions; 0: none)
    check(recipe)   what it needs of the rest of the recipe (swap: the family it copies from)
    plan(recipe, stream, keep) -> Planned
               its views (`viewkit.views.frames.Frames`: cut from the decoded image, each
               operation applied over all frames), its rows of the view table (windows,
               regions, boxes handed to torch) and how many streams its draws take;
               `keep` maps a view's Augment to the one used (geometry only, or itself)
    draw(planned, context) -> its own kernels' outputs (CPU DataNodes), or None
    build(planned, drawn, outputs, context) -> its outputs beyond its views' (swap's composite)
    arrange(rows, batch, dtype) -> its tensors of the output contract (docs/views.md),
               from its rows of the view table [B, n, 13] and the batch's DALI outputs
    sketch(batch, row, sheet) / legend()   what `viewkit preview` draws of it

The papers' families have fields of `Recipe` (`crops`, `original`, `saliency`, `swap`);
any other goes in `Recipe.families` and is named in YAML by FAMILIES.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from viewkit.views.families.crops import Crops
from viewkit.views.families.original import Original
from viewkit.views.families.patch_masks import PatchMasks
from viewkit.views.families.saliency import SaliencyCrops
from viewkit.views.families.swap import RegionSwap
from viewkit.views.frames import Frames

# The outputs every batch has besides the families' (the loader's and the view table)
RESERVED = {"label", "id", "image_size", "valid", "view_table"}
# YAML name -> class, for the families of `Recipe.families`
FAMILIES: dict[str, type] = {"patch_masks": PatchMasks}


@dataclass(frozen=True)
class Planned:
    frames: tuple[Frames, ...] = ()
    rows: tuple[tuple[float, ...], ...] = ()  # its rows of the view table
    streams: int = 0  # how many streams its draws take
    stream: int = 0  # its first (set by the planner)


@dataclass(frozen=True)
class Context:
    """What a family's kernels and graph may read, as DataNodes and build-time numbers."""

    sample_id: object  # [1] int64
    shape: object  # [H, W, C] int64
    side: tuple  # (regions, scores) when the recipe reads regions, else ()
    seed: int
    epoch: int
    batch_size: int


@dataclass(frozen=True)
class Recipe:
    """Everything one batch of views is made of. Compiled by `viewkit.views.graph.build_views`."""

    name: str
    crops: tuple[Crops, ...] = ()
    original: Original | None = None
    saliency: SaliencyCrops | None = None
    swap: RegionSwap | None = None
    families: tuple = ()  # further families, after the papers' (e.g. PatchMasks)
    dtype: str = "float32"  # float32, float16 or bfloat16 (bfloat16: cast when handed to torch)
    notes: dict = field(default_factory=dict, compare=False)  # paper numbers, for repr/preview

    def __post_init__(self):
        every = of(self)
        if not every:
            raise ValueError(f"recipe {self.name!r} has no views")
        for family in self.families:
            if FAMILIES.get(getattr(family, "kind", None)) is not type(family):
                raise ValueError(f"recipe {self.name!r}: {family!r} is not a family of {sorted(FAMILIES)}")
        keys = [f.key for f in every]
        if len(set(keys)) != len(keys) or RESERVED & set(keys):
            raise ValueError(f"recipe {self.name!r}: family names {keys} must be unique and not in {sorted(RESERVED)}")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype {self.dtype!r}: one of float32, float16, bfloat16")
        for family in every:
            family.check(self)

    @property
    def regions(self) -> int:
        """Rows of saliency side data each sample needs (0: the recipe reads none)."""
        return max(f.regions for f in of(self))


def of(recipe: Recipe) -> tuple:
    """Every family of a recipe, in the order their streams are numbered."""
    papers = (*recipe.crops, recipe.original, recipe.saliency, recipe.swap)
    return tuple(f for f in papers if f is not None) + tuple(recipe.families)
