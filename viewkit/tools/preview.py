"""Contact sheet of a recipe's views: per sample, the source with every window drawn, then every view.

    viewkit preview SHARDS --recipe logo [--n 8] [--out views.png] [--no-augment] [--seed 0]
    viewkit preview SHARDS --recipe sgcl --saliency STORE     # crops jittered around the store's regions

Crop windows are drawn in their family's colour, saliency regions in white, the swap box
(mapped from view 0 back to the source) in red. Views are de-normalised and shown at a
common height; the swap composite has its box outlined.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from viewkit.shards import format as fmt
from viewkit.views import families
from viewkit.views.augment import IMAGENET_MEAN, IMAGENET_STD
from viewkit.writes import writing
from viewkit.tools.argtypes import recipe_help

_COLOURS = [(255, 200, 0), (0, 200, 255), (120, 255, 80), (255, 100, 255), (255, 150, 80)]
_TILE = 112  # px: height of every view on the sheet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", help="dataset folder (holding dataset.json)")
    parser.add_argument("--recipe", default="logo", help=recipe_help())
    parser.add_argument("--n", type=int, default=8, help="samples to show (default 8)")
    parser.add_argument("--out", default="views.png", help="PNG to write (default views.png)")
    parser.add_argument("--no-augment", action="store_true", help="geometry only: crops and flips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--saliency", metavar="STORE",
                        help="saliency store (`viewkit saliency`) for a recipe with saliency crops; without it "
                             "they fall back to random crops")


def source_images(shards, ids: list[int]) -> dict[int, Image.Image]:
    """The stored images of these sample ids, found through the shards' indices (the tars
    that hold them fetched first, for a dataset in object storage)."""
    wanted = {fmt.sample_key(i): i for i in ids}
    places = []
    for shard in shards.manifest["shards"]:
        for sample in fmt.parse_index(shards.root / shard["index"]):
            ext, offset, size, name = sample[0]
            if name.split(".", 1)[0] in wanted and ext == fmt.IMAGE:
                places.append((str(shards.root / shard["tar"]), offset, size, wanted[name.split(".", 1)[0]]))
    found = {}
    with shards.holding(sorted({tar for tar, *_ in places})):
        for tar, offset, size, sample_id in places:
            with open(tar, "rb") as f:
                f.seek(offset)
                found[sample_id] = Image.open(io.BytesIO(f.read(size))).convert("RGB")
    return found


def to_image(view) -> Image.Image:
    """[3, S, S] normalised tensor -> PIL image."""
    pixels = view.float().permute(1, 2, 0).cpu().numpy() * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image.resize((_TILE, _TILE), Image.Resampling.BILINEAR)


class Sheet:
    """What a family draws of one sample (`sketch`): windows on the source, tiles after it."""

    def __init__(self, source: Image.Image):
        self.scale = (2 * _TILE) / source.height
        self.source = source.resize((max(1, round(source.width * self.scale)), 2 * _TILE))
        self._draw = ImageDraw.Draw(self.source)
        self.tiles: list[Image.Image] = []

    def rectangle(self, box, colour, width: int = 2) -> None:
        """A window in source pixels, x0, y0, x1, y1."""
        self._draw.rectangle([v * self.scale for v in box], outline=colour, width=width)

    def tile(self, view, box=None) -> None:
        """A normalised [3, S, S] view; `box` (fractions of its side) outlined in red."""
        image = to_image(view)
        if box is not None:
            ImageDraw.Draw(image).rectangle([v * _TILE for v in box], outline=(255, 0, 0), width=2)
        self.tiles.append(image)

    def mask(self, grey=None, black=None) -> None:
        """Patch masks [H, W] bool as a tile: `grey` patches grey, `black` black, others white."""
        shape = (grey if grey is not None else black).shape
        pixels = np.full((*shape, 3), 255, np.uint8)
        for patches, level in ((grey, 128), (black, 0)):
            if patches is not None:
                pixels[patches.cpu().numpy()] = level
        self.tiles.append(Image.fromarray(pixels).resize((_TILE, _TILE), Image.Resampling.NEAREST))


def sample_row(batch: dict, row: int, source: Image.Image, recipe) -> Image.Image:
    sheet = Sheet(source)
    for index, family in enumerate(families.of(recipe)):
        family.sketch(batch, row, sheet, _COLOURS[index % len(_COLOURS)])
    per_line = max(1, -(-len(sheet.tiles) // 2))
    width = sheet.source.width + per_line * _TILE
    line = Image.new("RGB", (width, 2 * _TILE), (32, 32, 32))
    line.paste(sheet.source, (0, 0))
    for k, tile in enumerate(sheet.tiles):
        line.paste(tile, (sheet.source.width + (k % per_line) * _TILE, (k // per_line) * _TILE))
    return line


def legend_entries(recipe) -> list[tuple[str, tuple[int, int, int]]]:
    """What each colour of the windows means, in the order sample_row draws them."""
    return [entry for index, family in enumerate(families.of(recipe))
            for entry in family.legend(_COLOURS[index % len(_COLOURS)])]


def legend(recipe) -> Image.Image:
    """A strip above the sheet: each window colour and what it marks; tiles follow in that order."""
    entries = legend_entries(recipe)
    strip = Image.new("RGB", (max(420, 12 + 7 * max(len(text) for text, _ in entries)), 16 * len(entries) + 8),
                      (16, 16, 16))
    draw = ImageDraw.Draw(strip)
    for k, (text, colour) in enumerate(entries):
        draw.rectangle([6, 6 + 16 * k, 18, 16 + 16 * k], outline=colour, width=2)
        draw.text((26, 5 + 16 * k), text, fill=colour)
    return strip


def contact_sheet(shards: str, recipe_name: str, n: int, augment: bool, seed: int,
                  saliency: str | None = None) -> Image.Image:
    from viewkit import ViewLoader, recipes
    from viewkit.saliency import SaliencyStore

    recipe = recipes.get(recipe_name)
    if saliency and not recipe.regions:
        raise ValueError(f"--saliency: recipe {recipe_name!r} has no saliency crops (sgcl has)")
    side_data = SaliencyStore(saliency).table() if saliency else None
    loader = ViewLoader(shards, recipe, batch_size=n, device="cpu", seed=seed, drop_last=False, augment=augment,
                        rank=0, world_size=1, build_ahead=False, side_data=side_data)  # one batch: no next epoch
    batch = next(iter(loader))
    ids = batch["id"].tolist()
    sources = source_images(loader.shards, ids)
    rows = [legend(recipe)] + [sample_row(batch, row, sources[i], recipe) for row, i in enumerate(ids)]
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 4 for r in rows)), (0, 0, 0))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 4
    return sheet


def run(args: argparse.Namespace) -> int:
    sheet = contact_sheet(args.shards, args.recipe, args.n, not args.no_augment, args.seed, args.saliency)
    try:
        with writing(args.out):
            sheet.save(args.out)
    except OSError:
        Path(args.out).unlink(missing_ok=True)  # a cut PNG is no sheet
        raise
    print(f"{args.out}: {args.n} samples of recipe {args.recipe!r}, {sheet.width}x{sheet.height} px")
    from viewkit.views import recipes

    if recipes.get(args.recipe).regions and not args.saliency:
        print("without a saliency store its saliency crops are the fallback, random crops: pass --saliency "
              "STORE (`viewkit saliency`) to see crops jittered around a store's regions")
    return 0
