"""View operations: what the frames of a view go through after they are cut, one file each.

An operation is a frozen dataclass of its settings whose defaults leave a frame as it is.
Its class declares, in one place (see `random_erasing.py`, and docs/extending.md):

    name      its key in YAML: `operations: [{random_erasing: {p: 0.25}}]`
    stage     "pixels": on the uint8 frames, before normalising; "normalized": after it
    slots     (first, count): the slots of a view's stream its draws take (`draws.uniform`)
    outputs   per frame, (numpy dtype, shape): the DALI arguments its draw writes
    numbers() its settings as floats, in the order `draw` reads them
    active()  whether it changes any frame (a family skips an operation no view needs)
    draw      a numba kernel (`@kernel` from `viewkit.views.compiled`), a static method:
              draw(seed, epoch, sample_id, stream, frame, size, numbers, *outputs) fills one
              frame's outputs, a pure function of the key like every draw; `size` is the
              frame's side in pixels, `frame` its index in the family
    apply(frames, outputs, single) -> frames
              its DALI graph: `frames` are a family's [F, S, S, 3] ("FHWC"), or the single
              view's [S, S, 3] when `single`; `outputs` the draw's, [F, *shape] ([*shape])

Per family one view kernel draws every operation of every frame (DALI runs CPU operators
one at a time), and the graph applies each operation once over all frames. The papers'
operations (colour, blur, solarise) read their settings from `Augment`'s own fields;
any other goes in `Augment.operations` and is looked up here by name in YAML.
"""

from __future__ import annotations

import dataclasses

from nvidia.dali import fn

from viewkit.views.operations.blur import GaussianBlur
from viewkit.views.operations.colour import ColourJitter
from viewkit.views.operations.random_erasing import RandomErasing
from viewkit.views.operations.solarize import Solarize

STAGES = ("pixels", "normalized")
_DTYPES = ("float32", "int32", "int16", "uint8")
_SLOTS = 4096  # a stream's slots (draws.uniform keys a stream as stream * 4096 + slot)

# name -> class: the papers' operations, then those used through Augment.operations
OPERATIONS: dict[str, type] = {}


def declare(operation: type) -> type:
    """Checks an operation class and names it for YAML; use as a class decorator."""
    where = f"operation {operation.__module__}.{operation.__qualname__}"
    if not dataclasses.is_dataclass(operation) or not operation.__dataclass_params__.frozen:
        raise TypeError(f"{where}: make it a frozen dataclass of its settings")
    if "." in operation.__qualname__ or operation.__module__ == "__main__":
        raise TypeError(f"{where}: declare it at the top level of an importable module (the view kernels import it)")
    for attribute in ("name", "stage", "slots", "outputs", "numbers", "active", "draw", "apply"):
        if not hasattr(operation, attribute):
            raise TypeError(f"{where} lacks `{attribute}` (see viewkit.views.operations)")
    if not operation.name.isidentifier():
        raise TypeError(f"{where}: name {operation.name!r} must be an identifier")
    if operation.stage not in STAGES:
        raise TypeError(f"{where}: stage {operation.stage!r} is not one of {STAGES}")
    first, count = operation.slots
    if not (0 <= first and first + count <= _SLOTS):
        raise TypeError(f"{where}: slots {operation.slots} must lie in [0, {_SLOTS})")
    if not hasattr(operation.draw, "py_func"):
        raise TypeError(f"{where}: draw must be a numba kernel (@kernel from viewkit.views.compiled)")
    for dtype, shape in operation.outputs:
        if dtype not in _DTYPES or not shape or not 1 <= len(shape) <= 3:
            raise TypeError(f"{where}: output ({dtype!r}, {shape}) must have a dtype of {_DTYPES} and 1 to 3 axes")
    defaults = operation()
    if defaults.active():
        raise TypeError(f"{where}: its defaults must leave frames as they are (active() False)")
    known = OPERATIONS.get(operation.name)
    if known is not None and known is not operation and known.__qualname__ != operation.__qualname__:
        raise TypeError(f"{where}: the name {operation.name!r} is taken by {known.__module__}.{known.__qualname__}")
    OPERATIONS[operation.name] = operation
    return operation


PAPERS = tuple(declare(o) for o in (ColourJitter, GaussianBlur, Solarize))
declare(RandomErasing)


def of(augment) -> tuple:
    """The operations of a view's `Augment`, in the order they apply within their stage."""
    return (ColourJitter(augment.color_jitter_p, augment.brightness, augment.contrast, augment.saturation,
                         augment.hue, augment.grayscale_p),
            GaussianBlur(augment.blur_p, *augment.blur_sigma),
            Solarize(augment.solarize_p), *augment.operations)


def from_plain(data: dict):
    """One operation from YAML's `{name: {setting: value}}`."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"operation {data!r}: write one operation as {{name: {{setting: value}}}}")
    (name, settings), = data.items()
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(sorted(OPERATIONS))} "
                         "(declare one with viewkit.views.operations.declare)")
    fields = {f.name for f in dataclasses.fields(OPERATIONS[name])}
    unknown = set(settings or {}) - fields
    if unknown:
        raise ValueError(f"operation {name!r}: unknown settings {sorted(unknown)}; it has {sorted(fields)}")
    return OPERATIONS[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in (settings or {}).items()})


def to_plain(operation) -> dict:
    return {operation.name: {f.name: getattr(operation, f.name) for f in dataclasses.fields(operation)}}


def per_frame(node, single: bool):
    """An argument node that holds one value per frame, as DALI wants it for a sequence."""
    return node if single else fn.per_frame(node)
