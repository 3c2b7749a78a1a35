"""Grad-CAM saliency (app.saliency) vs one classification of the same image.

    python benchmarks/saliency_speed.py [--threads 2] [--repeat 20] [--format text|json]

For the largest subnet at r=224 and the smallest at r=128 (BN re-estimated, as the app
serves them), on a bundled sample, medians of:

* ``classify(sub, image, card)`` -- one classification as the app runs it (with the open-world decision);
* ``classify(..., explain=True)`` -- the same with its Grad-CAM map, taken from that forward pass's last
  feature map: **the extra time the app pays for a map; target (issue): at most 0.5 x a classification**;
* a standalone ``saliency(...)`` (its own preprocessing and forward) and the head-only step
  (``grad_cam_from_features``), for reference.
"""

from __future__ import annotations

import argparse
import json
import time

from common import commit, header, machine, median_time, table  # first: it calls keep_freed_memory() before torch loads

import torch

from app.paths import ASSETS

TARGET = 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--image", default=str(ASSETS / "samples" / "golf_ball_1.jpg"))
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import app
    from app.classify import classify
    from app.data import image_tensor, load_image
    from app.saliency import final_features, grad_cam_from_features, saliency

    net = app.load_supernet()
    card = net.card
    image = load_image(args.image)
    configs = {"largest r224": app.SubnetConfig.largest(224), "smallest r128": app.SubnetConfig.smallest(128)}
    results = []
    for name, cfg in configs.items():
        sub = net.extract(cfg, calibrate=True)
        r = cfg.r

        def forward():
            with torch.inference_mode():
                return sub(image_tensor(image, r, card.mean, card.std))

        features = final_features(sub, image_tensor(image, r, card.mean, card.std))
        timing = dict(repeat=args.repeat, warmup=args.warmup)
        t_classify = median_time(lambda: classify(sub, image, card), **timing)
        t_explained = median_time(lambda: classify(sub, image, card, explain=True), **timing)
        t_forward = median_time(forward, **timing)
        t_saliency = median_time(lambda: saliency(sub, image, card.mean, card.std, classes=card.classes), **timing)
        t_head = median_time(lambda: grad_cam_from_features(sub, features, r), **timing)
        results.append({
            "subnet": name,
            "resolution": r,
            "classify_ms": 1e3 * t_classify,
            "classify_explain_ms": 1e3 * t_explained,
            "map_extra_over_classify": (t_explained - t_classify) / t_classify,
            "forward_ms": 1e3 * t_forward,
            "saliency_ms": 1e3 * t_saliency,
            "head_backward_ms": 1e3 * t_head,
            "saliency_over_classify": t_saliency / t_classify,
            "extra_over_forward": (t_saliency - t_forward) / t_forward,
            "head_over_forward": t_head / t_forward,
        })

    if args.format == "json":
        print(json.dumps({
            "benchmark": "saliency_speed",
            "machine": machine(),
            "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "threads": args.threads,
            "repeat": args.repeat,
            "image": args.image,
            "target_ratio": TARGET,
            "results": results,
        }, indent=2))
        return
    print(header(f"Grad-CAM saliency vs classification (median of {args.repeat}, {args.threads} threads)"))
    rows = [[
        row["subnet"],
        f"{row['classify_ms']:.1f} ms",
        f"{row['classify_explain_ms']:.1f} ms",
        f"{row['map_extra_over_classify']:.2f}",
        f"{row['forward_ms']:.1f} ms",
        f"{row['saliency_ms']:.1f} ms",
        f"{row['head_backward_ms']:.2f} ms",
        f"{row['saliency_over_classify']:.2f}",
        f"{row['extra_over_forward']:.2f}",
        f"{row['head_over_forward']:.3f}",
    ] for row in results]
    print(table(["subnet", "classify", "classify + map", "map's extra / classify", "preprocess + forward", "saliency", "head-only backward + map",
                 "saliency / classify", "(saliency - forward) / forward", "head-only / forward"], rows))
    print(f"\nTarget: the map's extra time <= {TARGET} x a classification (column 4).")


if __name__ == "__main__":
    main()
