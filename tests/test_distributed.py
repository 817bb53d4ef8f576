"""Ranks and world size from torchrun's environment and torch.distributed (gloo, CPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
                      "method_options: {hidden: 64, dim: 32, queue: 64, saliency_interval: 1, saliency_resolution: 128}\n"
                      "recipe_overrides: {saliency_size: 32, saliency_pairs: 2}\nthreads: 1\nlog_every: 1\n")
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


def test_a_job_killed_on_two_ranks_resumes_on_three_with_every_sample_once(embedded_shards, tmp_path):
    """`viewkit train` on 2 processes, killed right after its mid-epoch checkpoint at step 2;
    `--resume` on 3 trains the samples no rank trained on yet, once each, then a whole epoch."""
    import torch

    config = tmp_path / "moco.yaml"
    config.write_text("method: moco_v2\narch: resnet18\nepochs: 2\nbatch_size: 12\ndevice: cpu\nprecision: fp32\n"
                      "method_options: {hidden: 64, queue: 48}\nrecipe_overrides: {global_size: 32}\nthreads: 1\n"
                      "log_every: 1\ncheckpoint_every_steps: 2\n")
    records, run = tmp_path / "records", tmp_path / "run"
    records.mkdir()
    worker = str(Path(__file__).with_name("elastic_worker.py"))
    command = ["train", str(config), "--data", str(embedded_shards), "--out", str(run), "--quiet"]
    killed = torchrun(2, worker, str(records), "2", *command)
    assert killed.returncode != 0
    state = torch.load(run / "checkpoint-last.pt", weights_only=False)
    assert state["step"] == 2 and [(s["rank"], s["world_size"], s["step"]) for s in state["loader"]] == [(0, 2, 2), (1, 2, 2)]
    resumed = torchrun(3, worker, str(records), "0", *command, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{run}: resuming at epoch 1 of 2, part of it done (step 2)" in resumed.stdout
    assert (f"{run}: world size 2 -> 3: global batch 12 stays (6 -> 4 per rank), lr 0.001406 stays "
            f"(= 0.03 x 12 / 256); the rest of epoch 1 is the 36 samples no rank delivered, 3 steps per rank"
            in resumed.stdout), resumed.stdout

    def batches(world):
        return [json.loads(line) for rank in range(world)
                for line in (records / f"world{world}-rank{rank}.jsonl").read_text().splitlines()]

    # a rank may fetch its next batch before the kill: only what the checkpoint counts was trained on
    before = [b for b in batches(2) if b["step"] <= 2]
    after = batches(3)
    assert all(b["size"] == 4 for b in after) and all(len(b["ids"]) == 6 for b in before)
    first = [i for b in before + after if b["epoch"] == 0 for i in b["ids"]]
    assert sorted(first) == list(range(60)), "epoch 0: each sample once over both jobs"
    assert sorted(b["step"] for b in after if b["epoch"] == 0) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert sorted(i for b in after if b["epoch"] == 1 for i in b["ids"]) == list(range(60))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 11)) and [row["epoch"] for row in rows] == [0] * 5 + [1] * 5
    from viewkit.trainer.schedules import learning_rate

    for row in rows:  # one cosine over the 10 steps, across the change of world
        assert row["lr"] == pytest.approx(learning_rate(row["step"] - 1, 10, 0.03 * 12 / 256)), row["step"]
    final = torch.load(run / "checkpoint-last.pt", weights_only=False)
    assert final["epoch"] == 2 and final["step"] == 10 and len(final["loader"]) == 3
    assert resumed.stdout.count("finished 2 epochs (10 steps)") == 1  # rank 0's line only
