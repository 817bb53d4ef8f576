"""The kernels' C entry points for DALI's numba operator, cached on disk by numba.

DALI's numba operator calls two C functions: setup(output shapes, their ranks, count,
input shapes, ranks, count, samples) fills the output shapes of a batch, and run(output
pointers, shapes, ranks, count, the same for inputs) fills one sample's outputs.

choice: written here rather than left to DALI's wrapper (`NumbaFunction._get_run_fn_cpu`),
which builds them around eval'd lambdas that numba cannot cache: every process compiled
them anew, about 2 s a kernel, so a process waited 10-15 s before its first batch of a
many-view recipe. These compile on first use once per install (`viewkit.views.compiled`);
later processes load them from numba's cache.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
from numba import carray
from numba import types as nt
from nvidia.dali.plugin.numba import address_as_void_pointer

from viewkit.views import kernels
from viewkit.views.compiled import entry_point, kernel
from viewkit.views.rows import TABLE_WIDTH

_RUN = nt.void(nt.uint64, nt.uint64, nt.uint64, nt.int32, nt.uint64, nt.uint64, nt.uint64, nt.int32)
_SETUP = nt.void(nt.uint64, nt.uint64, nt.int32, nt.uint64, nt.uint64, nt.int32, nt.int32)


@kernel
def _entry(table, index):
    """Entry `index` of an int64 table at address `table` (a pointer, a count)."""
    return carray(address_as_void_pointer(table), index + 1, dtype=np.int64)[index]


@kernel
def _shape(shapes, ranks, index):
    """Shape of argument `index` of one sample (run: its shape pointer is entry `index`)."""
    rank = carray(address_as_void_pointer(ranks), index + 1, dtype=np.int32)[index]
    return carray(address_as_void_pointer(_entry(shapes, index)), rank, dtype=np.int64)


# One sample's argument `index` as an array of `dtype`; numba needs the rank at compile time.
@kernel
def _array1(pointers, shapes, ranks, index, dtype):
    s = _shape(shapes, ranks, index)
    return carray(address_as_void_pointer(_entry(pointers, index)), (s[0],), dtype=dtype)


@kernel
def _array2(pointers, shapes, ranks, index, dtype):
    s = _shape(shapes, ranks, index)
    return carray(address_as_void_pointer(_entry(pointers, index)), (s[0], s[1]), dtype=dtype)


@kernel
def _array3(pointers, shapes, ranks, index, dtype):
    s = _shape(shapes, ranks, index)
    return carray(address_as_void_pointer(_entry(pointers, index)), (s[0], s[1], s[2]), dtype=dtype)


@kernel
def _array4(pointers, shapes, ranks, index, dtype):
    s = _shape(shapes, ranks, index)
    return carray(address_as_void_pointer(_entry(pointers, index)), (s[0], s[1], s[2], s[3]), dtype=dtype)


@kernel
def _set_shape(shapes, num_samples, output, sample, extents):
    """Setup: the shape of `output` for `sample` (shape pointers are laid out [outputs, samples])."""
    shape = carray(address_as_void_pointer(_entry(shapes, output * num_samples + sample)), len(extents),
                   dtype=np.int64)
    for dim in range(len(extents)):
        shape[dim] = extents[dim]


@kernel
def _spec_rows(in_shapes, sample):
    """Setup: extent 0 of input 0, the spec, for `sample`."""
    return carray(address_as_void_pointer(_entry(in_shapes, sample)), 1, dtype=np.int64)[0]


def setup_photometric(out_shapes, out_ranks, num_outs, in_shapes, in_ranks, num_ins, num_samples):
    """Per frame (a spec row past the first): a 3x4 colour matrix, a sigma, a window, a solarise limit."""
    for sample in range(num_samples):
        frames = _spec_rows(in_shapes, sample) - 1
        _set_shape(out_shapes, num_samples, 0, sample, (frames, 3, 4))
        _set_shape(out_shapes, num_samples, 1, sample, (frames,))
        _set_shape(out_shapes, num_samples, 2, sample, (frames,))
        _set_shape(out_shapes, num_samples, 3, sample, (frames, 1, 1, 1))


def setup_photometric_single(out_shapes, out_ranks, num_outs, in_shapes, in_ranks, num_ins, num_samples):
    for sample in range(num_samples):
        _set_shape(out_shapes, num_samples, 0, sample, (3, 4))
        _set_shape(out_shapes, num_samples, 1, sample, (1,))
        _set_shape(out_shapes, num_samples, 2, sample, (1,))
        _set_shape(out_shapes, num_samples, 3, sample, (1, 1, 1))


def setup_table(out_shapes, out_ranks, num_outs, in_shapes, in_ranks, num_ins, num_samples):
    for sample in range(num_samples):
        _set_shape(out_shapes, num_samples, 0, sample, (_spec_rows(in_shapes, sample) - 1, TABLE_WIDTH))


def setup_swap(out_shapes, out_ranks, num_outs, in_shapes, in_ranks, num_ins, num_samples):
    """Anchors and shapes of the two pastes: the base image, then the swapped box."""
    for sample in range(num_samples):
        _set_shape(out_shapes, num_samples, 0, sample, (2, 2))
        _set_shape(out_shapes, num_samples, 1, sample, (2, 2))


def setup_rois(out_shapes, out_ranks, num_outs, in_shapes, in_ranks, num_ins, num_samples):
    """Six [2] outputs: (y, x) start and end of three windows."""
    for sample in range(num_samples):
        for output in range(6):
            _set_shape(out_shapes, num_samples, output, sample, (2,))


@kernel
def _spec_and_id(ins, in_shapes, in_ranks):
    """Every kernel's first inputs: the spec [rows, columns] and the sample id [1]."""
    return _array2(ins, in_shapes, in_ranks, 0, np.int64), _array1(ins, in_shapes, in_ranks, 1, np.int64)


