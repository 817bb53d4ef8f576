"""The demo's scenes: crops of scikit-image's photographs, each in random colours.

Needs no download: scikit-image ships the photographs. A scene's class is the photograph
it was cut from. Training scenes are cut from the left half of each photograph and held-out
scenes from the right half, so a held-out scene shows a part of the photograph the model
never saw. Each scene maps the crop's luminance onto the line between two random colours
(a duotone), so colour says nothing about the class: a network has to tell the classes by
structure (edges, texture, layout). That is what SSL views teach (the same scene under
another crop and other colours must map to the same place) and what random weights lack:
their features follow a scene's colours, so kNN over them sits near chance.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from tqdm import tqdm

# Six photographs of different structure, all shipped with scikit-image (no pooch fetch).
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "brick", "grass", "gravel")
HALVES = ("left", "right")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _luminance(name: str) -> np.ndarray:
    image = getattr(skdata, name)().astype(np.float32) / 255
    return image if image.ndim == 2 else image[..., :3] @ _LUMA


def _random_colour(rng: np.random.Generator, value: tuple[float, float]) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.5, 1.0), rng.uniform(*value)), dtype=np.float32)


def photo_crop(rng: np.random.Generator, luminance: np.ndarray, half: str,
               crop: tuple[float, float] = (0.2, 0.5), size: tuple[int, int] = (96, 160)) -> np.ndarray:
    """One square scene [S, S, 3] uint8 cut from HALF of the photograph's columns."""
    height, width = luminance.shape
    side = int(rng.uniform(*crop) * min(height, width))
    low, high = (0, width // 2) if half == "left" else (width // 2, width)
    if side > high - low:
        raise ValueError(f"a crop of {side} px does not fit in the {half} half ({high - low} px) of the photograph")
    y = int(rng.integers(0, height - side + 1))
    x = int(rng.integers(low, high - side + 1))
    out = int(rng.integers(size[0], size[1] + 1))
    patch = Image.fromarray(luminance[y : y + side, x : x + side]).resize((out, out), Image.Resampling.BILINEAR)
    dark, light = _random_colour(rng, (0.0, 0.5)), _random_colour(rng, (0.5, 1.0))
    scene = dark + np.asarray(patch)[..., None] * (light - dark)
    return (scene.clip(0, 1) * 255).round().astype(np.uint8)


def write_photo_crops(out: str | Path, num_images: int, half: str, seed: int = 0, quality: int = 92,
                      progress: str | None = None) -> dict:
    """Writes OUT/images/<photograph>/*.jpg, classes balanced (scene i is cut from
    photograph i mod 6); returns {"images", "num_images", "classes"}. `progress`: a label
    for a progress bar (none without it)."""
    if half not in HALVES:
        raise ValueError(f"half {half!r}: one of {HALVES}")
    images_dir = Path(out) / "images"
    rng = np.random.default_rng(seed)
    photographs = [_luminance(name) for name in PHOTOGRAPHS]
    for index in tqdm(range(num_images), desc=progress, unit="img", disable=progress is None):
        label = index % len(PHOTOGRAPHS)
        path = images_dir / PHOTOGRAPHS[label] / f"{PHOTOGRAPHS[label]}_{half}_{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_crop(rng, photographs[label], half)).save(path, format="JPEG", quality=quality)
    return {"images": str(images_dir), "num_images": num_images, "classes": list(PHOTOGRAPHS)}
