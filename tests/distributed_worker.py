"""Run under torchrun by tests/test_distributed.py: each rank loads its part of an epoch.

    python -m torch.distributed.run --nproc_per_node 3 tests/distributed_worker.py SHARDS OUT
"""

import json
import sys

import torch.distributed as dist

from viewkit import ViewLoader, recipes


def main() -> None:
    shards, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    loader = ViewLoader(shards, recipes.get("moco_v2", global_size=32), batch_size=7, device="cpu",
                        drop_last=False, threads=1)
    ids, batches = [], 0
    for batch in loader:
        ids += batch["id"][batch["valid"]].tolist()
        batches += 1
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {"rank": loader.rank, "ids": ids, "batches": batches})
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump(gathered, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
