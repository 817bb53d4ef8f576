"""Seconds from a new process to its first batch: the view kernels' cache empty against filled.

    python benchmarks/first_batch.py SHARDS [--recipes simclr logo regioncl heavy_multicrop]
                                     [--rounds 2] [--json docs/measurements/first-batch.jsonl]

Each run is a new Python process that imports viewkit, builds a ViewLoader's pipeline and
takes one batch. "empty" gives it a new NUMBA_CACHE_DIR, so it compiles the kernels it
needs: the first run after an install (before the entry points were cached, every process
compiled DALI's wrappers around them, a cost of the same order). "filled" reuses one
directory an earlier run filled: every run after. Sides alternate per recipe and round;
medians are printed with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROBE = """
import sys, time
started = time.perf_counter()
from viewkit import ViewLoader, recipes
imported = time.perf_counter()
loader = ViewLoader(sys.argv[1], recipes.get(sys.argv[2]), batch_size=8, device="cpu", rank=0, world_size=1,
                    build_ahead=False)
next(iter(loader))
print(imported - started, time.perf_counter() - imported)
"""


def one_run(shards: str, recipe: str, cache: str) -> tuple[float, float]:
    """(imports, pipeline build and first batch) seconds of one new process."""
    out = subprocess.run([sys.executable, "-c", PROBE, shards, recipe], capture_output=True, text=True, check=True,
                         env={**os.environ, "NUMBA_CACHE_DIR": cache}).stdout
    imports, first_batch = map(float, out.split()[-2:])
    return imports, first_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards")
    parser.add_argument("--recipes", nargs="+", default=["simclr", "logo", "regioncl", "heavy_multicrop"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="append one line per recipe to this .jsonl file")
    args = parser.parse_args()
    from viewkit.tools.bench_common import machine
    from viewkit.trainer.checkpoint import git_revision

    with tempfile.TemporaryDirectory() as scratch:
        filled = os.path.join(scratch, "filled")
        for recipe in args.recipes:
            one_run(args.shards, recipe, filled)  # fills the cache; not counted
            runs = {"empty": [], "filled": []}
            for round_ in range(args.rounds):
                runs["empty"].append(one_run(args.shards, recipe, os.path.join(scratch, f"empty-{recipe}-{round_}")))
                runs["filled"].append(one_run(args.shards, recipe, filled))
            empty = statistics.median(r[1] for r in runs["empty"])
            warm = statistics.median(r[1] for r in runs["filled"])
            imports = statistics.median(r[0] for r in runs["empty"] + runs["filled"])
            print(f"{recipe:16} imports {imports:5.1f} s   first batch: cache empty {empty:5.1f} s, "
                  f"filled {warm:5.1f} s   filled / empty {warm / empty:.3f}")
            if args.json:
                record = {"name": "first-batch", "date": time.strftime("%Y-%m-%d", time.gmtime()),
                          "git": git_revision(), "recipe": recipe,
                          "rounds": args.rounds, "imports_s": round(imports, 2), "first_batch_s_cache_empty":
                          round(empty, 2), "first_batch_s_cache_filled": round(warm, 2),
                          "machine": machine(),
                          "command": f"python benchmarks/first_batch.py SHARDS --recipes {recipe} "
                                     f"--rounds {args.rounds}"}
                with open(args.json, "a") as f:
                    f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
