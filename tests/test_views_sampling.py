"""Random draws of the views: saliency region selection, jitter geometry, fallback, and the
frequencies of flips, grayscale, solarisation and blur, per family.

Changes that must fail, each applied to a copy and the suite run:
- saliency crops never flipped
- the original view never flipped
- crops flipped at p 0.5 whatever their recipe says
"""

from dataclasses import replace

import numpy as np
import pytest
import yaml
from scipy import stats

from viewkit.views import recipes
from viewkit.views.augment import GEOMETRY_ONLY, IMAGENET_MEAN, IMAGENET_STD, Augment
from viewkit.views.families import Crops, Original, Recipe, SaliencyCrops
from viewkit.views.memory import views_of_images

REGIONS = np.array([[60, 50, 140, 130], [30, 120, 90, 170], [110, 20, 170, 70]], np.float32)
SCORES = np.array([1.0, 0.5, 0.25], np.float32)


def side_data(batch: int, k: int = 8, empty: set = frozenset()):
    regions, scores = [], []
    for i in range(batch):
        r, s = np.zeros((k, 4), np.float32), np.zeros(k, np.float32)
        if i not in empty:
            r[: len(REGIONS)], s[: len(SCORES)] = REGIONS, SCORES
        regions.append(r)
        scores.append(s)
    return regions, scores


def saliency_recipe(size: int = 16) -> Recipe:
    return Recipe("sal", saliency=SaliencyCrops(size=size, augments=(GEOMETRY_ONLY, GEOMETRY_ONLY)))


def test_regions_drawn_in_proportion_to_scores():
    batch = 40
    images = [np.full((200, 200, 3), 90, np.uint8)] * batch
    regions, scores = side_data(batch)
    picks = []
    for out in views_of_images(images, saliency_recipe(), regions=regions, region_scores=scores, batches=10, seed=1):
        drawn = out["saliency_regions"].reshape(-1, 4).numpy()
        index = [int(np.flatnonzero((REGIONS == row).all(1))[0]) for row in drawn]
        picks += index
        np.testing.assert_array_equal(out["saliency_scores"].reshape(-1).numpy(), SCORES[index])
    counts = np.bincount(picks, minlength=3)
    expected = SCORES.astype(np.float64) / SCORES.sum(dtype=np.float64) * len(picks)
    assert len(picks) == 1600
    assert stats.chisquare(counts, expected).pvalue > 1e-3, counts


def test_jittered_crops_sit_on_their_regions():
    batch = 40
    images = [np.full((200, 200, 3), 90, np.uint8)] * batch
    regions, scores = side_data(batch)
    spec = saliency_recipe().saliency
    inside = checked = 0
    for out in views_of_images(images, saliency_recipe(), regions=regions, region_scores=scores, batches=5, seed=2):
        t, _, b, _ = out["saliency_boxes"].shape
        for j in range(t):
            for i in range(b):
                rx0, ry0, rx1, ry1 = out["saliency_regions"][i, j].tolist()
                for crop in range(2):
                    x0, y0, x1, y1 = out["saliency_boxes"][j, crop, i].tolist()
                    if min(x0, y0) <= 0 or x1 >= 200 or y1 >= 200:
                        continue  # clamped by the image border: centre and area shift
                    checked += 1
                    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                    inside += rx0 <= cx <= rx1 and ry0 <= cy <= ry1
                    area = (x1 - x0) * (y1 - y0) / ((rx1 - rx0) * (ry1 - ry0))
                    assert spec.scale[0] * 0.99 <= area <= spec.scale[1] * 1.01
                    assert spec.ratio[0] * 0.99 <= (x1 - x0) / (y1 - y0) <= spec.ratio[1] * 1.01
    assert checked > 800 and inside == checked


def test_samples_without_regions_fall_back_to_random_crops():
    batch = 30
    images = [np.full((150, 200, 3), 90, np.uint8)] * batch
    regions, scores = side_data(batch, empty=set(range(0, batch, 2)))
    out = views_of_images(images, saliency_recipe(), regions=regions, region_scores=scores, batches=1, seed=3)[0]
    for i in range(0, batch, 2):
        assert (out["saliency_scores"][i] == 1.0).all()
        assert (out["saliency_regions"][i] == np.array([0, 0, 200, 150], np.float32)).all()
        boxes = out["saliency_boxes"][:, :, i].reshape(-1, 4)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (150 * 200)
        assert ((area >= 0.08 * 0.95) & (area <= 1.0)).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 200).all() and (boxes[:, 3] <= 150).all()
    assert set(out["saliency_scores"][1].tolist()) <= set(SCORES.tolist())


def pixels(views) -> np.ndarray:
    """[..., 3, S, S] normalised -> [..., S, S, 3] 0..255."""
    array = views.float().movedim(-3, -1).numpy()
    return array * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)


