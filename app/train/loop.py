"""Progressive-shrinking training loop: resumable, logged, data-parallel under ``torchrun``.

Run with ``python -m app train --recipe recipes/<name>.json --data <imagenette root>``
(or ``torchrun --nproc_per_node N -m app train ...``). State is checkpointed to
``<out>/checkpoint.pt`` every few minutes and at every epoch end, so a killed run
resumes where it stopped. At the end of every phase the weights (no optimizer state)
are written in the project's format, and optionally to the bundled default.

Data parallelism: each rank takes its share of every batch; all ranks sample the
same subnet and resolution per step (from a generator seeded by the step); gradients
are averaged with one all-reduce per step, BN buffers with another. Elastic subnets
leave most parameters unused in any step, which this handles without DDP's
unused-parameter search. Backend: gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from app.data import IMAGENETTE_CLASSES
from app.space import SubnetConfig
from app.card import SupernetCard
from app.supernet import OFASupernet
from app.datasets import TensorImages, center_batch, load_split, recalibrate_on_training_images
from app.train.dataset import augment_batch, cutmix_batch, downscale_batch
from app.train.recipe import Phase, Recipe
from app.weights import atomic_write_text, load_project_supernet, save_supernet


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}") if backend == "nccl" else torch.device("cpu")
    return Dist(rank, dist.get_world_size(), device)


def step_configs(phase: Phase, r: int, rng: random.Random) -> list[SubnetConfig]:
    """The subnets one optimizer step trains: random ones, or with ``phase.sandwich`` the
    phase's largest and smallest first (BigNAS), then random ones."""
    n = phase.subnets_per_step
    if not phase.sandwich:
        return [sample_config(phase, r, rng) for _ in range(n)]
    largest = SubnetConfig((max(phase.ks),) * 20, (max(phase.e),) * 20, (max(phase.d),) * 5, r)
    smallest = SubnetConfig((min(phase.ks),) * 20, (min(phase.e),) * 20, (min(phase.d),) * 5, r)
    return [largest, smallest] + [sample_config(phase, r, rng) for _ in range(n - 2)]


def sample_config(phase: Phase, r: int, rng: random.Random) -> SubnetConfig:
    return SubnetConfig(
        tuple(rng.choice(phase.ks) for _ in range(20)),
        tuple(rng.choice(phase.e) for _ in range(20)),
        tuple(rng.choice(phase.d) for _ in range(5)),
        r,
    )


def soft_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    return torch.sum(-F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1), dim=1).mean()


def _lr_at(phase: Phase, base_lr: float, step: int, total: int, steps_per_epoch: int) -> float:
    warm = int(phase.warmup_epochs * steps_per_epoch)
    if step < warm:
        return base_lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def evaluate(
    net: OFASupernet,
    cfg: SubnetConfig,
    val: TensorImages,
    train: TensorImages | None,
    calib_images: int = 256,
    batch: int = 200,
    limit: int = 0,
) -> float:
    """Top-1 (%) of subnet ``cfg`` on ``val``; BN re-estimated on ``calib_images`` train images if given."""
    was = net.training
    net.eval()
    sub = net.extract(cfg)
    card = net.card
    if train is not None and calib_images > 0:
        recalibrate_on_training_images(sub, train, cfg.r, card.mean, card.std, n=calib_images, seed=1234, batch=batch)
    order = torch.arange(len(val))
    if limit and limit < len(val):  # a fixed, class-balanced-in-expectation subset
        order = torch.randperm(len(val), generator=torch.Generator().manual_seed(4321))[:limit]
    n = order.numel()
    correct = 0
    for i in range(0, n, batch):
        j = order[i : i + batch]
        x = center_batch(val.images[j], cfg.r, card.mean, card.std)
        correct += (sub(x).argmax(1) == val.labels[j]).sum().item()
    net.train(was)
    return 100.0 * correct / n


def _allreduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    off = 0
    for p in params:
        n = p.numel()
        p.grad = flat[off : off + n].view_as(p).clone()
        off += n


def _allreduce_buffers(net: torch.nn.Module, world: int) -> None:
    bufs = [b for name, b in net.named_buffers() if b.is_floating_point()]
    flat = torch.cat([b.reshape(-1) for b in bufs])
    dist.all_reduce(flat)
    flat /= world
    off = 0
    for b in bufs:
        n = b.numel()
        b.copy_(flat[off : off + n].view_as(b))
        off += n


