"""Real training steps through the real loader: every method, gradients, resume, DDP."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from viewkit import ViewLoader, recipes
from viewkit.trainer.config import TrainConfig, load_config
from viewkit.trainer.engine import train
from viewkit.trainer.metrics import forget_rows_after
from viewkit.trainer.optimizers import make_optimizer
from viewkit.trainer.methods import METHODS, build_method
from viewkit.trainer.schedules import learning_rate
from viewkit.tools.cli import main

from partial_runs import train_steps
from ports import free_port

SMALL_OPTIONS = {"moco_v2": {"queue": 64, "hidden": 64}, "leoclr": {"queue": 64, "hidden": 64},
                 "byol": {"hidden": 64, "dim": 32}, "simsiam": {"dim": 64, "predictor_hidden": 16},
                 "simclr": {"hidden": 64, "dim": 32},
                 "scd_moco": {"queue": 64, "hidden": 64, "saliency_hidden": 16},
                 "regioncl": {"queue": 64, "hidden": 64},
                 "regioncl_simsiam": {"dim": 64, "predictor_hidden": 16},
                 "logo_moco": {"queue": 64, "hidden": 64, "critic_hidden": 16},
                 "logo_simsiam": {"dim": 64, "predictor_hidden": 16, "critic_hidden": 16},
                 "sgcl": {"hidden": 64, "dim": 32, "queue": 64},
                 "scd_byol": {"hidden": 64, "dim": 32, "saliency_hidden": 16}}


def small_config(method: str, **changes) -> TrainConfig:
    overrides = {"global_size": 32} | ({"original_size": 32} if method == "leoclr" else {})
    if method in ("logo_moco", "logo_simsiam"):
        overrides["local_size"] = 16
    if method == "sgcl":
        overrides = {"saliency_size": 32, "saliency_pairs": 2}
    if method in ("regioncl", "regioncl_simsiam"):  # a 3 x 3 map: boxes of 1-2 cells leave a canvas
        overrides = {"global_size": 96, "swap_cells": [1, 2]}
    return TrainConfig(**({"method": method, "method_options": SMALL_OPTIONS[method], "arch": "resnet18", "epochs": 2,
                           "batch_size": 20, "base_lr": 0.05, "device": "cpu", "precision": "fp32", "threads": 2,
                           "log_every": 1, "recipe_overrides": overrides} | changes))


# every method, and the options that build other parts (one encoder, no momentum or target network)
STEP_CASES = [(method, {}) for method in sorted(METHODS)] + [("leoclr", {"end_to_end": True}),
                                                             ("sgcl", {"base": "simclr"})]
ONE_ENCODER = ({"end_to_end": True}, {"base": "simclr"})


@pytest.mark.parametrize("method,options", STEP_CASES, ids=[m + "".join(f"-{k}" for k in o) for m, o in STEP_CASES])
def test_one_real_step_gives_every_trainable_parameter_a_gradient(method, options, embedded_shards):
    config = small_config(method)
    torch.manual_seed(0)
    model = build_method(method, "resnet18", SMALL_OPTIONS[method] | options)
    loader = ViewLoader(embedded_shards, recipes.get(config.recipe_name, **config.recipe_overrides), 20, device="cpu",
                        threads=2)
    batch = next(iter(loader))
    loss, _ = model(batch)
    assert torch.isfinite(torch.tensor(loss.item()))
    model.backward(loss)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    if method in ("moco_v2", "leoclr", "byol", "scd_moco", "scd_byol", "regioncl", "logo_moco", "sgcl"):
        assert bool(frozen) != (options in ONE_ENCODER)  # momentum / target networks take no gradient


def test_regioncl_pools_a_16_px_swap_grid_on_a_stride_16_backbone(embedded_shards):
    """32 px views (a 2 x 2 map on resnet18-lowres): a one-cell box is one map position."""
    from viewkit.trainer.methods.regioncl import pool_paste_and_canvas

    recipe = recipes.get("regioncl", global_size=32, swap_grid=16, swap_cells=[1])
    batch = next(iter(ViewLoader(embedded_shards, recipe, 8, device="cpu", threads=2)))
    x0, y0, x1, y1 = batch["swap_box"].tolist()
    assert (x1 - x0, y1 - y0) == (16, 16) and x0 % 16 == 0 and y0 % 16 == 0
    model = build_method("regioncl_simsiam", "resnet18-lowres", SMALL_OPTIONS["regioncl_simsiam"])
    feature_map = model.backbone.feature_map(batch["swap"])
    paste, canvas = pool_paste_and_canvas(feature_map, batch["swap_box"], model.backbone.stride)
    assert torch.equal(paste, feature_map[:, :, y0 // 16, x0 // 16])
    mask = batch["swap_mask"][:, :, ::16, ::16]  # the composite's own mask, one pixel per map position
    assert mask.sum().item() == 8 and torch.allclose(canvas, (feature_map * ~mask).sum((2, 3)) / 3, atol=1e-6)
    loss, _ = model(batch)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="not on the backbone's 32 px grid"):
        build_method("regioncl_simsiam", "resnet18", SMALL_OPTIONS["regioncl_simsiam"])(batch)


def losses(run) -> dict:
    return {m["step"]: m["loss"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m}


@pytest.mark.parametrize("method,stop", [("moco_v2", 3), ("byol", 2)])
def test_resume_gives_the_same_next_losses(method, stop, embedded_shards, tmp_path, capsys):
    config = small_config(method)
    train(config, embedded_shards, tmp_path / "whole", progress=False)
    train_steps(config, embedded_shards, tmp_path / "resumed", stop)  # 3 steps = 1 epoch
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as metrics:  # a kill after the checkpoint had logged on
        metrics.write(json.dumps({"step": stop + 1, "epoch": 1, "loss": -1.0}) + "\n")
        metrics.write(json.dumps({"epoch": 2, "knn_top1": 0.0}) + "\n")
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path / "resumed" / "tensorboard") as events:  # ... and TensorBoard too
        events.add_scalar("loss", -1.0, stop + 1)
    capsys.readouterr()
    train(config, embedded_shards, tmp_path / "resumed", resume=True, progress=False)
    within = f", {stop} of its 3 steps done" if stop < 3 else ""
    assert (f"{tmp_path / 'resumed'}: resuming at epoch {stop // 3 + 1} of 2{within} (step {stop}) from "
            f"{tmp_path / 'resumed' / 'checkpoint-last.pt'}") in capsys.readouterr().out
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # TensorBoard reads event files in name order, and names within one second differ by a
    # process-wide counter that sorts as text: name them in the order they were written, as
    # runs in separate processes (later seconds) are.
    written = sorted((tmp_path / "resumed" / "tensorboard").iterdir(), key=lambda path: path.stat().st_mtime_ns)
    for order, path in enumerate(written):
        path.replace(path.with_name(f"events.out.tfevents.{1_000_000_000 + order}.run.{order}"))
    logged = EventAccumulator(str(tmp_path / "resumed" / "tensorboard"))
    logged.Reload()
    scalars = logged.Scalars("loss")
    assert [e.step for e in scalars] == sorted({e.step for e in scalars}) and -1.0 not in [e.value for e in scalars]
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 7))
    whole, resumed = losses(tmp_path / "whole"), losses(tmp_path / "resumed")
    assert sorted(whole) == sorted(resumed) == list(range(1, 7))
    for step in range(stop + 1, 7):
        assert resumed[step] == pytest.approx(whole[step], rel=1e-5, abs=1e-6), step


def test_a_run_folder_is_resumed_with_its_own_config_or_refused(embedded_shards, tmp_path):
    config = small_config("simsiam")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "epoch": 0, "loss": 9.0}\n')  # killed, no checkpoint
    train_steps(config, embedded_shards, tmp_path / "run", 1)
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["loss"] != 9.0  # a new run starts a new metrics file
    with pytest.raises(ValueError, match="run: holds a run already .* --resume continues it"):
        train_steps(config, embedded_shards, tmp_path / "run", 1)
    for changes, named in [({"base_lr": 0.1}, "base_lr: 0.05 -> 0.1"), ({"batch_size": 30}, "batch_size: 20 -> 30"),
                           ({"method_options": {"dim": 32, "predictor_hidden": 16}}, "method_options: ")]:
        with pytest.raises(ValueError, match=f"checkpoint-last.pt: --resume .* differs in {named}"):
            train(small_config("simsiam", **changes), embedded_shards, tmp_path / "run", resume=True, progress=False)
    # where and how fast it runs may change: it goes on from step 1
    train_steps(small_config("simsiam", threads=1, log_every=2), embedded_shards, tmp_path / "run", 2, resume=True)
    assert torch.load(tmp_path / "run" / "checkpoint-last.pt", weights_only=False)["step"] == 2


@pytest.mark.parametrize("taken", [(2, 2), (3, 2)])
def test_a_checkpoint_of_two_ranks_resumes_on_one_from_what_they_left(taken, embedded_shards, tmp_path, capsys):
    """Every rank's loader state of 2 ranks (30 samples each, batches of 10) resumed on 1 rank
    of batch 20. 40 delivered: the 20 left are one step of epoch 0, which continues (its
    start-of-epoch work is not done again). 50 delivered: the 10 left are under a batch,
    dropped as an epoch's tail, and the run trains epoch 1 whole. Steps are numbered on."""
    config = small_config("moco_v2", epochs=2)
    train_steps(config, embedded_shards, tmp_path / "run", 1)
    states = []
    for rank, count in enumerate(taken):
        earlier = ViewLoader(embedded_shards, recipes.get("moco_v2", **config.recipe_overrides), 10, device="cpu",
                             seed=config.seed, drop_last=True, rank=rank, world_size=2, threads=1)
        iterator = iter(earlier)
        for _ in range(count):
            next(iterator)
        states.append(earlier.state_dict())
    state = torch.load(tmp_path / "run" / "checkpoint-last.pt", weights_only=False)
    torch.save(state | {"loader": states}, tmp_path / "run" / "checkpoint-last.pt")
    from viewkit.trainer.run import start_run

    resumed = start_run(config, embedded_shards, tmp_path / "run", resume=True)
    resumed.close()
    assert resumed.continues_epoch(0) == (taken == (2, 2))
    capsys.readouterr()
    train(config, embedded_shards, tmp_path / "run", resume=True, progress=False)
    said = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    if taken == (2, 2):
        assert f"{tmp_path / 'run'}: resuming at epoch 1 of 2, part of it done (step 1)" in said
        assert ("world size 2 -> 1: global batch 20 stays (10 -> 20 per rank), lr 0.003906 stays (= 0.05 x 20 / 256); "
                "the rest of epoch 1 is the 20 samples no rank delivered, 1 step per rank") in said
        assert [(row["step"], row["epoch"]) for row in rows] == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]
    else:
        assert f"{tmp_path / 'run'}: resuming at epoch 2 of 2 (step 1)" in said
        assert "world size 2 -> 1: global batch 20 stays (10 -> 20 per rank)" in said and "epoch 2 starts whole" in said
        assert [(row["step"], row["epoch"]) for row in rows] == [(1, 0), (2, 1), (3, 1), (4, 1)]


