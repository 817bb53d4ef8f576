"""The demo's scenes: which half of a photograph they come from, and colours that say nothing."""

import numpy as np
import pytest
from PIL import Image

from viewkit.datasets.photo_crops import PHOTOGRAPHS, photo_crop, write_photo_crops


def test_each_half_only_shows_its_half_of_the_photograph():
    # Black left half, white right half: a left scene is its dark colour everywhere, a right
    # scene its light colour everywhere; a crop reaching over the middle would mix them.
    photograph = np.zeros((300, 400), dtype=np.float32)
    photograph[:, 200:] = 1.0
    for seed in range(20):
        for half in ("left", "right"):
            scene = photo_crop(np.random.default_rng(seed), photograph, half).reshape(-1, 3)
            assert (scene == scene[0]).all(), (seed, half)
            brightest = scene[0].max() / 255
            assert brightest <= 0.5 + 1e-2 if half == "left" else brightest >= 0.5 - 1e-2


def test_scene_colours_lie_on_one_line_between_two_random_colours():
    ramp = np.tile(np.linspace(0, 1, 400, dtype=np.float32), (300, 1))
    ends = []
    for seed in range(6):
        scene = photo_crop(np.random.default_rng(seed), ramp, "left").reshape(-1, 3).astype(np.float64)
        centred = scene - scene.mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        off_the_line = centred - np.outer(centred @ direction, direction)
        assert np.linalg.norm(off_the_line, axis=1).max() < 1.0  # a duotone, up to rounding to 8 bits
        ends.append(scene[np.argmax(scene.sum(axis=1))])
    assert len({tuple(np.round(end, -1)) for end in ends}) == 6  # another colour pair per scene


def test_written_scenes_are_balanced_deterministic_and_square(tmp_path):
    a = write_photo_crops(tmp_path / "a", 12, "left", seed=5)
    write_photo_crops(tmp_path / "b", 12, "left", seed=5)
    assert a["classes"] == list(PHOTOGRAPHS)
    for name in PHOTOGRAPHS:
        files = sorted((tmp_path / "a" / "images" / name).iterdir())
        assert len(files) == 2
        for path in files:
            assert path.read_bytes() == (tmp_path / "b" / "images" / name / path.name).read_bytes()
            image = Image.open(path)
            assert image.mode == "RGB" and image.size[0] == image.size[1] and 96 <= image.size[0] <= 160
    with pytest.raises(ValueError, match="half 'middle'"):
        write_photo_crops(tmp_path / "c", 6, "middle")


def test_a_crop_wider_than_the_half_is_refused():
    with pytest.raises(ValueError, match="does not fit in the right half"):
        photo_crop(np.random.default_rng(0), np.zeros((400, 300), np.float32), "right", crop=(0.9, 0.9))
