"""ViewLoader: exact epochs over ranks, determinism, resume, side data, and bad input.

Changes that must fail, each applied to a copy and the suite run:
- the shard order drawn without the epoch (every rank reads the same part every epoch)
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import shared
from viewkit import ViewLoader, recipes
from viewkit.loaders import RegionTable
from viewkit.loaders.dataset import open_dataset
from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest

SMALL = dict(global_size=32, local_size=16)


def loader(shards, recipe="logo", batch_size=8, **kwargs):
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("threads", 2)
    return ViewLoader(shards, recipes.get(recipe, **SMALL) if isinstance(recipe, str) else recipe, batch_size, **kwargs)


def epoch_ids(shards, world, epoch=0, **kwargs):
    per_rank, lengths = [], set()
    for rank in range(world):
        rank_loader = loader(shards, rank=rank, world_size=world, **kwargs)
        rank_loader.set_epoch(epoch)
        lengths.add(len(rank_loader))
        batches = list(rank_loader)
        assert len(batches) == len(rank_loader)
        per_rank.append([i for b in batches for i in b["id"][b["valid"]].tolist()])
    assert len(lengths) == 1  # every rank runs the same number of batches
    return per_rank


@pytest.mark.parametrize("world", [1, 3])
def test_every_sample_exactly_once_per_epoch(embedded_shards, world):
    per_rank = epoch_ids(embedded_shards, world, drop_last=False, batch_size=7)
    everything = [i for ids in per_rank for i in ids]
    assert sorted(everything) == list(range(60))
    assert all(not set(a) & set(b) for k, a in enumerate(per_rank) for b in per_rank[k + 1:])


def test_every_imagenet_sample_once_over_three_ranks(imagenet_shards):
    per_rank = epoch_ids(imagenet_shards, 3, drop_last=False, batch_size=16, recipe=recipes.get("moco_v2", global_size=32))
    assert sorted(i for ids in per_rank for i in ids) == list(range(200))


def test_drop_last_drops_only_a_tail(embedded_shards):
    per_rank = epoch_ids(embedded_shards, 3, drop_last=True, batch_size=6)
    # 60 samples over 3 ranks = 20 each; 3 full batches of 6 per rank, 2 dropped per rank.
    assert [len(ids) for ids in per_rank] == [18, 18, 18]
    assert len({i for ids in per_rank for i in ids}) == 54


def test_labels_and_sizes_are_the_samples_own(embedded_shards):
    manifest = read_manifest(embedded_shards)
    import webdataset as wds
    import json

    truth = {}
    for sample in wds.WebDataset([str(embedded_shards / s["tar"]) for s in manifest["shards"]], shardshuffle=False):
        meta = json.loads(sample["json"])
        truth[meta["id"]] = (meta["label"], meta["stored_size"][1], meta["stored_size"][0])
    for batch in loader(embedded_shards, drop_last=False):
        for i, label, size in zip(batch["id"].tolist(), batch["label"].tolist(), batch["image_size"].tolist()):
            assert (label, *size) == truth[i]


def test_same_seed_same_batches_and_epochs_reshuffle(embedded_shards):
    a = [b["id"].tolist() for b in loader(embedded_shards, seed=3)]
    first = loader(embedded_shards, seed=3)
    b = [batch for batch in first]
    assert a == [x["id"].tolist() for x in b]
    again = [x for x in loader(embedded_shards, seed=3)]
    assert all(torch.equal(x["global"], y["global"]) for x, y in zip(b, again))
    first.set_epoch(1)
    epoch1 = [x["id"].tolist() for x in first]
    assert epoch1 != a and sorted(sum(epoch1, [])) != sum(a, [])  # a new order, not a replay
    other_seed = [x["id"].tolist() for x in loader(embedded_shards, seed=4)]
    assert other_seed != a


def test_resume_mid_epoch_continues_exactly(embedded_shards):
    whole = list(loader(embedded_shards, seed=1, drop_last=False, batch_size=6))
    interrupted = loader(embedded_shards, seed=1, drop_last=False, batch_size=6)
    iterator = iter(interrupted)
    head = [next(iterator) for _ in range(4)]
    state = interrupted.state_dict()
    resumed = loader(embedded_shards, seed=1, drop_last=False, batch_size=6)
    resumed.load_state_dict(state)
    tail = list(resumed)
    assert len(head) + len(tail) == len(whole)
    for expected, got in zip(whole, head + tail):
        assert torch.equal(expected["id"], got["id"])
        assert torch.equal(expected["global"], got["global"]) and torch.equal(expected["local_boxes"], got["local_boxes"])


def test_each_rank_reader_indexes_its_part_alone_and_reads_what_dalis_split_reads(embedded_shards):
    """A rank's DALI reader is given index files of its part only (it indexes 20 samples,
    where a reader of every shard indexes all 60 and then takes its third), and delivers the
    very batches DALI's own split of every shard does."""
    for rank in range(3):
        part = loader(embedded_shards, "logo", 4, seed=3, drop_last=False, rank=rank, world_size=3, threads=1)
        whole = loader(embedded_shards, "logo", 4, seed=3, drop_last=False, rank=rank, world_size=3, threads=1)
        for one in (part, whole):
            one.set_epoch(1)
        whole._whole_reader = True  # as the readers of viewkit before part files
        batches = [list(one) for one in (part, whole)]
        for one in (part, whole):
            one._start()
        assert [part._pipe.reader_meta("reader")[k] for k in ("epoch_size", "number_of_shards")] == [20, 1]
        assert [whole._pipe.reader_meta("reader")[k] for k in ("epoch_size", "number_of_shards")] == [60, 3]
        assert [b["id"].tolist() for b in batches[0]] == [b["id"].tolist() for b in batches[1]]
        assert all(torch.equal(a["global"], b["global"]) for a, b in zip(*batches))


