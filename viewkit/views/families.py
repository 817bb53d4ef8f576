"""The view families of a recipe: declarative specs, each checked when built.

Sizes are pixels of the output view, scales are fractions of the source image's area
(or of a region's area for saliency crops), ratios are width / height.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from viewkit.views.augment import BYOL_VIEW1, BYOL_VIEW2, MOCO_V2, Augment


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name}={value} must be (min, max) with {low} <= min <= max <= {high}")


def _check_augments(name: str, augments: tuple[Augment, ...], count: int) -> None:
    if len(augments) not in (1, count):
        raise ValueError(f"{name}: give one Augment for all views or one per view ({count}), got {len(augments)}")


@dataclass(frozen=True)
class Crops:
    """Random-resized crops (torchvision RandomResizedCrop sampling, DALI's crop generator)."""

    name: str  # output key: "global", "local", "views", ...
    count: int
    size: int
    scale: tuple[float, float]
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    augments: tuple[Augment, ...] = (MOCO_V2,)  # one for all views, or one per view

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"crop family name {self.name!r} must be an identifier (it becomes an output key)")
        if self.count < 1 or self.size < 8:
            raise ValueError(f"{self.name}: count {self.count} >= 1 and size {self.size} >= 8 px required")
        _check_range(f"{self.name}.scale", self.scale, 1e-4, 1.0)
        _check_range(f"{self.name}.ratio", self.ratio, 1e-2, 1e2)
        _check_augments(self.name, self.augments, self.count)

    def augment(self, view: int) -> Augment:
        return self.augments[view if len(self.augments) > 1 else 0]


@dataclass(frozen=True)
class Original:
    """LeOCLR's original view: the whole image resized to size x size, aspect not kept."""

    size: int = 224
    augment: Augment = MOCO_V2  # the MoCo-v2 augmentations; there is no crop to skip

    def __post_init__(self):
        if self.size < 8:
            raise ValueError(f"original.size {self.size} must be >= 8 px")


@dataclass(frozen=True)
class SaliencyCrops:
    """SGCL's box-jittered crops: t regions drawn by score, two crops B', B'' around each.

    Side data per sample: up to `max_regions` boxes (x0, y0, x1, y1 source pixels) with
    scores in (0, 1]; padding rows have score 0. Samples without regions fall back to
    SGCL's initialisation: random crops of `fallback_scale` of the image, score 1.0.
    """

    pairs: int = 4  # t
    size: int = 96
    scale: tuple[float, float] = (0.08, 1.0)  # of the region's area
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # drawn log-uniformly
    max_regions: int = 8  # K rows of side data per sample
    fallback_scale: tuple[float, float] = (0.08, 1.0)  # of the image, when a sample has no region
    augments: tuple[Augment, Augment] = (BYOL_VIEW1, BYOL_VIEW2)  # for B' and B''

    def __post_init__(self):
        if self.pairs < 1 or self.max_regions < 1 or self.size < 8:
            raise ValueError(f"saliency: pairs {self.pairs}, max_regions {self.max_regions} >= 1, size {self.size} >= 8 required")
        _check_range("saliency.scale", self.scale, 1e-4, 1.0)
        _check_range("saliency.fallback_scale", self.fallback_scale, 1e-4, 1.0)
        _check_range("saliency.ratio", self.ratio, 1e-2, 1e2)
        _check_augments("saliency", self.augments, 2)


@dataclass(frozen=True)
class RegionSwap:
    """RegionCL's composite: a grid-aligned region of sample B-1-i pasted into sample i.

    One box per batch, made from view 0 of crop family `source` after its augmentation.
    """

    source: str = "global"
    grid: int = 32  # the backbone's stride: boxes cover whole cells of its feature map
    cells: tuple[int, ...] = (3, 4, 5)  # width and height drawn independently, in cells

    def __post_init__(self):
        if self.grid < 1 or not self.cells or min(self.cells) < 1:
            raise ValueError(f"swap: grid {self.grid} and cells {self.cells} must be positive")


@dataclass(frozen=True)
class Recipe:
    """Everything one batch of views is made of. Compiled by `viewkit.views.graph.build_views`."""

    name: str
    crops: tuple[Crops, ...] = ()
    original: Original | None = None
    saliency: SaliencyCrops | None = None
    swap: RegionSwap | None = None
    dtype: str = "float32"  # float32, float16 or bfloat16 (bfloat16: cast when handed to torch)
    notes: dict = field(default_factory=dict, compare=False)  # paper numbers, for repr/preview

    def __post_init__(self):
        if not (self.crops or self.original or self.saliency):
            raise ValueError(f"recipe {self.name!r} has no views")
        names = [c.name for c in self.crops]
        reserved = {"original", "saliency", "swap", "label", "id", "image_size"}
        if len(set(names)) != len(names) or reserved & set(names):
            raise ValueError(f"recipe {self.name!r}: crop names {names} must be unique and not in {sorted(reserved)}")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype {self.dtype!r}: one of float32, float16, bfloat16")
        if self.swap is not None:
            source = next((c for c in self.crops if c.name == self.swap.source), None)
            if source is None:
                raise ValueError(f"swap.source {self.swap.source!r} is not a crop family of {names}")
            if source.size % self.swap.grid or max(self.swap.cells) * self.swap.grid >= source.size:
                raise ValueError(f"swap: {source.size} px views need a size divisible by grid {self.swap.grid} "
                                 f"and more than {max(self.swap.cells)} cells, so that some canvas stays around the box")
