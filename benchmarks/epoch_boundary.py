"""The wait at an epoch boundary: the next epoch's pipeline built ahead against built on demand.

    python benchmarks/epoch_boundary.py SHARDS [--recipe moco_v2] [--size 64] [--batch-size 50]
                                        [--epochs 6] [--rounds 2] [--device cpu|gpu] [--threads N]

Each side runs --epochs short epochs, interleaved (A B A B); prints the mean wait for each
epoch's first batch (epoch 0 left out: it pays the imports) and the median of the other
batches, and the ratio of the first-batch waits. The ViewLoader rebuilds its DALI pipeline
once per epoch; on a small dataset (Imagenette, ImageNet-100) that boundary recurs often.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from viewkit import ViewLoader, recipes


def one_side(args, build_ahead: bool) -> tuple[float, float]:
    recipe = recipes.get(args.recipe, global_size=args.size)
    loader = ViewLoader(args.shards, recipe, args.batch_size, device=args.device, threads=args.threads, rank=0,
                        world_size=1, build_ahead=build_ahead)
    firsts, others = [], []
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        waits, ready = [], time.perf_counter()
        for _ in loader:
            now = time.perf_counter()
            waits.append(now - ready)
            ready = now
        if epoch:
            firsts.append(waits[0])
            others += waits[1:]
    return statistics.mean(firsts), statistics.median(others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards")
    parser.add_argument("--recipe", default="moco_v2")
    parser.add_argument("--size", type=int, default=64, help="global view size")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", help="append the figures as one line to this .jsonl file")
    args = parser.parse_args()
    results = {True: [], False: []}
    for _ in range(args.rounds):
        for build_ahead in (True, False):
            results[build_ahead].append(one_side(args, build_ahead))
    for build_ahead, runs in results.items():
        first = statistics.median(r[0] for r in runs)
        other = statistics.median(r[1] for r in runs)
        print(f"build_ahead={build_ahead!s:5}  first batch of an epoch {first * 1e3:7.1f} ms  "
              f"other batches {other * 1e3:7.1f} ms")
    ahead = statistics.median(r[0] for r in results[True])
    on_demand = statistics.median(r[0] for r in results[False])
    print(f"epoch-boundary wait, built ahead / on demand: {ahead / on_demand:.2f}")
    if args.json:
        other = statistics.median(r[1] for r in results[True])
        record = {"name": "epoch-boundary", "date": time.strftime("%Y-%m-%d", time.gmtime()),
                  "command": "python benchmarks/epoch_boundary.py " + " ".join(
                      f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("shards", "json")),
                  "first_batch_ms_built_ahead": ahead * 1e3, "first_batch_ms_on_demand": on_demand * 1e3,
                  "other_batch_ms": other * 1e3, "boundary_extra_ms": (ahead - other) * 1e3}
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
