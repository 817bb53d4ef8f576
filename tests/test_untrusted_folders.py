"""A dataset folder is untrusted input: no write through a link, no name that leaves the folder,
a repair that never destroys, a user's files never taken for viewkit's, and an edited or lost
manifest or rejected.jsonl derived again from the inputs and shards."""

import json
import os
import shutil
from pathlib import Path

import pytest

from viewkit.loaders.dataset import open_dataset
from viewkit.shards import format as fmt
from viewkit.shards import sources
from viewkit.shards.manifest import read_manifest
from viewkit.shards.writer import JOURNAL_NAME, ShardOptions, write_dataset
from viewkit.tools.cli import main
from viewkit.writes import open_new

OPTIONS = ShardOptions(shard_samples=8, workers=1)


@pytest.fixture
def source(embedded_source, tmp_path) -> Path:
    """The embedded scenes plus two inputs the writer rejects, so rejected.jsonl has lines."""
    src = tmp_path / "src"
    shutil.copytree(embedded_source["images"], src)
    first = sorted((src / "disk").iterdir())[0]
    (src / "disk" / "truncated.jpg").write_bytes(first.read_bytes()[:300])
    (src / "ring" / "empty.jpg").write_bytes(b"")
    return src


def _write(src: Path, out: Path, **kwargs) -> dict:
    return write_dataset(sources.folder_items(src), out, split="train", options=OPTIONS, progress=False, **kwargs)


def _files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in out.iterdir()}


# 1. links


@pytest.mark.parametrize("name", ["train-000003.tar.tmp", JOURNAL_NAME, "dataset.json.tmp", "rejected.jsonl.tmp",
                                  "train-000001.idx.tmp", "train-000002.tar"])
def test_a_link_where_viewkit_writes_is_refused_and_its_target_untouched(source, tmp_path, name):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(ValueError, match=f"{name} is a link where viewkit writes its own files"):
        _write(source, out)
    assert victim.read_bytes() == b"precious"
    assert (out / name).is_symlink()


