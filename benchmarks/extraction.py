"""Subnet extraction and BN recalibration: this project vs the reference ``ofa`` package.

    python benchmarks/extraction.py [--ofa-images 2000] [--threads 2]

Both implementations run in the same process on the same weights (the bundled
supernet, converted to the official checkpoint layout for the reference).
"""

from __future__ import annotations

import argparse
import copy
import time

from common import header, median_time, table  # first: it calls keep_freed_memory() before torch loads

import torch


def reference_from(net):
    """The reference OFAMobileNetV3 holding the same weights as ``net``."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    from app.weights import ofa_to_project_key

    ref = OFAMobileNetV3(n_classes=net.card.num_classes, dropout_rate=0, width_mult=net.card.width_mult,
                         ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    own = net.state_dict()
    state = {}
    for k in ref.state_dict():
        mk = ofa_to_project_key(k)
        state[k] = own[mk] if mk in own else ref.state_dict()[k]
    ref.load_state_dict(state)
    return ref.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ofa-images", type=int, default=2000, help="images for the reference BN recalibration")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(__import__("pathlib").Path(__file__).resolve().parents[2] / "shared/data/imagenette"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import app
    from app.calibrate import FAST_CALIBRATION_IMAGES, clear_statistics_cache, recalibrate_fast
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics

    net = app.load_supernet()
    ref = reference_from(net)
    cfgs = {
        "largest r224": app.SubnetConfig.largest(224),
        "smallest r128": app.SubnetConfig.smallest(128),
        "random (seed 0)": app.SubnetConfig.random(0),
    }
    rows = []
    for name, cfg in cfgs.items():
        ours = median_time(lambda: net.extract(cfg), repeat=15)

        def ref_extract():
            ref.set_active_subnet(ks=list(cfg.ks), e=list(cfg.e), d=list(cfg.d))
            return ref.get_active_subnet(preserve_weight=True)

        theirs = median_time(ref_extract, repeat=15)
        rows.append([f"extract {name}", f"{ours * 1e3:.1f} ms", f"{theirs * 1e3:.1f} ms", f"{theirs / ours:.1f}x"])

    # BN recalibration of the largest subnet at 224
    cfg = cfgs["largest r224"]
    def fast_uncached():
        clear_statistics_cache()
        recalibrate_fast(net.extract(cfg), net.card)

    fast = median_time(fast_uncached, repeat=5)
    fast_cached = median_time(lambda: recalibrate_fast(net.extract(cfg), net.card), repeat=5)
    from app.datasets import center_batch, load_split

    from common import ROOT

    train = load_split(args.data, "train", ROOT / "runs" / "cache", progress=False)
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: args.ofa_images]
    batches = [(center_batch(train.images[idx[i:i + 100]], 224, net.card.mean, net.card.std), None) for i in range(0, len(idx), 100)]
    ref.set_active_subnet(ks=list(cfg.ks), e=list(cfg.e), d=list(cfg.d))
    sub_ref = ref.get_active_subnet(preserve_weight=True)
    t = time.perf_counter()
    set_running_statistics(sub_ref, batches)
    ofa_s = time.perf_counter() - t
    rows.append([f"BN recalibration, largest r224 (ours: fast path, {FAST_CALIBRATION_IMAGES} bundled images; ref: {args.ofa_images} images)",
                 f"{fast:.3f} s", f"{ofa_s:.1f} s", f"{ofa_s / fast:.0f}x"])
    rows.append(["  the same config again (statistics from the process-wide cache)",
                 f"{fast_cached * 1e3:.1f} ms", f"{ofa_s:.1f} s", f"{ofa_s / fast_cached:.0f}x"])
    print(header("Extraction and BN recalibration vs the reference ofa package"))
    print(table(["operation", "this project (median)", "reference ofa", "speed-up"], rows))
    print("\nGoals (issue 2): extraction of the largest subnet <= 20 ms; interactive recalibration <= 0.5 s at r=224.")


if __name__ == "__main__":
    main()
