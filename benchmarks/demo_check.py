"""`viewkit demo` over seeds: does its pretraining beat random init on the held-out scenes,
and how long does it take?

    python benchmarks/demo_check.py --seeds 0 1 2 [--threads 2] [--note "cores idle"] \\
        [--json docs/measurements/demo.jsonl]

Runs the demo as a user does (`viewkit demo --out TMP --seed S`), one seed after another,
each as the first run after an install (an empty numba cache: the view kernels compile),
and appends one JSON line per run: kNN top-1 (k 200) of the pretrained and the random-init
network on the held-out scenes, the lead, the demo's wall time and its disk use, the machine.
`--note` says what else ran on the machine; times are only comparable with cores idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=0, help="the demo's --threads (default: all cores)")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "measurements" / "demo.jsonl")
    args = parser.parse_args()
    from viewkit.tools.bench_common import machine
    from viewkit.trainer.checkpoint import git_revision

    git = git_revision()
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="viewkit-demo-") as folder:
            command = ["viewkit", "demo", "--out", folder, "--seed", str(seed), "--threads", str(args.threads)]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "NUMBA_CACHE_DIR": str(Path(folder) / "numba-cache")})
            summary = json.loads((Path(folder) / "summary.json").read_text())
        record = {"name": "demo", "date": date.today().isoformat(), "git": git, **summary,
                  "lead": round(summary["knn_trained"] - summary["knn_random"], 4), "threads": args.threads,
                  "note": args.note, "numba_cache": "empty", "command": " ".join(command[:2] + command[4:]), "machine": machine()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "machine"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
