"""The view kernels compile once per install, a source edit anywhere in `viewkit.views`
recompiles them, and a step that compiles says so while it runs."""

import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import viewkit
from viewkit.progress import ticking

PACKAGE = Path(viewkit.__file__).parent


def _run(code: str, pythonpath: Path, **env) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                            cwd=pythonpath, env={**os.environ, "PYTHONPATH": str(pythonpath), **env})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_callee_edit_in_another_file_recompiles_its_cached_caller(tmp_path):
    # numba alone stamps a cache entry with the caller's file only, so the caller would keep
    # the callee's old code: here the edit of probe_b.py must reach probe_a.outer
    copy = tmp_path / "viewkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "views" / "probe_a.py").write_text(
        "from viewkit.views import probe_b\nfrom viewkit.views.compiled import kernel\n\n\n"
        "@kernel\ndef outer(x):\n    return probe_b.inner(x) * 10\n")
    probe_b = copy / "views" / "probe_b.py"
    probe_b.write_text("from viewkit.views.compiled import kernel\n\n\n@kernel\ndef inner(x):\n    return x + 1\n")
    probe = """
        from viewkit.views import probe_a
        assert probe_a.__file__.startswith(%r), probe_a.__file__
        print(probe_a.outer(1), sum(probe_a.outer.stats.cache_hits.values()))
    """ % str(tmp_path)
    assert _run(probe, tmp_path).split() == ["20", "0"]  # compiled
    assert _run(probe, tmp_path).split() == ["20", "1"]  # from the cache
    probe_b.write_text(probe_b.read_text().replace("x + 1", "x + 2"))
    assert _run(probe, tmp_path).split() == ["30", "0"]  # the edit, compiled anew


def test_entry_points_load_from_the_cache_in_a_new_process(tmp_path):
    probe = """
        from viewkit.views import entry_points, operations
        from viewkit.views.operators import KERNELS
        table = entry_points.kernel_source(KERNELS["view_table"], ())
        rois = entry_points.kernel_source(KERNELS["crop_rois"], (4,))
        family = entry_points.operations_source(operations.PAPERS, single=False)
        setup = entry_points.setup_source(KERNELS["view_table"].outputs)
        print(*(entry_points.compiled(source, setup, "probe")[0].cache_hits for source in (table, rois, family)))
    """
    cache = tmp_path / "numba-cache"
    assert _run(probe, PACKAGE.parent, NUMBA_CACHE_DIR=str(cache)).split() == ["0", "0", "0"]
    assert _run(probe, PACKAGE.parent, NUMBA_CACHE_DIR=str(cache)).split() == ["1", "1", "1"]


def test_ticking_is_silent_for_a_short_step_and_counts_seconds_for_a_long_one():
    quiet = io.StringIO()
    with ticking("short step", after=5.0, file=quiet):
        pass
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    with ticking("long step", after=0.05, every=0.05, file=shown):
        time.sleep(0.5)
    lines = shown.getvalue().replace("\r", "\n")
    assert "long step: 0 s" in lines and re.search(r"long step: done in \d+ s", lines), lines
    outer, inner = io.StringIO(), io.StringIO()
    with ticking("outer", after=0.0, every=0.05, file=outer):
        with ticking("inner", after=0.05, every=0.05, file=inner):
            time.sleep(0.3)
    assert "outer: done in" in outer.getvalue() and inner.getvalue() == ""  # one line ticks at a time
