"""int8 against fp32 on this CPU: latency with onnxruntime (1 and 2 threads), PyTorch eager fp32 as the reference, and
file size, for the model card's subnets; ratios in one run.

    python benchmarks/int8_speed.py [--resolutions 224,128] [--repeat 50] [--format text|json] [--openvino]

Each subnet is extracted with the app's fast BN path, exported (:func:`app.quantize.onnx_fp32`) and quantized
(:func:`app.quantize.onnx_int8`), then timed at batch 1 on one random image: the median of ``--repeat`` runs after
``--warmup``, the runtimes interleaved per subnet so that drift hits all alike. Targets (issue): int8 file ≥ 3.5×
smaller than fp32; int8 ≥ 1.5× faster than fp32 with onnxruntime for the largest subnet at r=224.
``--openvino``: also time both ONNX files with OpenVINO's CPU runtime (if installed: ``pip install openvino``), the
same int8 file through another runtime's int8 kernels.
Measure on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import time

from common import commit, header, machine, table  # first: it calls keep_freed_memory() before torch loads

import numpy as np
import torch

SIZE_TARGET = 3.5
SPEED_TARGET = 1.5


def _median_ms(fn, repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _openvino(data: bytes, threads: int):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(data, b"")  # the ONNX bytes, weights inside
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", default="224,128")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--openvino", action="store_true")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args()

    import app
    from app import quantize
    from app.evaluate import MODEL_CARD_SUBNETS
    from app.space import SubnetConfig

    net = app.load_supernet()
    rows = []
    for r in [int(v) for v in args.resolutions.split(",")]:
        for name, base in MODEL_CARD_SUBNETS.items():
            cfg = SubnetConfig(ks=base.ks, e=base.e, d=base.d, r=r)
            sub = net.extract(cfg, calibrate=True)
            fp32_bytes = quantize.onnx_fp32(sub)
            int8_bytes = quantize.onnx_int8(sub, net.card)
            x = torch.from_numpy(np.random.default_rng(0).random((1, 3, r, r), dtype=np.float32))
            folded = sub.fold_batchnorm()
            xc = x.contiguous(memory_format=torch.channels_last)
            row = {"subnet": name, "r": r, "size_fp32_mb": len(fp32_bytes) / 1e6, "size_int8_mb": len(int8_bytes) / 1e6}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                sessions = {p: quantize.OnnxSubnet(b, cfg, p, threads=threads) for p, b in (("fp32", fp32_bytes), ("int8", int8_bytes))}
                with torch.inference_mode():
                    row[f"torch_fp32_ms_{threads}t"] = _median_ms(lambda: folded(xc), args.repeat, args.warmup)
                for p, s in sessions.items():
                    row[f"ort_{p}_ms_{threads}t"] = _median_ms(lambda s=s: s(x), args.repeat, args.warmup)
                if args.openvino:
                    for p, b in (("fp32", fp32_bytes), ("int8", int8_bytes)):
                        run = _openvino(b, threads)
                        row[f"openvino_{p}_ms_{threads}t"] = _median_ms(lambda run=run: run(x.numpy()), args.repeat, args.warmup)
            torch.set_num_threads(2)
            rows.append(row)
    largest = next(r for r in rows if r["subnet"].startswith("largest") and r["r"] == 224) if any(
        r["subnet"].startswith("largest") and r["r"] == 224 for r in rows) else None
    summary = {"machine": machine(), "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "size_ratio_min": min(r["size_fp32_mb"] / r["size_int8_mb"] for r in rows), "size_target": SIZE_TARGET,
               "speed_target": SPEED_TARGET, "rows": rows}
    if largest:
        summary["largest_r224_int8_speedup_ort_1t"] = largest["ort_fp32_ms_1t"] / largest["ort_int8_ms_1t"]
        summary["largest_r224_int8_speedup_ort_2t"] = largest["ort_fp32_ms_2t"] / largest["ort_int8_ms_2t"]
    if args.format == "json":
        print(json.dumps(summary, indent=2))
        return
    print(header("int8 vs fp32 on this CPU (batch 1, median ms)"))
    heads = ["subnet", "r", "fp32 MB", "int8 MB", "size ×"]
    for t in (1, 2):
        heads += [f"torch fp32 {t}t", f"ORT fp32 {t}t", f"ORT int8 {t}t", f"int8 speed-up {t}t", f"ORT fp32 / torch {t}t"]
    if args.openvino:
        heads += ["OV fp32 1t", "OV int8 1t", "OV int8 speed-up 1t"]
    out = []
    for r in rows:
        line = [r["subnet"], r["r"], r["size_fp32_mb"], r["size_int8_mb"], r["size_fp32_mb"] / r["size_int8_mb"]]
        for t in (1, 2):
            line += [r[f"torch_fp32_ms_{t}t"], r[f"ort_fp32_ms_{t}t"], r[f"ort_int8_ms_{t}t"],
                     r[f"ort_fp32_ms_{t}t"] / r[f"ort_int8_ms_{t}t"], r[f"ort_fp32_ms_{t}t"] / r[f"torch_fp32_ms_{t}t"]]
        if args.openvino:
            line += [r["openvino_fp32_ms_1t"], r["openvino_int8_ms_1t"], r["openvino_fp32_ms_1t"] / r["openvino_int8_ms_1t"]]
        out.append(line)
    print(table(heads, out))
    print(f"\nsize: int8 ≥ {SIZE_TARGET}× smaller on every subnet: {'met' if summary['size_ratio_min'] >= SIZE_TARGET else 'NOT met'} "
          f"(min {summary['size_ratio_min']:.2f}×)")
    if largest:
        s1 = summary["largest_r224_int8_speedup_ort_1t"]
        print(f"speed: largest r=224, onnxruntime int8 vs fp32: {s1:.2f}× (1 thread), "
              f"{summary['largest_r224_int8_speedup_ort_2t']:.2f}× (2 threads); target ≥ {SPEED_TARGET}×: "
              f"{'met' if s1 >= SPEED_TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
