"""Renders docs/benchmarks.md from the measurement lines in docs/measurements/*.jsonl.

    python benchmarks/render_measurements.py [--check]

Every figure on the page comes from a JSON line a benchmark appended (`viewkit bench ...
--json docs/measurements/NAME.jsonl`, `benchmarks/checksum_cost.py`); the page is never
edited by hand. `--check` exits 1 when the page is not what the lines render to.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ROOT / "docs" / "measurements"
PAGE = ROOT / "docs" / "benchmarks.md"


def _lines(pattern: str) -> list[tuple[str, dict]]:
    """(file name, record) of every line, but those marked `superseded` (they stay in the file)."""
    found = []
    for path in sorted(MEASUREMENTS.glob(pattern)):
        found += [(path.name, record) for record in (json.loads(line) for line in path.read_text().splitlines()
                                                      if line.strip()) if not record.get("superseded")]
    return found


def _machine(record: dict) -> str:
    machine = record.get("machine", {})
    gpu = f", {machine['gpu']}" if machine.get("gpu") else ""
    return f"{machine.get('cores', '?')} cores{gpu}"


def _header(line: str) -> list[str]:
    """A table's header line and its separator."""
    return [line, "|" + " --- |" * (line.count("|") - 1)]


def graph_rows() -> list[str]:
    rows = _header("| file | date | git | recipe | graph | CPU ops | GPU ops | host stage core-ms/sample | "
                   "floor (reader + shapes) | parameters | batch, threads | machine |")
    for name, r in _lines("*.jsonl"):
        if r.get("name") == "graph":
            rows.append(f"| {name} | {r.get('date', '-')} | {r.get('git') or '-'} | `{r['recipe']}` | {r['device']} | {r['cpu']} | {r['gpu']} | "
                        f"{r['host_core_ms_per_sample']:.3f} | {r['floor_core_ms_per_sample']:.3f} | "
                        f"{r['parameters_core_ms_per_sample']:.3f} | {r['batch_size']}, {r['threads']} | {_machine(r)} |")
    return rows


def view_rows() -> list[str]:
    rows = _header("| file | date | git | recipe | device | workers | batch | viewkit samples/s | "
                   "baseline samples/s | ratio | baseline blur | machine |")
    for name, r in _lines("*.jsonl"):
        if "summary" in r and "viewkit" in r["summary"]:
            baseline = r["summary"].get("baseline", {}).get("samples_per_s")
            ratio = r["summary"].get("ratio_samples_per_s")
            rows.append(f"| {name} | {r.get('date', '-')} | {(r.get('git') or '-')[:40]} | `{r['recipe']}` | {r['device']} | {r['workers']} | {r['batch_size']} | "
                        f"{r['summary']['viewkit']['samples_per_s']:.1f} | "
                        f"{'-' if baseline is None else f'{baseline:.1f}'} | {'-' if ratio is None else f'{ratio:.2f}'} | "
                        f"{r.get('baseline_blur', '-')} | {_machine(r)} |")
    return rows


def stall_rows() -> list[str]:
    rows = _header("| file | method | device | batch | data stall | real data / in-memory ceiling | machine |")
    for name, r in _lines("*.jsonl"):
        if "stall" in r and "train" in r:
            rows.append(f"| {name} | {r['train']} | {r['device']} | {r['batch_size']} | {r['stall']:.1%} | "
                        f"{r['ratio_to_ceiling']:.2f} | {_machine(r)} |")
    return rows


def checksum_rows() -> list[str]:
    rows = _header("| file | shards | MB | hash MB/s | share of a first epoch | ImageNet (140 GB) seconds | command |")
    for name, r in _lines("checksum-cost*.jsonl"):
        rows.append(f"| {name} | {r['shards']} | {r['bytes'] / 1e6:.0f} | {r['hash_mb_per_s']:.0f} | "
                    f"{r['hash_share_of_first_epoch']:.1%} | {r['imagenet_140gb_hash_seconds']:.0f} | `{r['command']}` |")
    return rows


def boundary_rows() -> list[str]:
    rows = _header("| file | date | first batch, built ahead (ms) | on demand (ms) | other batches (ms) | "
                   "extra at the boundary (ms) | command |")
    for name, r in _lines("epoch-boundary*.jsonl"):
        rows.append(f"| {name} | {r['date']} | {r['first_batch_ms_built_ahead']:.0f} | {r['first_batch_ms_on_demand']:.0f} | "
                    f"{r['other_batch_ms']:.0f} | {r['boundary_extra_ms']:.0f} | `{r['command']}` |")
    return rows


