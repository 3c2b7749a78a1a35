"""Bundle an open-world measurement: ``pretrained/open_world_eval.json`` (the app's teaching chart reads it) and
the open-world tables in ``pretrained/MODEL_CARD.md`` (between markers).

    python -m app evaluate --ood --data ../shared/data/imagenette --out runs/ood_eval.json   # ~15 min, idle
    python scripts/open_world_card.py runs/ood_eval.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from app.evaluate import MODEL_CARD_SUBNETS
from app.open_world import SCORES
from app.paths import PRETRAINED, ROOT
from app.space import SubnetConfig
from app.weights import atomic_write_text

BEGIN, END = "<!-- open-world-table:begin -->", "<!-- open-world-table:end -->"
NAMES = {"msp": "max softmax", "energy": "energy", "feature": "feature", "gate": "Lite0 gate"}


def _name(compact: str) -> str:
    cfg = SubnetConfig.from_compact(compact)
    for name, c in MODEL_CARD_SUBNETS.items():
        if c.replace(r=cfg.r) == cfg:
            return name
    return compact


def markdown(doc: dict, commit: str) -> str:
    gate = doc["gate"]
    lines = [
        f"In: {doc['in_distribution']}. Out: {doc['out_of_distribution']} (near-OOD: other dogs, fish, trucks, "
        "instruments, buildings). AUROC: the chance that an in-class image scores above an out-of-class one; FPR95: % of "
        "out-of-class images accepted where 95% of the in-class ones are. Thresholds from training images only: "
        f"the gate's, {doc['gate_threshold']}; the subnet's own scores', {doc['intrinsic_thresholds']}. Measured with "
        f"`python -m app evaluate --ood --data ../shared/data/imagenette` (the app's path: fast BN re-estimation) at commit "
        f"{commit}, weights sha256 {doc.get('supernet_sha256', '')[:12]}….",
        "",
        "**The gate** (EfficientNet-Lite0, ImageNet-1k; independent of the subnet; the app decides with it at 224 px):",
        "",
        "| gate input | AUROC | FPR95 (%) | threshold | Imagenette val accepted (%) | of them ImageNet-val images accepted | out-of-class flagged (%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in gate:
        seen = f"{g['accepted_in_imagenet_val']:.1f} of {g['imagenet_val_images']}" if "accepted_in_imagenet_val" in g else "n/a"
        lines.append(f"| {g['gate_r']} px | {g['auroc']:.3f} | {g['fpr95']:.1f} | {g['threshold']:.4f} | {g['accepted_in']:.1f} | "
                     f"{seen} | {g['flagged_out']:.1f} |")
    lines += ["", "**Each subnet's own scores** (AUROC / FPR95 %; then % of in-class accepted / % of out-of-class flagged "
              "at the subnet's thresholds):", "",
              "| subnet | r | MACs (M) | top-1 (%) | " + " | ".join(f"{NAMES[s]} AUROC / FPR95" for s in SCORES[:3])
              + " | " + " | ".join(f"{NAMES[s]} in / out" for s in SCORES[:3]) + " |",
              "|---|---|---|---|" + "---|" * 6]
    cells: dict[tuple, dict] = {}
    for row in doc["rows"]:
        cells.setdefault((row["config"], row["r"]), {})[row["score"]] = row
    order = {c.to_compact()[5:]: i for i, c in enumerate(MODEL_CARD_SUBNETS.values())}
    for (compact, r), by in sorted(cells.items(), key=lambda kv: (order.get(kv[0][0][5:], 99), kv[0][1])):
        any_row = next(iter(by.values()))
        lines.append(f"| {_name(compact)} | {r} | {any_row['macs_M']:.0f} | {any_row['top1']:.1f} | "
                     + " | ".join(f"{by[s]['auroc']:.3f} / {by[s]['fpr95']:.0f}" for s in SCORES[:3]) + " | "
                     + " | ".join(f"{by[s]['accepted_in']:.0f} / {by[s]['flagged_out']:.0f}" for s in SCORES[:3]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("measurement", help="the JSON written by python -m app evaluate --ood --out")
    args = ap.parse_args()
    doc = json.loads(Path(args.measurement).read_text("utf-8"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    doc["commit"] = commit
    atomic_write_text(PRETRAINED / "open_world_eval.json", json.dumps(doc, indent=1) + "\n")
    card = PRETRAINED / "MODEL_CARD.md"
    text = card.read_text("utf-8")
    block = f"{BEGIN}\n{markdown(doc, commit)}\n{END}"
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Open world: is an image one of the 10 classes?\n" + block + "\n"
    atomic_write_text(card, text)
    print(f"wrote pretrained/open_world_eval.json and the open-world tables in {card.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
