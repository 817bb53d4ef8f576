"""Views are a pure function of (seed, epoch, sample id, view): the same sample gets the same
views whatever batch it lands in and however many ranks read; the graph's CPU side is a
handful of operators; the colour matrix is DALI's colour twist."""

import numpy as np
import pytest
import torch
from nvidia.dali import fn, pipeline_def, types

from viewkit import ViewLoader, recipes
from viewkit.views import draws
from viewkit.views.operations import colour
from viewkit.views.operations.solarize import Solarize
from viewkit.views.plan import make_plan


def outputs_by_id(shards, recipe, world: int, batch_size: int, keys, epoch: int = 0, seed: int = 3) -> dict:
    """Sample id -> {key: its slice of the batch output `key`} over every rank of a world;
    `keys` maps an output name to the axis that holds its samples."""
    found = {}
    for rank in range(world):
        loader = ViewLoader(shards, recipe, batch_size, device="cpu", threads=1, rank=rank, world_size=world,
                            drop_last=False, seed=seed)
        loader.set_epoch(epoch)
        for batch in loader:
            for i in torch.nonzero(batch["valid"]).flatten().tolist():
                found[int(batch["id"][i])] = {key: batch[key].select(axis, i).clone() for key, axis in keys.items()}
    return found


def views_by_id(shards, world: int, batch_size: int, epoch: int = 0) -> dict:
    recipe = recipes.get("logo", global_size=32, local_size=16)
    keys = dict.fromkeys(("global", "local", "global_boxes", "local_flips"), 1)
    return outputs_by_id(shards, recipe, world, batch_size, keys, epoch)


def test_a_sample_gets_the_same_views_under_one_and_two_ranks(embedded_shards):
    one, two = views_by_id(embedded_shards, 1, 7), views_by_id(embedded_shards, 2, 5)
    assert sorted(one) == sorted(two) == list(range(60))
    for sample_id, views in one.items():  # other batches, other batch sizes, other ranks: same pixels
        assert all(torch.equal(views[key], two[sample_id][key]) for key in views), sample_id
    next_epoch = views_by_id(embedded_shards, 1, 7, epoch=1)
    changed = [i for i in one if not torch.equal(one[i]["global_boxes"], next_epoch[i]["global_boxes"])]
    assert len(changed) == 60  # a new epoch draws anew


def test_draws_are_uniform_and_keyed_by_every_coordinate():
    values = np.array([draws.uniform(7, 1, i, 3, 5) for i in range(20000)])
    assert abs(values.mean() - 0.5) < 0.01 and abs(values.var() - 1 / 12) < 0.003
    assert np.histogram(values, bins=10, range=(0, 1))[0].min() > 1800
    base = draws.uniform(7, 1, 11, 3, 5)
    for changed in ((8, 1, 11, 3, 5), (7, 2, 11, 3, 5), (7, 1, 12, 3, 5), (7, 1, 11, 4, 5), (7, 1, 11, 3, 6)):
        assert draws.uniform(*changed) != base
    assert draws.uniform(7, 1, 11, 3, 5) == base  # a pure function


def test_colour_matrix_is_dalis_colour_twist():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cases = []
    for sample_id in range(6):
        matrix = np.zeros((3, 4))
        colour.colour_matrix(1, 0, sample_id, 2, 1.0, 0.4, 0.4, 0.4, 0.1, 0.0, matrix)
        b, c, s, h = (1.0 + spread * (2.0 * draws.uniform(1, 0, sample_id, 2, slot) - 1.0)
                      for spread, slot in ((0.4, colour.BRIGHTNESS), (0.4, colour.CONTRAST), (0.4, colour.SATURATION),
                                           (0.1, colour.HUE)))
        cases.append((matrix.astype(np.float32), b, c, s, (h - 1.0) * 360.0))

    def column(k):  # a source without parameters: DALI would pass one the iteration number
        return lambda: [np.float32(case[k]) for case in cases]

    @pipeline_def(batch_size=len(cases), num_threads=1, device_id=None)
    def pipeline():
        x = fn.external_source(source=lambda: [image] * len(cases), batch=True, layout="HWC")
        matrix = fn.external_source(source=lambda: [m for m, *_ in cases], batch=True)
        factors = [fn.external_source(source=column(k), batch=True) for k in range(1, 5)]
        twisted = fn.color_twist(x, brightness=factors[0], contrast=factors[1], saturation=factors[2],
                                 hue=factors[3])
        return fn.coord_transform(x, MT=matrix, dtype=types.UINT8), twisted

    pipe = pipeline()
    pipe.build()
    mine, dali = (np.asarray(out.as_tensor()).astype(int) for out in pipe.run())
    assert np.abs(mine - dali).max() <= 1  # rounding of the last grey level
    identity = np.zeros((3, 4))
    colour.colour_matrix(1, 0, 0, 2, 0.0, 0.4, 0.4, 0.4, 0.1, 0.0, identity)  # jitter not drawn
    np.testing.assert_allclose(identity, np.hstack([np.eye(3), np.zeros((3, 1))]), atol=1e-12)


@pytest.mark.parametrize("name", ["heavy_multicrop", "logo", "dino_multicrop", "sgcl", "regioncl"])
def test_the_gpu_graph_has_few_cpu_operators(embedded_shards, name):
    from viewkit.loaders.dataset import open_dataset
    from viewkit.loaders.pipeline import PipelineOptions, build_pipeline
    from viewkit.loaders.side_data import RegionTable
    from viewkit.tools.bench_graph import operators

    recipe = recipes.get(name)
    shards = open_dataset(embedded_shards)
    side = RegionTable.empty(shards.num_samples, recipe.saliency.max_regions) if recipe.saliency else None
    pipe, _ = build_pipeline(shards, list(range(len(shards.tars))), recipe, batch_size=256, rank=0, world=1,
                             device="gpu", device_id=0, seed=0, threads=4, options=PipelineOptions(), view_key=(0, 0),
                             side_data=side, build=False)
    devices = [device for device, _ in operators(pipe)]
    views = sum(c.count for c in recipe.crops) + bool(recipe.original) + 2 * (recipe.saliency.pairs if recipe.saliency else 0)
    assert devices.count("mixed") == 1  # one decode, every view cut from it
    assert devices.count("cpu") <= 16, devices.count("cpu")
    families = make_plan(recipe).frames
    solarizing = sum(Solarize in family.applied for family in families)
    # a resize per view; per family a stack, colour, blur and normalise; 3 to solarise; 3 to swap
    assert devices.count("gpu") <= views + 4 * len(families) + 3 * solarizing + 3 * bool(recipe.swap)