def saliency_rows() -> list[str]:
    rows = _header("| file | arch | device | px | images | images/s | overlap speed-up | regions per image | machine |")
    for name, r in _lines("*.jsonl"):
        if r.get("saliency") is True:
            rows.append(f"| {name} | {r['arch']} | {r['device']} | {r['resolution']} | {r['images']} | "
                        f"{r['images_per_s']:.0f} | {r['overlap_speedup']:.2f} | {r['mean_regions']:.2f} | {_machine(r)} |")
    return rows


def saliency_rank_rows() -> list[str]:
    rows = _header("| file | date | arch | px | images | cores | 1 process (s) | 2 processes (s) | speed-up | "
                   "same counts | largest score difference |")
    for name, r in _lines("*.jsonl"):
        if r.get("name") == "saliency-ranks":
            rows.append(f"| {name} | {r['date']} | {r['arch']} | {r['resolution']} | {r['images']} | {r['cores']} | "
                        f"{r['seconds']['1']:.1f} | {r['seconds']['2']:.1f} | {r['speedup_2_over_1']:.2f} | "
                        f"{r['same_counts']} | {r['max_score_difference']:.1e} |")
    return rows


def gpu_learning_rows() -> list[str]:
    rows = _header("| file | method | schedule | epochs | minutes | kNN top-1 | random-init kNN | linear top-1 | "
                   "random-init linear | runs side by side |")
    for name, r in _lines("*.jsonl"):
        if r.get("stage") == "learning":
            rows.append(f"| {name} | {r['method']} | {r['schedule']} | {r['epochs']} | {r['minutes']} | "
                        f"{r['knn_top1']:.3f} | {r['random_init_knn_top1']:.3f} | {r['linear_top1']:.3f} | "
                        f"{r['random_init_linear_top1']:.3f} | {r['side_by_side_runs']} |")
    return rows


def engine_rows() -> list[str]:
    rows = _header("| file | date | git | inputs | workers | local inputs/s | Ray inputs/s | Ray / local time | "
                   "Ray start (s) | same bytes | ImageNet-21k hours, CPU only, on 1 / 4 / 16 nodes of 16 cores | "
                   "command |")
    for name, r in _lines("*.jsonl"):
        if r.get("name") == "shard-engines":
            hours = r["imagenet21k_hours_by_nodes_of_16_cores"]
            rows.append(f"| {name} | {r['date']} | {(r.get('git') or '-')[:7]} | {r['inputs']} | {r['workers']} | "
                        f"{r['local_inputs_per_s']:.0f} | "
                        f"{r['ray_inputs_per_s']:.0f} | {r['ray_over_local']:.2f} | {r['ray_start_seconds']:.1f} | "
                        f"{r['identical_bytes']} | {hours['1']:.2f} / {hours['4']:.2f} / {hours['16']:.3f} | `{r['command']}` |")
    return rows


def demo_rows() -> list[str]:
    rows = _header("| file | date | git | seed | scenes (held out) | epochs | threads | pretrained kNN | "
                   "random-init kNN | lead | seconds | MB | kernel cache | machine | what else ran |")
    for name, r in _lines("*.jsonl"):
        if r.get("name") == "demo":
            rows.append(f"| {name} | {r['date']} | {r['git'][:12]} | {r['seed']} | {r['images']} ({r['held_out']}) | "
                        f"{r['epochs']} | {r['threads'] or 'all'} | "
                        f"{r['knn_trained']:.3f} | {r['knn_random']:.3f} | {100 * r['lead']:+.1f} | {r['seconds']:.0f} | "
                        f"{r['megabytes']:.0f} | {r.get('numba_cache', '-')} | {_machine(r)} | {r['note'] or 'nothing'} |")
    return rows


def first_batch_rows() -> list[str]:
    rows = _header("| file | date | recipe | imports (s) | first batch, cache empty (s) | cache filled (s) | "
                   "filled / empty | machine | command |")
    for name, r in _lines("first-batch*.jsonl"):
        rows.append(f"| {name} | {r['date']} | {r['recipe']} | {r['imports_s']:.1f} | {r['first_batch_s_cache_empty']:.1f} "
                    f"| {r['first_batch_s_cache_filled']:.1f} | "
                    f"{r['first_batch_s_cache_filled'] / r['first_batch_s_cache_empty']:.3f} | {_machine(r)} | "
                    f"`{r['command']}` |")
    return rows