def test_a_finished_run_is_extended_by_more_epochs(embedded_shards, tmp_path, capsys):
    """--resume epochs=N past the end goes on from the step reached, the cosine schedule
    stretched over N epochs; fewer epochs than the run has done is refused."""
    from viewkit.trainer.schedules import learning_rate

    config = small_config("simsiam", epochs=1, log_every=1)
    train(config, embedded_shards, tmp_path / "run", progress=False)
    capsys.readouterr()
    longer = small_config("simsiam", epochs=3, log_every=1)
    train(longer, embedded_shards, tmp_path / "run", resume=True, progress=False)
    said = capsys.readouterr().out
    assert f"{tmp_path / 'run'}: resuming at epoch 2 of 3 (step 3)" in said
    first_lr = learning_rate(3, 9, longer.lr)
    assert f"epochs 1 -> 3: the cosine schedule now ends at step 9, and goes on from lr {first_lr:.4g} at step 3" in said
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 10))
    assert [row["epoch"] for row in rows] == [0] * 3 + [1] * 3 + [2] * 3
    assert rows[3]["lr"] == pytest.approx(first_lr) and rows[-1]["lr"] == pytest.approx(learning_rate(8, 9, longer.lr))
    state = torch.load(tmp_path / "run" / "checkpoint-last.pt", weights_only=False)
    assert state["epoch"] == 3 and state["step"] == 9
    with pytest.raises(ValueError, match="the run has finished 3 epochs, more than epochs=2; give epochs=3 or more"):
        train(small_config("simsiam", epochs=2), embedded_shards, tmp_path / "run", resume=True, progress=False)



