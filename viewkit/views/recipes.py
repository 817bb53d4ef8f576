"""Preset recipes by name, with the numbers of their papers; YAML in, YAML out.

    recipes.get("logo")                          # the preset
    recipes.get("logo", local_count=6)           # crop family fields as <family>_<field>
    recipes.get("byol", dtype="bfloat16", global_size=160)
    recipes.get("leoclr", original_size=96)
    recipes.load("my_recipe.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import replace
from pathlib import Path

import yaml

from viewkit.views import families, operations
from viewkit.views.augment import BYOL_VIEW1, BYOL_VIEW2, MOCO_V2, SIMCLR, Augment
from viewkit.views.families import FAMILIES, Crops, Original, Recipe, RegionSwap, SaliencyCrops

_RATIO = (3 / 4, 4 / 3)


def _two_views(name: str, scale, augments, size: int = 224) -> Crops:
    return Crops(name, count=2, size=size, scale=scale, ratio=_RATIO, augments=augments)


PRESETS: dict[str, Recipe] = {
    # MoCo-v2: two views, RandomResizedCrop(224, scale=(0.2, 1.0)), aug_plus.
    "moco_v2": Recipe("moco_v2", crops=(_two_views("global", (0.2, 1.0), (MOCO_V2,)),)),
    # BYOL: scale (0.08, 1.0), asymmetric blur 1.0 / 0.1 and solarise 0.0 / 0.2.
    "byol": Recipe("byol", crops=(_two_views("global", (0.08, 1.0), (BYOL_VIEW1, BYOL_VIEW2)),)),
    # SimCLR: scale (0.08, 1.0), colour strength 1.0, blur p 0.5.
    "simclr": Recipe("simclr", crops=(_two_views("global", (0.08, 1.0), (SIMCLR,)),)),
    # SimSiam: the MoCo-v2 augmentations.
    "simsiam": Recipe("simsiam", crops=(_two_views("global", (0.2, 1.0), (MOCO_V2,)),)),
    # DINO multi-crop: 2 x 224 (0.4, 1.0) with BYOL's asymmetry, 8 x 96 (0.05, 0.4).
    "dino_multicrop": Recipe("dino_multicrop", crops=(
        _two_views("global", (0.4, 1.0), (BYOL_VIEW1, BYOL_VIEW2)),
        Crops("local", count=8, size=96, scale=(0.05, 0.4), ratio=_RATIO,
              augments=(replace(BYOL_VIEW1, blur_p=0.5),)),
    )),
    # LeOCLR: the original image (224 x 224, no crop) plus two MoCo-v2 random crops.
    "leoclr": Recipe("leoclr", crops=(_two_views("global", (0.2, 1.0), (MOCO_V2,)),), original=Original(224, MOCO_V2)),
    # LoGo: 2 global 224 px (0.4, 1.0) and 2 local 96 px (0.05, 0.4), MoCo-v2 augmentations.
    "logo": Recipe("logo", crops=(
        _two_views("global", (0.4, 1.0), (MOCO_V2,)),
        Crops("local", count=2, size=96, scale=(0.05, 0.4), ratio=_RATIO, augments=(MOCO_V2,)),
    )),
    # SGCL: t = 4 region pairs of 96 px (B', B'') with BYOL's two augmentations; its losses
    # use region pairs only, so no image-level views are cut.
    "sgcl": Recipe("sgcl", saliency=SaliencyCrops()),
    # RegionCL: MoCo-v2 views; the composite from the first (query) view, 32 px grid.
    "regioncl": Recipe("regioncl", crops=(_two_views("global", (0.2, 1.0), (MOCO_V2,)),), swap=RegionSwap()),
    # Not a paper's recipe: the heavy multi-crop load `viewkit bench` is judged on
    # (1 original + 2 x 224 + 6 x 96, MoCo-v2 augmentations).
    "heavy_multicrop": Recipe("heavy_multicrop", original=Original(224, MOCO_V2), crops=(
        _two_views("global", (0.4, 1.0), (MOCO_V2,)),
        Crops("local", count=6, size=96, scale=(0.05, 0.4), ratio=_RATIO, augments=(MOCO_V2,)),
    )),
    # SCD: two standard views with BYOL's asymmetric settings (SCD-BYOL; SCD-MoCo: moco_v2).
    "scd": Recipe("scd", crops=(_two_views("global", (0.08, 1.0), (BYOL_VIEW1, BYOL_VIEW2)),)),
}

_AUGMENT_FIELDS = {f.name for f in dataclasses.fields(Augment)} - {"operations"}  # those: in a recipe's YAML


def _frozen(value):
    """YAML gives lists where the frozen specs hold tuples."""
    return tuple(value) if isinstance(value, list) else value


def _with_augment(recipe: Recipe, changes: dict) -> Recipe:
    """Every view's Augment with `changes` applied (every family's `augments` or `augment`)."""
    def change(family):
        names = {f.name for f in dataclasses.fields(family)}
        if "augments" in names:
            return replace(family, augments=tuple(replace(a, **changes) for a in family.augments))
        if "augment" in names:
            return replace(family, augment=replace(family.augment, **changes))
        return family

    return _with_families(recipe, change)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get(name: str, **overrides) -> Recipe:
    """A preset by name, or a recipe's YAML file by path (`to_yaml` writes them); overrides:
    recipe fields, `<family>_<field>` for a crop family, or
    `augment_<field>` for an Augment field of every view (e.g. `augment_blur_sigma` when the
    views are much smaller than the papers' 224 px)."""
    if name in PRESETS:
        recipe = PRESETS[name]
    elif Path(name).suffix in (".yaml", ".yml"):  # a recipe written by `to_yaml`, or by hand
        if not Path(name).is_file():
            raise FileNotFoundError(f"{name}: no such recipe file")
        recipe = load(name)
    else:
        raise ValueError(f"unknown recipe {name!r}{_did_you_mean(name, PRESETS)}; presets: "
                         f"{', '.join(sorted(PRESETS))}, or a recipe's YAML file")
    every = {f.key: f for f in families.of(recipe)}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    direct, changed, augment_changes = {}, {}, {}
    for key, value in overrides.items():
        # the longest family name the key starts with: family names may hold "_" too
        family = next((k for k in sorted(every, key=len, reverse=True) if key.startswith(k + "_")), None)
        field = key[len(family) + 1:] if family else None
        if key.startswith("augment_") and key[len("augment_"):] in _AUGMENT_FIELDS:
            augment_changes[key[len("augment_"):]] = _frozen(value)
        elif key in recipe_fields:
            direct[key] = value
        elif family is not None and field in _settings(every[family]):
            changed[family] = replace(changed.get(family, every[family]), **{field: _frozen(value)})
        else:
            known = recipe_fields | {f"{k}_{f}" for k, spec in every.items() for f in _settings(spec)} | {
                f"augment_{f}" for f in _AUGMENT_FIELDS}
            raise ValueError(f"unknown override {key!r} for recipe {name!r}{_did_you_mean(key, known)}: recipe "
                             f"fields, <family>_<field> with family in {sorted(every)}, or augment_<field>")
    recipe = _with_families(replace(recipe, **direct), lambda family: changed.get(family.key, family))
    return _with_augment(recipe, augment_changes) if augment_changes else recipe


def _settings(family) -> set[str]:
    """A family's fields an override may set (`<family>_<field>`): not its name or Augments."""
    return {f.name for f in dataclasses.fields(family)} - {"name", "augments", "augment"}


def _with_families(recipe: Recipe, change) -> Recipe:
    """The recipe with every family replaced by change(family)."""
    one = lambda family: None if family is None else change(family)  # noqa: E731
    return replace(recipe, crops=tuple(map(one, recipe.crops)), original=one(recipe.original),
                   saliency=one(recipe.saliency), swap=one(recipe.swap), families=tuple(map(one, recipe.families)))


def _to_plain(value):
    if isinstance(value, Augment):
        plain = {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "operations"}
        further = [operations.to_plain(o) for o in value.operations]
        return {**plain, **({"operations": further} if further else {})}
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "notes"}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def to_yaml(recipe: Recipe) -> str:
    plain = _to_plain(recipe)
    plain["families"] = [{f.kind: _to_plain(f)} for f in recipe.families]
    if not recipe.families:
        del plain["families"]
    return yaml.safe_dump(plain, sort_keys=False)


