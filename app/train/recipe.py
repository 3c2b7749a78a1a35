"""Training recipes: versioned JSON files describing progressive shrinking phase by phase."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.space import DEPTH_CHOICES, EXPAND_CHOICES, KERNEL_CHOICES, RESOLUTION_CHOICES


@dataclass
class Phase:
    """One phase of progressive shrinking: which choices are elastic, for how long, how."""

    name: str
    epochs: float
    lr: float
    ks: list[int] = field(default_factory=lambda: [7])
    e: list[int] = field(default_factory=lambda: [6])
    d: list[int] = field(default_factory=lambda: [4])
    kd: float = 0.0  # weight of distillation from the full network (0: none); with sandwich, from this step's largest subnet
    kd_teacher: float = 0.0  # weight of distillation from the recipe's ImageNet teacher (0: none)
    # weight of distillation from all 1,000 of the teacher's ImageNet logits, through a training-only
    # 1,000-way head on the student's features, for the step's first subnet (with sandwich: the largest)
    kd_imagenet: float = 0.0
    subnets_per_step: int = 1  # OFA's dynamic_batch_size
    sandwich: bool = False  # BigNAS's sandwich rule: every step trains the phase's largest and smallest subnets, then random ones
    warmup_epochs: float = 0.0
    cutmix: float = 0.0  # probability that a batch is cut-mixed (CutMix: a regulariser against overfitting); 0: never
    sort_channels: int | None = None  # importance-sort hidden channels before the phase (OFA expand_ratio_stage)

    def validate(self) -> None:
        for name, vals, allowed in (("ks", self.ks, KERNEL_CHOICES), ("e", self.e, EXPAND_CHOICES), ("d", self.d, DEPTH_CHOICES)):
            if not vals or any(v not in allowed for v in vals):
                raise ValueError(f"phase {self.name}: {name} must be a non-empty subset of {list(allowed)}; got {vals}")
        if self.epochs <= 0 or self.lr <= 0:
            raise ValueError(f"phase {self.name}: epochs and lr must be positive")
        if self.sandwich and self.subnets_per_step < 2:
            raise ValueError(f"phase {self.name}: sandwich needs subnets_per_step >= 2 (largest and smallest)")
        if not 0 <= self.cutmix <= 1:
            raise ValueError(f"phase {self.name}: cutmix is a probability, 0..1; got {self.cutmix}")
        if self.kd < 0 or self.kd_teacher < 0 or self.kd_imagenet < 0:
            raise ValueError(f"phase {self.name}: kd, kd_teacher and kd_imagenet must be >= 0")

    @property
    def uses_teacher(self) -> bool:
        """Whether the phase distils from the recipe's ImageNet teacher."""
        return self.kd_teacher > 0 or self.kd_imagenet > 0


@dataclass
class Recipe:
    name: str
    version: int
    phases: list[Phase]
    seed: int = 0
    width_mult: float = 1.2
    batch_size: int = 64
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    dropout: float = 0.1
    crop_scale: tuple[float, float] = (0.35, 1.0)
    resolutions: list[int] = field(default_factory=lambda: [128])
    resolution_weights: list[float] = field(default_factory=lambda: [1.0])
    eval_resolution: int = 160
    eval_images: int = 0  # 0: the whole val split
    checkpoint_minutes: float = 5.0
    channels_last: bool = True
    init_from: str | None = None  # start from these project-format weights instead of random initialisation
    teacher: str | None = None  # ImageNet-pretrained teacher for phases with kd_teacher > 0 (app.train.teacher.TEACHERS)
    # the teacher sees each step's crop at this resolution, the student the same crop scaled down to the step's
    # resolution (None: both at the step's resolution); the teacher is more accurate at its own 224 px
    teacher_resolution: int | None = None
    notes: str = ""

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except FileNotFoundError:
            raise ValueError(f"recipe: no such file {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"recipe {path}: invalid JSON ({exc})") from None
        phases = [Phase(**p) for p in data.pop("phases")]
        if "crop_scale" in data:
            data["crop_scale"] = tuple(data["crop_scale"])
        recipe = cls(phases=phases, **data)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        if not self.phases:
            raise ValueError("recipe: no phases")
        for p in self.phases:
            p.validate()
        if any(r not in RESOLUTION_CHOICES for r in self.resolutions):
            raise ValueError(f"recipe: resolutions must come from {RESOLUTION_CHOICES[0]}..{RESOLUTION_CHOICES[-1]} step 4")
        if len(self.resolution_weights) != len(self.resolutions):
            raise ValueError("recipe: resolution_weights must match resolutions")
        if any(p.uses_teacher for p in self.phases) and not self.teacher:
            raise ValueError("recipe: a phase has kd_teacher or kd_imagenet > 0 but the recipe names no teacher")
        if self.teacher is not None:
            from app.train.teacher import TEACHERS

            if self.teacher not in TEACHERS:
                raise ValueError(f"recipe: teacher must be one of {list(TEACHERS)}; got {self.teacher!r}")
        if self.teacher_resolution is not None:
            if not self.teacher:
                raise ValueError("recipe: teacher_resolution is set but the recipe names no teacher")
            if self.teacher_resolution < max(self.resolutions) or self.teacher_resolution > 512:
                raise ValueError(f"recipe: teacher_resolution must be {max(self.resolutions)}..512 (at least the largest "
                                 f"training resolution); got {self.teacher_resolution}")

    def to_dict(self) -> dict:
        return asdict(self)
