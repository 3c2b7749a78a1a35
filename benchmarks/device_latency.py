"""The viewer's device as a hardware target: how well a latency model fitted on a few in-browser probes predicts
subnets it never saw, how long profiling takes and how much it downloads — in this machine's headless chromium and
in a phone-emulated context with 4x CPU throttling.

    python benchmarks/device_latency.py                 # tables
    python benchmarks/device_latency.py --format json   # one JSON object: per context mape_percent, held_out, ...

The page runs the app's own JavaScript (``app/ui/browser_runtime_web/runtime.js``'s ``profile``) against the app's
own runtime files and probe models (``app.predictors.device``), served from loopback. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import commit, header, machine, table  # noqa: E402

from app.predictors import device  # noqa: E402
from app.predictors.encoding import encode  # noqa: E402
from app.space import RESOLUTION_CHOICES, SubnetConfig  # noqa: E402
from app.ui.browser_runtime import STATIC_DIR, WEB  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAGE = """<!doctype html><meta charset="utf-8"><title>device profile</title><progress id="bar" value="0" max="1"></progress>
<div id="say"></div>
<script type="module">
import { profile } from "/runtime.js";
window.runProfile = (task) => profile(task, (done, total, text) => {
  document.getElementById("bar").max = total; document.getElementById("bar").value = done;
  document.getElementById("say").textContent = text;
});
window.ready = true;
</script>"""


class Files:
    """What the loopback server serves (bytes by path), and how many bytes it has sent since ``reset``."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.sent = 0
        self.lock = threading.Lock()

    def add(self, path: str, data: bytes, kind: str = "application/octet-stream") -> str:
        self.files[path] = (data, kind)
        return path


def serve(files: Files) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            entry = files.files.get(self.path.split("?")[0])
            if entry is None:
                self.send_error(404)
                return
            data, kind = entry
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)
            with files.lock:
                files.sent += len(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def held_out_configs(n: int, seed: int = 7) -> list[SubnetConfig]:
    rng = random.Random(seed)
    return [SubnetConfig.random(rng, r=rng.choice(RESOLUTION_CHOICES)) for _ in range(n)]


def measure(page, files: Files, cfgs, paths, *, runs: int, warmup: int) -> tuple[list[float], float, int]:
    """Median in-browser latency per config, the seconds it took and the bytes downloaded."""
    task = {"request_id": "0" * 32, "runtime_base": "/ort/", "runs": runs, "warmup": warmup,
            "probes": [{"url": p, "input_shape": [1, 3, c.r, c.r]} for c, p in zip(cfgs, paths)]}
    files.sent = 0
    t = time.perf_counter()
    report = page.evaluate("(task) => window.runProfile(task)", task)
    return [float(np.median(x)) for x in report["latencies_ms"]], time.perf_counter() - t, files.sent


def mape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) / y) * 100)


def alternatives(probe_cfgs, probe_ms, held_cfgs, held_ms) -> dict[str, float]:
    """Held-out MAPE of the candidate models, all fitted on the same probes."""
    y = np.array(held_ms)
    a_probe, a_held = encode(probe_cfgs), encode(held_cfgs)
    out = {}
    model = device.DeviceLatencyModel.fit(probe_cfgs, probe_ms, label="bench")
    out["layer kinds (the app's)"] = mape(model.batch(a_held), y)
    f_probe, f_held = device.layer_features(a_probe), device.layer_features(a_held)
    macs = lambda f: np.stack([f[:, :3].sum(axis=1), np.ones(len(f))], axis=1)  # noqa: E731
    w = 1 / np.array(probe_ms)
    coef = device._nnls(macs(f_probe), np.array(probe_ms), w)
    out["total MACs + constant"] = mape(macs(f_held) @ coef, y)
    from app.predictors.hardware import _lookup

    for name in ("note10",):
        _, table_model = _lookup(name)
        ref_p, ref_h = table_model.batch(a_probe), table_model.batch(a_held)
        ok = np.isfinite(ref_h)
        scale = float(np.median(np.array(probe_ms)[np.isfinite(ref_p)] / ref_p[np.isfinite(ref_p)]))
        out[f"{name} table x one scale"] = mape(scale * ref_h[ok], y[ok])
    return out


