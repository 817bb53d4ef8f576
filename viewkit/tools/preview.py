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


def swap_box_in_source(batch: dict, row: int, family: str, size: int) -> list[float]:
    """The swap box (pixels of view 0) mapped back through view 0's crop window and flip."""
    x0, y0, x1, y1 = batch[f"{family}_boxes"][0, row].tolist()
    bx0, by0, bx1, by1 = batch["swap_box"].tolist()
    if batch[f"{family}_flips"][0, row]:
        bx0, bx1 = size - bx1, size - bx0
    sx, sy = (x1 - x0) / size, (y1 - y0) / size
    return [x0 + bx0 * sx, y0 + by0 * sy, x0 + bx1 * sx, y0 + by1 * sy]


def sample_row(batch: dict, row: int, source: Image.Image, recipe) -> Image.Image:
    scale = (2 * _TILE) / source.height
    canvas_source = source.resize((max(1, round(source.width * scale)), 2 * _TILE))
    draw = ImageDraw.Draw(canvas_source)

    def rectangle(box, colour, width=2):
        draw.rectangle([v * scale for v in box], outline=colour, width=width)

    tiles = []
    for index, family in enumerate(recipe.crops):
        for v in range(family.count):
            rectangle(batch[f"{family.name}_boxes"][v, row].tolist(), _COLOURS[index % len(_COLOURS)])
            tiles.append(to_image(batch[family.name][v, row]))
    if recipe.original is not None:
        tiles.append(to_image(batch["original"][row]))
    if recipe.saliency is not None:
        for j in range(recipe.saliency.pairs):
            for crop in range(2):
                rectangle(batch["saliency_boxes"][j, crop, row].tolist(), _COLOURS[-1], 1)
                tiles.append(to_image(batch["saliency"][j, crop, row]))
        for j in range(recipe.saliency.pairs):  # after the crops: the regions they jitter around stay visible
            rectangle(batch["saliency_regions"][row, j].tolist(), (255, 255, 255), 3)
    if recipe.swap is not None:
        family = next(c for c in recipe.crops if c.name == recipe.swap.source)
        rectangle(swap_box_in_source(batch, row, family.name, family.size), (255, 0, 0), 3)
        composite = to_image(batch["swap"][row])
        factor = _TILE / family.size
        ImageDraw.Draw(composite).rectangle([v * factor for v in batch["swap_box"].tolist()], outline=(255, 0, 0), width=2)
        tiles.append(composite)
    per_line = max(1, -(-len(tiles) // 2))
    width = canvas_source.width + per_line * _TILE
    line = Image.new("RGB", (width, 2 * _TILE), (32, 32, 32))
    line.paste(canvas_source, (0, 0))
    for k, tile in enumerate(tiles):
        line.paste(tile, (canvas_source.width + (k % per_line) * _TILE, (k // per_line) * _TILE))
    return line


def legend_entries(recipe) -> list[tuple[str, tuple[int, int, int]]]:
    """What each colour of the windows means, in the order sample_row draws them."""
    entries = [(f"{family.name}: {family.count} x {family.size} px, scale {family.scale[0]:g}-{family.scale[1]:g}",
                _COLOURS[index % len(_COLOURS)]) for index, family in enumerate(recipe.crops)]
    if recipe.original is not None:
        entries.append((f"original: whole image at {recipe.original.size} px (last tile)", (200, 200, 200)))
    if recipe.saliency is not None:
        entries += [("saliency regions", (255, 255, 255)),
                    (f"saliency crops: {recipe.saliency.pairs} pairs x {recipe.saliency.size} px", _COLOURS[-1])]
    if recipe.swap is not None:
        entries.append(("swap box (pasted region of sample B-1-i)", (255, 0, 0)))
    return entries


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
    if saliency and recipe.saliency is None:
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

    if recipes.get(args.recipe).saliency is not None and not args.saliency:
        print("without a saliency store its saliency crops are the fallback, random crops: pass --saliency "
              "STORE (`viewkit saliency`) to see crops jittered around a store's regions")
    return 0