def test_a_link_planted_while_the_run_writes_is_never_written_through(source, tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"

    def plant(record):  # after shard 0, a link where shard 3's temporary will go
        if record["tar"] == "train-000000.tar":
            (out / "train-000003.tar.tmp").symlink_to(victim)

    with pytest.raises(ValueError, match="train-000003.tar.tmp: a link stands where viewkit writes"):
        _write(source, out, after_shard=plant)
    assert victim.read_bytes() == b"precious"
    assert not (out / "train-000003.tar").exists()


def test_open_new_refuses_links_even_dangling_and_replaces_a_leftover_file(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="a link stands"):
        open_new(tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "left.tmp").write_bytes(b"killed run")
    with open_new(tmp_path / "left.tmp") as f:
        f.write(b"new")
    assert (tmp_path / "left.tmp").read_bytes() == b"new"


# 2. the manifest names files: only plain names inside the folder


@pytest.mark.parametrize("escape", ["../victim.tar", "ABSOLUTE"])
def test_a_manifest_naming_files_outside_the_folder_is_refused_everywhere(source, tmp_path, capsys, escape):
    out = tmp_path / "out"
    _write(source, out)
    victim = tmp_path / "victim.tar"
    victim.write_bytes(b"precious")
    tar = str(victim) if escape == "ABSOLUTE" else escape
    manifest = json.loads((out / fmt.MANIFEST_NAME).read_text())
    manifest["shards"][1]["tar"], manifest["shards"][1]["index"] = tar, tar[:-4] + ".idx"
    (out / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    (out / manifest["shards"][0]["tar"]).unlink()  # a repair that would follow the names
    said = rf"dataset.json: shards\[1\].tar: '{tar}' is not a plain file name in the dataset folder"
    with pytest.raises(ValueError, match=said):
        _write(source, out)
    with pytest.raises(ValueError, match=said):
        open_dataset(out)
    for command in (["verify", str(out), "--quiet"], ["info", str(out)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "shards[1].tar" in err
    assert victim.read_bytes() == b"precious" and not (tmp_path / "victim.idx").exists()


ODD_MANIFESTS = {
    "top level": [1, 2],
    "shards": {"shards": "abc"},
    "num_samples": {"num_samples": 1e30},
    "shards[0].tar": "NO_TAR",
    "classes[0].index": {"classes": [{"index": 5, "id": "x", "name": "x"}]},
    "split": {"split": "../up"},
    "shards[0].sha256": "BAD_HASH",
    "version": {"version": True},
}


@pytest.mark.parametrize("field", list(ODD_MANIFESTS))
def test_odd_manifests_end_in_one_line_naming_the_field(embedded_shards, tmp_path, capsys, field):
    out = tmp_path / "ds"
    shutil.copytree(embedded_shards, out)
    manifest = json.loads((out / fmt.MANIFEST_NAME).read_text())
    edit = ODD_MANIFESTS[field]
    if edit == "NO_TAR":
        del manifest["shards"][0]["tar"]
    elif edit == "BAD_HASH":
        manifest["shards"][0]["sha256"] = "not-a-hash"
    elif isinstance(edit, dict):
        manifest.update(edit)
    else:
        manifest = edit
    (out / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    for command in ("info", "verify"):
        assert main([command, str(out), "--quiet"] if command == "verify" else [command, str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"dataset.json: {field}:" in err, err


def test_a_deeply_nested_manifest_ends_in_one_line(embedded_shards, tmp_path, capsys):
    out = tmp_path / "ds"
    shutil.copytree(embedded_shards, out)
    (out / fmt.MANIFEST_NAME).write_text("[" * 100_000 + "]" * 100_000)
    assert main(["info", str(out)]) == 2
    assert "nests too deeply" in capsys.readouterr().err


# 3. a repair never removes a file it has not written back identical


def test_an_edited_shard_hash_corrects_the_manifest_and_keeps_the_shard(source, tmp_path):
    out = tmp_path / "out"
    _write(source, out)
    before = _files(out)
    manifest = json.loads(before[fmt.MANIFEST_NAME])
    manifest["shards"][2]["sha256"] = "0" * 64
    (out / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    again = _write(source, out, check_hashes=True)
    assert again["repaired"][0].startswith("dataset.json's entry of train-000002.tar")
    assert _files(out) == before  # the shard stayed; the manifest is as first written, byte for byte


def test_an_input_changed_in_place_leaves_every_file_as_it_was(source, tmp_path):
    out = tmp_path / "out"
    manifest = _write(source, out)
    shard = manifest["shards"][1]
    with open(out / shard["tar"], "r+b") as f:  # damage the shard, same size
        f.seek(3000)
        f.write(b"\x00" * 8)
    damaged = _files(out)
    # ...and change the bytes of one of its inputs without changing its size or time
    first_member = json.loads(_member(out / shard["tar"], out / shard["index"], "json"))["source"]
    path = source / first_member
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ValueError, match="differs from both the manifest and the file there.*nothing was removed"):
        _write(source, out, check_hashes=True)
    assert _files(out) == damaged


def _member(tar: Path, index: Path, extension: str) -> bytes:
    _, offset, size, _ = next(c for c in fmt.parse_index(index)[0] if c[0] == extension)
    with open(tar, "rb") as f:
        f.seek(offset)
        return f.read(size)


# 4. a user's files are never taken for viewkit's


def test_a_users_file_named_like_a_shard_refuses_the_first_run(source, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train-000000.tar").write_bytes(b"mine")
    with pytest.raises(ValueError, match="holds train-000000.tar, named like the files this run writes"):
        _write(source, out)
    assert (out / "train-000000.tar").read_bytes() == b"mine"
    assert main(["shard", "folder", str(source), str(out), "--split", "train", "--quiet"]) == 2
    assert "no viewkit manifest or journal names them" in capsys.readouterr().err
    (out / "train-000000.tar").unlink()
    (out / "rejected.jsonl").write_text("my notes\n")
    with pytest.raises(ValueError, match="holds rejected.jsonl"):
        _write(source, out)


# 5. the completion check derives the manifest and rejected.jsonl again


@pytest.mark.parametrize("edit", ["num_samples", "shard samples", "num_rejected", "class name", "first_id",
                                  "extra key"])
def test_an_edited_manifest_is_derived_again(source, tmp_path, edit):
    out = tmp_path / "out"
    _write(source, out)
    before = _files(out)
    manifest = json.loads(before[fmt.MANIFEST_NAME])
    if edit == "num_samples":
        manifest["num_samples"] += 1
    elif edit == "shard samples":
        manifest["shards"][1]["samples"] += 1
    elif edit == "num_rejected":
        manifest["num_rejected"] += 1
    elif edit == "class name":
        manifest["classes"][2]["name"] = "renamed"
    elif edit == "first_id":
        manifest["shards"][3]["first_id"] = 7
    else:
        manifest["mine"] = 1
    (out / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    again = _write(source, out)
    assert len(again["repaired"]) == 1 and again["repaired"][0].startswith("dataset.json (")
    assert _files(out) == before
    assert _write(source, out)["already_complete"]


@pytest.mark.parametrize("edit", ["deleted", "a reason", "a line less", "an accepted input"])
def test_a_lost_or_edited_rejected_list_is_derived_again(source, tmp_path, edit):
    out = tmp_path / "out"
    manifest = _write(source, out)
    assert manifest["num_rejected"] == 2
    before = _files(out)
    lines = before[fmt.REJECTED_NAME].decode().splitlines(keepends=True)
    if edit == "deleted":
        (out / fmt.REJECTED_NAME).unlink()
    elif edit == "a reason":
        (out / fmt.REJECTED_NAME).write_text(lines[0].replace("truncated", "fine") + lines[1])
    elif edit == "a line less":
        (out / fmt.REJECTED_NAME).write_text(lines[0])
    else:
        (out / fmt.REJECTED_NAME).write_text(lines[0] + json.dumps({"path": "disk/disk_00000.jpg", "reason": "x"})
                                             + "\n")
    again = _write(source, out)
    assert again["repaired"] == ["rejected.jsonl (missing or differing from the inputs' rejections)"]
    assert _files(out) == before


def test_the_command_line_names_what_it_derived_again(source, tmp_path, capsys):
    out = tmp_path / "out"
    _write(source, out)
    manifest = json.loads((out / fmt.MANIFEST_NAME).read_text())
    manifest["num_samples"] += 1
    (out / fmt.MANIFEST_NAME).write_text(json.dumps(manifest))
    (out / fmt.REJECTED_NAME).unlink()
    args = ["shard", "folder", str(source), str(out), "--split", "train", "--shard-samples", "8", "--workers", "1",
            "--quiet"]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "rewrote rejected.jsonl" in said and "dataset.json (num_samples differed" in said
    assert read_manifest(out)["num_samples"] == 60


def test_a_shard_file_given_for_its_folder_is_named(embedded_shards, tmp_path, capsys):
    tar = read_manifest(embedded_shards)["shards"][0]["tar"]
    assert main(["verify", str(embedded_shards / tar), "--quiet"]) == 2
    assert f"{embedded_shards / tar} is a file of the dataset in {embedded_shards}: name that folder" in \
        capsys.readouterr().err
    (tmp_path / "x.tar").write_bytes(b"\0" * 1024)
    assert main(["info", str(tmp_path / "x.tar")]) == 2
    assert f"is a file, and its folder {tmp_path} holds it without a viewkit manifest" in capsys.readouterr().err