def test_part_files_list_each_rank_its_positions_and_touch_no_other_shard(embedded_shards, tmp_path):
    """Shards of 16, 16, 16 and 12 samples in a shuffled order, parts of 20: each rank's files
    name only the shards its part touches, whole ones by their own index file."""
    from viewkit.loaders import epochs, part_files

    shards = open_dataset(embedded_shards)
    order = epochs.shard_order(len(shards.tars), 0, 1)
    tars, indices = [shards.tars[i] for i in order], [shards.indices[i] for i in order]
    counts = [shards.counts[i] for i in order]
    listed = []
    for rank in range(3):
        folder = tmp_path / str(rank)
        folder.mkdir()
        start, end = epochs.part_bounds(60, rank, 3)
        mine_tars, mine_indices = part_files.positions(tars, indices, counts, start, end, folder)
        touched = [t for t, first, count in zip(tars, np.cumsum([0] + counts), counts) if first < end and first + count > start]
        assert mine_tars == touched
        lines = [line for index in mine_indices for line in Path(index).read_text().splitlines()[1:]]
        assert len(lines) == 20 and all(Path(i).parent == folder or i in indices for i in mine_indices)
        listed += lines
    every = [line for index in indices for line in Path(index).read_text().splitlines()[1:]]
    assert listed == every  # each sample once, in the epoch's order


