"""Every preset's outputs, bit for bit, against hashes recorded before the views are rebuilt.

A refactor of how views are declared and compiled (views open for extension) must leave
what they are unchanged: every output tensor of every preset, at fixed seeds, over several
batches of two epochs on two ranks, hashes as recorded in tests/data/view-hashes.json.
Sizes are shrunk (the same code paths, CPU-cheap); saliency gets a fixed region table.

    python tests/test_view_hashes.py --record    # after a deliberate change of what views are,
                                                 # or an upgrade of DALI or numba that moves pixels
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from viewkit import ViewLoader, recipes
from viewkit.loaders import RegionTable

RECORD = Path(__file__).with_name("data") / "view-hashes.json"
BATCHES = 2  # per epoch and rank


def small(name: str):
    """The preset at CPU-cheap sizes: crops of 32 px (16 for those under 150 px), regions of 32."""
    recipe = recipes.PRESETS[name]
    overrides = {f"{crop.name}_size": 16 if crop.size < 150 else 32 for crop in recipe.crops}
    if recipe.original is not None:
        overrides["original_size"] = 32
    if recipe.saliency is not None:
        overrides["saliency_size"] = 32
    if recipe.swap is not None:  # a 3 x 3 grid of 32 px cells, boxes of 1 or 2
        overrides |= {f"{recipe.swap.source}_size": 96, "swap_cells": [1, 2]}
    return recipes.get(name, **overrides)


def regions(num_samples: int, max_regions: int) -> RegionTable:
    generator = np.random.default_rng(0)
    corner = generator.uniform(0, 40, (num_samples, max_regions, 2))
    boxes = np.concatenate([corner, corner + generator.uniform(8, 40, (num_samples, max_regions, 2))], axis=2)
    scores = generator.uniform(0.1, 1, (num_samples, max_regions))
    scores[:, max_regions // 2:] = 0  # some rows of each sample empty
    return RegionTable(boxes, scores)


def output_hashes(shards) -> dict:
    hashes = {}
    for name in sorted(recipes.PRESETS):
        recipe = small(name)
        for rank in range(2):
            side = None
            loader = ViewLoader(shards, recipe, 6, device="cpu", seed=11, drop_last=False, rank=rank, world_size=2,
                                threads=1, build_ahead=False)
            if recipe.saliency is not None:
                side = regions(loader.shards.num_samples, recipe.saliency.max_regions)
                loader.set_side_data(side)
            for epoch in range(2):
                loader.set_epoch(epoch)
                for index, batch in zip(range(BATCHES), loader):
                    for key in sorted(batch):
                        tensor = batch[key].contiguous()
                        digest = hashlib.sha256(tensor.view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
                        hashes[f"{name}/rank{rank}/epoch{epoch}/batch{index}/{key}"] = \
                            f"{digest[:24]} {str(tensor.dtype).removeprefix('torch.')} {list(tensor.shape)}"
    return hashes


def test_every_preset_gives_the_outputs_recorded(embedded_shards):
    assert RECORD.exists(), f"no {RECORD}: record it with `python {Path(__file__).name} --record`"
    recorded = json.loads(RECORD.read_text())
    now = output_hashes(embedded_shards)
    assert sorted(now) == sorted(recorded["hashes"]), "other outputs than recorded"
    changed = [key for key in recorded["hashes"] if now[key] != recorded["hashes"][key]]
    assert not changed, f"{len(changed)} outputs changed, first {changed[:5]}"


if __name__ == "__main__" and "--record" in sys.argv:
    import subprocess
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent.parent))
    # the embedded shards as the conftest fixtures make them
    from tests.conftest import make_embedded_shards, make_embedded_source

    with tempfile.TemporaryDirectory() as scratch:
        shards = make_embedded_shards(make_embedded_source(Path(scratch) / "source"), Path(scratch) / "shards")
        git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        RECORD.write_text(json.dumps({"git": git, "hashes": output_hashes(shards)}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}")
