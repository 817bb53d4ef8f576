"""Region sources that fill a SaliencyStore: ncut (the model's features), gt, random.

- ncut: SGCL's saliency from the backbone being trained, on the original view at
  `resolution` x `resolution` (SGCL: 640, i.e. a 20 x 20 map at stride 32).
- gt: COCO ground-truth boxes from the shards (SGCL Table 7's upper bound), score 1.0.
- random: no regions at all, so the views use SGCL's initialisation (random crops).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from tqdm import tqdm

from viewkit.loaders.dataset import open_dataset
from viewkit.saliency.ncut import ncut_saliency
from viewkit.saliency.regions import saliency_regions
from viewkit.shards import format as fmt
from viewkit.views.augment import Augment
from viewkit.views.families import Original, Recipe


def random_regions(num_samples: int, top_k: int = 8):
    return (np.zeros((num_samples, top_k, 4), np.float32), np.zeros((num_samples, top_k), np.float32),
            np.zeros(num_samples, np.int32))


def gt_regions(dataset, top_k: int = 8):
    """Non-crowd COCO boxes per sample id, largest first, at most top_k, score 1.0.

    choice: crowd (iscrowd=1) boxes are left out: they outline groups, not objects.
    """
    shards = open_dataset(dataset)
    if not shards.has_boxes:
        raise ValueError(f"{shards.root}: no COCO boxes in these shards (shard with `viewkit shard coco --annotations`)")
    boxes, scores, counts = random_regions(shards.num_samples, top_k)
    for tar, index in zip(shards.tars, shards.indices):
        with open(tar, "rb") as f:
            for sample in fmt.parse_index(index):
                _, offset, size, _ = next(c for c in sample if c[0] == fmt.METADATA)
                f.seek(offset)
                meta = json.loads(f.read(size))
                objects = [(b, (b[2] - b[0]) * (b[3] - b[1])) for b, crowd in zip(meta["boxes"], meta["iscrowd"]) if not crowd]
                objects = sorted(objects, key=lambda o: -o[1])[:top_k]
                row = meta["id"]
                counts[row] = len(objects)
                for k, (box, _) in enumerate(objects):
                    boxes[row, k], scores[row, k] = box, 1.0
    return boxes, scores, counts


@torch.no_grad()
def ncut_regions(dataset, trunk: torch.nn.Module, *, resolution: int = 640, batch_size: int = 32, device: str = "cpu",
                 top_k: int = 8, min_cells: int = 4, progress: bool = True, threads: int = 0, overlap: bool = True,
                 rank: int = 0, world_size: int = 1):
    """Regions of every sample from the trunk's last feature map, by sample id.

    With `overlap`, the CPU half of each batch (connected-component labelling and the region
    reductions, on maps of only h x w cells) runs on one worker thread while the main thread
    computes the next batch's features and eigenvectors: the labelling hides behind the GPU.

    Over `world_size` ranks (torch.distributed initialised) each rank computes the samples
    the loader gives it, each sample on exactly one rank, and rank 0 receives every row
    (the other ranks' arrays are theirs alone); SGCL computes its maps on all GPUs alike.
    """
    from viewkit.loaders.view_loader import ViewLoader

    recipe = Recipe("saliency", original=Original(resolution, Augment(flip_p=0.0)))
    loader = ViewLoader(dataset, recipe, batch_size, device=device, drop_last=False, shuffle=False, augment=False,
                        rank=rank, world_size=world_size, threads=threads, build_ahead=False)  # one pass
    boxes, scores, counts = random_regions(loader.shards.num_samples, top_k)
    computed = np.zeros(loader.shards.num_samples, np.int32)
    torch_device = torch.device("cuda" if device == "gpu" else "cpu")
    trunk = trunk.to(torch_device).eval()

    def store(saliency: torch.Tensor, image_sizes: torch.Tensor, ids: np.ndarray, valid: torch.Tensor) -> int:
        region_boxes, region_scores, region_counts = saliency_regions(saliency, image_sizes, min_cells=min_cells,
                                                                      top_k=top_k)
        boxes[ids] = region_boxes[valid].numpy()
        scores[ids] = region_scores[valid].numpy()
        counts[ids] = region_counts[valid].numpy()
        computed[ids] += 1
        return len(ids)

    share = -(-loader.shards.num_samples // world_size)
    with tqdm(total=share, unit="img", desc="saliency", disable=not progress) as bar, \
            ThreadPoolExecutor(1) as cpu_stage:
        pending = None
        for batch in loader:
            images = batch["original"].to(torch_device)
            with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=torch_device.type == "cuda"):
                features = trunk(images)
            saliency = ncut_saliency(features.float()).cpu()  # [B, h, w]: a few KiB to move
            valid = batch["valid"].cpu()
            job = (saliency, batch["image_size"].cpu(), batch["id"].cpu()[valid].numpy(), valid)
            if pending is not None:
                bar.update(pending.result())
            pending = cpu_stage.submit(store, *job) if overlap else None
            if not overlap:
                bar.update(store(*job))
        if pending is not None:
            bar.update(pending.result())
    if world_size > 1:
        boxes, scores, counts, computed = gather_on_rank_0(boxes, scores, counts, computed, device=device)
    if rank == 0 and not (computed == 1).all():
        missed = np.flatnonzero(computed != 1)[:5].tolist()
        raise RuntimeError(f"saliency: samples {missed} were computed {computed[missed].tolist()} times, not once")
    return boxes, scores, counts


def gather_on_rank_0(*arrays: np.ndarray, device: str):
    """Sums each array over the ranks onto rank 0: a row one rank computed and the others left
    at zero arrives exactly (x + 0 = x)."""
    import torch.distributed as dist

    on = torch.device("cuda", torch.cuda.current_device()) if device == "gpu" else torch.device("cpu")
    gathered = []
    for array in arrays:
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(on)
        dist.reduce(tensor, dst=0)
        gathered.append(tensor.cpu().numpy())
    return gathered
