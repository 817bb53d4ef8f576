"""numba's on-disk cache for the view kernels, invalidated by any change to this package.

numba stamps a cached function with its own source file only, and a cached function
carries the code of everything it calls: after an edit to `draws.py`, the kernels that
call its draws would load stale machine code from the cache and draw the old way, silently.
Every numba function of `viewkit.views` is therefore decorated from here, and its cache
entries are stamped with a hash of the package's sources (editing any of them costs one
recompile of the kernels, about 15 s). A kernel of yours (an operation's draw, declared
outside the package) is stamped with that hash and its own file's.

The kernels' DALI entry points are generated source (`viewkit.views.entry_points`): each is
written once to a file named by a hash of its text, of this package and of the files of
the operations it calls, in the kernel folder (NUMBA_CACHE_DIR/viewkit-kernels, else
~/.cache/viewkit/kernels), and cached by numba like any file's functions.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import tempfile
from pathlib import Path

from numba import cfunc, njit
from numba.core import caching

_PACKAGE = Path(__file__).resolve().parent
_FOREIGN: set = set()  # the Python functions of kernels declared outside the package


def inside_package(path) -> bool:
    return _PACKAGE in Path(path).resolve().parents


@functools.cache
def source_stamp() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in _PACKAGE.rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _package_stamped(locator):
    """numba's `locator`, stamping this package's functions with `source_stamp()`, kernels
    declared elsewhere with it and their own file's stamp, and declining every other
    function (left to numba's own locators)."""

    class PackageStamped(locator):
        @classmethod
        def from_function(cls, py_func, py_file):
            if not inside_package(py_file) and py_func not in _FOREIGN:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return source_stamp() if inside_package(self._py_file) else (source_stamp(), super().get_source_stamp())

    return PackageStamped


def _numba(name: str):
    return getattr(caching, name, None) or getattr(caching, "_" + name)  # numba < 0.60: "_" + name


# numba's own order: NUMBA_CACHE_DIR if set, beside the sources if writable, else per user.
_numba("CacheImpl")._locator_classes[:0] = [
    _package_stamped(_numba(name)) for name in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                                 "UserWideCacheLocator")]

def kernel(function):
    """@kernel: a cached nopython function."""
    if not inside_package(inspect.getfile(function)):
        _FOREIGN.add(function)
    return njit(cache=True)(function)


def entry_point(function, signature):
    """`function` compiled as a cached C callback of `signature` (numba's `cfunc`)."""
    return cfunc(signature, cache=True)(function)


def kernel_folder() -> Path:
    root = os.environ.get("NUMBA_CACHE_DIR")
    if root:
        return Path(root) / "viewkit-kernels"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "viewkit" / "kernels"


def generated(source: str, name: str, depends: tuple[str, ...] = ()):
    """`source` imported as a module from the kernel folder, its file named by a hash of the
    source, of this package and of the files `depends` (those of operations it imports)."""
    digest = hashlib.sha256(source.encode() + source_stamp().encode())
    for path in depends:
        digest.update(Path(path).read_bytes())
    module_name = f"viewkit_kernel_{name}_{digest.hexdigest()[:20]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    folder = kernel_folder()
    path = folder / f"{module_name}.py"
    if not path.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
                f.write(source)
            try:  # a link never replaces a file another process wrote: its mtime is numba's stamp
                os.link(f.name, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(f.name)
        except OSError as e:
            raise OSError(f"{folder}: cannot write the view kernels' entry points ({e.strerror}); "
                          "set NUMBA_CACHE_DIR to a writable folder") from None
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