def test_resume_reads_method_options_a_run_predates_as_their_defaults():
    """A run saved before sgcl had `base` and `temperature` resumes under the shipped config
    that names them at their defaults; a value other than the default is still refused."""
    from dataclasses import asdict

    from viewkit.trainer.config import resume_conflicts

    older = asdict(small_config("sgcl"))
    newer = small_config("sgcl", method_options=SMALL_OPTIONS["sgcl"] | {"base": "byol", "temperature": 0.1})
    assert resume_conflicts(older, newer) == []
    other_base = small_config("sgcl", method_options=SMALL_OPTIONS["sgcl"] | {"base": "simclr"})
    conflicts = resume_conflicts(older, other_base)
    assert len(conflicts) == 1 and conflicts[0].startswith("method_options: ") and "'simclr'" in conflicts[0]

def test_sgcl_saliency_keys_are_its_own_options_and_older_runs_still_resume(tmp_path):
    """saliency_interval and saliency_resolution are sgcl's method options: the old top-level
    spelling is answered with the new one, and a run saved with it resumes under the new."""
    from dataclasses import asdict

    from viewkit.trainer.config import resume_conflicts

    (tmp_path / "old.yaml").write_text("method: sgcl\nsaliency_interval: 5\n")
    with pytest.raises(ValueError, match="unknown config key 'saliency_interval' \\(it is now "
                                         "method_options.saliency_interval \\(sgcl's own option\\)\\)"):
        load_config(str(tmp_path / "old.yaml"), [])
    with pytest.raises(ValueError, match="unknown key 'saliency_resolution' \\(it is now method_options"):
        load_config("sgcl", ["saliency_resolution=320"])
    older = asdict(small_config("sgcl")) | {"saliency_interval": 5, "saliency_resolution": 160}
    newer = small_config("sgcl", method_options=SMALL_OPTIONS["sgcl"] | {"saliency_interval": 5,
                                                                         "saliency_resolution": 160})
    assert resume_conflicts(older, newer) == []
    assert resume_conflicts(older, small_config("sgcl"))  # the run refreshed every 5 epochs: not silently 0
    with pytest.raises(ValueError, match="method_options.saliency_interval: byol has no such option"):
        small_config("byol", method_options=SMALL_OPTIONS["byol"] | {"saliency_interval": 5})