def colourful(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.broadcast_to(rng.integers(40, 215, 3).astype(np.uint8), (48, 64, 3)).copy() for _ in range(count)]


def fraction(flags) -> float:
    return float(np.mean(flags))


def within(observed: float, p: float, n: int) -> bool:
    return abs(observed - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9


def test_flip_and_grayscale_frequencies():
    recipe = recipes.get("moco_v2", global_size=16)  # grayscale p 0.2, flip p 0.5
    images = colourful(100)
    flips, grays = [], []
    for out in views_of_images(images, recipe, batches=6, seed=4):
        flips += out["global_flips"].reshape(-1).tolist()
        view = pixels(out["global"]).reshape(-1, 16 * 16, 3)
        grays += (np.abs(view - view.mean(-1, keepdims=True)).max((1, 2)) < 1.5).tolist()
    assert len(flips) == 1200
    assert within(fraction(flips), 0.5, len(flips)), fraction(flips)
    assert within(fraction(grays), 0.2, len(grays)), fraction(grays)


@pytest.mark.parametrize("probability", [0.0, 0.2])
def test_solarize_frequency(probability):
    augment = replace(GEOMETRY_ONLY, solarize_p=probability)
    recipe = Recipe("s", crops=(Crops("global", 2, 16, (0.5, 1.0), augments=(augment,)),))
    images = [np.full((40, 40, 3), 200, np.uint8)] * 100  # bright: solarised pixels become 55
    solarized = []
    for out in views_of_images(images, recipe, batches=5, seed=5):
        view = pixels(out["global"]).reshape(-1, 16 * 16 * 3)
        assert np.all((np.abs(view - 200) < 1.5) | (np.abs(view - 55) < 1.5))
        solarized += (view.mean(1) < 128).tolist()
    assert within(fraction(solarized), probability, len(solarized)), fraction(solarized)


def test_byol_views_are_asymmetric_in_blur():
    view1, view2 = recipes.get("byol").crops[0].augments
    assert (view1.blur_p, view1.solarize_p, view2.blur_p, view2.solarize_p) == (1.0, 0.0, 0.1, 0.2)
    augment = replace(GEOMETRY_ONLY, blur_p=0.5, blur_sigma=(1.5, 2.0))
    recipe = Recipe("b", crops=(Crops("global", 2, 32, (0.99, 1.0), augments=(augment,)),))
    checker = (np.indices((32, 32)).sum(0) % 2 * 255).astype(np.uint8)
    images = [np.repeat(checker[..., None], 3, 2)] * 100
    blurred = []
    for out in views_of_images(images, recipe, batches=4, seed=6):
        blurred += (pixels(out["global"]).reshape(-1, 32 * 32 * 3).std(1) < 60).tolist()
    assert within(fraction(blurred), 0.5, len(blurred)), fraction(blurred)


def test_bad_specs_say_how_to_fix():
    with pytest.raises(ValueError, match="probability"):
        Augment(grayscale_p=1.5)
    with pytest.raises(ValueError, match="scale"):
        Crops("global", 2, 224, (0.5, 0.2))
    with pytest.raises(ValueError, match="unknown recipe 'mocov2' \\(did you mean 'moco_v2'\\?\\); presets"):
        recipes.get("mocov2")
    with pytest.raises(ValueError, match="unknown override 'global_sise'"):
        recipes.get("logo", global_sise=3)
    with pytest.raises(ValueError, match="swap.source"):
        replace(recipes.get("regioncl"), swap=replace(recipes.get("regioncl").swap, source="local"))


def test_augment_override_reaches_every_view_and_keeps_the_rest():
    byol = recipes.get("byol", augment_blur_sigma=[0.03, 0.6])
    assert [a.blur_sigma for a in byol.crops[0].augments] == [(0.03, 0.6), (0.03, 0.6)]
    assert [a.blur_p for a in byol.crops[0].augments] == [1.0, 0.1]  # BYOL's asymmetry stays
    assert [a.solarize_p for a in byol.crops[0].augments] == [0.0, 0.2]
    leoclr = recipes.get("leoclr", augment_grayscale_p=0.0)
    assert leoclr.original.augment.grayscale_p == 0.0 and all(a.grayscale_p == 0.0 for a in leoclr.crops[0].augments)
    sgcl = recipes.get("sgcl", augment_blur_p=0.0)
    assert all(a.blur_p == 0.0 for a in sgcl.saliency.augments)
    assert recipes.from_dict(yaml.safe_load(recipes.to_yaml(byol))) == byol
    with pytest.raises(ValueError, match="blur_sigma"):
        recipes.get("byol", augment_blur_sigma=[2.0, 1.0])


def test_overrides_reach_families_with_underscores_and_typos_get_a_suggestion(monkeypatch):
    monkeypatch.setitem(recipes.PRESETS, "two_names", Recipe("two_names", crops=(
        Crops("my", 2, 32, (0.2, 1.0)), Crops("my_crops", 2, 16, (0.05, 0.4)))))
    recipe = recipes.get("two_names", my_crops_size=48, my_size=64)
    assert [c.size for c in recipe.crops] == [64, 48]
    with pytest.raises(ValueError, match="unknown override 'global_sise' for recipe 'logo' \\(did you mean 'global_size'"):
        recipes.get("logo", global_sise=3)


def test_a_recipe_file_trains_like_its_preset(tmp_path):
    from viewkit.trainer.config import load_config

    path = tmp_path / "mine.yaml"
    path.write_text(recipes.to_yaml(recipes.get("byol", global_size=64)))
    assert recipes.get(str(path)) == recipes.get("byol", global_size=64)
    config = load_config(None, [f"recipe={path}", "method=byol", "recipe_overrides.global_size=48"])
    assert recipes.get(config.recipe_name, **config.recipe_overrides).crops[0].size == 48
    with pytest.raises(FileNotFoundError, match="no such recipe file"):
        recipes.get(str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match="unknown recipe 'logoo' \\(did you mean 'logo'"):
        recipes.get("logoo")


def _horizontal_ramp(count: int) -> list[np.ndarray]:
    """Brightness rising from left to right: any window of it, unflipped, rises too."""
    ramp = np.linspace(20, 235, 64).astype(np.uint8)
    return [np.broadcast_to(ramp[None, :, None], (48, 64, 3)).copy() for _ in range(count)]


def _flipped(views) -> list[bool]:
    """Per view [..., 3, S, S]: falls from left to right."""
    array = pixels(views).mean(-1)  # [..., S, S]
    half = array.shape[-1] // 2
    return (array[..., :half].mean((-1, -2)) > array[..., half:].mean((-1, -2))).reshape(-1).tolist()


def _rates_recipe(augment) -> Recipe:
    return Recipe("rates", crops=(Crops("global", 2, 16, (0.5, 1.0), augments=(augment("global"),)),
                                  Crops("local", 2, 8, (0.3, 0.6), augments=(augment("local"),))),
                  original=Original(size=16, augment=augment("original")),
                  saliency=SaliencyCrops(pairs=2, size=16, scale=(0.5, 1.0),
                                         augments=(augment("saliency"), augment("saliency"))))


def test_every_family_draws_its_flips_grey_and_solarisation_at_its_own_rates():
    """Measured on the pixels, per family: the crops, the locals, the original view and the
    saliency crops, each with flip, grayscale and solarisation probabilities of its own."""
    rates = {"global": (0.5, 0.1, 0.3), "local": (0.3, 0.6, 0.1), "original": (0.8, 0.3, 0.5),
             "saliency": (0.2, 0.9, 0.7)}
    recipe = _rates_recipe(lambda family: replace(GEOMETRY_ONLY, flip_p=rates[family][0], grayscale_p=rates[family][1]))
    solarizing = _rates_recipe(lambda family: replace(GEOMETRY_ONLY, solarize_p=rates[family][2]))
    batch = 50
    regions = [np.array([[0, 0, 64, 48]] + [[0, 0, 0, 0]] * 7, np.float32)] * batch  # the whole image
    scores = [np.array([1.0] + [0.0] * 7, np.float32)] * batch
    flips, greys, solarized = ({family: [] for family in rates} for _ in range(3))
    for out in views_of_images(_horizontal_ramp(batch), recipe, regions=regions, region_scores=scores, batches=4, seed=9):
        for family in rates:
            flips[family] += _flipped(out[family])
        # the reported flags say what the pixels show
        assert _flipped(out["global"]) == out["global_flips"].reshape(-1).tolist()
        assert _flipped(out["original"]) == out["original_flip"].reshape(-1).tolist()
    for out in views_of_images(colourful(batch), recipe, regions=regions, region_scores=scores, batches=4, seed=10):
        for family in rates:
            view = pixels(out[family]).reshape(-1, out[family].shape[-1] ** 2, 3)
            greys[family] += (np.abs(view - view.mean(-1, keepdims=True)).max((1, 2)) < 1.5).tolist()
    bright = [np.full((48, 64, 3), 200, np.uint8)] * batch  # solarised pixels become 55
    for out in views_of_images(bright, solarizing, regions=regions, region_scores=scores, batches=4, seed=11):
        for family in rates:
            solarized[family] += (pixels(out[family]).reshape(-1, out[family].shape[-1] ** 2 * 3).mean(1) < 128).tolist()
    for family, (flip_p, grey_p, solarize_p) in rates.items():
        for name, flags, p in (("flip", flips, flip_p), ("grey", greys, grey_p), ("solarize", solarized, solarize_p)):
            assert within(fraction(flags[family]), p, len(flags[family])), (family, name, fraction(flags[family]))
