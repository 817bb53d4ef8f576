"""The view kernels as DALI operators: the one table of which kernel takes and gives what.

DALI's numba operator (`nvidia.dali.plugin.numba`) takes out and in types and ranks, and
the addresses of a setup function (output shapes) and a run function (one sample). Both
are generated from the table below (or from a family's operations) and cached
(`viewkit.views.entry_points`); this module builds the operators.
"""

from __future__ import annotations

from nvidia.dali import types
from nvidia.dali.plugin.numba.experimental import NumbaFunction

from viewkit.views import entry_points
from viewkit.views.entry_points import Kernel
from viewkit.views.rows import TABLE_WIDTH

_DALI = {"float32": types.FLOAT, "int64": types.INT64, "int32": types.INT32, "int16": types.INT16,
         "uint8": types.UINT8}
SPEC, SAMPLE_ID, SHAPE = ("int64", 2), ("int64", 1), ("int64", 1)  # the spec table, [1] id, [H, W, C]
SIDE = (("float32", 2), ("float32", 1))  # saliency regions [K, 4], scores [K]
WINDOWS = (("float32", (2,)),) * 6  # (y, x) start and end of three windows

KERNELS = {
    "view_table": Kernel("viewkit.views.kernels:view_table", (("float32", ("rows", TABLE_WIDTH)),),
                         (SPEC, SAMPLE_ID, SHAPE)),
    "view_table_saliency": Kernel("viewkit.views.kernels:view_table_saliency", (("float32", ("rows", TABLE_WIDTH)),),
                                  (SPEC, SAMPLE_ID, SHAPE, *SIDE)),
    # the swap's anchors and shapes
    "swap": Kernel("viewkit.views.kernels:swap", (("int32", (2, 2)), ("int32", (2, 2))), (SPEC, SAMPLE_ID)),
    # windows of the three view rows from row `first` of the spec (one entry point per chunk)
    "crop_rois": Kernel("viewkit.views.kernels:rois", WINDOWS, (SPEC, SAMPLE_ID, SHAPE), ("first",),
                        ("EMPTY_REGIONS", "EMPTY_SCORES")),  # no side data: empty regions
    "saliency_rois": Kernel("viewkit.views.kernels:rois", WINDOWS, (SPEC, SAMPLE_ID, SHAPE, *SIDE), ("first",)),
}
MAX_OUTPUTS = 6  # DALI's numba operator


def constant(array):
    """An int64 spec table (`viewkit.views.rows.spec`) as a graph constant, a kernel's input."""
    return types.Constant(array, dtype=types.INT64)


class NumbaKernel(NumbaFunction):
    """DALI's numba operator, given the cached entry points instead of compiling its own."""

    def __init__(self, run, setup, **kwargs):
        self._entry_points = run, setup
        super().__init__(run_fn=run, setup_fn=setup, batch_processing=False, **kwargs)

    def _get_run_fn_cpu(self, run_fn, out_types, in_types, outs_ndim, ins_ndim, batch_processing):
        return self._entry_points[0].address

    def _get_setup_fn_cpu(self, setup_fn):
        return self._entry_points[1].address


def _operator(source: str, name: str, outputs, inputs, depends=()) -> NumbaKernel:
    run, setup = entry_points.compiled(source, entry_points.setup_source(outputs), name, depends)
    return NumbaKernel(run, setup, out_types=[_DALI[dtype] for dtype, _ in outputs],
                       outs_ndim=[len(shape) for _, shape in outputs], in_types=[_DALI[dtype] for dtype, _ in inputs],
                       ins_ndim=[rank for _, rank in inputs])


def call(name: str, *inputs, **constants):
    """The outputs of kernel `name` of KERNELS on its inputs (DataNodes); constants by name,
    e.g. `call("crop_rois", spec, sample_id, shape, first=4)`: views 4..6 of the spec."""
    return call_kernel(KERNELS[name], *inputs, **constants)


def call_kernel(declared: Kernel, *inputs, **constants):
    """The outputs of a declared kernel (a family's own) on its inputs."""
    if set(constants) != set(declared.constants):
        raise TypeError(f"kernel {declared.call} takes constants {declared.constants}, given {sorted(constants)}")
    values = tuple(constants[c] for c in declared.constants)
    source = entry_points.kernel_source(declared, values)
    module, name = declared.call.split(":")
    return _operator(source, name, declared.outputs, declared.inputs, entry_points.foreign_module(module))(*inputs)


def draw_operations(kinds: tuple[type, ...], single: bool, spec, sample_id) -> dict[type, tuple]:
    """Operation -> its outputs for every frame of a family, drawn by as few kernels as DALI's
    output limit allows (operations in turn, at most MAX_OUTPUTS outputs a kernel)."""
    chunks, chunk = [], []
    for kind in kinds:
        if len(kind.outputs) > MAX_OUTPUTS:
            raise ValueError(f"operation {kind.name}: {len(kind.outputs)} outputs; DALI allows {MAX_OUTPUTS}")
        if sum(len(k.outputs) for k in chunk) + len(kind.outputs) > MAX_OUTPUTS:
            chunks.append(chunk)
            chunk = []
        chunk.append(kind)
    chunks.append(chunk)
    drawn = {}
    for chunk in filter(None, chunks):
        outputs = [(dtype, shape if single else ("rows", *shape)) for k in chunk for dtype, shape in k.outputs]
        source = entry_points.operations_source(tuple(chunk), single)
        nodes = _operator(source, "operations", outputs, (SPEC, SAMPLE_ID), entry_points.foreign_files(tuple(chunk)))(
            spec, sample_id)
        nodes = list(nodes) if isinstance(nodes, (list, tuple)) else [nodes]
        for kind in chunk:
            drawn[kind], nodes = tuple(nodes[:len(kind.outputs)]), nodes[len(kind.outputs):]
    return drawn
