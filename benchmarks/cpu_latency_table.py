"""The bundled CPU latency table against fresh end-to-end latency of random subnets measured now.

    python benchmarks/cpu_latency_table.py [--n 30] [--seed 2] [--table pretrained/latency/cpu-epyc-2core.json]

The subnets are new ones (seed 2: neither the table's correction subnets, seed 1, nor its
validation subnets, seed 0), at the table's resolutions, timed end to end at batch 1 the
way ``calibrate-hardware`` times them. Prints each subnet's measured and predicted latency,
then the mean and maximum absolute percentage error. Meaningful on the machine the table was
measured on (or its twin), idle: other busy processes slow every timing.
"""

from __future__ import annotations

import argparse
import statistics

from common import header, table

import torch  # noqa: E402

from app.paths import PRETRAINED  # noqa: E402
from app.predictors.calibrate_hardware import measure_random  # noqa: E402
from app.predictors.hardware import load_measured_table  # noqa: E402
from app.weights import load_supernet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default=str(PRETRAINED / "latency" / "cpu-epyc-2core.json"))
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    target, lut = load_measured_table(args.table)
    net = load_supernet()
    rows = measure_random(net, lut, args.n, args.seed)
    ape = [abs(r["table_ms"] - r["measured_ms"]) / r["measured_ms"] * 100 for r in rows]
    print(header(f"CPU latency table vs fresh end-to-end latency ({target.name}, {args.n} random subnets, seed {args.seed})"))
    print(f"table: {args.table}\nsource: {target.source}\n")
    print(table(["subnet", "measured ms", "table ms", "error %"],
                [[r["config"][:11], r["measured_ms"], r["table_ms"], round(100 * (r["table_ms"] / r["measured_ms"] - 1), 1)]
                 for r in rows]))
    print(f"\nMAPE {statistics.mean(ape):.1f}% (max {max(ape):.1f}%, median {statistics.median(ape):.1f}%); goal ≤ 10%")


if __name__ == "__main__":
    main()