def lineage_of(card: SupernetCard) -> list[dict]:
    """The training history a run continuing from ``card``'s weights inherits: its runs, oldest first,
    each with recipe name, phases and wall-clock seconds per phase."""
    extra = card.extra or {}
    here = {
        "sha256": card.sha256,
        "recipe": (extra.get("recipe") or {}).get("name"),
        "phases_completed": extra.get("phases_completed", []),
        "seconds_per_phase": extra.get("seconds_per_phase", {}),
    }
    return [*extra.get("lineage", []), here]


def replica_divergence(net: torch.nn.Module) -> float:
    """Largest |difference| of any parameter or buffer between data-parallel replicas (0.0 when identical)."""
    flat = torch.cat([t.detach().reshape(-1).double() for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()])
    hi, lo = flat.clone(), flat.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return float((hi - lo).abs().max())


class Trainer:
    """Runs a recipe's phases in order; resumable from ``out_dir/checkpoint.pt``, or from a finished phase's
    weights (``continue_from``, e.g. staged in git when the run directory did not outlive its machine)."""

    def __init__(
        self,
        recipe: Recipe,
        data_root: str | Path,
        out_dir: str | Path,
        publish_to: str | Path | None = None,
        max_steps: int | None = None,
        log: Callable[[str], None] = print,
        progress: bool = True,
        continue_from: str | Path | None = None,
    ) -> None:
        self.recipe = recipe
        self.data_root = Path(data_root)
        self.out = Path(out_dir)
        self.publish_to = Path(publish_to) if publish_to else None
        self.max_steps = max_steps
        self.log_fn = log
        self.progress = progress
        self.dist = init_distributed()
        torch.manual_seed(recipe.seed)
        classes = [name for _, name in (IMAGENETTE_CLASSES[w] for w in sorted(IMAGENETTE_CLASSES))]
        card = SupernetCard(
            width_mult=recipe.width_mult,
            classes=classes,
            class_ids=sorted(IMAGENETTE_CLASSES),
            name=f"ofa_mbv3_w{recipe.width_mult}_imagenette",
            provenance=f"trained by this project on Imagenette (recipe {recipe.name} v{recipe.version})",
        )
        self.net = OFASupernet(card, dropout=recipe.dropout).to(self.dist.device)
        self.lineage: list[dict] = []  # the runs these weights continue, oldest first
        self.state = {"phase": 0, "epoch": 0, "step": 0, "seconds": {}, "history": []}
        if continue_from:
            self._continue_from(Path(continue_from))
        elif recipe.init_from:  # continue from earlier weights (e.g. a longer schedule after a short run)
            self.lineage = lineage_of(self._load_weights(Path(recipe.init_from), "recipe init_from"))
        # training-only 1,000-way head for phases that distil all of the ImageNet teacher's logits
        self.imagenet_head: torch.nn.Linear | None = None
        if any(p.kd_imagenet > 0 for p in recipe.phases):
            self.imagenet_head = torch.nn.Linear(self.net.widths.feature_mix, 1000).to(self.dist.device)
        if self.dist.world > 1:  # identical start on every rank
            for t in self.trainable_parameters() + list(self.net.buffers()):
                dist.broadcast(t.data, 0)
        if recipe.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.teacher: OFASupernet | None = None  # the full network, for OFA's in-place distillation
        self.imagenet_teacher: torch.nn.Module | None = None  # the recipe's pretrained teacher, loaded when needed
        self.optimizer: torch.optim.Optimizer | None = None

    def _load_weights(self, path: Path, what: str) -> SupernetCard:
        """Load project-format weights into the network; their card."""
        start = load_project_supernet(path)
        if start.card.width_mult != self.recipe.width_mult or start.card.num_classes != self.net.card.num_classes:
            raise ValueError(f"{what} {path}: width {start.card.width_mult} / {start.card.num_classes} classes "
                             "do not match the recipe")
        self.net.load_state_dict(start.state_dict())
        return start.card

    def _continue_from(self, path: Path) -> None:
        """Start after the phases that ``path``'s weights (published by this recipe) completed, with their
        wall-clock and history, as if this run had trained them."""
        extra = self._load_weights(path, "--continue-from").extra or {}
        done = list(extra.get("phases_completed", []))
        names = [p.name for p in self.recipe.phases]
        made_by = (extra.get("recipe") or {}).get("name")
        if made_by != self.recipe.name or not done or names[: len(done)] != done:
            raise ValueError(f"--continue-from {path}: weights of recipe {made_by} after phases {done or 'none'}; "
                             f"this recipe is {self.recipe.name} with phases {names}")
        self.lineage = list(extra.get("lineage", []))
        self.state.update(phase=len(done), seconds=dict(extra.get("seconds_per_phase", {})),
                          history=list(extra.get("history", [])))

    # ---------------------------------------------------------------- helpers
    def log(self, msg: str) -> None:
        if self.dist.main:
            self.log_fn(msg)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The supernet's parameters, then the training-only ImageNet head's (if any)."""
        head = list(self.imagenet_head.parameters()) if self.imagenet_head is not None else []
        return list(self.net.parameters()) + head

    def _make_optimizer(self, phase: Phase) -> torch.optim.Optimizer:
        r = self.recipe
        decay, no_decay = [], []
        named = list(self.net.named_parameters())
        if self.imagenet_head is not None:
            named += [(f"imagenet_head.{n}", p) for n, p in self.imagenet_head.named_parameters()]
        for name, p in named:
            (no_decay if p.ndim <= 1 or "transform_" in name else decay).append(p)
        return torch.optim.SGD(
            [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=phase.lr,
            momentum=r.momentum,
            nesterov=r.nesterov,
        )

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        if not self.dist.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "checkpoint.pt.tmp"
        torch.save(
            {
                "model": self.net.state_dict(),
                "imagenet_head": self.imagenet_head.state_dict() if self.imagenet_head is not None else None,
                "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                "state": json.dumps(self.state),
                "recipe": json.dumps(self.recipe.to_dict()),
            },
            tmp,
        )
        os.replace(tmp, self.ckpt_path)

    def try_resume(self) -> bool:
        if not self.ckpt_path.is_file():
            return False
        ck = torch.load(self.ckpt_path, map_location=self.dist.device, weights_only=True)
        self.net.load_state_dict(ck["model"])
        if self.imagenet_head is not None and ck.get("imagenet_head"):
            self.imagenet_head.load_state_dict(ck["imagenet_head"])
        self.state = json.loads(ck["state"])
        phase = self.recipe.phases[self.state["phase"]] if self.state["phase"] < len(self.recipe.phases) else None
        if phase is not None:
            self.optimizer = self._make_optimizer(phase)
            if ck["optimizer"]:
                self.optimizer.load_state_dict(ck["optimizer"])
        self.log(f"resumed: phase {self.state['phase']} epoch {self.state['epoch']} step {self.state['step']}")
        return True

    def _load_teacher(self) -> None:
        path = self.out / "phase-0-full.safetensors"
        if path.is_file():
            t = load_project_supernet(path).to(self.dist.device)
            self.teacher = t.to(memory_format=torch.channels_last) if self.recipe.channels_last else t
        else:  # KD without a saved full network: distil from a frozen copy of the current one
            t = OFASupernet(self.net.card, dropout=0).to(self.dist.device)
            t.load_state_dict(self.net.state_dict())
            self.teacher = t.eval().requires_grad_(False)

    def publish(self, phase_idx: int, phase: Phase, metrics: dict) -> None:
        if not self.dist.main:
            return
        phases = [p.name for p in self.recipe.phases[: phase_idx + 1]]
        self.net.card = self.net.card.replace(
            extra={
                "lineage": self.lineage,
                "recipe": self.recipe.to_dict(),
                "phases_completed": phases,
                "seconds_per_phase": dict(self.state["seconds"]),
                "history": self.state["history"],
                "last_phase_metrics": metrics,
            },
            provenance=f"trained by this project on Imagenette, recipe {self.recipe.name} v{self.recipe.version}, "
                       f"phases {', '.join(phases)}",
        )
        self.net.eval()
        stem = self.out / f"phase-{phase_idx}-{phase.name}"
        save_supernet(self.net, stem)
        if self.publish_to is not None:
            self.publish_to.parent.mkdir(parents=True, exist_ok=True)
            for suffix in (".safetensors", ".json"):
                shutil.copyfile(str(stem) + suffix, str(self.publish_to) + ".tmp" + suffix)
                os.replace(str(self.publish_to) + ".tmp" + suffix, str(self.publish_to) + suffix)
        self.net.train()
        self.log(f"published weights of phase {phase.name} -> {stem}.safetensors")

    # ------------------------------------------------------------------- main
    def run(self) -> dict:
        r = self.recipe
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            atomic_write_text(self.out / "recipe.json", json.dumps(r.to_dict(), indent=2))
        if not self.try_resume() and self.state["phase"]:
            self.log(f"continuing after phases {', '.join(p.name for p in r.phases[: self.state['phase']])}")
        cache = self.out.parent / "cache"
        train = load_split(self.data_root, "train", cache, progress=self.progress and self.dist.main)
        val = load_split(self.data_root, "val", cache, progress=self.progress and self.dist.main)
        per_rank = r.batch_size // self.dist.world
        steps_per_epoch = len(train) // r.batch_size
        done_steps = 0
        while self.state["phase"] < len(r.phases):
            pi = self.state["phase"]
            phase = r.phases[pi]
            if self.optimizer is None:
                if phase.sort_channels is not None and self.state["epoch"] == 0 and self.state["step"] == 0:
                    self.net.sort_channels(phase.sort_channels)
                self.optimizer = self._make_optimizer(phase)
            if phase.kd > 0 and self.teacher is None and not phase.sandwich:
                self._load_teacher()
            if phase.uses_teacher and self.imagenet_teacher is None:
                from app.train.teacher import load_teacher

                card = self.net.card
                t = load_teacher(r.teacher, card.class_ids, card.mean, card.std).to(self.dist.device)
                self.imagenet_teacher = t.to(memory_format=torch.channels_last) if r.channels_last else t
            total_steps = int(phase.epochs * steps_per_epoch)
            n_epochs = math.ceil(phase.epochs)
            while self.state["epoch"] < n_epochs:
                ep = self.state["epoch"]
                perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(r.seed * 100003 + pi * 1009 + ep))
                ep_steps = min(steps_per_epoch, total_steps - ep * steps_per_epoch)
                aug_gen = torch.Generator().manual_seed(r.seed + 7919 * (pi * 1000 + ep) + self.dist.rank)
                # skip the random draws of steps already done (resume mid-epoch)
                start = self.state["step"]
                t0, last_ck = time.time(), time.time()
                loss_sum = correct = seen = 0.0
                bar = None
                if self.progress and self.dist.main:
                    from tqdm import tqdm

                    bar = tqdm(total=ep_steps, initial=start, desc=f"{phase.name} ep{ep + 1}/{n_epochs}", unit="step", mininterval=5)
                self.net.train()
                for step in range(start, ep_steps):
                    step_rng = random.Random(f"{r.seed}-{pi}-{ep}-{step}")
                    res = step_rng.choices(r.resolutions, weights=r.resolution_weights)[0]
                    idx = perm[step * r.batch_size : (step + 1) * r.batch_size][self.dist.rank :: self.dist.world][:per_rank]
                    aug_gen.manual_seed(r.seed + 7919 * (pi * 1000 + ep) + 104729 * step + self.dist.rank)
                    # with teacher_resolution, crop (and mix) at the teacher's resolution, then scale down for the student
                    crop_res = r.teacher_resolution if phase.uses_teacher and r.teacher_resolution else res
                    x = augment_batch(train.images[idx], crop_res, self.net.card.mean, self.net.card.std, aug_gen, r.crop_scale)
                    y = train.labels[idx]
                    x, y_pasted, kept = cutmix_batch(x, y, phase.cutmix, aug_gen)
                    x_teacher, x = x, downscale_batch(x, res)  # the same tensor unless teacher_resolution
                    x, x_teacher, y, y_pasted = (t.to(self.dist.device) for t in (x, x_teacher, y, y_pasted))
                    if r.channels_last:
                        x, x_teacher = (t.contiguous(memory_format=torch.channels_last) for t in (x, x_teacher))
                    lr = _lr_at(phase, phase.lr, ep * steps_per_epoch + step, total_steps, steps_per_epoch)
                    for g in self.optimizer.param_groups:
                        g["lr"] = lr
                    soft = soft_ext = imagenet_soft = None
                    if phase.kd > 0 and self.teacher is not None and not phase.sandwich:
                        with torch.no_grad():
                            soft = self.teacher(x)
                    if phase.uses_teacher:
                        imagenet_soft = self.imagenet_teacher.imagenet_logits(x_teacher)
                        soft_ext = self.imagenet_teacher.restrict(imagenet_soft) if phase.kd_teacher > 0 else None
                    self.optimizer.zero_grad(set_to_none=True)
                    for k, cfg in enumerate(step_configs(phase, res, step_rng)):
                        feats = self.net.features(x, cfg)
                        out = self.net.classify(feats)
                        loss = kept * F.cross_entropy(out, y, label_smoothing=r.label_smoothing)
                        if kept < 1:
                            loss = loss + (1 - kept) * F.cross_entropy(out, y_pasted, label_smoothing=r.label_smoothing)
                        if phase.kd_imagenet > 0 and k == 0:
                            loss = loss + phase.kd_imagenet * soft_cross_entropy(self.imagenet_head(feats), imagenet_soft)
                        if soft is not None:
                            loss = loss + phase.kd * soft_cross_entropy(out, soft)
                        if phase.sandwich and phase.kd > 0 and k == 0:
                            soft = out.detach()  # in-place distillation: the largest teaches the rest of the step
                        if soft_ext is not None:
                            loss = loss + phase.kd_teacher * soft_cross_entropy(out, soft_ext)
                        loss.backward()
                    if self.dist.world > 1:
                        _allreduce_grads(self.trainable_parameters(), self.dist.world)
                    self.optimizer.step()
                    if self.dist.world > 1:
                        _allreduce_buffers(self.net, self.dist.world)
                    loss_sum += loss.item() * y.numel()
                    correct += (out.argmax(1) == y).sum().item()
                    seen += y.numel()
                    self.state["step"] = step + 1
                    done_steps += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}", r=res, lr=f"{lr:.4f}", refresh=False)
                    now = time.time()
                    if now - last_ck > r.checkpoint_minutes * 60:
                        self._add_seconds(phase.name, now - t0)
                        t0 = last_ck = now
                        self.save_checkpoint()
                    if self.max_steps is not None and done_steps >= self.max_steps:
                        self._add_seconds(phase.name, time.time() - t0)
                        if bar is not None:
                            bar.close()
                        self.save_checkpoint()
                        self._check_replicas()
                        return self.state
                if bar is not None:
                    bar.close()
                self._add_seconds(phase.name, time.time() - t0)
                metrics = self._epoch_metrics(phase, val, train)
                rec = {
                    "phase": phase.name,
                    "epoch": ep + 1,
                    "train_loss": loss_sum / max(seen, 1),
                    "train_acc": 100 * correct / max(seen, 1),
                    "hours_in_phase": self.state["seconds"].get(phase.name, 0) / 3600,
                    **metrics,
                }
                self.state["history"].append(rec)
                self.log(json.dumps(rec))
                if self.dist.main:
                    with open(self.out / "log.jsonl", "a") as f:
                        f.write(json.dumps(rec) + "\n")
                self.state["epoch"] = ep + 1
                self.state["step"] = 0
                self.save_checkpoint()
            self.publish(pi, phase, self.state["history"][-1] if self.state["history"] else {})
            self.state.update(phase=pi + 1, epoch=0, step=0)
            self.optimizer = None
            self.teacher = None if pi + 1 < len(r.phases) and r.phases[pi + 1].kd == 0 else self.teacher
            self.save_checkpoint()
        self._check_replicas()
        return self.state

    def _check_replicas(self) -> None:
        """Under DDP, verify every rank holds the same weights; recorded in ``replicas.json``."""
        if self.dist.world == 1:
            return
        diff = replica_divergence(self.net)
        if self.dist.main:
            atomic_write_text(self.out / "replicas.json", json.dumps({"world_size": self.dist.world, "max_abs_diff": diff}) + "\n")
        self.log(f"replicas across {self.dist.world} ranks: max |difference| {diff:.3g}")
        if diff > 0:
            raise RuntimeError(f"data-parallel replicas diverged (max |difference| {diff:.3g})")

    def _add_seconds(self, phase: str, s: float) -> None:
        self.state["seconds"][phase] = self.state["seconds"].get(phase, 0.0) + s

    def _epoch_metrics(self, phase: Phase, val: TensorImages, train: TensorImages) -> dict:
        if not self.dist.main:
            return {}
        r = self.recipe.eval_resolution
        t = time.time()
        largest = SubnetConfig(( max(phase.ks),) * 20, (max(phase.e),) * 20, (max(phase.d),) * 5, r)
        smallest = SubnetConfig((min(phase.ks),) * 20, (min(phase.e),) * 20, (min(phase.d),) * 5, r)
        out = {f"val_top1_largest_r{r}": evaluate(self.net, largest, val, train, limit=self.recipe.eval_images)}
        if smallest != largest:
            out[f"val_top1_smallest_r{r}"] = evaluate(self.net, smallest, val, train, limit=self.recipe.eval_images)
        out["eval_seconds"] = time.time() - t
        return out