def rank_memory_rows() -> list[str]:
    rows = _header("| file | date | git | samples | world | build, part files (ms) | build, every shard (ms) | "
                   "time ratio | memory growth, part files (MB) | every shard (MB) | memory ratio | machine |")
    for name, r in _lines("*.jsonl"):
        if r.get("name") == "rank-memory":
            for row in r["rows"]:
                part, whole = row["part"], row["every_shard"]
                rows.append(f"| {name} | {r['date']} | {(r.get('git') or '-')[:7]} | {row['samples']} | {row['world']} | "
                            f"{part['build_s'] * 1e3:.0f} | {whole['build_s'] * 1e3:.0f} | {row['build_ratio']:.2f} | "
                            f"{part['rss_growth_mb']:.1f} | {whole['rss_growth_mb']:.1f} | {row['memory_ratio']:.2f} | "
                            f"{_machine(r)} |")
    return rows


def _mb(value) -> str:
    return "-" if value is None else f"{value / 1e6:.0f}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def object_storage_rows() -> list[str]:
    rows = _header("| file | date | git | shards (MB) | warm cache samples/s | local disk samples/s | warm / local | "
                   "cold fetch MB/s | plain GET MB/s (to memory, to files) | cold / GET (memory, files) | requests a shard | budget MB | peak MB | "
                   "fetched MB per epoch | machine | command |")
    for name, r in _lines("*.jsonl"):
        if r.get("name") == "object-storage":
            rows.append(f"| {name} | {r['date']} | {(r.get('git') or '-')[:7]} | {r['shards']} ({r['dataset_bytes'] / 1e6:.0f}) | "
                        f"{r['warm_samples_per_s']:.0f} | {r['local_samples_per_s']:.0f} | {r['warm_over_local']:.3f} | "
                        f"{r['cold_fetch_bytes_per_s'] / 1e6:.0f} | {r['plain_get_bytes_per_s'] / 1e6:.0f}, "
                        f"{_mb(r.get('plain_get_to_disk_bytes_per_s'))} | {r['cold_over_plain_get']:.2f}, "
                        f"{_ratio(r.get('cold_over_plain_get_to_disk'))} | {r['requests_per_shard']:.2f} | {r['budget_bytes'] / 1e6:.1f} | "
                        f"{r['peak_cache_bytes'] / 1e6:.1f} | "
                        f"{', '.join(f'{b / 1e6:.1f}' for b in r['fetched_bytes_per_epoch'])} | {_machine(r)} | "
                        f"`{r['command']}` |")
    return rows


def views_cost_rows() -> list[str]:
    rows = _header("| file | date | git | baseline | recipe | CPU ops | GPU ops | host stage core-ms/sample | "
                   "host ratio | machine |")
    for name, r in _lines("*.jsonl"):
        if r.get("name") == "views-cost":
            for recipe, g in r["graphs"].items():
                rows.append(f"| {name} | {r['date']} | {r['git'][:7]}{' (dirty)' if r.get('dirty') else ''} | "
                            f"{r['baseline'][:7]} | `{recipe}` | {g['cpu_baseline']} -> {g['cpu_this']} | "
                            f"{g['gpu_baseline']} -> {g['gpu_this']} | {g['host_core_ms_per_sample_baseline']:.3f} -> "
                            f"{g['host_core_ms_per_sample_this']:.3f} | {g['host_ratio']:.2f} | {r['cores']} cores |")
            if "host_ratio_geomean" in r:
                rows.append(f"| {name} | {r['date']} | {r['git'][:7]} | {r['baseline'][:7]} | every recipe above: "
                            f"geometric mean of the host ratios (batch {r['batch_size']}) | | | | "
                            f"{r['host_ratio_geomean']:.2f} | {r['cores']} cores |")
            rows.append(f"| {name} | {r['date']} | {r['git'][:7]} | {r['baseline'][:7]} | every recipe above, one "
                        f"process: kernels compiled {r['compile_s_baseline']:.1f} -> {r['compile_s_this']:.1f} s "
                        f"({r['compile_s_ratio']:.2f}), loaded {r['cached_s_baseline']:.1f} -> "
                        f"{r['cached_s_this']:.1f} s ({r['cached_s_ratio']:.2f}) | | | | | {r['cores']} cores |")
    return rows


