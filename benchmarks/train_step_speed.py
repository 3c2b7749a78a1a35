"""Training-step speed of the elastic supernet on this CPU: memory format, bf16 autocast, ``torch.compile``.

    python benchmarks/train_step_speed.py [--batch 64] [--res 128] [--repeat 5]

What the training recipes use (``channels_last: true``, fp32, eager) against the alternatives,
one SGD step (forward, backward, update) at a time, on the bundled weights and random pixels:

- *largest*: the largest subnet alone (OFA's full-network phase);
- *sandwich*: the largest, the smallest and one random subnet on one batch (the v2-v4 recipes).

``torch.compile`` specialises a graph to the subnet it traced, so it is timed on the largest-subnet
step only (with its compile time as the first step); a sandwich step meets a new random subnet every
step (its first step had not finished compiling after 5 minutes here).
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import random
import time

from common import header, median_time

import torch
import torch.nn.functional as F

from app.space import SubnetConfig
from app.train.loop import step_configs
from app.train.recipe import Phase
from app.weights import load_supernet


def make_step(net, opt, x, y, configs, bf16: bool, forward):
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        for cfg in configs():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = forward(x, cfg)
            F.cross_entropy(out.float(), y).backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(header(f"Training-step speed, batch {args.batch}, {args.res} px (bundled weights, random pixels)"))
    phase = Phase("sandwich", 1, 0.01, ks=[3, 5, 7], e=[3, 4, 6], d=[2, 3, 4], subnets_per_step=3, sandwich=True)
    rows = []
    for kind in ("largest", "sandwich"):
        for mode in ("contiguous", "channels-last", "channels-last + bf16 autocast", "channels-last + torch.compile"):
            if kind == "sandwich" and "compile" in mode:
                # measured 2026-12-02: its first step had not finished compiling its three subnets after 5 minutes,
                # and every later step meets a new random subnet; not timed here
                continue
            cl = mode.startswith("channels-last")
            net = load_supernet().train().requires_grad_(True)
            net = net.to(memory_format=torch.channels_last) if cl else net
            opt = torch.optim.SGD(net.parameters(), lr=1e-5, momentum=0.9)
            x = torch.randn(args.batch, 3, args.res, args.res)
            x = x.contiguous(memory_format=torch.channels_last) if cl else x
            y = torch.randint(0, 10, (args.batch,))
            rng = random.Random(0)
            if kind == "largest":
                configs = lambda: [SubnetConfig.largest(args.res)]  # noqa: E731
            else:
                configs = lambda: step_configs(phase, args.res, rng)  # noqa: E731
            forward = net
            if "compile" in mode:
                torch._dynamo.reset()
                forward = torch.compile(net)
            step = make_step(net, opt, x, y, configs, "bf16" in mode, forward)
            t = time.perf_counter()
            step()  # the first step: compiles under torch.compile
            first = time.perf_counter() - t
            steady = median_time(step, repeat=args.repeat, warmup=1)
            rows.append((kind, mode, first, steady))
            print(f"  {kind:9s} {mode:32s} first step {first:7.2f} s   steady {steady:6.2f} s/step", flush=True)
    base = {k: s for k, m, _, s in rows if m == "channels-last"}
    print("\n| step | mode | first step (s) | steady (s/step) | vs channels-last eager |")
    print("|---|---|---|---|---|")
    for kind, mode, first, steady in rows:
        print(f"| {kind} | {mode} | {first:.2f} | {steady:.2f} | {base[kind] / steady:.2f}x |")


if __name__ == "__main__":
    main()
