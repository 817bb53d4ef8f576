"""docs/views.md's output-contract table is what the loader hands out: every key of every
preset's batch (and of the patch-mask family's modes) has a row, with its shape and dtype,
and every row is some recipe's key."""

import re
from dataclasses import replace
from pathlib import Path

from viewkit import ViewLoader, recipes
from viewkit.loaders import RegionTable
from viewkit.views.families import PatchMasks

from test_view_hashes import small

TABLE = Path(__file__).resolve().parents[1] / "docs" / "views.md"


def contract() -> dict[str, tuple[list[str], str]]:
    """key (`<family>` patterns kept as written) -> (shape symbols, dtype)."""
    text = TABLE.read_text().split("## Output contract", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        shape = [s.strip() for s in cells[1].strip("[]").split(",")]
        for key in re.findall(r"`([^`]+)`", cells[0].split("(")[0]):
            rows[key] = (shape, cells[2])
    return rows


def expected_size(symbol: str, key: str, recipe, batch_size: int) -> int:
    masks = next((f for f in recipe.families if key == f.name or key.startswith(f.name + "_")), None)
    if symbol in ("H", "W", "T"):
        return {"H": masks.grid[0], "W": masks.grid[1], "T": masks.targets}[symbol]
    family = next((c for c in recipe.crops if key.split("_")[0] == c.name or key.startswith(c.name + "_")
                   or key == c.name), None)
    if symbol.isdigit():
        return int(symbol)
    if symbol == "B":
        return batch_size
    if symbol == "t":
        return recipe.saliency.pairs
    if symbol == "V":
        return family.count
    if symbol == "S":
        if key.startswith("original"):
            return recipe.original.size
        if key.startswith("saliency"):
            return recipe.saliency.size
        if key.startswith("swap"):
            return next(c for c in recipe.crops if c.name == recipe.swap.source).size
        return family.size
    raise AssertionError(f"symbol {symbol} of {key}")


def test_the_table_is_the_outputs_of_every_preset(embedded_shards):
    rows, used = contract(), set()
    assert rows, f"no output-contract table in {TABLE}"
    masked = [replace(small("moco_v2"), name=f"moco_v2+{mode}", families=(PatchMasks(mode=mode, grid=(6, 5)),))
              for mode in ("random", "block", "multiblock")]
    for recipe in [small(name) for name in sorted(recipes.PRESETS)] + masked:
        name = recipe.name
        loader = ViewLoader(embedded_shards, recipe, 5, device="cpu", drop_last=False, threads=1, build_ahead=False)
        if recipe.saliency is not None:
            loader.set_side_data(RegionTable.empty(loader.shards.num_samples, recipe.saliency.max_regions))
        batch = next(iter(loader))
        families = {c.name: "<family>" for c in recipe.crops} | {f.name: "<masks>" for f in recipe.families}
        for key, tensor in batch.items():
            family = next((f for f in sorted(families, key=len, reverse=True) if key == f or key.startswith(f + "_")),
                          None)
            row_key = key if key in rows else (families[family] + key[len(family):] if family else key)
            assert row_key in rows, f"{name}: output {key!r} has no row in {TABLE.name}'s output contract"
            used.add(row_key)
            shape, dtype = rows[row_key]
            wanted = recipe.dtype if dtype == "recipe dtype" else dtype
            assert str(tensor.dtype).removeprefix("torch.") == wanted, (name, key, tensor.dtype, dtype)
            assert list(tensor.shape) == [expected_size(s, key, recipe, 5) for s in shape], (name, key, shape)
    assert used == set(rows), f"rows no preset outputs: {sorted(set(rows) - used)}"
