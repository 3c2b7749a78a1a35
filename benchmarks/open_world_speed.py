"""What the open-world decision adds to a classification on this CPU (issue target: at most +20%).

    python benchmarks/open_world_speed.py [--threads 2] [--repeat 15] [--format table|json]

For the largest subnet at r = 224 and the smallest at r = 128, on a bundled sample (1024 px long side, as an
uploaded photo is after loading), the median time of ``app.classify.classify``:

* without the decision (``open_world=False``): the reference, a classification as it was;
* with the decision, the image seen before (the gate's answer cached per image, as when a slider moves):
  the intrinsic scores only;
* with the decision on a new image (cache cleared): the intrinsic scores and one EfficientNet-Lite0 pass.

The ratios to the reference are what the target is about. Measure on an idle machine.
"""

from __future__ import annotations

import argparse
import json

from common import header, median_time, table  # first: it calls keep_freed_memory() before torch loads

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--format", choices=["table", "json"], default="table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import app
    from app import open_world as ow
    from app.classify import classify
    from app.data import load_image

    net = app.load_supernet()
    card = net.card
    image = load_image(app.__path__[0] + "/../assets/samples/church_1.jpg").resize((1024, 768))
    rows = []
    for name, cfg in (("largest r224", app.SubnetConfig.largest(224)), ("smallest r128", app.SubnetConfig.smallest(128))):
        sub = net.extract(cfg, calibrate=True)
        classify(sub, image, card)  # loads the gate, fills the caches
        plain = median_time(lambda: classify(sub, image, card, open_world=False), args.repeat, 2)
        cached = median_time(lambda: classify(sub, image, card), args.repeat, 2)

        def new_image():
            ow._gate_answers.clear()
            classify(sub, image, card)

        fresh = median_time(new_image, args.repeat, 2)
        rows.append({"subnet": name, "classify_ms": round(plain * 1e3, 2), "with_decision_seen_image_ms": round(cached * 1e3, 2),
                     "with_decision_new_image_ms": round(fresh * 1e3, 2), "added_seen_image_x": round(cached / plain - 1, 3),
                     "added_new_image_x": round(fresh / plain - 1, 3)})
    if args.format == "json":
        print(json.dumps({"rows": rows, "target_added_x": 0.2}, indent=1))
        return
    print(header("Open-world decision: time added to a classification"))
    print(table(["subnet", "classify (ms)", "+ decision, image seen (ms)", "+ decision, new image: gate (ms)",
                 "added, seen", "added, new"],
                [[r["subnet"], r["classify_ms"], r["with_decision_seen_image_ms"], r["with_decision_new_image_ms"],
                  f"{r['added_seen_image_x']:+.0%}", f"{r['added_new_image_x']:+.0%}"] for r in rows]))
    print("\ntarget: the decision adds at most +20% (the gate runs once per image; later slider moves reuse its answer)")


if __name__ == "__main__":
    main()