@kernel
def _spec_id_shape(ins, in_shapes, in_ranks):
    """The spec, the sample id and the image's [H, W, C] shape."""
    spec, sample_id = _spec_and_id(ins, in_shapes, in_ranks)
    return spec, sample_id, _array1(ins, in_shapes, in_ranks, 2, np.int64)


def photometric(outs, out_shapes, out_ranks, num_outs, ins, in_shapes, in_ranks, num_ins):
    kernels.photometric(_array3(outs, out_shapes, out_ranks, 0, np.float32),
                        _array1(outs, out_shapes, out_ranks, 1, np.float32),
                        _array1(outs, out_shapes, out_ranks, 2, np.int32),
                        _array4(outs, out_shapes, out_ranks, 3, np.int16),
                        *_spec_and_id(ins, in_shapes, in_ranks))


def photometric_single(outs, out_shapes, out_ranks, num_outs, ins, in_shapes, in_ranks, num_ins):
    kernels.photometric_single(_array2(outs, out_shapes, out_ranks, 0, np.float32),
                               _array1(outs, out_shapes, out_ranks, 1, np.float32),
                               _array1(outs, out_shapes, out_ranks, 2, np.int32),
                               _array3(outs, out_shapes, out_ranks, 3, np.int16),
                               *_spec_and_id(ins, in_shapes, in_ranks))


def view_table(outs, out_shapes, out_ranks, num_outs, ins, in_shapes, in_ranks, num_ins):
    kernels.view_table(_array2(outs, out_shapes, out_ranks, 0, np.float32), *_spec_id_shape(ins, in_shapes, in_ranks))


def view_table_saliency(outs, out_shapes, out_ranks, num_outs, ins, in_shapes, in_ranks, num_ins):
    kernels.view_table_saliency(_array2(outs, out_shapes, out_ranks, 0, np.float32),
                                *_spec_id_shape(ins, in_shapes, in_ranks),
                                _array2(ins, in_shapes, in_ranks, 3, np.float32),
                                _array1(ins, in_shapes, in_ranks, 4, np.float32))


def swap(outs, out_shapes, out_ranks, num_outs, ins, in_shapes, in_ranks, num_ins):
    kernels.swap(_array2(outs, out_shapes, out_ranks, 0, np.int32), _array2(outs, out_shapes, out_ranks, 1, np.int32),
                 *_spec_and_id(ins, in_shapes, in_ranks))


_compiled: dict = {}
_lock = threading.Lock()  # the next epoch's pipeline is built on a background thread


def compiled(function, setup: bool = False):
    """Run (or setup) entry point `function` as a numba C callback (`.address` for DALI),
    compiled or loaded from the cache on first use in the process."""
    with _lock:
        if function not in _compiled:
            _compiled[function] = entry_point(function, _SETUP if setup else _RUN)
        return _compiled[function]


@functools.cache
def rois(saliency: bool, chunk: int):
    """The run entry point of views 3 chunk .. 3 chunk + 2 of a spec, the chunk's first row a
    constant of its own function (numba caches one per chunk): inputs spec, sample id, image
    shape (+ regions, scores)."""
    return (_saliency_rois if saliency else _crop_rois)(1 + 3 * chunk)


@kernel
def _window_outputs(outs, out_shapes, out_ranks):
    """The six [2] outputs of a rois kernel: (y, x) start and end of three windows."""
    return (_array1(outs, out_shapes, out_ranks, 0, np.float32), _array1(outs, out_shapes, out_ranks, 1, np.float32),
            _array1(outs, out_shapes, out_ranks, 2, np.float32), _array1(outs, out_shapes, out_ranks, 3, np.float32),
            _array1(outs, out_shapes, out_ranks, 4, np.float32), _array1(outs, out_shapes, out_ranks, 5, np.float32))


def _crop_rois(first: int):
    def crop_rois(outs, out_shapes, out_ranks, num_outs, ins, in_shapes, in_ranks, num_ins):
        kernels.rois(*_window_outputs(outs, out_shapes, out_ranks), *_spec_id_shape(ins, in_shapes, in_ranks),
                     kernels.EMPTY_REGIONS, kernels.EMPTY_SCORES, first)
    return crop_rois


def _saliency_rois(first: int):
    def saliency_rois(outs, out_shapes, out_ranks, num_outs, ins, in_shapes, in_ranks, num_ins):
        kernels.rois(*_window_outputs(outs, out_shapes, out_ranks), *_spec_id_shape(ins, in_shapes, in_ranks),
                     _array2(ins, in_shapes, in_ranks, 3, np.float32), _array1(ins, in_shapes, in_ranks, 4, np.float32),
                     first)
    return saliency_rois