def test_threads_bound_torch_in_cpu_training_and_evaluation_and_are_given_back(embedded_shards, tmp_path, monkeypatch):
    import viewkit.trainer.engine as engine

    seen = []  # torch's thread count at every step, read where the engine sets the lr
    monkeypatch.setattr(engine, "learning_rate", lambda *args: seen.append(torch.get_num_threads()) or learning_rate(*args))
    given = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_steps(small_config("moco_v2", threads=1), embedded_shards, tmp_path / "one", 2)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        seen.clear()
        train_steps(small_config("moco_v2", threads=0), embedded_shards, tmp_path / "all", 1)
        assert seen == [2]  # 0: torch's own setting stands
        import viewkit.trainer.evaluate.knn as evaluation  # eval imports it when it runs

        seen.clear()
        monkeypatch.setattr(evaluation, "knn_top1", lambda *args, **kwargs: seen.append(torch.get_num_threads()) or 0.5)
        assert main(["eval", "knn", "--random-init", "--arch", "resnet18", "--train", str(embedded_shards), "--val",
                     str(embedded_shards), "--resolution", "32", "--device", "cpu", "--threads", "1"]) == 0
        assert seen == [1] and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="threads -1: 0 \\(every core\\) or a positive count"):
            train_steps(small_config("moco_v2", threads=-1), embedded_shards, tmp_path / "bad", 1)
        with pytest.raises(SystemExit):  # refused as the arguments are parsed
            main(["eval", "knn", "--random-init", "--arch", "resnet18", "--train", str(embedded_shards), "--val",
                  str(embedded_shards), "--device", "cpu", "--threads", "-1"])
    finally:
        torch.set_num_threads(given)