def _augment(data) -> Augment:
    data = dict(data)
    further = tuple(operations.from_plain(o) for o in data.pop("operations", None) or ())
    return Augment(**{k: _frozen(v) for k, v in data.items()}, operations=further)


def _family(kind: type, data: dict):
    """A family spec from its plain settings: Augments and tuples rebuilt."""
    if not isinstance(data, dict):
        raise ValueError(f"recipe: {kind.__name__} settings must be a mapping, got {data!r}")
    values = {}
    for key, value in data.items():
        if key == "augments":
            values[key] = tuple(_augment(a) for a in value)
        elif key == "augment":
            values[key] = _augment(value)
        else:
            values[key] = _frozen(value)
    return kind(**values)


def _further_family(data: dict):
    """One of `families:` in YAML, `{kind: {setting: value}}`."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"recipe: a further family is written {{kind: {{setting: value}}}}, got {data!r}")
    (kind, settings), = data.items()
    if kind not in FAMILIES:
        raise ValueError(f"recipe: unknown family {kind!r}{_did_you_mean(kind, FAMILIES)}; known: {sorted(FAMILIES)}")
    return _family(FAMILIES[kind], settings or {})


def from_dict(data: dict) -> Recipe:
    """A recipe from plain data (YAML); unknown keys are errors that name the key."""
    data = dict(data)
    try:
        crops = tuple(_family(Crops, c) for c in data.pop("crops", None) or [])
        papers = {}
        for name, kind in (("original", Original), ("saliency", SaliencyCrops), ("swap", RegionSwap)):
            settings = data.pop(name, None)
            papers[name] = _family(kind, settings) if settings is not None else None
        further = tuple(_further_family(f) for f in data.pop("families", None) or [])
        return Recipe(crops=crops, families=further, **papers, **data)
    except TypeError as e:
        raise ValueError(f"recipe: {e} (see viewkit.views.families for the fields)") from None


def load(path: str | Path) -> Recipe:
    return from_dict(yaml.safe_load(Path(path).read_text()))
