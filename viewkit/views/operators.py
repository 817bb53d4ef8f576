"""The numba kernels of `viewkit.views.kernels` as DALI operators, compiled once per process.

DALI's numba wrapper (`nvidia.dali.plugin.numba`) turns a kernel into an operator: out and
in types and ranks, a setup function giving output shapes, the run function. Kept apart
from the kernels: this is the DALI plumbing, `kernels` the arithmetic.
"""

from __future__ import annotations

import threading

from nvidia.dali import types

from viewkit.views.kernels import (photometric, photometric_single, rois_kernel, setup_photometric,
                                   setup_photometric_single, setup_rois, setup_swap, setup_table, swap, view_table,
                                   view_table_saliency)

_I64, _F32 = types.INT64, types.FLOAT
_SIDE = ([_F32, _F32], [2, 1])  # regions [K, 4], scores [K]
KERNELS = {  # name: run, setup, out types, outs ndim, in types, ins ndim
    "photometric": (photometric, setup_photometric, [_F32, _F32, types.INT32, types.INT16], [3, 1, 1, 4], [_I64] * 4,
                    [2, 1, 2, 2]),
    "photometric_single": (photometric_single, setup_photometric_single, [_F32, _F32, types.INT32, types.INT16],
                           [2, 1, 1, 3], [_I64] * 4, [2, 1, 2, 2]),
    "view_table": (view_table, setup_table, [_F32], [2], [_I64] * 3, [2, 1, 1]),
    "view_table_saliency": (view_table_saliency, setup_table, [_F32], [2], [_I64] * 3 + _SIDE[0],
                            [2, 1, 1] + _SIDE[1]),
    "swap": (swap, setup_swap, [types.INT32] * 2, [2, 2], [_I64] * 2, [2, 1]),
}
# The spec is every kernel's first input, and kernels with more outputs than inputs get the
# spec again as padding inputs: DALI 2.4's numba wrapper reads as many input shapes as there
# are outputs (past the end of the list otherwise: a crash) and shows the setup only those.
_compiled: dict = {}
_lock = threading.Lock()
_operator_class = None


def _memoised_numba_function():
    """DALI's NumbaFunction, compiling each kernel once per process.

    choice: DALI's wrapper compiles on every construction (about 1.5 s per kernel) and the
    loader builds a pipeline per epoch. Compiled entry points are kept here; every call
    still gets its own operator instance (instances are not shared between pipelines built
    on different threads)."""
    global _operator_class
    if _operator_class is None:
        from nvidia.dali.plugin.numba.experimental import NumbaFunction

        class Memoised(NumbaFunction):
            def _get_run_fn_cpu(self, run_fn, out_types, in_types, outs_ndim, ins_ndim, batch_processing):
                key = ("run", run_fn, tuple(out_types), tuple(in_types), tuple(outs_ndim), tuple(ins_ndim))
                with _lock:
                    if key not in _compiled:
                        _compiled[key] = super()._get_run_fn_cpu(run_fn, out_types, in_types, outs_ndim, ins_ndim,
                                                                 batch_processing)
                    return _compiled[key]

            def _get_setup_fn_cpu(self, setup_fn):
                with _lock:
                    if ("setup", setup_fn) not in _compiled:
                        _compiled[("setup", setup_fn)] = super()._get_setup_fn_cpu(setup_fn)
                    return _compiled[("setup", setup_fn)]

        _operator_class = Memoised
    return _operator_class


PADDING = {"crop_rois": 3, "saliency_rois": 1, "photometric": 2, "photometric_single": 2}  # spec repeated


def operator(name: str):
    """A DALI operator running kernel `name` (compiled on first use in the process); call it
    with `call`, which adds the padding inputs."""
    kind, _, chunk = name.partition("/")
    if kind in ("crop_rois", "saliency_rois"):  # "crop_rois/2": views 6..8 of the spec
        ins = [_I64] * 6 if kind == "crop_rois" else [_I64] * 3 + _SIDE[0] + [_I64]
        ins_ndim = [2, 1, 1, 2, 2, 2] if kind == "crop_rois" else [2, 1, 1] + _SIDE[1] + [2]
        run, setup, out_types, outs_ndim, in_types = rois_kernel(kind == "saliency_rois", int(chunk)), setup_rois, \
            [_F32] * 6, [1] * 6, ins
    else:
        run, setup, out_types, outs_ndim, in_types, ins_ndim = KERNELS[name]
    return _memoised_numba_function()(run_fn=run, setup_fn=setup, out_types=out_types, outs_ndim=outs_ndim,
                                      in_types=in_types, ins_ndim=ins_ndim, batch_processing=False)


def call(name: str, spec, *inputs):
    """The outputs of kernel `name` on (spec, *inputs), padded as DALI's wrapper needs."""
    return operator(name)(spec, *inputs, *([spec] * PADDING.get(name.partition("/")[0], 0)))