def test_resume_drops_a_partial_last_row_and_names_a_corrupt_one(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "epoch": 0, "loss": 2.0}\n{"epoch": 1, "knn_top1": 0.5}\n{"step": 2, "ep')
    forget_rows_after(metrics, step=1, epoch=1)
    assert metrics.read_text() == '{"step": 1, "epoch": 0, "loss": 2.0}\n{"epoch": 1, "knn_top1": 0.5}\n'
    metrics.write_text('{"step": 1, "epoch": 0, "loss": 2.0}\nnot json\n{"step": 2, "epoch": 0, "loss": 1.0}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not JSON"):
        forget_rows_after(metrics, step=2, epoch=0)


@pytest.mark.parametrize("method", ["simsiam", "regioncl_simsiam", "logo_simsiam"])
def test_simsiam_predictor_keeps_the_peak_lr_while_the_rest_decays(method, embedded_shards, tmp_path):
    config = small_config(method, warmup_epochs=0)
    train_steps(config, embedded_shards, tmp_path / "run", 4)
    model = build_method(method, "resnet18", SMALL_OPTIONS[method])
    groups = torch.load(tmp_path / "run" / "checkpoint-last.pt", weights_only=False)["optimizer"]["param_groups"]
    decayed, fixed = groups
    assert fixed["fixed_lr"] and fixed["lr"] == config.lr
    assert decayed["lr"] == pytest.approx(learning_rate(3, 6, config.lr)) and decayed["lr"] < config.lr
    assert len(fixed["params"]) == len(list(model.predictor.parameters()))
    assert len(decayed["params"]) + len(fixed["params"]) == len([p for p in model.parameters() if p.requires_grad])

    off = make_optimizer(config, build_method(method, "resnet18", SMALL_OPTIONS[method] | {"fixed_predictor_lr": False}))
    assert len(off.param_groups) == 1


def test_view_grid_is_logged_once_per_epoch_also_on_the_in_memory_ceiling(embedded_shards, tmp_path, monkeypatch):
    # The in-memory ceiling repeats one batch and never advances the loader; a grid written
    # every step there made the "ceiling" slower than real data.
    from viewkit.tools.bench_runs import repeat_first
    from viewkit.trainer.metrics import MetricsLog

    logged = []
    monkeypatch.setattr(MetricsLog, "views", lambda log, batch, step: logged.append(step))
    train(small_config("simsiam"), embedded_shards, tmp_path / "real", progress=False)  # 2 epochs of 3 steps
    assert logged == [0, 3]
    logged.clear()
    train_steps(small_config("simsiam"), embedded_shards, tmp_path / "memory", 3, batches=lambda run: repeat_first(run.loader))
    assert logged == [0]


class RunsCode:
    """What a crafted checkpoint holds: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_train_and_eval_commands(embedded_shards, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("method: simsiam\narch: resnet18\nepochs: 1\nbatch_size: 20\ndevice: cpu\nprecision: fp32\n")
    assert main(["train", str(config), "--data", str(embedded_shards), "--out", str(tmp_path / "run"), "--quiet",
                 "method_options.dim=64", "recipe_overrides.global_size=32", "threads=2"]) == 0
    closing = capsys.readouterr().out.strip().splitlines()[-1]
    assert closing.startswith(f"{tmp_path / 'run'}: finished 1 epoch (") and "last loss" in closing
    for name in ("checkpoint-last.pt", "metrics.jsonl", "config.yaml"):
        assert (tmp_path / "run" / name).exists()
    assert "git" in (tmp_path / "run" / "config.yaml").read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert "views/global" in events.Tags()["images"] and "loss" in events.Tags()["scalars"]
    capsys.readouterr()
    assert main(["eval", "knn", "--checkpoint", str(tmp_path / "run" / "checkpoint-last.pt"), "--train",
                 str(embedded_shards), "--val", str(embedded_shards), "--resolution", "32", "--device", "cpu"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("knn_top1=") and 0.0 <= float(last.split("=")[1]) <= 1.0
    assert json.loads((tmp_path / "run" / "checkpoint-last.knn.json").read_text())["protocol"] == "knn"
    assert main(["eval", "knn", "--checkpoint", str(tmp_path / "run" / "checkpoint-last.pt"), "--train",
                 str(embedded_shards), "--val", str(embedded_shards), "--device", "cpu"]) == 0
    assert "resolution 32 px (as the checkpoint was trained)" in capsys.readouterr().out  # not 224
    assert json.loads((tmp_path / "run" / "checkpoint-last.knn.json").read_text())["resolution"] == 32
    unwritable = "/dev/null/knn.json"  # a file as its parent: fails for root too, where permissions do not
    assert main(["eval", "knn", "--checkpoint", str(tmp_path / "run" / "checkpoint-last.pt"), "--train",
                 str(embedded_shards), "--val", str(embedded_shards), "--resolution", "32", "--device", "cpu",
                 "--json", unwritable]) == 2
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1].startswith("knn_top1=")  # the result was printed before the write failed
    assert err.strip().splitlines()[-1] == f"viewkit eval: error: {unwritable}: Not a directory"  # after progress
    assert main(["eval", "linear", "--checkpoint", str(tmp_path / "run" / "checkpoint-last.pt"), "--train",
                 str(embedded_shards), "--val", str(embedded_shards), "--resolution", "32", "--device", "cpu",
                 "--epochs", "5"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("linear_top1=")
    assert main(["eval", "knn", "--checkpoint", str(tmp_path / "run" / "checkpoint-last.pt"), "--features", "fg",
                 "--train", str(embedded_shards), "--val", str(embedded_shards), "--resolution", "32",
                 "--device", "cpu"]) == 2
    assert "checkpoint-last.pt: no SCD saliency head" in capsys.readouterr().err
    whole = (tmp_path / "run" / "checkpoint-last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])  # a copy that stopped half-way
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    marker = tmp_path / "code-ran"
    torch.save({"arch": "resnet18", "backbone": RunsCode(marker)}, tmp_path / "evil.pt")
    for name, named in (("cut.pt", "not a readable checkpoint"),
                        ("foreign.pt", "not a viewkit checkpoint, it lacks ['arch', 'backbone']"),
                        ("evil.pt", "refused: it holds posix.system")):
        for command in (["eval", "knn", "--train", str(embedded_shards), "--val", str(embedded_shards)],
                        ["saliency", str(embedded_shards), "--out", str(tmp_path / "store"), "--device", "cpu"]):
            assert main([*command, "--checkpoint", str(tmp_path / name)]) == 2
            assert f"{tmp_path / name}: {named}" in capsys.readouterr().err
    (tmp_path / "run" / "evil.pt").write_bytes((tmp_path / "evil.pt").read_bytes())
    (tmp_path / "run" / "evil.pt").replace(tmp_path / "run" / "checkpoint-last.pt")
    assert main(["train", str(config), "--data", str(embedded_shards), "--out", str(tmp_path / "run"), "--quiet",
                 "--resume", "method_options.dim=64", "recipe_overrides.global_size=32", "threads=2"]) == 2
    assert "checkpoint-last.pt: refused" in capsys.readouterr().err
    assert not marker.exists()  # the crafted pickle never ran


def test_scd_fg_features_are_the_saliency_pooled_map_of_the_checkpoint(embedded_shards, tmp_path, capsys):
    from viewkit.trainer import checkpoint as ckpt
    from viewkit.trainer.methods.scd import pool_foreground_background
    from viewkit.trainer.evaluate.backbone import load_backbone

    train(small_config("scd_byol", epochs=1), embedded_shards, tmp_path / "run", progress=False)
    checkpoint = str(tmp_path / "run" / "checkpoint-last.pt")
    model = build_method("scd_byol", "resnet18", SMALL_OPTIONS["scd_byol"])
    model.load_state_dict(ckpt.load(checkpoint)["model"])
    model.eval()
    encoder = load_backbone(checkpoint, False, None, 0, features="fg").eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        feature_map = model.backbone.feature_map(images)
        expected = pool_foreground_background(feature_map, model.semantic.saliency(feature_map))[0]
        assert torch.allclose(encoder(images), expected, atol=1e-5)
        assert not torch.allclose(expected, feature_map.mean((2, 3)), atol=1e-3)  # not plain average pooling
    capsys.readouterr()
    assert main(["eval", "linear", "--checkpoint", checkpoint, "--features", "fg", "--train", str(embedded_shards),
                 "--val", str(embedded_shards), "--resolution", "32", "--device", "cpu", "--epochs", "3"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("linear_top1=")
    assert json.loads((tmp_path / "run" / "checkpoint-last.linear-fg.json").read_text())["features"] == "fg"


def test_evaluation_and_the_knn_monitor_refuse_unlabelled_or_mismatched_shards_before_any_work(embedded_source, embedded_shards,
                                                                                  tmp_path, capsys):
    import shutil

    from viewkit.shards import sources
    from viewkit.shards.writer import ShardOptions, write_dataset

    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted(Path(embedded_source["images"]).glob("*/*"))[:4]:
        shutil.copy(image, flat / image.name)
    write_dataset(sources.folder_items(flat), tmp_path / "unlabelled", split="train", options=ShardOptions(workers=1),
                  progress=False)
    named = f"{tmp_path / 'unlabelled'}: .* needs labelled shards, and they were sharded from a folder without class"
    assert main(["eval", "knn", "--random-init", "--arch", "resnet18", "--train", str(embedded_shards),
                 "--val", str(tmp_path / "unlabelled")]) == 2
    assert re.search(named, capsys.readouterr().err)
    config = small_config("simsiam", knn_every=1, knn_train=str(tmp_path / "unlabelled"), knn_val=str(embedded_shards))
    with pytest.raises(ValueError, match=f"{named}"):
        train(config, embedded_shards, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before the first step
    fewer = tmp_path / "fewer"  # a val set without the first class: every label would shift by one
    for image in sorted(Path(embedded_source["images"]).glob("*/*")):
        if image.parent.name != "cross":
            (fewer / image.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, fewer / image.parent.name / image.name)
    write_dataset(sources.folder_items(fewer), tmp_path / "fewer-shards", split="val", options=ShardOptions(workers=1),
                  progress=False)
    assert main(["eval", "linear", "--random-init", "--arch", "resnet18", "--train", str(embedded_shards),
                 "--val", str(tmp_path / "fewer-shards")]) == 2
    assert (f"linear evaluation: the class lists differ, label 0 is 'cross' in {embedded_shards} (6 classes) and "
            f"'disk' in {tmp_path / 'fewer-shards'} (5)") in capsys.readouterr().err


def test_bad_config_is_named(tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: gpu, and torch sees no CUDA GPU; device=cpu"):
            train(TrainConfig(device="gpu"), str(tmp_path), tmp_path / "run")
    (tmp_path / "c.yaml").write_text("base_lrr: 1\n")
    with pytest.raises(ValueError, match="unknown config key 'base_lrr' \\(did you mean 'base_lr'\\?\\)"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ValueError, match="override 'batchsize=3': unknown key 'batchsize' \\(did you mean 'batch_size'"):
        load_config(None, ["batchsize=3"])
    for override, said in (("batch_size=abc", "batch_size='abc' must be an integer"),
                           ("base_lr=fast", "base_lr='fast' must be a number"),
                           ("channels_last=3", "channels_last=3 must be true or false")):
        with pytest.raises(ValueError, match=said):
            load_config(None, [override])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="a config is a YAML mapping"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match="method 'mocov3'"):
        load_config(None, ["method=mocov3"])
    with pytest.raises(ValueError, match="has no option"):
        build_method("byol", "resnet18", {"queue": 5})
    with pytest.raises(ValueError, match="loader_options \\['shuffle'\\]"):
        load_config(None, ["loader_options.shuffle=false"])
    with pytest.raises(ValueError, match="hw_decoder_load=1.5"):
        load_config(None, ["loader_options.hw_decoder_load=1.5"])


def test_loader_options_reach_the_training_loader(embedded_shards, tmp_path, monkeypatch):
    from viewkit.trainer import run

    built, real_loader = [], run.ViewLoader

    def recording_loader(*args, **kwargs):
        built.append(real_loader(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(run, "ViewLoader", recording_loader)
    config = load_config(None, ["method=simsiam", "loader_options.prefetch=3", "loader_options.hw_decoder_load=0.9"])
    config = small_config("simsiam", loader_options=config.loader_options)
    train_steps(config, embedded_shards, tmp_path / "run", 1)
    assert built[0].options.prefetch == 3 and built[0].options.hw_decoder_load == 0.9


def test_two_process_gloo_ddp_step(embedded_shards, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("method: byol\narch: resnet18\nepochs: 1\nbatch_size: 20\ndevice: cpu\nprecision: fp32\n"
                      "method_options: {hidden: 64, dim: 32}\nrecipe_overrides: {global_size: 32}\nthreads: 1\n"
                      "log_every: 1\n")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                             str(free_port()), "-m", "viewkit.tools.cli", "train", str(config), "--data", str(embedded_shards),
                             "--out", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size: 2" in (tmp_path / "run" / "config.yaml").read_text()
    assert len(losses(tmp_path / "run")) == 3  # 60 samples / (10 per rank x 2 ranks)


def test_sgcl_refreshes_its_saliency_store_while_training(embedded_shards, tmp_path):
    from viewkit.saliency import SaliencyStore
    from viewkit.trainer import checkpoint as ckpt

    config = small_config("sgcl", epochs=2, method_options=SMALL_OPTIONS["sgcl"] | {"saliency_interval": 1,
                                                                                 "saliency_resolution": 64})
    train(config, embedded_shards, tmp_path / "run", progress=False)
    store = SaliencyStore(tmp_path / "run" / "saliency-store")
    assert store.meta["epoch"] == 1 and store.meta["source"] == "ncut" and store.meta["num_samples"] == 60
    assert ckpt.load(tmp_path / "run" / "checkpoint-last.pt")["saliency_store"]["version"] == 1


def test_a_config_derives_from_its_base_entry_by_entry(tmp_path):
    (tmp_path / "paper.yaml").write_text("method: moco_v2\nmethod_options: {queue: 65536, dim: 128}\nepochs: 200\n"
                                         "recipe_overrides: {global_size: 224}\n")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "small.yaml").write_text("base: ../paper.yaml\nmethod_options: {queue: 2048}\nepochs: 10\n")
    config = load_config(tmp_path / "cpu" / "small.yaml", ["method_options.dim=64"])
    assert config.method_options == {"queue": 2048, "dim": 64} and config.epochs == 10
    assert config.recipe_overrides == {"global_size": 224} and config.method == "moco_v2"
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\nepochs: 1\n")
    with pytest.raises(ValueError, match="loop.yaml leads back to itself"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "lost.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ValueError, match="lost.yaml: base: .*nowhere.yaml is not a file"):
        load_config(tmp_path / "lost.yaml")


@pytest.mark.parametrize("folder", ["viewkit/configs", "viewkit/configs/cpu"])
def test_every_method_has_a_config_that_builds(folder):
    """Each shipped YAML names a method, options it takes and a recipe that compiles its overrides."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / folder
    assert sorted(p.stem for p in root.glob("*.yaml")) == sorted(METHODS)
    for path in sorted(root.glob("*.yaml")):
        config = load_config(path)
        assert config.method == path.stem, path
        unknown = set(config.method_options) - set(METHODS[config.method].defaults)
        assert not unknown, (path, unknown)
        recipes.get(config.recipe_name, **config.recipe_overrides)
        if folder.endswith("cpu"):
            build_method(config.method, config.arch, config.method_options)


def test_checkpoints_written_before_the_trainer_moved_still_load():
    """The model state of every method, key by key with shapes and dtypes, as commit 840aea7
    (before the engine and methods/ layout) wrote it: a digest per method, so the repository
    keeps no checkpoint; equal digests mean `load_state_dict(strict=True)` takes those files."""
    import hashlib

    written = json.loads((Path(__file__).parent / "data" / "method-state-840aea7.json").read_text())
    assert sorted(written) == sorted(METHODS)
    for name in sorted(METHODS):
        model = build_method(name, "resnet18", SMALL_OPTIONS[name])
        listing = [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()]
        assert hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16] == written[name], name
