"""numba's on-disk cache for the view kernels, invalidated by any change to this package.

numba stamps a cached function with its own source file only, and a cached function
carries the code of everything it calls: after an edit to `draws.py`, the kernels that
call its draws would load stale machine code from the cache and draw the old way, silently.
Every numba function of `viewkit.views` is therefore decorated from here, and its cache
entries are stamped with a hash of the package's sources (editing any of them costs one
recompile of the kernels, about 15 s).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba import cfunc, njit
from numba.core import caching

_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def source_stamp() -> str:
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _package_stamped(locator):
    """numba's `locator`, stamping this package's functions with `source_stamp()` and
    declining every other function (left to numba's own locators)."""

    class PackageStamped(locator):
        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve().parent != _PACKAGE:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return source_stamp()

    return PackageStamped


def _numba(name: str):
    return getattr(caching, name, None) or getattr(caching, "_" + name)  # numba < 0.60: "_" + name


# numba's own order: NUMBA_CACHE_DIR if set, beside the sources if writable, else per user.
_numba("CacheImpl")._locator_classes[:0] = [
    _package_stamped(_numba(name)) for name in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                                 "UserWideCacheLocator")]

kernel = functools.partial(njit, cache=True)  # @kernel: a cached nopython function


def entry_point(function, signature):
    """`function` compiled as a cached C callback of `signature` (numba's `cfunc`)."""
    return cfunc(signature, cache=True)(function)
