"""Measured accuracy of a subnet on a folder of labelled images (``<wnid>_*.jpg`` or ``<wnid>/*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from app.data import eval_transform, load_image
from app.space import SubnetConfig
from app.supernet import OFASupernet

from app.paths import ASSETS

MEASURE_DIR = ASSETS / "measure"

# the subnets the bundled supernet's model card reports, at r = 128, 160, 192, 224
MODEL_CARD_SUBNETS = {
    "largest (d4 e6 k7)": SubnetConfig.uniform(7, 6, 4),
    "d4 e4 k5": SubnetConfig.uniform(5, 4, 4),
    "d3 e6 k5": SubnetConfig.uniform(5, 6, 3),
    "d3 e4 k3": SubnetConfig.uniform(3, 4, 3),
    "d2 e6 k7": SubnetConfig.uniform(7, 6, 2),
    "smallest (d2 e3 k3)": SubnetConfig.uniform(3, 3, 2),
}
MODEL_CARD_RESOLUTIONS = (128, 160, 192, 224)


def labelled_images(folder: Path, card) -> list[tuple[Path, int]]:
    """(path, label) pairs for images whose wnid the supernet knows (its class ids, or ImageNet-1k's)."""
    from app.data import IMAGENETTE_CLASSES

    index = {w: i for i, w in enumerate(card.class_ids)}
    if not index and card.num_classes == 1000:
        index = {w: i for w, (i, _) in IMAGENETTE_CLASSES.items()}
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        wnid = p.parent.name if p.parent != folder else p.name.split("_")[0]
        if wnid in index:
            out.append((p, index[wnid]))
    return out


@torch.no_grad()
def measure_accuracy(
    net: OFASupernet,
    cfg: SubnetConfig,
    folder: Path = MEASURE_DIR,
    batch: int = 25,
    progress: Callable[[float], None] | None = None,
) -> float:
    """Top-1 (%) of ``cfg`` (BN re-estimated on the bundled calibration images) on the images in ``folder``."""
    items = labelled_images(Path(folder), net.card)
    if not items:
        raise ValueError(f"no labelled images for this supernet's classes in {folder}")
    sub = net.extract(cfg, calibrate=True)
    tf = eval_transform(cfg.r, net.card.mean, net.card.std)
    correct = 0
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        x = torch.stack([tf(load_image(p)) for p, _ in chunk])
        y = torch.tensor([label for _, label in chunk])
        correct += (sub(x).argmax(1) == y).sum().item()
        if progress:
            progress(min(1.0, (i + len(chunk)) / len(items)))
    return 100.0 * correct / len(items)


@torch.inference_mode()
def top1_on_tensors(subnet: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, batch: int = 16) -> float:
    """Top-1 (%) of ``subnet`` (BN statistics final) on decoded uint8 images (N×3×H×W), centre-cropped at
    its config's resolution; BN is folded into the convolutions first (same outputs, faster).
    Batches of 16 ran 15% faster than 50 on the 2-core CPU (activations stay in cache)."""
    from app.datasets import center_batch

    folded = subnet.fold_batchnorm()
    r = subnet.config.r
    correct = 0
    for i in range(0, len(images), batch):
        x = center_batch(images[i : i + batch], r, mean, std).contiguous(memory_format=torch.channels_last)
        correct += (folded(x).argmax(1) == labels[i : i + batch]).sum().item()
    return 100.0 * correct / len(images)


def top1_with_training_bn(net: OFASupernet, cfg: SubnetConfig, train, val, bn_images: int = 2000, seed: int = 0) -> float:
    """Top-1 (%) of ``cfg`` on the decoded split ``val`` with BN re-estimated on ``bn_images`` images of
    ``train`` drawn with ``seed`` (OFA's method; the model card's figures use seed 0).
    ``train``/``val``: :class:`app.datasets.TensorImages`."""
    from app.datasets import recalibrate_on_training_images

    sub = net.extract(cfg)
    recalibrate_on_training_images(sub, train, cfg.r, net.card.mean, net.card.std, n=min(bn_images, len(train)), seed=seed)
    return top1_on_tensors(sub, val.images, val.labels, net.card.mean, net.card.std)


# --------------------------------------------------------------------------- open world
def ood_images(folder: Path, known_ids) -> list[Path]:
    """Images of ``folder`` (``<wnid>_*`` files, e.g. one per ImageNet class) whose wnid is not one of ``known_ids``."""
    known = set(known_ids)
    files = [p for p in sorted(Path(folder).glob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return [p for p in files if p.name.split("_")[0] not in known]


def _tensors(images, r: int, mean, std) -> torch.Tensor:
    tf = eval_transform(r, mean, std)
    return torch.stack([tf(im) for im in images]).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def _logits_features(subnet, x: torch.Tensor, batch: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    feats, logits = [], []
    for i in range(0, len(x), batch):
        f = subnet.forward_features(x[i : i + batch])
        feats.append(f)
        logits.append(subnet.classifier(f))
    return torch.cat(logits), torch.cat(feats)


def _rates(in_scores, out_scores, threshold: float) -> tuple[float, float]:
    """(% of in-distribution images accepted, % of out-of-distribution images flagged) at ``threshold``."""
    return (100.0 * float((in_scores >= threshold).double().mean()), 100.0 * float((out_scores < threshold).double().mean()))


def ood_evaluation(net: OFASupernet, cfgs, data_root: Path, ood_folder: Path, gate_train_images: int = 1000,
                   gate_quantile: float = 0.025, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Every open-world score of every config in ``cfgs`` (the app's path: fast BN re-estimation, class
    centres and thresholds from the calibration images) on Imagenette val (in) and ``ood_folder`` (out).

    The gate's threshold is the ``gate_quantile`` quantile of its score on ``gate_train_images``
    Imagenette training images drawn with ``seed``. Returns ``{"gate": {...}, "rows": [...], ...}``."""
    import random
    import time as _time

    from app import open_world as ow
    from app.costs import count_macs
    from app.datasets import list_split

    card = net.card
    val_files, val_labels = list_split(data_root, "val")
    train_files, _ = list_split(data_root, "train")
    gate_files = random.Random(seed).sample(train_files, min(gate_train_images, len(train_files)))
    out_files = ood_images(ood_folder, card.class_ids)
    t0 = _time.perf_counter()
    val_im, out_im, gate_im = ([load_image(p) for p in files] for files in (val_files, out_files, gate_files))
    log(f"decoded {len(val_im)} val, {len(out_im)} out-of-distribution, {len(gate_im)} training images "
        f"in {_time.perf_counter() - t0:.0f} s")
    labels = torch.tensor(val_labels)
    unseen = torch.tensor([p.name.startswith("ILSVRC2012_val") for p in val_files])  # ImageNet *val*: the gate never trained on them

    gate = ow.load_gate(tuple(card.class_ids))
    gate_rows = []
    gate_scores = {}
    for r in (224, 160, 128):  # the first is the app's gate resolution
        t = _time.perf_counter()
        s = {}
        for name, ims in (("train", gate_im), ("val", val_im), ("out", out_im)):
            x = _tensors(ims, r, ow.GATE_MEAN, ow.GATE_STD)
            s[name] = torch.cat([gate(x[i : i + 50])[0] for i in range(0, len(x), 50)])
        thr = float(torch.quantile(s["train"].double(), gate_quantile))
        acc, flag = _rates(s["val"], s["out"], thr)
        gate_rows.append({"gate_r": r, "auroc": round(ow.auroc(s["val"], s["out"]), 4),
                          "imagenet_val_images": int(unseen.sum()),
                          "accepted_in_imagenet_val": round(100.0 * float((s["val"][unseen] >= thr).double().mean()), 2),
                          "fpr95": round(100 * ow.fpr_at_tpr(s["val"], s["out"]), 2), "threshold": round(thr, 4),
                          "accepted_in": round(acc, 2), "flagged_out": round(flag, 2), "seconds": round(_time.perf_counter() - t, 1)})
        gate_scores[r] = s
        log(f"gate r={r}: {gate_rows[-1]}")

    rows = []
    by_r: dict[int, list] = {}
    for cfg in cfgs:
        by_r.setdefault(cfg.r, []).append(cfg)
    for r in sorted(by_r):
        xv = _tensors(val_im, r, card.mean, card.std)
        xo = _tensors(out_im, r, card.mean, card.std)
        for cfg in by_r[r]:
            t = _time.perf_counter()
            sub = net.extract(cfg, calibrate=True)
            ref = ow.reference_for(sub, card)
            folded = sub.fold_batchnorm()
            lv, fv = _logits_features(folded, xv)
            lo, fo = _logits_features(folded, xo)
            sv, so = ow.intrinsic_scores(lv, fv, ref.centres), ow.intrinsic_scores(lo, fo, ref.centres)
            sv["gate"], so["gate"] = gate_scores[224]["val"], gate_scores[224]["out"]
            thresholds = dict(ref.thresholds, gate=gate_rows[0]["threshold"])
            base = {"config": cfg.to_compact(), "r": r, "macs_M": round(count_macs(cfg, card.width_mult, card.num_classes) / 1e6, 1),
                    "top1": round(100.0 * float((lv.argmax(1) == labels).double().mean()), 2),
                    "calibration_images": ref.images}
            for name in ow.SCORES:
                acc, flag = _rates(sv[name], so[name], thresholds[name])
                rows.append({**base, "score": name, "auroc": round(ow.auroc(sv[name], so[name]), 4),
                             "fpr95": round(100 * ow.fpr_at_tpr(sv[name], so[name]), 2),
                             "threshold": round(thresholds[name], 4), "accepted_in": round(acc, 2), "flagged_out": round(flag, 2)})
            log(f"{cfg.to_compact()} r={r} ({_time.perf_counter() - t:.0f} s): "
                + ", ".join(f"{x['score']} {x['auroc']:.3f}/{x['accepted_in']:.0f}/{x['flagged_out']:.0f}" for x in rows[-4:]))
    return {"in_distribution": f"Imagenette val ({len(val_im)} images)",
            "out_of_distribution": f"{ood_folder.name}: {len(out_im)} images of ImageNet classes outside the supernet's",
            "gate_threshold": f"quantile {gate_quantile} of the gate's score on {len(gate_im)} Imagenette training images (seed {seed})",
            "intrinsic_thresholds": f"per subnet: quantile {ow.CALIBRATION_QUANTILE} of its scores on the fast BN path's calibration images (training images)",
            "gate": gate_rows, "rows": rows}