def test_a_mid_epoch_state_of_a_whole_dataset_reader_resumes_exactly(embedded_shards):
    """States saved before readers took part files hold a DALI checkpoint of a reader of
    every shard: that epoch is finished with such a reader, exactly."""
    whole = list(loader(embedded_shards, seed=1, drop_last=False, batch_size=6, rank=1, world_size=2))
    interrupted = loader(embedded_shards, seed=1, drop_last=False, batch_size=6, rank=1, world_size=2)
    interrupted._whole_reader = True
    iterator = iter(interrupted)
    head = [next(iterator) for _ in range(2)]
    state = interrupted.state_dict()
    del state["reads_part"]
    resumed = loader(embedded_shards, seed=1, drop_last=False, batch_size=6, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert [b["id"].tolist() for b in head + list(resumed)] == [b["id"].tolist() for b in whole]
    resumed.set_epoch(1)
    next(iter(resumed))
    assert resumed._pipe.reader_meta("reader")["epoch_size"] == 30  # the next epoch reads its part alone


def test_next_epoch_built_ahead_gives_the_same_batches(embedded_shards):
    ahead, fresh = loader(embedded_shards, seed=2), loader(embedded_shards, seed=2, build_ahead=False)
    for epoch in range(3):
        for one in (ahead, fresh):
            one.set_epoch(epoch)
        if epoch:
            assert ahead._ahead is not None and ahead._ahead[0] == epoch  # built during the last epoch
        for x, y in zip(ahead, fresh, strict=True):
            assert torch.equal(x["id"], y["id"]) and torch.equal(x["global"], y["global"])
            assert torch.equal(x["local"], y["local"])
        assert fresh._ahead is None


def test_side_data_set_between_epochs_is_not_lost_to_a_pipeline_built_ahead(embedded_shards):
    from dataclasses import replace

    recipe = recipes.get("sgcl")
    recipe = replace(recipe, saliency=replace(recipe.saliency, size=16))
    n, k = 60, 8
    regions = loader(embedded_shards, recipe=recipe, drop_last=False)
    list(regions)  # epoch 0 without regions; epoch 1's pipeline is built ahead with none
    assert regions._ahead is not None
    boxes, scores = np.zeros((n, k, 4), np.float32), np.zeros((n, k), np.float32)
    boxes[:, 0], scores[:, 0] = [1, 2, 30, 40], 0.5  # the refresh of an SGCL trainer
    regions.set_side_data(RegionTable(boxes, scores))
    regions.set_epoch(1)
    for batch in regions:
        assert (batch["saliency_scores"] == 0.5).all()


def test_state_for_another_setup_is_refused(embedded_shards):
    state = loader(embedded_shards, seed=1).state_dict()
    with pytest.raises(ValueError, match="saved seed=1"):
        loader(embedded_shards, seed=2).load_state_dict(state)


def test_side_data_follows_its_sample_under_shuffling(embedded_shards):
    n, k = 60, 8
    boxes = np.zeros((n, k, 4), np.float32)
    scores = np.zeros((n, k), np.float32)
    for i in range(n):
        if i % 5:  # every fifth sample has no regions: it falls back
            boxes[i, 0] = [i, i + 1, i + 40, i + 50]  # a box that names its sample
            scores[i, 0] = 0.5
    table = RegionTable(boxes, scores)
    recipe = recipes.get("sgcl")
    from dataclasses import replace

    recipe = replace(recipe, saliency=replace(recipe.saliency, size=16))
    seen = 0
    for batch in loader(embedded_shards, recipe=recipe, side_data=table, drop_last=False, initial_fill=32):
        for row, sample_id in enumerate(batch["id"].tolist()):
            regions = batch["saliency_regions"][row]
            if sample_id % 5:
                assert (regions == torch.tensor([sample_id, sample_id + 1, sample_id + 40, sample_id + 50])).all()
                assert (batch["saliency_scores"][row] == 0.5).all()
            else:
                height, width = batch["image_size"][row].tolist()
                assert (regions == torch.tensor([0, 0, width, height])).all()
                assert (batch["saliency_scores"][row] == 1.0).all()
            seen += 1
    assert seen == 64  # 60 samples, 4 padding the last batch of 8


def test_bad_input_is_named_before_the_first_batch(embedded_shards, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(embedded_shards, copy)
    manifest = read_manifest(copy)
    with pytest.raises(ValueError, match="larger than a rank's share"):
        loader(copy, batch_size=61)
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.get("nope")
    with pytest.raises(TypeError, match="unknown ViewLoader option"):
        loader(copy, shuffle_buffer=3)
    with pytest.raises(ValueError, match="batch_size=0 must be a positive integer"):
        loader(copy, batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='gpu' needs a CUDA GPU.*device='cpu' runs the same graph"):
            ViewLoader(copy, "moco_v2", 4)
    assert next(iter(ViewLoader(copy, "moco_v2", 4, device="cpu", threads=1)))["global"].shape == (2, 4, 3, 224, 224)
    index = copy / manifest["shards"][0]["index"]
    shutil.copy(copy / manifest["shards"][1]["index"], index)
    with pytest.raises(ValueError, match="stale index"):
        loader(copy)
    index.unlink()
    with pytest.raises(FileNotFoundError, match=str(index)):
        loader(copy)
    tar = copy / manifest["shards"][2]["tar"]
    tar.write_bytes(tar.read_bytes()[:5000])
    shutil.copy(embedded_shards / manifest["shards"][0]["index"], index)
    with pytest.raises(ValueError, match=f"{tar}.*truncated"):
        loader(copy)
    with pytest.raises(FileNotFoundError, match="no viewkit dataset"):
        loader(tmp_path / "nothing")


def test_empty_dataset_is_an_error(embedded_shards, tmp_path):
    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions, write_dataset

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="every input was rejected .*no dataset was written"):
        write_dataset(sources.folder_items(tmp_path / "src"), tmp_path / "out", split="x",
                      options=ShardOptions(workers=1), progress=False)
    assert not (tmp_path / "out" / fmt.MANIFEST_NAME).exists()
    manifest = json.loads((embedded_shards / fmt.MANIFEST_NAME).read_text())  # one written elsewhere, emptied
    manifest |= {"shards": [], "num_samples": 0, "num_rejected": manifest["num_inputs"]}
    (tmp_path / "out" / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="empty"):
        loader(tmp_path / "out")


def test_foreign_shards_are_refused_with_the_fix():
    foreign = shared("foreign-shards")
    with pytest.raises(FileNotFoundError, match="compressed tar.*viewkit shard folder"):
        loader(foreign / "sample.tgz")
    with pytest.raises(FileNotFoundError, match="without a viewkit manifest"):
        loader(foreign / "compressed.tar")


def test_undecodable_sample_is_named(embedded_shards, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(embedded_shards, copy)
    shard = read_manifest(copy)["shards"][1]
    _, offset, _, name = fmt.parse_index(copy / shard["index"])[3][0]
    with open(copy / shard["tar"], "r+b") as f:  # same size, same index: only decoding can tell
        f.seek(offset)
        f.write(b"\x00" * 64)
    with pytest.raises(RuntimeError, match=f"{shard['tar']}:{name.split('.')[0]}: DALI cannot decode.*viewkit verify"):
        for _ in loader(copy, drop_last=False):
            pass


def test_each_epoch_deals_the_shards_to_the_ranks_anew(embedded_shards):
    """Which samples a rank reads in an epoch follows that epoch's shard order: with the order
    fixed across epochs (the epoch dropped from its seed) every rank would see the same part
    of the data every epoch, which the shuffle inside a part cannot hide."""
    parts = [frozenset(epoch_ids(embedded_shards, 2, epoch=epoch, drop_last=False, batch_size=10)[0])
             for epoch in range(4)]
    assert len(set(parts)) > 1, "rank 0 read the same samples in every epoch"
    assert all(len(part) == 30 for part in parts)


def _views_by_id(batches) -> dict:
    return {i: view.clone() for b in batches
            for i, valid, view in zip(b["id"].tolist(), b["valid"].tolist(), b["global"][0]) if valid}


@pytest.mark.parametrize("world, new_world, taken", [(2, 3, (2, 5)), (3, 2, (4, 1, 3)), (1, 2, (6,))])
def test_an_epoch_resumed_on_another_world_size_delivers_the_rest_once_with_the_same_views(
        embedded_shards, world, new_world, taken):
    """States taken mid-epoch after different numbers of batches per rank; the new ranks
    deliver exactly the samples no earlier rank did, with the views an uninterrupted run
    gives them, padding flagged invalid; the next epoch is a fresh run on the new world."""
    recipe = recipes.get("moco_v2", global_size=16)

    def make(rank, size, batch_size=4):
        return loader(embedded_shards, recipe, batch_size, seed=5, drop_last=False, rank=rank, world_size=size,
                      threads=1)

    whole = _views_by_id(make(0, 1))
    states, before = [], []
    for rank, count in zip(range(world), taken):
        earlier = make(rank, world)
        iterator = iter(earlier)
        before += [next(iterator) for _ in range(count)]
        states.append(earlier.state_dict())
    after, lengths = [], set()
    for rank in range(new_world):
        resumed = make(rank, new_world, batch_size=3)
        resumed.load_state_dict(states)
        lengths.add(len(resumed))
        batches = list(resumed)
        assert len(batches) == len(resumed)
        after += batches
    assert len(lengths) == 1  # every new rank runs as many batches
    delivered = [i for b in before + after for i in b["id"][b["valid"]].tolist()]
    assert sorted(delivered) == list(range(60)), "each sample once over both jobs"
    for i, view in _views_by_id(after).items():
        assert torch.equal(view, whole[i]), f"sample {i}: other views than an uninterrupted run"
    padded = sum(int((~b["valid"]).sum()) for b in after)
    assert padded == len(after) * 3 - (60 - len([i for b in before for i in b["id"][b["valid"]].tolist()]))
    resumed.set_epoch(1)
    fresh = make(new_world - 1, new_world, batch_size=3)
    fresh.set_epoch(1)
    assert [b["id"].tolist() for b in resumed] == [b["id"].tolist() for b in fresh]


def test_the_rest_of_an_epoch_can_itself_be_resumed_on_another_world(embedded_shards):
    recipe = recipes.get("moco_v2", global_size=16)

    def make(rank, size):
        return loader(embedded_shards, recipe, 4, seed=2, drop_last=False, rank=rank, world_size=size, threads=1)

    first, delivered = [], []
    for rank in range(2):
        job = make(rank, 2)
        iterator = iter(job)
        delivered += [i for b in [next(iterator) for _ in range(2 + rank)] for i in b["id"][b["valid"]].tolist()]
        first.append(job.state_dict())
    second = []
    for rank in range(3):  # resumed on 3, killed again after one batch each
        job = make(rank, 3)
        job.load_state_dict(first)
        batch = next(iter(job))
        delivered += batch["id"][batch["valid"]].tolist()
        second.append(job.state_dict())
    for rank in range(3):  # the same 3 ranks again: each continues its own pipeline exactly
        job = make(rank, 3)
        job.load_state_dict(second)
        delivered += [i for b in job for i in b["id"][b["valid"]].tolist()]
    assert sorted(delivered) == list(range(60))
    for rank in range(2):  # or on 2 once more, from the same states
        job = make(rank, 2)
        job.load_state_dict(second)
        assert job.epoch == 0 and len(job) > 0


@pytest.mark.parametrize("taken, steps", [((2, 2), 3), ((5, 5), 0)])
def test_with_drop_last_the_rest_of_an_epoch_runs_whole_batches_only(embedded_shards, taken, steps):
    """A trainer's loader (drop_last) resumed on another world runs the full batches of the
    smallest share of the rest, none padded, no sample twice; under a batch per rank left,
    the rest is dropped as an epoch's tail is, and the loader stands at the next epoch."""
    def make(rank, size, batch_size):
        return loader(embedded_shards, recipes.get("moco_v2", global_size=16), batch_size, seed=4, drop_last=True, rank=rank, world_size=size,
                      threads=1)

    states, before = [], []
    for rank, count in enumerate(taken):  # 2 ranks of 30 samples, batches of 5: 6 steps an epoch
        earlier = make(rank, 2, 5)
        iterator = iter(earlier)
        before += [i for _ in range(count) for i in next(iterator)["id"].tolist()]
        states.append(earlier.state_dict())
    after = []
    for rank in range(3):  # 40 left: 13, 13, 14 over 3 ranks, batches of 4: 3 steps, 4 dropped; 10 left: none
        resumed = make(rank, 3, 4)
        resumed.load_state_dict(states)
        if not steps:
            assert resumed.epoch == 1 and resumed.rest_of_epoch is None and len(resumed) == 5  # a whole epoch
        else:
            assert resumed.epoch == 0 and resumed.rest_of_epoch == 40 and len(resumed) == steps
            batches = list(resumed)
            assert all(bool(b["valid"].all()) for b in batches)
            after += [i for b in batches for i in b["id"].tolist()]
    assert len(after) == 3 * steps * 4 and not set(after) & set(before) and len(set(after)) == len(after)
