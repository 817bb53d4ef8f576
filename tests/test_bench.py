"""`viewkit bench` end to end on the embedded default with tiny settings (no timing asserted)."""

import json
from dataclasses import replace

import pytest

from viewkit.tools import bench
from viewkit.tools.bench_baseline import RecipeTransform, tars_for_workers, views_per_sample
from viewkit.tools.cli import main
from viewkit.views import recipes


def test_bench_runs_and_writes_every_field(embedded_shards, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(embedded_shards), "--recipe", "regioncl", "--batches", "2", "--batch-size", "4",
                 "--warmup", "1", "--rounds", "2", "--workers", "1", "--hw-decoder-load", "0.9", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["hw_decoder_load"] == 0.9  # reaches the loader (the CPU decoder ignores it)
    assert set(result["summary"]) == {"viewkit", "baseline", "ratio_samples_per_s"}
    for side in ("viewkit", "baseline"):
        assert set(result["summary"][side]) == set(bench.FIELDS)
        assert len(result["runs"][side]) == 2
        assert result["summary"][side]["samples_per_s"] > 0 and result["summary"][side]["peak_host_memory_mb"] > 0
    assert result["views_per_sample"] == 3 and set(result["machine"]) >= {"cpu", "cores", "gpu"}
    assert "ratio viewkit / baseline" in capsys.readouterr().out


def test_every_baseline_worker_gets_tars():
    # webdataset's split_by_worker hands worker w the tars [w::workers]; an empty share idles a core
    for tars in (["a"], ["a", "b"], ["a", "b", "c"]):
        for workers in (0, 1, 2, 3, 4):
            listed = tars_for_workers(tars, workers)
            assert set(listed) == set(tars)
            assert all(listed[w :: max(workers, 1)] for w in range(max(workers, 1)))


def test_baseline_makes_views_of_the_recipes_shapes():
    from PIL import Image

    image = Image.new("RGB", (300, 200), (120, 60, 30))
    for name in ("logo", "leoclr", "sgcl", "heavy_multicrop"):
        recipe = recipes.get(name)
        views = RecipeTransform(recipe)(image)
        for family in recipe.crops:
            assert tuple(views[family.name].shape) == (family.count, 3, family.size, family.size)
        if recipe.original:
            assert tuple(views["original"].shape) == (3, 224, 224)
        if recipe.saliency:
            assert tuple(views["saliency"].shape) == (8, 3, 96, 96)
    assert views_per_sample(recipes.get("heavy_multicrop")) == (9, 3 * 224**2 + 6 * 96**2)


def test_baseline_swaps_a_grid_box_of_the_reversed_batch_and_refuses_what_it_cannot_do():
    import torch
    from PIL import Image

    from viewkit.views.families import PatchMasks

    recipe = recipes.get("regioncl")
    transform = RecipeTransform(recipe)
    images = [Image.new("RGB", (300, 200), (40 * i, 60, 30)) for i in range(4)]
    batch = transform.collate([transform(image) for image in images])
    views, swap = batch["global"][:, 0], batch["swap"]
    changed = (swap != views).any(dim=1)  # [B, S, S]
    ys, xs = torch.nonzero(changed[0], as_tuple=True)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    assert y0 % 32 == 0 and x0 % 32 == 0 and (y1 - y0) // 32 in (3, 4, 5) and (x1 - x0) // 32 in (3, 4, 5)
    for i in range(4):
        assert torch.equal(swap[i, :, y0:y1, x0:x1], views[3 - i, :, y0:y1, x0:x1])
    assert views_per_sample(recipe) == (3, 3 * 224**2)
    with pytest.raises(ValueError, match="no torchvision baseline for family 'masks'"):
        RecipeTransform(replace(recipe, families=(PatchMasks(),)))


def test_bench_train_reports_the_data_stall(embedded_shards, tmp_path):
    out = tmp_path / "train.json"
    assert main(["bench", str(embedded_shards), "--train", "simsiam", "--arch", "resnet18", "--batch-size", "20",
                 "--batches", "2", "--workers", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for side in ("real_data", "in_memory"):
        assert 0.0 <= result[side]["data_wait"] <= 1.0 and result[side]["samples_per_s"] > 0
    assert result["stall"] == result["real_data"]["data_wait"] and result["ratio_to_ceiling"] > 0
    assert result["warmup_steps"] == 2  # the default warm-up, kept out of the timed window


def test_bench_saliency_reports_images_per_second(embedded_shards, tmp_path):
    out = tmp_path / "saliency.json"
    assert main(["bench", str(embedded_shards), "--saliency", "--arch", "resnet18", "--resolution", "96",
                 "--batch-size", "30", "--workers", "1", "--device", "cpu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 60 and result["images_per_s"] > 0 and result["sequential"]["images_per_s"] > 0
    assert result["mean_regions"] > 0 and result["overlap_speedup"] > 0
