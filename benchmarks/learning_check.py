"""Evidence of learning on real data, kept as data: short CPU pretraining, then kNN and a
linear probe, against the same network at random init over several seeds.

    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/train --split train --shard-samples 500
    viewkit shard imagenet ../shared/data/imagenette-subset SHARDS/val --split val --shard-samples 250
    # pretrain and evaluate, one JSON line per run appended to docs/measurements/learning.jsonl:
    python benchmarks/learning_check.py --shards SHARDS --runs runs/check --methods moco_v2 byol --seeds 0 1
    # the random-init baseline of each architecture and resolution, one line per seed:
    python benchmarks/learning_check.py --shards SHARDS --baseline --seeds 0 1 2 [--schedule long32]
    # 60 epochs at 32 px (a step costs about 2.5 times less than at 64 px):
    python benchmarks/learning_check.py --shards SHARDS --runs runs/long --schedule long32 --methods sgcl
    # runs cut off by a time limit go on from their last checkpoint (the same arguments again):
    python benchmarks/learning_check.py ... --resume
    # the results page, from the JSON lines alone:
    python benchmarks/learning_check.py --report [--check]

A run is `viewkit train cpu/<method>` with the schedule's overrides, `seed=S`
and any `--set key=value`, then `viewkit eval knn` (k 200, T 0.07) and `viewkit eval linear`
of its last checkpoint at the schedule's resolution. The report groups runs by method,
settings and schedule: mean and spread over seeds, the baseline, and the verdict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ROOT / "docs" / "measurements" / "learning.jsonl"
PAGE = ROOT / "docs" / "results.md"
BAR = 0.04  # the lead over random init a method must show (about two standard errors of one run on 500 images)
VAL_IMAGES = 500

# The CPU configs as written (64 px, 10 epochs), or 60 epochs at 32 px. At 32 px every size
# in the recipe halves with the views: the blur sigma, LoGo's local crops, RegionCL's swap
# grid (one 16 px cell of the 2 x 2 grid, one position of the stride-16 map), SGCL's crops.
_VIEWS_32 = ["recipe_overrides.global_size=32", "recipe_overrides.augment_blur_sigma=[0.014,0.29]"]
SCHEDULES = {  # overrides for every method, and the view overrides by the method's recipe (default: "views")
    "short64": {"resolution": 64, "all": [], "views": [], "by_recipe": {}},
    "long32": {
        "resolution": 32,
        "all": ["epochs=60"],
        "views": _VIEWS_32,
        "by_recipe": {
            "leoclr": _VIEWS_32 + ["recipe_overrides.original_size=32"],
            "logo": _VIEWS_32 + ["recipe_overrides.local_size=16"],
            "regioncl": _VIEWS_32 + ["recipe_overrides.swap_grid=16", "recipe_overrides.swap_cells=[1]"],
            "sgcl": ["recipe_overrides.saliency_size=24", "recipe_overrides.augment_blur_sigma=[0.025,0.5]"],
        },
    },
}
METHODS = ["moco_v2", "byol", "simsiam", "simclr", "leoclr", "scd_moco", "scd_byol", "logo_moco", "logo_simsiam",
           "regioncl", "regioncl_simsiam", "sgcl"]


def viewkit(*args: str, threads: int = 0) -> str:
    env = os.environ | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    result = subprocess.run([sys.executable, "-m", "viewkit.tools.cli", *args], capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"viewkit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def evaluate(protocol: str, network: list[str], shards: Path, resolution: int, threads: int, device: str) -> float:
    out = viewkit("eval", protocol, *network, "--train", str(shards / "train"), "--val", str(shards / "val"),
                  "--resolution", str(resolution), "--device", device, "--threads", str(threads), threads=threads)
    return float(re.findall(rf"{protocol}_top1=([0-9.]+)", out)[-1])


def stamp(args: argparse.Namespace) -> dict:
    from viewkit.tools.bench_common import machine
    from viewkit.trainer.checkpoint import git_revision

    return {"date": time.strftime("%Y-%m-%d", time.gmtime()), "git": git_revision(), "schedule": args.schedule,
            "resolution": SCHEDULES[args.schedule]["resolution"], "threads": args.threads, "device": args.device,
            "val_images": VAL_IMAGES, "machine": machine()}


def append(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}), flush=True)


def train_and_evaluate(args: argparse.Namespace, method: str, seed: int) -> dict:
    from viewkit.trainer.config import load_config

    schedule = SCHEDULES[args.schedule]
    from viewkit.trainer.config import find_config

    config = find_config(f"cpu/{method}")
    recipe = load_config(config).recipe_name
    overrides = schedule["all"] + schedule["by_recipe"].get(recipe, schedule["views"]) + [f"seed={seed}"]
    overrides += [f"threads={args.threads}", f"device={args.device}", *args.set]
    run = args.runs / f"{method}-seed{seed}"
    resumed = args.resume and (run / "checkpoint-last.pt").exists()
    started = time.perf_counter()
    viewkit("train", str(config), "--data", str(args.shards / "train"), "--out", str(run), "--quiet", *overrides,
            *["--resume"] * resumed, threads=args.threads)
    minutes = (time.perf_counter() - started) / 60
    settings = yaml.safe_load((run / "config.yaml").read_text())
    scores = {protocol: evaluate(protocol, ["--checkpoint", str(run / "checkpoint-last.pt")], args.shards,
                                 schedule["resolution"], args.threads, args.device) for protocol in ("knn", "linear")}
    steps = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1]).get("step")
    return {"kind": "trained", "method": method, "settings": " ".join(args.set), "seed": seed,
            "config": f"configs/cpu/{method}.yaml", "config_sha": hashlib.sha256(config.read_bytes()).hexdigest()[:12],
            "arch": settings["arch"], "epochs": settings["epochs"], "steps": steps, "minutes": round(minutes, 1),
            "minutes_note": "resumed: this call's minutes only" if resumed else "", **scores}


def baseline(args: argparse.Namespace, arch: str, seed: int) -> dict:
    resolution = SCHEDULES[args.schedule]["resolution"]
    network = ["--random-init", "--arch", arch, "--seed", str(seed)]
    scores = {protocol: evaluate(protocol, network, args.shards, resolution, args.threads, args.device)
              for protocol in ("knn", "linear")}
    return {"kind": "random-init", "arch": arch, "seed": seed, **scores}


# --- the report ---------------------------------------------------------------------------

def records(path: Path = MEASUREMENTS) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def standard_error(values: list[float]) -> float:
    """Of the mean: the spread over seeds where there are two or more, else the binomial
    error of one accuracy on the validation images."""
    mean, sd = _mean_sd(values)
    if sd is not None:
        return sd / len(values) ** 0.5
    return (mean * (1 - mean) / VAL_IMAGES) ** 0.5


def verdict(trained: list[float], untrained: list[float]) -> tuple[float, bool]:
    """(lead of the means, whether it passes): a lead of at least BAR and of two standard
    errors of the difference."""
    lead = statistics.fmean(trained) - statistics.fmean(untrained)
    error = (standard_error(trained) ** 2 + standard_error(untrained) ** 2) ** 0.5
    return lead, lead >= BAR - 1e-9 and lead >= 2 * error  # accuracies are kept to 3 decimals


def _cell(values: list[float]) -> str:
    mean, sd = _mean_sd(values)
    return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def render(lines: list[dict]) -> str:
    """The page from the lines; lines marked `superseded` (runs of code or configs replaced
    since) stay in the file and leave the page, counted in one sentence."""
    bases: dict[tuple, list[dict]] = {}
    groups: dict[tuple, list[dict]] = {}
    hidden = [r for r in lines if r.get("superseded")]
    for r in (r for r in lines if not r.get("superseded")):
        if r["kind"] == "random-init":
            bases.setdefault((r["arch"], r["resolution"], r["device"]), []).append(r)
        elif r["kind"] == "trained":
            key = (r["method"], r["settings"], r["schedule"], r["epochs"], r["device"], r["arch"], r["resolution"])
            groups.setdefault(key, []).append(r)
    out = [
        "# Evidence of learning (CPU, Imagenette subset)",
        "",
        "Rendered by `python benchmarks/learning_check.py --report` from `docs/measurements/learning.jsonl`; do not edit.",
        "",
        "Short pretraining on the real Imagenette subset (10 ImageNet classes, 2,600 train and 500 val images, "
        "`../shared/data/imagenette-subset`) with the CPU configs of `viewkit/configs/cpu/`.",
        "The schedules: `short64` is the configs as written (ResNet-18 without the stem max-pool, 64 px views, "
        "10 epochs at batch 64, 400 steps); `long32` is 60 epochs with every size of the views halved (32 px).",
        "Both readouts use whole-image features at the schedule's resolution: weighted kNN (k 200, T 0.07) and a "
        "linear probe (100 epochs of SGD on frozen features).",
        f"A method passes a readout when its mean over its runs leads the random-init mean by {BAR:.2f} and by two "
        "standard errors of the difference (over seeds where there are two or more runs, else the binomial error "
        f"of one accuracy on {VAL_IMAGES} images).",
        "Minutes are upper bounds: runs shared the 2-core machine with others; `≈` marks runs resumed after a "
        "session's end, whose minutes add up the parts.",
        "Rows transcribed from the page's earlier prose keep their option text in `settings` and a date range.",
        f"{len(hidden)} runs of code or configs replaced since are left out; their lines stay in the file, each "
        "with `superseded` saying what replaced it.",
        "",
        "```bash",
        "python benchmarks/learning_check.py --shards SHARDS --runs RUNS --methods METHOD --seeds 0 1 "
        "[--schedule long32] [--set key=value ...]",
        "python benchmarks/learning_check.py --shards SHARDS --baseline --seeds 0 1 2 [--schedule long32]",
        "```",
        "",
        "## Random init",
        "",
        "| arch | px | device | seeds | kNN top-1 | linear top-1 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (arch, resolution, device), runs in sorted(bases.items()):
        seeds = ", ".join(str(r["seed"]) for r in runs)
        out.append(f"| {arch} | {resolution} | {device} | {seeds} | {_cell([r['knn'] for r in runs])} | "
                   f"{_cell([r['linear'] for r in runs])} |")
    out += ["", "## Pretrained", "",
            "| method | settings | schedule | epochs | device | seeds | minutes | kNN top-1 | kNN lead | "
            "linear top-1 | linear lead | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key in sorted(groups, key=lambda k: (list(SCHEDULES).index(k[2]), k[0], k[3], k[1])):
        method, settings, schedule, epochs, device, arch, resolution = key
        runs = groups[key]
        base = bases.get((arch, resolution, device)) or bases.get((arch, resolution, "cpu"))
        cells, passes = [], []
        for protocol in ("knn", "linear"):
            values = [r[protocol] for r in runs]
            cells.append(_cell(values))
            if base:
                lead, ok = verdict(values, [b[protocol] for b in base])
                cells.append(f"{lead:+.3f}" + (" ✓" if ok else ""))
                passes.append(ok)
            else:
                cells.append("no baseline")
        minutes = ", ".join(("≈" if r.get("minutes_note") else "") + f"{r['minutes']:g}" for r in runs)
        seeds = ", ".join(str(r["seed"]) for r in runs)
        ruling = ("learns on both" if all(passes) else "learns on " + ["kNN", "linear"][passes.index(True)]
                  if any(passes) else "no lead") if passes else "-"
        out.append(f"| {method} | {settings or '-'} | {schedule} | {epochs} | {device} | {seeds} | {minutes} | "
                   f"{' | '.join(cells)} | {ruling} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=Path)
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="short64")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--baseline", action="store_true", help="random-init networks of the configs' architectures")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--resume", action="store_true", help="continue runs from their last checkpoint")
    parser.add_argument("--json", type=Path, default=MEASUREMENTS, help="where the JSON lines go")
    parser.add_argument("--report", action="store_true", help="render docs/results.md from the JSON lines")
    parser.add_argument("--check", action="store_true", help="with --report: exit 1 if the page is stale")
    args = parser.parse_args()
    if args.report:
        page = render(records(args.json))
        if args.check:
            return int(PAGE.read_text() != page)
        PAGE.write_text(page)
        return 0
    if args.shards is None or (args.runs is None and not args.baseline):
        parser.error("give --shards, and --runs or --baseline (or --report)")
    from viewkit.trainer.config import load_config

    if args.baseline:
        architectures = sorted({load_config(f"cpu/{m}").arch for m in args.methods})
        for arch in architectures:
            for seed in args.seeds:
                append(args.json, stamp(args) | baseline(args, arch, seed))
        return 0
    for method in args.methods:
        for seed in args.seeds:
            append(args.json, stamp(args) | train_and_evaluate(args, method, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
