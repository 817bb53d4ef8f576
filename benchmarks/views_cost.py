"""What the view graph costs, this tree against a git revision, in the same run: CPU and
GPU operators of each preset's GPU graph, its host stage (`viewkit bench --graph`), and a
first process's wait for the view kernels (numba compiling them into an empty cache)
against a later process's (loading them).

    python benchmarks/views_cost.py --baseline REV [--presets ...] [--rounds 2] \\
        [--json docs/measurements/views-cost.jsonl]

REV is checked out into a temporary folder (`git archive`); each tree runs in its own
processes with its own empty numba cache, the trees alternating round by round. The
shards are the embedded dataset, written once by this tree; a host stage is timed over one
epoch's batches but four, three times in its process (`viewkit bench --graph --rounds 3`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ["moco_v2", "byol", "dino_multicrop", "leoclr", "logo", "sgcl", "regioncl", "heavy_multicrop"]

GRAPH = """
import json, sys
from types import SimpleNamespace
from viewkit.tools.bench_graph import bench_graph
args = SimpleNamespace(recipe=sys.argv[2], shards=sys.argv[1], batch_size=int(sys.argv[3]), device="gpu", workers=2,
                       batches=int(sys.argv[4]), warmup=2, rounds=3)
r = bench_graph(args)
print(json.dumps({k: r[k] for k in ("cpu", "gpu", "mixed", "host_core_ms_per_sample", "floor_core_ms_per_sample")}))
"""

FIRST_VIEWS = """
import sys, time
import numpy as np
started = time.perf_counter()
from viewkit.views import recipes
from viewkit.views.memory import views_of_images
image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
for name in sys.argv[1:]:
    recipe = recipes.get(name)
    side = {}
    if recipe.saliency is not None:
        k = recipe.saliency.max_regions
        side = dict(regions=[np.zeros((k, 4), np.float32)] * 2, region_scores=[np.zeros(k, np.float32)] * 2)
    views_of_images([image, image], recipe, **side)
print(time.perf_counter() - started)
"""


def _run(code: str, tree: Path, *args: str, cache: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=tree)
    if result.returncode:
        raise SystemExit(f"{tree}: {result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=2048, help="embedded images sharded for the host stage")
    parser.add_argument("--batch-size", type=int, default=64, help="host stage batch (an epoch's batches are timed)")
    parser.add_argument("--json", help="append the result as a JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        baseline = tmp / "baseline"
        baseline.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline, "viewkit"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        trees = {"baseline": baseline, "this": ROOT}
        sys.path.insert(0, str(ROOT))
        from viewkit.datasets.embedded import write_embedded_dataset
        from viewkit.shards import sources
        from viewkit.shards.writer import ShardOptions, write_dataset

        source = write_embedded_dataset(tmp / "source", num_images=args.images)
        shards = tmp / "shards"
        write_dataset(sources.folder_items(source["images"]), shards, split="train",
                      options=ShardOptions(shard_samples=256, workers=1), progress=False)
        result = {side: {"compile_s": [], "cached_s": [], "graph": {}} for side in trees}
        for round_ in range(args.rounds):
            for side, tree in trees.items():
                cache = tmp / f"cache-{side}-{round_}"
                result[side]["compile_s"].append(float(_run(FIRST_VIEWS, tree, *args.presets, cache=cache)))
                result[side]["cached_s"].append(float(_run(FIRST_VIEWS, tree, *args.presets, cache=cache)))
                for name in args.presets:
                    graph = json.loads(_run(GRAPH, tree, str(shards), name, str(args.batch_size),
                                            str(args.images // args.batch_size - 4), cache=cache))
                    result[side]["graph"].setdefault(name, []).append(graph)
    line = {"name": "views-cost", "date": time.strftime("%Y-%m-%d"), "git": _git("rev-parse", "HEAD"),
            "dirty": bool(_git("status", "--porcelain", "viewkit")), "baseline": _git("rev-parse", args.baseline),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "presets": args.presets,
            "rounds": args.rounds, "images": args.images, "batch_size": args.batch_size}
    print(f"{'':16} {'CPU ops':>9} {'GPU ops':>9} {'host core-ms/sample':>22}   (baseline -> this)")
    for name in args.presets:
        row = {}
        for side in trees:
            runs = result[side]["graph"][name]
            row[side] = {"cpu": runs[0]["cpu"], "gpu": runs[0]["gpu"],
                         "host_core_ms_per_sample": statistics.median(r["host_core_ms_per_sample"] for r in runs)}
        b, t = row["baseline"], row["this"]
        line.setdefault("graphs", {})[name] = {**{f"{k}_baseline": v for k, v in b.items()},
                                               **{f"{k}_this": v for k, v in t.items()},
                                               "host_ratio": t["host_core_ms_per_sample"] / b["host_core_ms_per_sample"]}
        print(f"{name:16} {b['cpu']:>4} -> {t['cpu']:<3} {b['gpu']:>4} -> {t['gpu']:<3} "
              f"{b['host_core_ms_per_sample']:>9.3f} -> {t['host_core_ms_per_sample']:.3f} "
              f"({line['graphs'][name]['host_ratio']:.2f})")
    ratios = [g["host_ratio"] for g in line["graphs"].values()]
    line["host_ratio_geomean"] = statistics.geometric_mean(ratios)
    print(f"host stage, geometric mean of the ratios: {line['host_ratio_geomean']:.2f}")
    for key in ("compile_s", "cached_s"):
        b, t = (statistics.median(result[side][key]) for side in trees)
        line[f"{key}_baseline"], line[f"{key}_this"], line[f"{key}_ratio"] = b, t, t / b
        print(f"{key:10} all presets, one process: {b:.1f} s -> {t:.1f} s ({t / b:.2f})")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