def render() -> str:
    parts = [
        "# Benchmarks",
        "",
        "Rendered by `python benchmarks/render_measurements.py` from `docs/measurements/*.jsonl`; do not edit.",
        "Each row is one JSON line; the file name says where and when it was measured.",
        "",
        "## The demo",
        "",
        "`python benchmarks/demo_check.py --seeds S...`: `viewkit demo` as a user runs it, per seed: kNN top-1 "
        "(k 200) on the held-out scenes of the pretrained and the random-init ResNet-18, the lead in points, "
        "the demo's wall time and disk use. Times compare only between runs with nothing else on the machine. "
        "Kernel cache \"empty\": the run compiled the view kernels, as the first run after an install does "
        "(runs before that column compiled DALI's wrappers around them in every process).",
        "",
        *demo_rows(),
        "",
        "## View graph: operators and host stage",
        "",
        "`viewkit bench SHARDS --recipe R --device gpu --graph --json docs/measurements/graph.jsonl`: the loader's "
        "pipeline defined for the GPU (no GPU needed), its operators by device, and its CPU part timed on this CPU "
        "beside the reader + shapes floor of the same run.",
        "",
        *graph_rows(),
        "",
        "## Views: viewkit against the torchvision baseline",
        "",
        "`viewkit bench SHARDS --recipe R [--device gpu] --json docs/measurements/NAME.jsonl`: both sides "
        "interleaved with the same CPU workers, medians of the rounds.",
        "",
        *view_rows(),
        "",
        "## Trainer data stall",
        "",
        "`viewkit bench SHARDS --train METHOD --json ...`: time waiting for data over step time, real loader against "
        "one batch held in memory.",
        "",
        *stall_rows(),
        "",
        "## Saliency refresh (SGCL step 1)",
        "",
        "`viewkit bench SHARDS --saliency --arch A --resolution R --json ...`: a refresh with the CPU labelling "
        "overlapped with the next batch's features, against the same work in sequence.",
        "",
        *saliency_rows(),
        "",
        "`python benchmarks/saliency_ranks.py SHARDS --cores 2`: the refresh under torchrun on 1 and on 2 processes "
        "sharing the same cores, process start included; the stores compared.",
        "",
        *saliency_rank_rows(),
        "",
        "## Learning checks on a GPU",
        "",
        "The CPU learning configs run on a GPU, several side by side (`docs/results.md` holds the CPU runs).",
        "",
        *gpu_learning_rows(),
        "",
        "## Sharding: local threads against Ray",
        "",
        "`python benchmarks/shard_engines.py SRC --workers 2`: both engines on the same inputs in one run, "
        "alternating; Ray's start is outside the timing (a cluster runs already). The ImageNet-21k hours scale "
        "Ray's core-seconds per input linearly and leave out the shared file system's bandwidth.",
        "",
        *engine_rows(),
        "",
        "## Shard checksums at loader start",
        "",
        *checksum_rows(),
        "",
        "## Epoch boundary",
        "",
        "The wait for an epoch's first batch against the other batches: what a boundary costs.",
        "",
        *boundary_rows(),
        "",
        "## Datasets in object storage",
        "",
        "`python benchmarks/object_storage.py`: shards in a SeaweedFS server on this machine, read through the "
        "node-local cache. Warm cache against local disk (an epoch's samples/s, alternating); a cold cache's "
        "fetch of rank 0's part against plain parallel GETs of the same objects (the fetch also checks sha256 "
        "and writes the disk); HTTP requests per shard fetched; over three epochs with a budget of one part, "
        "the peak bytes held and the bytes fetched per epoch.",
        "",
        *object_storage_rows(),
        "",
        "## One rank's pipeline as the dataset grows",
        "",
        "`python benchmarks/rank_memory.py`: rank 0 of each world builds its first epoch's pipeline in a fresh "
        "process, its reader given index files of its part alone against a reader of every shard split by DALI "
        "(as before part files); resident memory grown over the build, and the build's wall time.",
        "",
        *rank_memory_rows(),
        "",
        "## The view graph against an earlier revision",
        "",
        "`python benchmarks/views_cost.py --baseline REV`: each preset's GPU graph defined by this tree and by REV "
        "(checked out apart), its CPU and GPU operators and its host stage (`viewkit bench --graph`, medians of "
        "the rounds), and a new process's wait for the view kernels of every preset with numba's cache empty "
        "(compiled) and filled (loaded); the trees alternate round by round.",
        "",
        *views_cost_rows(),
        "",
        "## A new process's first batch",
        "",
        "`python benchmarks/first_batch.py SHARDS`: a new process imports viewkit, builds a pipeline and takes one "
        "batch, with numba's cache of the view kernels empty (the first run after an install: they compile) "
        "against filled (every later run). Medians of the rounds, sides alternating.",
        "",
        *first_batch_rows(),
        "",
    ]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    page = render()
    if args.check:
        return 0 if PAGE.exists() and PAGE.read_text() == page else 1
    PAGE.write_text(page)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
