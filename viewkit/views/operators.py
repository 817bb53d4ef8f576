"""The kernels of `viewkit.views.kernels` as DALI operators.

DALI's numba operator (`nvidia.dali.plugin.numba`) takes out and in types and ranks, and
the addresses of a setup function (output shapes) and a run function (one sample). Those
are the cached entry points of `viewkit.views.entry_points`; this module is the table of
which kernel has which types, and the operator construction.
"""

from __future__ import annotations

from nvidia.dali import types
from nvidia.dali.plugin.numba.experimental import NumbaFunction

from viewkit.views import entry_points

_I64, _F32 = types.INT64, types.FLOAT
_SIDE = ([_F32, _F32], [2, 1])  # regions [K, 4], scores [K]
_ROIS_OUT = ([_F32] * 6, [1] * 6)  # (y, x) start and end of three windows
KERNELS = {  # name: run, setup, out types, outs ndim, in types, ins ndim
    "photometric": (entry_points.photometric, entry_points.setup_photometric,
                    [_F32, _F32, types.INT32, types.INT16], [3, 1, 1, 4], [_I64] * 2, [2, 1]),
    "photometric_single": (entry_points.photometric_single, entry_points.setup_photometric_single,
                           [_F32, _F32, types.INT32, types.INT16], [2, 1, 1, 3], [_I64] * 2, [2, 1]),
    "view_table": (entry_points.view_table, entry_points.setup_table, [_F32], [2], [_I64] * 3, [2, 1, 1]),
    "view_table_saliency": (entry_points.view_table_saliency, entry_points.setup_table, [_F32], [2],
                            [_I64] * 3 + _SIDE[0], [2, 1, 1] + _SIDE[1]),
    "swap": (entry_points.swap, entry_points.setup_swap, [types.INT32] * 2, [2, 2], [_I64] * 2, [2, 1]),
    # run: entry_points.rois(saliency, chunk)
    "crop_rois": (None, entry_points.setup_rois, *_ROIS_OUT, [_I64] * 3, [2, 1, 1]),
    "saliency_rois": (None, entry_points.setup_rois, *_ROIS_OUT, [_I64] * 3 + _SIDE[0], [2, 1, 1] + _SIDE[1]),
}


class NumbaKernel(NumbaFunction):
    """DALI's numba operator, given the cached entry points instead of compiling its own."""

    def _get_run_fn_cpu(self, run_fn, out_types, in_types, outs_ndim, ins_ndim, batch_processing):
        return entry_points.compiled(run_fn).address

    def _get_setup_fn_cpu(self, setup_fn):
        return entry_points.compiled(setup_fn, setup=True).address


def call(name: str, *inputs):
    """The outputs of kernel `name` on its inputs (DataNodes); "crop_rois/2" and
    "saliency_rois/2" are views 6..8 of their spec."""
    kind, _, chunk = name.partition("/")
    run, setup, out_types, outs_ndim, in_types, ins_ndim = KERNELS[kind]
    if chunk:
        run = entry_points.rois(kind == "saliency_rois", int(chunk))
    operator = NumbaKernel(run_fn=run, setup_fn=setup, out_types=out_types, outs_ndim=outs_ndim,
                                 in_types=in_types, ins_ndim=ins_ndim, batch_processing=False)
    return operator(*inputs)
