"""Measure the bundled supernet for its model card: top-1 on the full Imagenette val set.

    python scripts/evaluate_supernet.py [--data ../shared/data/imagenette] [--weights pretrained/...safetensors]

For the largest, the smallest and four middle subnets at r = 128, 160, 192, 224: top-1
with BN re-estimated on 2,000 training images (OFA's method, ``set_running_statistics``)
and with the app's fast path (the first 36-96 bundled images, by the subnet's MACs:
:func:`app.calibrate.fast_calibration_size`; ``--refresh-fast`` re-measures only that column); writes ``pretrained/model_card.json``
and the measured table in ``pretrained/MODEL_CARD.md`` (between markers).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time

from app.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()

import torch  # noqa: E402

from app.calibrate import FAST_CALIBRATION_IMAGES, FAST_CALIBRATION_MAX_IMAGES, calibration_batch, recalibrate_fast  # noqa: E402
from app.costs import count_macs  # noqa: E402
from app.evaluate import MODEL_CARD_RESOLUTIONS as RESOLUTIONS  # noqa: E402
from app.evaluate import MODEL_CARD_SUBNETS as SUBNETS  # noqa: E402
from app.evaluate import top1_on_tensors, top1_with_training_bn  # noqa: E402
from app.paths import PRETRAINED, ROOT  # noqa: E402
from app.space import SubnetConfig  # noqa: E402
from app.datasets import load_split  # noqa: E402
from app.weights import atomic_write_text, load_supernet  # noqa: E402

BEGIN, END = "<!-- measured-table:begin -->", "<!-- measured-table:end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/imagenette"))
    ap.add_argument("--weights", default=None, help="supernet to measure (default: the bundled one)")
    ap.add_argument("--calib-images", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--report-only", action="store_true", help="write the card from the rows measured so far, measure nothing")
    ap.add_argument("--refresh-fast", action="store_true",
                    help="re-measure only the fast-path column of the cells measured so far (after the calibration images change)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = load_supernet(args.weights)
    card = net.card
    cache = ROOT / "runs" / "cache"
    train = load_split(args.data, "train", cache, progress=False)
    val = load_split(args.data, "val", cache, progress=False)
    n_calib = min(args.calib_images, len(train))  # the first n of a seed-0 permutation of the train split
    # rows are appended as measured and reused on the next run (same weights), cheapest first
    seconds = (card.extra or {}).get("seconds_per_phase", {})
    hours = {k: v / 3600 for k, v in seconds.items()}
    lineage = (card.extra or {}).get("lineage", [])  # earlier runs these weights continue
    earlier_hours = sum(sum(run.get("seconds_per_phase", {}).values()) for run in lineage) / 3600
    rows_path = PRETRAINED / "model_card_rows.jsonl"
    rows = []
    if rows_path.is_file():
        rows = [r for r in map(json.loads, rows_path.read_text("utf-8").splitlines()) if r.get("sha256") == card.sha256]
    done = {(r["subnet"], r["r"]) for r in rows}
    # the two cells with targets first (largest at r=224, smallest at r=128), then the rest cheapest first
    targets = [("largest (d4 e6 k7)", 224), ("smallest (d2 e3 k3)", 128)]
    todo = sorted(((name, r) for name in SUBNETS for r in RESOLUTIONS if (name, r) not in done),
                  key=lambda nr: (nr not in targets, count_macs(SUBNETS[nr[0]].replace(r=nr[1]), card.width_mult, card.num_classes)))
    print(f"{len(done)} cells measured before, {len(todo)} to go", flush=True)
    if args.report_only or args.refresh_fast:
        todo = []
    if args.refresh_fast:
        for i, row in enumerate(rows, 1):
            fast = net.extract(row["config"])
            calibration_batch(row["r"], card.mean, card.std)  # preprocess first: time the re-estimation alone
            t = time.perf_counter()
            row["fast_images"] = recalibrate_fast(fast, card)
            row["fast_seconds"] = round(time.perf_counter() - t, 3)
            row["top1_fast"] = top1_on_tensors(fast, val.images, val.labels, card.mean, card.std)
            print(f"[{i}/{len(rows)}] {row['subnet']} r={row['r']}: fast {row['top1_fast']:.2f} on {row['fast_images']} images in "
                  f"{row['fast_seconds']:.2f} s (BN2000 {row['top1_bn2000']:.2f})", flush=True)
        others = [r for r in map(json.loads, rows_path.read_text("utf-8").splitlines()) if r.get("sha256") != card.sha256]
        atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in others + rows))
    t_all = time.time()
    for name, r in todo:
        cfg = SUBNETS[name].replace(r=r)
        t = time.time()
        acc_ofa = top1_with_training_bn(net, cfg, train, val, n_calib)
        fast = net.extract(cfg)
        n_fast = recalibrate_fast(fast, card)
        acc_fast = top1_on_tensors(fast, val.images, val.labels, card.mean, card.std)
        row = {"subnet": name, "config": cfg.to_compact(), "r": r, "top1_bn2000": acc_ofa, "top1_fast": acc_fast,
               "fast_images": n_fast, "sha256": card.sha256, "seconds": round(time.time() - t, 1)}
        rows.append(row)
        with rows_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    total = len(SUBNETS) * len(RESOLUTIONS)
    complete = len(rows) >= total
    diffs = [r["top1_bn2000"] - r["top1_fast"] for r in rows] or [float("nan")]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {
        "supernet": card.name,
        "sha256": card.sha256,
        "val_images": len(val),
        "calibration": {"ofa_images": n_calib, "fast_images": [FAST_CALIBRATION_IMAGES, FAST_CALIBRATION_MAX_IMAGES]},
        "rows": rows,
        "cells_measured": len(rows),
        "cells_total": total,
        "bn2000_minus_fast_pp": {"mean": sum(diffs) / len(diffs), "min": min(diffs), "max": max(diffs)},
        "hours_per_phase": hours,
        "hours_earlier_runs": earlier_hours,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "commit": commit,
        "minutes": (time.time() - t_all) / 60,
    }
    atomic_write_text(PRETRAINED / "model_card.json", json.dumps(result, indent=1) + "\n")
    table = ["| subnet | " + " | ".join(f"r={r}" for r in RESOLUTIONS) + " |", "|---|" + "---|" * len(RESOLUTIONS)]
    for name in SUBNETS:
        cells = []
        for r in RESOLUTIONS:
            row = next((x for x in rows if x["subnet"] == name and x["r"] == r), None)
            cells.append(f"{row['top1_bn2000']:.1f} ({row['top1_fast']:.1f})" if row else "pending")
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    status = "" if complete else (f"**{len(rows)} of {total} cells measured so far** (the rest are 'pending'; rerun the "
                                  "script to continue where it stopped). ")
    recipe = (card.extra or {}).get("recipe") or {}
    averaged = recipe.get("ingredients")  # a weight average (python -m app average): no training of its own
    if averaged:
        hours_line = (f"{recipe.get('name', '?')}: the uniform average of the weights of "
                      + ", ".join(str(i.get("recipe")) for i in averaged)
                      + " (no training of its own). Training wall-clock per phase (2 shared CPU cores), newest run first:")
    else:
        phases = ", ".join(f"{k} {v:.2f} h" for k, v in hours.items())
        hours_line = (f"Training wall-clock per phase (2 shared CPU cores), recipe {recipe.get('name', '?')}: {phases}; "
                      f"{sum(hours.values()):.2f} h.")
    for i, run in enumerate(reversed(lineage)):  # newest first
        run_phases = ", ".join(f"{k} {v / 3600:.2f} h" for k, v in run.get("seconds_per_phase", {}).items())
        lead = (" recipe" if averaged else " Continued from recipe") if i == 0 else ", which continued recipe"
        hours_line += f"{lead} {run.get('recipe')} ({run_phases})"
    if lineage:
        hours_line += f". Total {sum(hours.values()) + earlier_hours:.2f} h."
    text = "\n".join([
        BEGIN,
        f"{status}Top-1 (%) on the full Imagenette val set ({len(val)} images), BN re-estimated on {n_calib} training images "
        f"(OFA's method); in brackets, with the app's fast path ({FAST_CALIBRATION_IMAGES}-{FAST_CALIBRATION_MAX_IMAGES} bundled "
        f"training images in one batch: {FAST_CALIBRATION_IMAGES} for the largest subnet at r=224, more for smaller ones, in proportion to their MACs). "
        f"The 2,000-image re-estimation minus the fast path: mean {round(result['bn2000_minus_fast_pp']['mean'], 2) + 0.0:+.2f} pp "
        f"(range {result['bn2000_minus_fast_pp']['min']:+.2f} to {result['bn2000_minus_fast_pp']['max']:+.2f} pp). "
        f"Measured with `python scripts/evaluate_supernet.py` at commit {commit}, weights sha256 {card.sha256[:12]}….",
        "",
        *table,
        "",
        hours_line,
        END,
    ])
    md_path = PRETRAINED / "MODEL_CARD.md"
    md = md_path.read_text("utf-8") if md_path.is_file() else f"# Model card\n\n{BEGIN}\n{END}\n"
    if BEGIN in md and END in md:
        md = md[: md.index(BEGIN)] + text + md[md.index(END) + len(END):]
    else:
        md += "\n" + text + "\n"
    atomic_write_text(md_path, md)
    print("\n".join(table))


if __name__ == "__main__":
    main()
