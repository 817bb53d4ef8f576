"""Run under torchrun as one of two "nodes" by tests/test_distributed.py: the trainer's own
run set-up (loader, DDP method, optimizer) for two epochs of a few steps; each node writes
the sample ids it trained on per epoch and a digest of its model after each step.

    python -m torch.distributed.run --nnodes 2 --node_rank R --nproc_per_node 1 \\
        --master_addr 127.0.0.1 --master_port PORT tests/multinode_worker.py SHARDS RUN OUT
"""

import hashlib
import json
import sys
from pathlib import Path

import torch

from viewkit.trainer.config import TrainConfig
from viewkit.trainer.engine import end_of_epoch, train_one_epoch
from viewkit.trainer.run import start_run


def digest(module: torch.nn.Module) -> str:
    """Of the parameters, online and momentum networks alike. BatchNorm's running statistics
    are each rank's own until DDP broadcasts rank 0's at the next forward."""
    parameters = dict(module.named_parameters())
    return hashlib.sha256(b"".join(parameters[k].detach().numpy().tobytes() for k in sorted(parameters))).hexdigest()


def main() -> None:
    shards, run_dir, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(1)
    config = TrainConfig(method="byol", method_options={"hidden": 64, "dim": 32}, arch="resnet18", epochs=2,
                         batch_size=20, device="cpu", precision="fp32", threads=1, log_every=1,
                         recipe_overrides={"global_size": 32})
    run = start_run(config, shards, run_dir)
    seen, digests = {}, []
    for epoch in range(config.epochs):
        run.method.on_epoch_start(run.epoch_start(epoch))
        run.loader.set_epoch(epoch)

        def recording(batches):
            for batch in batches:
                seen.setdefault(epoch, []).extend(batch["id"][batch["valid"]].tolist())
                yield batch

        train_one_epoch(run, epoch, recording(run.loader), progress=False)
        digests.append(digest(run.method))
        end_of_epoch(run, epoch)
    run.close()
    out.write_text(json.dumps({"rank": run.rank, "world": run.world, "seen": seen, "digests": digests}))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
