"""Nothing is lost silently: linked inputs are read, a user's files survive --overwrite, a
second writer is refused, and a shard that went missing is written again, byte for byte."""

import json
import shutil
from pathlib import Path

import pytest

from viewkit.shards import format as fmt
from viewkit.shards.manifest import read_manifest
from viewkit.shards import sources
from viewkit.shards.outdir import writer_lock
from viewkit.shards.writer import ShardOptions, samples_per_shard, write_dataset
from viewkit.tools.cli import main

OPTIONS = ShardOptions(shard_samples=8, workers=1)


def _class_folders(embedded_source) -> list[Path]:
    return sorted(p for p in Path(embedded_source["images"]).iterdir() if p.is_dir())


def test_symlinked_class_folders_are_read_and_bad_links_rejected(embedded_source, tmp_path):
    folders = _class_folders(embedded_source)
    src = tmp_path / "src"
    src.mkdir()
    for i, folder in enumerate(folders):  # half the classes real copies, half links (an ImageNet-subset habit)
        if i % 2:
            (src / folder.name).symlink_to(folder, target_is_directory=True)
        else:
            shutil.copytree(folder, src / folder.name)
    # bad links go into the copies: the linked folders are the shared fixture's own
    (src / folders[0].name / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (src / folders[2].name / "loop").symlink_to(src, target_is_directory=True)  # back to an ancestor
    (src / folders[4].name / "self").symlink_to(src / folders[4].name / "self")
    images = sum(len([f for f in folder.iterdir() if f.is_file()]) for folder in folders)

    listing = sources.folder_items(src)
    manifest = write_dataset(listing, tmp_path / "out", split="train", options=OPTIONS, progress=False)
    assert manifest["num_samples"] == images
    assert len(manifest["classes"]) == len(folders)
    reasons = {r["path"]: r["reason"] for r in map(json.loads, (tmp_path / "out" / fmt.REJECTED_NAME).open())}
    assert reasons[f"{folders[0].name}/gone.jpg"].startswith("dangling symlink")
    assert reasons[f"{folders[2].name}/loop"].startswith("symlink loop")
    assert "cannot be resolved" in reasons[f"{folders[4].name}/self"]
    assert manifest["num_inputs"] == manifest["num_samples"] + manifest["num_rejected"] == images + 3


def test_overwrite_removes_only_viewkit_files(embedded_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine = {"my-backup.tar": b"backup", "notes.tmp": b"notes", "other.idx": b"v1.2 0\n", "train-999999.tar": b"x"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    listing = sources.folder_items(embedded_source["images"])
    first = write_dataset(listing, out, split="train", options=OPTIONS, progress=False)
    (out / "train-000002.tar.tmp").write_bytes(b"what a killed run leaves")
    second = write_dataset(listing, out, split="val", options=ShardOptions(shard_samples=16, workers=1),
                           overwrite=True, progress=False)
    names = {p.name for p in out.iterdir()}
    assert all((out / name).read_bytes() == data for name, data in mine.items())
    assert not any(s["tar"] in names for s in first["shards"])  # the old dataset is gone
    assert "train-000002.tar.tmp" not in names
    assert names == set(mine) | {s[k] for s in second["shards"] for k in ("tar", "index")} | {
        fmt.MANIFEST_NAME, fmt.REJECTED_NAME}


def test_a_second_writer_is_refused_in_one_line(embedded_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    listing = sources.folder_items(embedded_source["images"])
    with writer_lock(out):  # a run still writing here
        with pytest.raises(FileExistsError, match="another `viewkit shard` run is writing here"):
            write_dataset(listing, out, split="train", options=OPTIONS, overwrite=True, progress=False)
    write_dataset(listing, out, split="train", options=OPTIONS, progress=False)  # free again once it ends


def test_missing_or_changed_shards_are_written_again(embedded_source, tmp_path, capsys):
    listing = sources.folder_items(embedded_source["images"])
    out = tmp_path / "out"
    manifest = write_dataset(listing, out, split="train", options=OPTIONS, progress=False)
    original = {p.name: p.read_bytes() for p in out.iterdir()}
    shards = manifest["shards"]
    (out / shards[1]["tar"]).unlink()
    (out / shards[3]["index"]).unlink()
    with open(out / shards[4]["tar"], "r+b") as f:  # same size, other bytes: only a hash sees it
        f.seek(2000)
        f.write(b"\xff" * 16)
    again = write_dataset(listing, out, split="train", options=OPTIONS, progress=False)
    assert [r.split(" ")[0] for r in again["repaired"]] == [shards[1]["tar"], shards[3]["tar"]]
    assert (out / shards[4]["tar"]).read_bytes() != original[shards[4]["tar"]]
    again = write_dataset(listing, out, split="train", options=OPTIONS, progress=False, check_hashes=True)
    assert [r.split(" ")[0] for r in again["repaired"]] == [shards[4]["tar"]]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == original
    assert write_dataset(listing, out, split="train", options=OPTIONS, progress=False)["already_complete"]

    # The command line says what it did.
    (out / shards[0]["tar"]).unlink()
    args = ["shard", "folder", embedded_source["images"], str(out), "--split", "train", "--shard-samples", "8",
            "--workers", "1", "--quiet"]
    assert main(args) == 0
    assert f"rewrote {shards[0]['tar']} (missing {shards[0]['tar']})" in capsys.readouterr().out
    assert (out / shards[0]["tar"]).read_bytes() == original[shards[0]["tar"]]


def test_split_that_escapes_the_output_is_refused(embedded_source, tmp_path):
    listing = sources.folder_items(embedded_source["images"])
    for split in ("../x", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="plain name"):
            write_dataset(listing, tmp_path / "out", split=split, options=OPTIONS, progress=False)
    assert not any(tmp_path.glob("*.tar"))


def test_shard_size_takes_units(embedded_source, tmp_path):
    out = tmp_path / "out"
    assert main(["shard", "folder", embedded_source["images"], str(out), "--shard-size", "64KB", "--quiet",
                 "--workers", "1"]) == 0
    expected = samples_per_shard(sources.folder_items(embedded_source["images"]), ShardOptions(shard_size=64_000))
    assert 1 < read_manifest(out)["samples_per_shard"] == expected


def test_empty_and_all_rejected_inputs_end_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["shard", "folder", str(tmp_path / "empty"), str(tmp_path / "out1"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith("no files found to shard (looked for images below "
                                                    f"{tmp_path / 'empty'})")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "junk" / "b.jpg").write_bytes(b"no jpeg either")
    (tmp_path / "junk" / "c.jpg").write_bytes(b"")
    assert main(["shard", "folder", str(tmp_path / "junk"), str(tmp_path / "out2"), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == ("viewkit shard: error: every input was rejected (3 inputs), no dataset was written: "
                           "2 x undecodable: not an image format PIL can read, or its header is damaged (e.g. a.jpg); "
                           "1 x empty file (e.g. c.jpg)")
    assert list((tmp_path / "out2").iterdir()) == []  # no 0-sample dataset, no journal
    assert main(["shard", "folder", str(tmp_path / "junk"), str(tmp_path / "out2"), "--quiet"]) == 2  # same again


def test_an_unknown_val_label_says_where_known_labels_come_from(embedded_source, tmp_path):
    src = tmp_path / "imagenet"
    folders = _class_folders(embedded_source)
    for folder in folders[:2]:
        shutil.copytree(folder, src / "train" / folder.name)
    (src / "val").mkdir()
    first = next(folders[0].iterdir())
    shutil.copy(first, src / "val" / "v1.jpg")
    (tmp_path / "labels.txt").write_text("v1.jpg n99999999\n")
    listing = sources.imagenet_items(src, "val", str(tmp_path / "labels.txt"))
    assert listing.rejected == [{"path": "val/v1.jpg", "reason": "label 'n99999999' is not a known wnid "
                                 f"(known: the folders under {src.resolve() / 'train'})"}]


def test_bad_coco_annotation_files_are_named_in_one_line(embedded_source, tmp_path, capsys):
    images = embedded_source["images"]
    cases = {"missing.json": None, "binary.json": b"\x00\xff\x10garbage", "other.json": b'{"rows": [1, 2]}',
             "sizeless.json": json.dumps({"images": [{"id": 1, "file_name": "disk/disk_00000.jpg"}]}).encode()}
    said = {"missing.json": "no such annotation file", "binary.json": "not a JSON file",
            "other.json": "not a COCO instances file (no 'images' list; keys: ['rows'])",
            "sizeless.json": "image 1: lacks ['width', 'height']"}
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        assert main(["shard", "coco", images, str(tmp_path / "out"), "--annotations", str(tmp_path / name),
                     "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(tmp_path / name) in err and said[name] in err, err
