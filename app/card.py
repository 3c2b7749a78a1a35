"""The card that travels with a supernet's weights, like torchvision's ``Weights.meta``: classes, preprocessing,
provenance and the weights' sha256. Frozen and torch-free: nothing changes a loaded supernet's card; a new card is
made with :meth:`SupernetCard.replace`."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESOLUTION_RANGE = (128, 224)


@dataclass(frozen=True)
class SupernetCard:
    """What travels with a supernet's weights: classes, normalisation, provenance, sha256 (the eval transform's
    crop, 0.875 bilinear, is the one of :mod:`app.data`).

    ``extra`` holds the training record (recipe, lineage, history) as a read-only mapping."""

    width_mult: float
    classes: tuple[str, ...]
    class_ids: tuple[str, ...] = ()  # e.g. WordNet ids
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resolutions: tuple[int, int] = RESOLUTION_RANGE
    name: str = "supernet"
    provenance: str = ""
    placeholder: bool = False  # random-init weights, not a trained model
    sha256: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "classes", tuple(str(c) for c in self.classes))
        set_(self, "class_ids", tuple(str(c) for c in self.class_ids))
        set_(self, "mean", tuple(float(v) for v in self.mean))
        set_(self, "std", tuple(float(v) for v in self.std))
        set_(self, "resolutions", tuple(int(v) for v in self.resolutions))
        set_(self, "extra", MappingProxyType(copy.deepcopy(dict(self.extra))))

    __hash__ = object.__hash__  # identity: ``extra`` is a mapping

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def replace(self, **changes: Any) -> "SupernetCard":
        """A new card with ``changes`` (e.g. ``sha256=...``); this one is not modified."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "width_mult": self.width_mult,
            "classes": list(self.classes),
            "class_ids": list(self.class_ids),
            "mean": list(self.mean),
            "std": list(self.std),
            "resolutions": list(self.resolutions),
            "name": self.name,
            "provenance": self.provenance,
            "placeholder": self.placeholder,
            "sha256": self.sha256,
            "extra": copy.deepcopy(dict(self.extra)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SupernetCard":
        try:
            return cls(  # __post_init__ normalises the types
                width_mult=float(d["width_mult"]),
                classes=d["classes"],
                class_ids=d.get("class_ids", ()),
                mean=d.get("mean", IMAGENET_MEAN),
                std=d.get("std", IMAGENET_STD),
                resolutions=d.get("resolutions", RESOLUTION_RANGE),
                name=str(d.get("name", "supernet")),
                provenance=str(d.get("provenance", "")),
                placeholder=bool(d.get("placeholder", False)),
                sha256=str(d.get("sha256", "")),
                extra=d.get("extra", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"supernet card: malformed ({exc})") from None
