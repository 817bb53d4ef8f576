"""Per-sample token masks over a grid of patches, drawn per sample id like every view.

    PatchMasks(mode="random", ratio=0.75)              # MAE (He et al. 2022): random patches
    PatchMasks(mode="block", ratio=75 / 196)           # BEiT (Bao et al. 2022) / iBOT: blocks
    PatchMasks(mode="multiblock", grid=(16, 16))       # I-JEPA (Assran et al. 2023): context, targets

Outputs (B samples, an H x W grid of patches):
  random, block: `<name>` [B, H, W] bool, True where a patch is masked
  multiblock:    `<name>_context` [B, H, W] bool, the context block less every target (what
                 the encoder sees), and `<name>_targets` [B, targets, H, W] bool, each target block

The draws follow the authors' code: MAE's `random_masking` (noise per patch, the
highest L - int(L (1 - ratio)) masked), BEiT's `MaskingGenerator` (blocks of at least
`min_block` patches, aspect log-uniform in [block_aspect, 1 / block_aspect], added until
`ratio` of the grid is masked), I-JEPA's `MaskCollator` (multiblock.py: target and
context sizes, blocks placed with torch.randint's exclusive upper bound, the context
constrained to the targets' complements, relaxed one target at a time after 20 tries).

choice: I-JEPA draws the block sizes once per batch (its collator's step counter); here
they are drawn per sample, so that a sample's masks do not depend on its batch, like
every other view; its collator then cuts every sample's index lists to the batch's
shortest, where these masks keep every patch drawn (a trainer that needs equal counts
cuts them itself).
choice: BEiT and I-JEPA loop until a block fits; a sample here gets at most
`20 (targets + 1)` tries a block, then the last drawn (only a grid too small for
`min_keep` runs out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from viewkit.views.compiled import kernel
from viewkit.views.draws import uniform
from viewkit.views.rows import FIXED, row, spec

MODES = ("random", "block", "multiblock")
# this family's own spec row (rows.row with names=globals())
MODE, GRID_H, GRID_W, RATIO, MIN_BLOCK, MAX_BLOCK, LOG_ASPECT_MIN, LOG_ASPECT_MAX = range(2, 10)
TARGETS, TARGET_SCALE_MIN, TARGET_SCALE_MAX, CONTEXT_SCALE_MIN, CONTEXT_SCALE_MAX = range(10, 15)
TARGET_ASPECT_MIN, TARGET_ASPECT_MAX, MIN_KEEP = range(15, 18)
TRIES = 10  # BEiT's attempts a block
PATIENCE = 20  # I-JEPA's attempts before it relaxes the context's constraint by one target


@kernel
def _number(table, column):
    return table[1, column] / FIXED


@kernel
def random_mask(seed, epoch, sample_id, stream, ratio, mask):
    """MAE: a uniform noise per patch; the patches past the int(L (1 - ratio)) lowest are masked."""
    height, width = mask.shape
    patches = height * width
    noise = np.empty(patches)
    for k in range(patches):
        noise[k] = uniform(seed, epoch, sample_id, stream, k)
    order = np.argsort(noise, kind="mergesort")
    keep = int(patches * (1.0 - ratio))
    for k in range(keep, patches):
        mask[order[k] // width, order[k] % width] = 1


@kernel
def block_mask(seed, epoch, sample_id, stream, masked, min_block, max_block, log_aspect0, log_aspect1, mask):
    """BEiT's MaskingGenerator.__call__: blocks until `masked` patches are, or a block adds none."""
    height, width = mask.shape
    count, call = 0, 0
    while count < masked:
        most = min(masked - count, max_block)
        delta = 0
        for attempt in range(TRIES):
            slot = 4 * (TRIES * call + attempt)
            target = min_block + (most - min_block) * uniform(seed, epoch, sample_id, stream, slot)
            aspect = math.exp(log_aspect0 + (log_aspect1 - log_aspect0) * uniform(seed, epoch, sample_id, stream,
                                                                                  slot + 1))
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if w < width and h < height:
                top = int(uniform(seed, epoch, sample_id, stream, slot + 2) * (height - h + 1))  # randint: inclusive
                left = int(uniform(seed, epoch, sample_id, stream, slot + 3) * (width - w + 1))
                already = 0
                for i in range(top, top + h):
                    for j in range(left, left + w):
                        already += mask[i, j]
                if 0 < h * w - already <= most:  # BEiT's overlap rule
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i, j] == 0:
                                mask[i, j] = 1
                                delta += 1
                if delta > 0:
                    break
        call += 1
        if delta == 0:
            break
        count += delta


