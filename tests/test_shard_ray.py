"""`viewkit shard --engine ray`: the local engine's bytes from Ray tasks, resumed after a kill,
and one line for each way it cannot start."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from viewkit.shards import sources
from viewkit.shards.writer import JOURNAL_NAME, ShardOptions, write_dataset
from viewkit.tools.cli import main

from killed_run import killed_after

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'viewkit[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 workers for the module: the engine joins it instead of starting its own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_ray_writes_the_local_engines_bytes(local_ray, imagenet_source, tmp_path):
    listing = sources.imagenet_items(imagenet_source, "train")
    options = ShardOptions(shard_samples=48, workers=2)
    write_dataset(listing, tmp_path / "local", split="train", options=options, progress=False)
    write_dataset(listing, tmp_path / "ray", split="train", options=options, progress=False, engine="ray")
    assert files(tmp_path / "ray") == files(tmp_path / "local")


def test_rejections_cut_the_shards_where_the_local_stream_does(local_ray, embedded_source, tmp_path, monkeypatch):
    import shutil

    from test_shard_quirky import write_quirky_files
    from viewkit.shards import ray_engine

    src = tmp_path / "src"
    shutil.copytree(embedded_source["images"], src)
    write_quirky_files(src / "quirky")  # rejected inputs land inside shards and at the ends of decide chunks
    monkeypatch.setattr(ray_engine, "_DECIDE_CHUNK", 5)
    listing = sources.folder_items(src)
    for seed in (0, 3):
        options = ShardOptions(shard_samples=7, workers=2, seed=seed)
        local = write_dataset(listing, tmp_path / f"local{seed}", split="q", options=options, progress=False)
        write_dataset(listing, tmp_path / f"ray{seed}", split="q", options=options, progress=False, engine="ray")
        assert local["num_rejected"] == 3 and files(tmp_path / f"ray{seed}") == files(tmp_path / f"local{seed}")


def test_a_killed_ray_run_resumes_to_the_same_bytes(embedded_source, tmp_path):
    args = ["shard", "folder", embedded_source["images"], str(tmp_path / "ray"), "--shard-samples", "8",
            "--workers", "2", "--engine", "ray", "--quiet"]
    killed = subprocess.run([sys.executable, "-c", killed_after(2), *args], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert len((tmp_path / "ray" / JOURNAL_NAME).read_text().splitlines()) == 3  # its header and two shards
    resumed = subprocess.run([sys.executable, "-m", "viewkit.tools.cli", *args], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert main(["shard", "folder", embedded_source["images"], str(tmp_path / "local"), "--shard-samples", "8",
                 "--workers", "2", "--quiet"]) == 0
    assert files(tmp_path / "ray") == files(tmp_path / "local")


def test_a_shard_task_that_fails_leaves_no_shard(embedded_source, tmp_path):
    from viewkit.shards.samples import prepare_file, prepare_tasks, write_one_shard

    listing = sources.folder_items(embedded_source["images"])
    options = ShardOptions()

    def dies_on_the_third():
        for count, task in enumerate(prepare_tasks(listing, [0, 1, 2, 3], options)):
            if count == 2:
                raise MemoryError("the worker ran out of memory")
            yield prepare_file(task)

    with pytest.raises(MemoryError):
        write_one_shard(listing, tmp_path / "q-000000.tar", [0, 1, 2, 3], 0, dies_on_the_third())
    assert list(tmp_path.iterdir()) == []  # neither the shard nor its temporary


def test_ray_refusals_are_one_line(local_ray, embedded_source, tmp_path, capsys, monkeypatch):
    from viewkit.shards.ray_engine import check_shared_output

    command = ["shard", "folder", embedded_source["images"], str(tmp_path / "out"), "--quiet"]
    assert main([*command, "--engine", "ray", "--address", "127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.startswith("viewkit shard: error: --address 127.0.0.1:9: no Ray cluster answers there")
    assert main([*command, "--address", "127.0.0.1:9"]) == 2
    assert "add --engine ray" in capsys.readouterr().err
    with pytest.raises(ValueError, match="a Ray worker cannot write it .* storage every node sees"):
        check_shared_output(ray, Path("/proc"))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main([*command, "--engine", "ray"]) == 2
    assert "pip install 'viewkit[ray]'" in capsys.readouterr().err


def test_each_task_is_sent_only_its_own_inputs(local_ray, embedded_source, tmp_path, monkeypatch):
    """Not the whole listing: every task unpickling all of it made the engine's cost grow with
    the square of the inputs (9.7 s, 38 s, 493 s for 10k, 50k, 200k tiny JPEGs)."""
    from viewkit.shards import ray_engine
    from viewkit.shards.sources import SourceListing

    sent = []

    class Recorded:
        def __init__(self, function):
            self.function = function

        def options(self, **kwargs):
            return Recorded(self.function.options(**kwargs))

        def remote(self, *args):
            sent.append(args)
            return self.function.remote(*args)

    class RecordingRay:
        def __getattr__(self, name):
            return getattr(ray, name)

        def remote(self, **kwargs):
            return lambda function: Recorded(ray.remote(**kwargs)(function))

    monkeypatch.setattr(ray_engine, "import_ray", RecordingRay)
    listing = sources.folder_items(embedded_source["images"])
    write_dataset(listing, tmp_path / "ray", split="train", options=ShardOptions(shard_samples=8, workers=2),
                  progress=False, engine="ray")
    tasks = [args for args in sent if isinstance(args[0], SourceListing) or len(args) >= 3]
    assert len(tasks) >= 1 + 8  # the decide chunk and the eight shards
    for args in tasks:
        inputs, positions = args[0], args[2] if isinstance(args[1], str) else args[1]
        assert isinstance(inputs, SourceListing) and len(inputs.items) == len(positions) < len(listing.items) + 1
    assert sum(len(args[0].items) for args in tasks if isinstance(args[1], str)) == len(listing.items)
