"""Generated scenes with known boxes, on textures from scikit-image's photographs.

Needs no download: scikit-image ships the photographs. Each scene has one large object
whose shape is the class, plus up to two smaller distractors of other shapes, each in a
random colour, on a texture cut from a random photograph. Every object's box is known
exactly (the bounding box of its mask), so the set serves region-based views (boxes as
ground-truth regions), COCO sharding and geometry tests without a download. The demo's
scenes, made for showing what pretraining learns, are in `photo_crops.py`.

Written as an image folder with one sub-folder per class (for `viewkit shard folder`)
and a COCO instances file beside it (for `viewkit shard coco`), both deterministic.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage import data as skdata
from skimage import draw

CLASSES = ("disk", "square", "triangle", "star", "ring", "cross")
_PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                "retina", "brick", "grass", "gravel", "camera", "coins", "moon")


@dataclass(frozen=True)
class SceneStyle:
    """How a scene is drawn; tests draw simpler scenes (one large object, a plain background)."""

    main_radius: tuple[float, float] = (0.22, 0.32)  # of the image's short side
    max_distractors: int = 2
    background_blur: float = 0.0  # Gaussian sigma in pixels; 0: the photograph as cut
    background_contrast: float = 1.0  # 1: as cut; 0.5: halfway to the texture's mean colour

    def __post_init__(self):
        low, high = self.main_radius
        if not 0 < low <= high <= 0.5:  # beyond half the short side the object cannot fit in the scene
            raise ValueError(f"SceneStyle: main_radius {self.main_radius} must satisfy 0 < low <= high <= 0.5")
        if self.max_distractors < 0 or self.background_blur < 0 or self.background_contrast < 0:
            raise ValueError(f"SceneStyle: max_distractors, background_blur and background_contrast must be >= 0 ({self})")


def _photographs() -> list[np.ndarray]:
    photos = []
    for name in _PHOTOGRAPHS:
        image = getattr(skdata, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., :3]))
    return photos


def _texture(rng: np.random.Generator, photos: list[np.ndarray], width: int, height: int) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    crop = int(rng.uniform(0.3, 1.0) * min(ph, pw))
    y, x = rng.integers(0, ph - crop + 1), rng.integers(0, pw - crop + 1)
    patch = Image.fromarray(photo[y : y + crop, x : x + crop]).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(patch).copy()


def _soften(texture: np.ndarray, style: SceneStyle) -> np.ndarray:
    if style.background_blur:
        texture = np.asarray(Image.fromarray(texture).filter(ImageFilter.GaussianBlur(style.background_blur)))
    if style.background_contrast != 1.0:
        mean = texture.astype(np.float32).mean(axis=(0, 1), keepdims=True)
        texture = (mean + style.background_contrast * (texture - mean)).clip(0, 255).astype(np.uint8)
    return texture


def _polygon(cx, cy, radius, angle, vertices, inner=None):
    steps = np.arange(vertices * (2 if inner else 1))
    turn = angle + steps * np.pi / (vertices if inner else vertices / 2)
    r = np.where(steps % 2 == 1, radius * inner, radius) if inner else np.full(len(steps), radius)
    return cy + r * np.sin(turn), cx + r * np.cos(turn)


def shape_mask(kind: str, shape: tuple[int, int], cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Boolean mask of one object; its bounding box is the object's box."""
    mask = np.zeros(shape, dtype=bool)
    if kind in ("disk", "ring"):
        mask[draw.disk((cy, cx), radius, shape=shape)] = True
        if kind == "ring":
            mask[draw.disk((cy, cx), radius * 0.55, shape=shape)] = False
    elif kind in ("square", "triangle", "star"):
        vertices, inner = {"square": (4, None), "triangle": (3, None), "star": (5, 0.45)}[kind]
        rows, cols = _polygon(cx, cy, radius, angle, vertices, inner)
        mask[draw.polygon(rows, cols, shape=shape)] = True
    elif kind == "cross":
        for bar_angle in (angle, angle + np.pi / 2):
            c, s = np.cos(bar_angle), np.sin(bar_angle)
            length, width = radius, radius * 0.3
            corners = [(-length, -width), (length, -width), (length, width), (-length, width)]
            rows = [cy + u * s + v * c for u, v in corners]
            cols = [cx + u * c - v * s for u, v in corners]
            mask[draw.polygon(rows, cols, shape=shape)] = True
    else:
        raise ValueError(f"unknown shape {kind!r}; one of {CLASSES}")
    return mask


def _colour(rng: np.random.Generator) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))
    return np.array([r, g, b]) * 255


def scene(rng: np.random.Generator, photos: list[np.ndarray], label: int,
          style: SceneStyle = SceneStyle()) -> tuple[np.ndarray, list[dict]]:
    """One image [H, W, 3] uint8 and its objects [{"category", "box", "area"}], main object first."""
    width, height = int(rng.integers(192, 321)), int(rng.integers(192, 321))
    image = _soften(_texture(rng, photos, width, height), style).astype(np.float32)
    side = min(width, height)
    others = [c for c in range(len(CLASSES)) if c != label]
    plan = [(label, rng.uniform(*style.main_radius) * side)]
    plan += [(int(rng.choice(others)), rng.uniform(0.07, 0.12) * side)
             for _ in range(rng.integers(0, style.max_distractors + 1))]
    objects = []
    yy, xx = np.mgrid[0:height, 0:width]
    for category, radius in plan:
        cx = rng.uniform(radius, width - radius)
        cy = rng.uniform(radius, height - radius)
        mask = shape_mask(CLASSES[category], (height, width), cx, cy, radius, rng.uniform(0, 2 * np.pi))
        if not mask.any():
            continue
        # A soft light gradient, so that objects are not flat colour fields.
        light = 0.75 + 0.25 * np.cos(np.arctan2(yy - cy, xx - cx) - rng.uniform(0, 2 * np.pi))
        image[mask] = (_colour(rng)[None, :] * light[mask][:, None]).clip(0, 255)
        rows, cols = np.nonzero(mask)
        objects.append({
            "category": category,
            "box": [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1],
            "area": int(mask.sum()),
        })
    return image.round().astype(np.uint8), objects


def write_embedded_dataset(out: str | Path, num_images: int = 600, seed: int = 0, quality: int = 92,
                           style: SceneStyle = SceneStyle()) -> dict:
    """Writes OUT/images/<class>/*.jpg and OUT/annotations.json; returns their paths.

    Classes are balanced (image i shows class i mod 6). Boxes in the annotations are
    COCO [x, y, w, h] of each object's mask; later objects may cover earlier ones.
    """
    out = Path(out)
    images_dir = out / "images"
    photos = _photographs()
    rng = np.random.default_rng(seed)
    coco = {
        "info": {"description": "viewkit embedded default: generated scenes on scikit-image photographs"},
        "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)],
        "images": [],
        "annotations": [],
    }
    for index in range(num_images):
        label = index % len(CLASSES)
        image, objects = scene(rng, photos, label, style)
        file_name = f"{CLASSES[label]}/{CLASSES[label]}_{index:05d}.jpg"
        path = images_dir / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, format="JPEG", quality=quality)
        coco["images"].append({"id": index + 1, "file_name": file_name, "width": image.shape[1], "height": image.shape[0]})
        for obj in objects:
            x0, y0, x1, y1 = obj["box"]
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": index + 1, "category_id": obj["category"] + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": obj["area"], "iscrowd": 0,
            })
    annotations = out / "annotations.json"
    annotations.write_text(json.dumps(coco))
    return {"images": str(images_dir), "annotations": str(annotations), "num_images": num_images, "classes": list(CLASSES)}
