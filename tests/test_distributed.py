"""Ranks and world size from torchrun's environment and torch.distributed (gloo, CPU)."""

import json
import subprocess
import sys
from pathlib import Path

from ports import free_port


def test_three_ranks_under_torchrun_cover_the_epoch(embedded_shards, tmp_path):
    out = tmp_path / "ranks.json"
    worker = Path(__file__).with_name("distributed_worker.py")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "3",
                             "--master_port", str(free_port()), str(worker), str(embedded_shards), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1, 2]
    assert len({r["batches"] for r in ranks}) == 1  # no rank waits on another at the end
    assert sorted(i for r in ranks for i in r["ids"]) == list(range(60))