def run_context(browser, base: str, files: Files, ctx_name: str, probes, probe_paths, held, held_paths, p, *,
                runs: int, warmup: int, real_paths=(), int8_models=()) -> dict:
    if ctx_name == "phone (4x CPU throttling)":
        context = browser.new_context(**p.devices["Pixel 7"])
    else:
        context = browser.new_context()
    page = context.new_page()
    if ctx_name.startswith("phone"):
        cdp = context.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
    files.sent = 0
    t = time.perf_counter()
    page.goto(base + "/bench.html")
    page.wait_for_function("window.ready === true")
    probe_ms, probe_s, _ = measure(page, files, probes, probe_paths, runs=runs, warmup=warmup)
    profile_seconds, downloaded = time.perf_counter() - t, files.sent
    held_ms, held_s, _ = measure(page, files, held, held_paths, runs=runs, warmup=warmup)
    real_check = None
    if real_paths:  # the same subnets with their real weights: does a weightless probe take the real subnet's time?
        n = len(real_paths)
        real_ms, _, _ = measure(page, files, held[:n], real_paths, runs=runs, warmup=warmup)
        again_ms, _, _ = measure(page, files, held[:n], held_paths[:n], runs=runs, warmup=warmup)
        real_check = {"real_ms": [round(x, 3) for x in real_ms], "probe_ms": [round(x, 3) for x in again_ms],
                      "probe_over_real": [round(a / b, 3) for a, b in zip(again_ms, real_ms)]}
    int8 = None
    if int8_models:  # real fp32 and int8 files of a few subnets: is int8 faster in the browser?
        cfgs = [c for c, _, _ in int8_models]
        fp32_ms, _, _ = measure(page, files, cfgs, [a for _, a, _ in int8_models], runs=runs, warmup=warmup)
        int8_ms, _, _ = measure(page, files, cfgs, [b for _, _, b in int8_models], runs=runs, warmup=warmup)
        int8 = [{"config": c.to_compact(), "fp32_ms": round(a, 2), "int8_ms": round(b, 2), "int8_speedup": round(a / b, 3)}
                for c, a, b in zip(cfgs, fp32_ms, int8_ms)]
    context.close()
    model = device.DeviceLatencyModel.fit(probes, probe_ms, label=ctx_name)
    pred = model.batch(encode(held))
    return {
        "mape_percent": round(mape(pred, np.array(held_ms)), 2),
        "held_out": len(held),
        "probes": len(probes),
        "profile_seconds": round(profile_seconds, 1),
        "downloaded_mb": round(downloaded / 1e6, 2),
        "fit_mape_percent": round(model.fit_mape_percent, 2),
        "held_out_ms_range": [round(min(held_ms), 2), round(max(held_ms), 2)],
        "alternatives_mape_percent": {k: round(v, 2) for k, v in alternatives(probes, probe_ms, held, held_ms).items()},
        "probe_ms": [round(x, 3) for x in probe_ms],
        "held_out_ms": [round(x, 3) for x in held_ms],
        "held_out_predicted_ms": [round(float(x), 3) for x in pred],
        "weightless_vs_real": real_check,
        "int8_in_browser": int8,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--format", choices=("table", "json"), default="table")
    ap.add_argument("--probes", type=int, default=12)
    ap.add_argument("--held-out", type=int, default=24)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--contexts", default="desktop,phone")
    ap.add_argument("--int8", action="store_true", help="also time fp32 against int8 files of 5 subnets in each context")
    ap.add_argument("--write-reference", metavar="PATH",
                    help="also write the desktop context's fitted model as the reference device (pretrained/latency/browser_wasm_reference.json)")
    ap.add_argument("--check-real", type=int, default=4, help="held-out subnets also timed with their real weights (desktop)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    import app

    net = app.load_supernet()
    files = Files()
    manifest = json.loads((WEB / "onnxruntime-web.json").read_text("utf-8"))
    for name in manifest["files"]:
        files.add(f"/ort/{name}", (STATIC_DIR / name).read_bytes(),
                  "text/javascript" if name.endswith(".mjs") else "application/wasm")
    files.add("/runtime.js", (WEB / "runtime.js").read_bytes(), "text/javascript")
    files.add("/bench.html", PAGE.encode(), "text/html")
    probes = device.probe_configs(args.probes)
    held = held_out_configs(args.held_out)
    probe_paths = [files.add(f"/probe/{i}.onnx", device.probe_model(net, c)) for i, c in enumerate(probes)]
    held_paths = [files.add(f"/held/{i}.onnx", device.probe_model(net, c)) for i, c in enumerate(held)]
    from app.quantize import onnx_fp32

    real_paths = [files.add(f"/real/{i}.onnx", onnx_fp32(net.extract(c, calibrate=False))) for i, c in enumerate(held[:args.check_real])]
    int8_models = []
    if args.int8:
        from app.quantize import onnx_int8

        for i, c in enumerate([SubnetConfig.largest(224), SubnetConfig.largest(128), SubnetConfig.uniform(5, 4, 3, 160),
                               SubnetConfig.smallest(224), SubnetConfig.smallest(128)]):
            sub = net.extract(c)  # BN statistics re-estimated: the app's int8 recipe calibrates on the same images
            int8_models.append((c, files.add(f"/fp32/{i}.onnx", onnx_fp32(sub)), files.add(f"/int8/{i}.onnx", onnx_int8(sub, net.card, for_browser=True))))
    server, base = serve(files)
    names = {"desktop": "desktop chromium", "phone": "phone (4x CPU throttling)"}
    results = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            for key in args.contexts.split(","):
                results[key] = run_context(browser, base, files, names[key], probes, probe_paths, held, held_paths, p,
                                           runs=args.runs, warmup=args.warmup,
                                           real_paths=real_paths if key == "desktop" else (), int8_models=int8_models)
            browser.close()
    finally:
        server.shutdown()
    if args.write_reference and "desktop" in results:
        ref = device.DeviceLatencyModel.fit(probes, results["desktop"]["probe_ms"], label="reference: headless chromium")
        doc = {"label": ref.label, "backend": ref.backend, "features": list(device.FEATURES), "coef": list(ref.coef),
               "fit_mape_percent": ref.fit_mape_percent, "probes": ref.probes, "held_out_mape_percent": results["desktop"]["mape_percent"],
               "machine": machine(), "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "command": "python benchmarks/device_latency.py --contexts desktop --write-reference " + args.write_reference}
        Path(args.write_reference).write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    out = {"machine": machine(), "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "contexts": results}
    if args.format == "json":
        print(json.dumps(out))
        return 0
    print(header("The viewer's device as a hardware target (onnxruntime-web, WASM, 1 thread)"))
    rows = []
    for key, r in results.items():
        rows.append([names[key], r["probes"], r["held_out"], r["mape_percent"], r["fit_mape_percent"], r["profile_seconds"],
                     r["downloaded_mb"], f"{r['held_out_ms_range'][0]}–{r['held_out_ms_range'][1]}"])
    print(table(["context", "probes", "held out", "MAPE % (held out)", "fit MAPE %", "profile s", "downloaded MB",
                 "held-out latency ms"], rows))
    print()
    alt = list(next(iter(results.values()))["alternatives_mape_percent"])
    print(table(["model (same probes)"] + [names[k] for k in results],
                [[a] + [results[k]["alternatives_mape_percent"][a] for k in results] for a in alt]))
    for key, r in results.items():
        if r["weightless_vs_real"]:
            c = r["weightless_vs_real"]
            print(f"\n{names[key]}: weightless probe / real weights, same subnets: {c['probe_over_real']} "
                  f"(real {c['real_ms']} ms)")
    if args.int8:
        rows = []
        for key, r in results.items():
            for x in r["int8_in_browser"]:
                rows.append([names[key], x["config"], x["fp32_ms"], x["int8_ms"], x["int8_speedup"]])
        print("\nint8 in the browser (real files, onnxruntime-web WASM 1 thread; the app's int8 files for the browser):")
        print(table(["context", "subnet", "fp32 ms", "int8 ms", "int8 speed-up"], rows))
    print("\ntargets: MAPE ≤ 10% on ≥ 20 held-out subnets in both contexts; profiling ≤ 45 s and ≤ 30 MB in the phone context")
    return 0


if __name__ == "__main__":
    sys.exit(main())
