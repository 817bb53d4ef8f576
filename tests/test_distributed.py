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


def torchrun(nproc: int, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                           "--master_port", str(free_port()), *args], capture_output=True, text=True, timeout=timeout)


def test_saliency_on_two_ranks_equals_one_process(embedded_shards, tmp_path):
    import numpy as np

    from viewkit.saliency import SaliencyStore

    command = ["-m", "viewkit.tools.cli", "saliency", str(embedded_shards), "--random-init", "--arch", "resnet18",
               "--resolution", "128", "--min-cells", "2", "--batch-size", "8", "--device", "cpu", "--threads", "1",
               "--seed", "3"]
    for ranks in (1, 2):
        result = torchrun(ranks, *command, "--out", str(tmp_path / f"ranks{ranks}"))
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = SaliencyStore(tmp_path / "ranks1"), SaliencyStore(tmp_path / "ranks2")
    assert np.array_equal(one.counts(), two.counts()) and one.counts().sum() > 0
    one_table, two_table = one.table(), two.table()
    np.testing.assert_allclose(np.asarray(two_table.boxes), np.asarray(one_table.boxes), atol=1e-3)
    np.testing.assert_allclose(np.asarray(two_table.scores), np.asarray(one_table.scores), atol=1e-5)


def test_sgcl_refreshes_saliency_on_every_rank_while_training(embedded_shards, tmp_path):
    from viewkit.saliency import SaliencyStore

    config = tmp_path / "sgcl.yaml"
    config.write_text("method: sgcl\narch: resnet18\nepochs: 2\nbatch_size: 20\ndevice: cpu\nprecision: fp32\n"
                      "method_options: {hidden: 64, dim: 32, queue: 64}\n"
                      "recipe_overrides: {saliency_size: 32, saliency_pairs: 2}\nthreads: 1\nlog_every: 1\n"
                      "saliency_interval: 1\nsaliency_resolution: 128\n")
    result = torchrun(2, "-m", "viewkit.tools.cli", "train", str(config), "--data", str(embedded_shards), "--out",
                      str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    store = SaliencyStore(tmp_path / "run" / "saliency-store")
    assert store.meta["epoch"] == 1 and store.meta["num_samples"] == 60 and store.counts().sum() > 0


def test_two_nodes_see_every_sample_once_per_epoch_and_keep_one_model(embedded_shards, tmp_path):
    """Two torchrun "nodes" of one process each on this machine, as on two machines: a static
    rendezvous at node 0's address, gloo, the trainer's own set-up."""
    worker = Path(__file__).with_name("multinode_worker.py")
    port = str(free_port())
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port, str(worker),
                               str(embedded_shards), str(tmp_path / "run"), str(tmp_path / f"node{node}.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    reports = [json.loads((tmp_path / f"node{node}.json").read_text()) for node in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1] and all(r["world"] == 2 for r in reports)
    for epoch in ("0", "1"):
        ids = reports[0]["seen"][epoch] + reports[1]["seen"][epoch]
        assert sorted(ids) == list(range(60))  # batch 20 over 2 ranks: 3 steps of 10 each, nothing dropped
    assert reports[0]["digests"] == reports[1]["digests"]  # DDP kept the two nodes' models identical