@kernel
def _block_size(draw, height, width, scale0, scale1, aspect0, aspect1):
    """I-JEPA's _sample_block_size: one draw sets both the scale and the aspect (as there)."""
    keep = int(height * width * (scale0 + draw * (scale1 - scale0)))
    aspect = aspect0 + draw * (aspect1 - aspect0)
    h = int(round(math.sqrt(keep * aspect)))
    w = int(round(math.sqrt(keep / aspect)))
    return min(h, height - 1), min(w, width - 1)


@kernel
def _place(seed, epoch, sample_id, stream, first_slot, h, w, min_keep, targets, constrain, out):
    """I-JEPA's _sample_block_mask into `out`: a block placed until it keeps more than
    `min_keep` patches; with `constrain`, outside the first n targets, n falling by one
    every PATIENCE failed tries."""
    height, width = out.shape
    count = targets.shape[0]
    for attempt in range(PATIENCE * (count + 1)):
        slot = first_slot + 2 * attempt
        top = int(uniform(seed, epoch, sample_id, stream, slot) * (height - h))  # torch.randint: exclusive
        left = int(uniform(seed, epoch, sample_id, stream, slot + 1) * (width - w))
        relaxed = max(count - attempt // PATIENCE, 0) if constrain else 0
        kept = 0
        for i in range(height):
            for j in range(width):
                inside = top <= i < top + h and left <= j < left + w
                for k in range(relaxed):
                    if targets[k, i, j]:
                        inside = False
                out[i, j] = 1 if inside else 0
                kept += out[i, j]
        if kept > min_keep:
            return


@kernel
def multiblock_masks(seed, epoch, sample_id, stream, table, context, targets):
    height, width = context.shape
    count = targets.shape[0]
    target_h, target_w = _block_size(uniform(seed, epoch, sample_id, stream, 0), height, width,
                                     _number(table, TARGET_SCALE_MIN), _number(table, TARGET_SCALE_MAX),
                                     _number(table, TARGET_ASPECT_MIN), _number(table, TARGET_ASPECT_MAX))
    context_h, context_w = _block_size(uniform(seed, epoch, sample_id, stream, 1), height, width,
                                       _number(table, CONTEXT_SCALE_MIN), _number(table, CONTEXT_SCALE_MAX), 1.0, 1.0)
    min_keep = int(round(_number(table, MIN_KEEP)))
    tries = 2 * PATIENCE * (count + 1)
    for t in range(count):
        _place(seed, epoch, sample_id, stream, 2 + t * tries, target_h, target_w, min_keep, targets, False, targets[t])
    _place(seed, epoch, sample_id, stream, 2 + count * tries, context_h, context_w, min_keep, targets, True, context)


@kernel
def draw_masks(mask, targets, table, sample_id):
    """The kernel of the family: `mask` [H, W] (multiblock: the context), `targets` [T, H, W]."""
    seed, epoch, sample = table[0, 0], table[0, 1], sample_id[0]
    stream = int(round(table[1, 1] / FIXED))
    mode = int(round(_number(table, MODE)))
    mask[:] = 0
    targets[:] = 0
    if mode == 0:
        random_mask(seed, epoch, sample, stream, _number(table, RATIO), mask)
    elif mode == 1:
        patches = mask.shape[0] * mask.shape[1]
        block_mask(seed, epoch, sample, stream, int(round(_number(table, RATIO) * patches)),
                   int(round(_number(table, MIN_BLOCK))), int(round(_number(table, MAX_BLOCK))),
                   _number(table, LOG_ASPECT_MIN), _number(table, LOG_ASPECT_MAX), mask)
    else:
        multiblock_masks(seed, epoch, sample, stream, table, mask, targets)


@dataclass(frozen=True)
class PatchMasks:
    name: str = "masks"  # output key
    mode: str = "random"  # "random" (MAE), "block" (BEiT, iBOT), "multiblock" (I-JEPA)
    grid: tuple[int, int] = (14, 14)  # patches: rows, columns (224 px, patch 16)
    ratio: float = 0.75  # random, block: fraction masked (MAE 0.75; BEiT 75 of 196 patches)
    min_block: int = 16  # block: fewest patches a block (BEiT 16)
    max_block: int = 0  # block: most patches a block (0: no bound, BEiT's None)
    block_aspect: float = 0.3  # block: aspect log-uniform in [a, 1 / a] (BEiT 0.3)
    targets: int = 4  # multiblock: target blocks (I-JEPA npred 4)
    target_scale: tuple[float, float] = (0.15, 0.2)  # multiblock: of the grid (I-JEPA pred_mask_scale)
    context_scale: tuple[float, float] = (0.85, 1.0)  # multiblock: of the grid (I-JEPA enc_mask_scale)
    target_aspect: tuple[float, float] = (0.75, 1.5)  # multiblock: h / w (I-JEPA aspect_ratio)
    min_keep: int = 10  # multiblock: a block keeps more patches than this (I-JEPA min_keep)

    kind = "patch_masks"  # its name in YAML
    regions = 0

    def __post_init__(self):
        where = f"patch_masks {self.name!r}"
        if not self.name.isidentifier():
            raise ValueError(f"{where}: the name must be an identifier (it becomes an output key)")
        if self.mode not in MODES:
            raise ValueError(f"{where}: mode {self.mode!r} is not one of {MODES}")
        if len(self.grid) != 2 or min(self.grid) < 2:
            raise ValueError(f"{where}: grid {self.grid} must be (rows, columns), each >= 2")
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"{where}: ratio {self.ratio} must lie in (0, 1)")
        if self.min_block < 1 or (self.max_block and self.max_block < self.min_block):
            raise ValueError(f"{where}: min_block {self.min_block} >= 1 and max_block {self.max_block} (0: none) "
                             ">= min_block required")
        if not 0.0 < self.block_aspect <= 1.0:
            raise ValueError(f"{where}: block_aspect {self.block_aspect} must lie in (0, 1]")
        for name in ("target_scale", "context_scale", "target_aspect"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high or (name != "target_aspect" and high > 1.0):
                raise ValueError(f"{where}: {name} {getattr(self, name)} must be (min, max) with 0 < min <= max"
                                 + ("" if name == "target_aspect" else " <= 1"))
        if self.targets < 1 or self.min_keep < 0:
            raise ValueError(f"{where}: targets {self.targets} >= 1 and min_keep {self.min_keep} >= 0 required")

    @property
    def key(self) -> str:
        return self.name

    def check(self, recipe) -> None:
        pass

    def _draws(self) -> int:
        """How many draws a sample may take: they span as many streams as they need."""
        patches = self.grid[0] * self.grid[1]
        if self.mode == "random":
            return patches
        if self.mode == "block":
            return 4 * TRIES * (patches + 1)
        return 2 + (self.targets + 1) * 2 * PATIENCE * (self.targets + 1)

    def plan(self, recipe, stream: int, keep):
        from viewkit.views.families import Planned

        return Planned((), (), math.ceil(self._draws() / 4096))

    def _row(self, stream: int) -> tuple[float, ...]:
        names = globals()
        return row(0, stream, names, mode=MODES.index(self.mode), grid_h=self.grid[0], grid_w=self.grid[1],
                   ratio=self.ratio, min_block=self.min_block,
                   max_block=self.max_block or self.grid[0] * self.grid[1],
                   log_aspect_min=math.log(self.block_aspect), log_aspect_max=-math.log(self.block_aspect),
                   targets=self.targets, target_scale_min=self.target_scale, context_scale_min=self.context_scale,
                   target_aspect_min=self.target_aspect, min_keep=self.min_keep)

    def draw(self, planned, context):
        from viewkit.views import operators
        from viewkit.views.entry_points import Kernel

        count = self.targets if self.mode == "multiblock" else 1
        declared = Kernel("viewkit.views.families.patch_masks:draw_masks",
                          (("uint8", self.grid), ("uint8", (count, *self.grid))), (operators.SPEC, operators.SAMPLE_ID))
        table = operators.constant(spec([self._row(planned.stream)], context.seed, context.epoch))
        return tuple(operators.call_kernel(declared, table, context.sample_id))

    def build(self, planned, drawn, outputs, context) -> dict:
        mask, targets = drawn
        if self.mode == "multiblock":
            return {f"{self.name}_context": mask, f"{self.name}_targets": targets}
        return {self.name: mask}

    def arrange(self, rows, batch, dtype) -> dict:
        if self.mode == "multiblock":
            return {f"{self.name}_context": batch[f"{self.name}_context"].to(torch.bool),
                    f"{self.name}_targets": batch[f"{self.name}_targets"].to(torch.bool)}
        return {self.name: batch[self.name].to(torch.bool)}

    def sizes(self, recipe) -> list[int]:
        return []  # no image work

    baseline = None  # `viewkit bench` has no torchvision baseline for it: run it with --baseline none

    def sketch(self, batch, row, sheet, colour) -> None:
        if self.mode == "multiblock":
            sheet.mask(grey=batch[f"{self.name}_context"][row], black=batch[f"{self.name}_targets"][row].any(dim=0))
        else:
            sheet.mask(black=batch[self.name][row])

    def legend(self, colour) -> list:
        what = "context grey, targets black" if self.mode == "multiblock" else "masked black"
        return [(f"{self.name}: {self.mode} patch masks, {self.grid[0]} x {self.grid[1]} ({what}; a tile)", colour)]
