"""Bundle the published Ultra96-v2 FPGA per-layer latencies into pretrained/latency/fpga_ultra96.json.

    python scripts/bundle_fpga.py [FOLDER]      # FOLDER default: ../shared/reference/fpga-ultra96

Data: "Latency dataset for Once-For-All network" (Pilot Khadka,
github.com/Pilot-Khadka/Latency-dataset-for-Once-For-All-network; no licence stated, used as
measured facts with attribution, see assets/ATTRIBUTION.md). Every layer of OFA MobileNetV3
w1.2 at 224 px was compiled on its own to an int8 .xmodel and profiled with the Vitis AI
profiler (vaitrace) on an Ultra96-v2 (DPUCZDX8G B2304, 200 MHz, 500 runs, batch 1).

How a layer's latency is read from ``blocks/<layer>/profile_summary.csv``: the sum of the
"Average Time (ms)" column over every kernel row of the "DPU Summary" section (one row per
DPU subgraph of that layer's xmodel; each runs once per inference). In this dataset every
file has exactly one row, matching the single kernel listed in its ``meta.json``: each layer,
including a block's squeeze-excite and residual add, compiled to one DPU subgraph. The
script checks that the rows are the kernels of ``meta.json`` and refuses files with any
other timed section (a CPU subgraph's time would not be in the DPU rows).

The output has the shape of note10.json ({"source", "tables": {"224": {layer_key: ms}}})
with the keys ``app.predictors.latency_lut.layer_keys(224, 1.2)`` generates.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from pathlib import Path

from app.paths import PRETRAINED, ROOT
from app.predictors.latency_lut import layer_keys
from app.space import _conv_out, middle_channels
from app.weights import atomic_write_text

DEFAULT_FOLDER = ROOT.parent / "shared" / "reference" / "fpga-ultra96"
OUT = PRETRAINED / "latency" / "fpga_ultra96.json"
R = 224
WIDTH = 1.2
SOURCE = ("Xilinx Ultra96-v2 FPGA (Vitis AI DPU B2304, 200 MHz), int8 per-layer latency (ms) from the "
          "\"Latency dataset for Once-For-All network\", github.com/Pilot-Khadka/Latency-dataset-for-Once-For-All-network "
          "(no licence stated; measured facts, attributed)")
LABEL = "Xilinx Ultra96-v2 FPGA (DPU B2304, int8)"

# folder names of the dataset
_CONV = re.compile(r"^Conv_in-(\d+)x(\d+)x(\d+)_out-(\d+)_k-(\d+)_act-([a-z_]+?)(?:_shape)?$")
_LINEAR = re.compile(r"^Linear_in-(\d+)_out-(\d+)$")
_BLOCK = re.compile(r"^ResidualBlock-in_(\d+)x(\d+)x(\d+)-out_(\d+)-k_(\d+)-e_(\d+)-s_(\d+)-act_([a-z_]+)-use_se_(True|False)$")
# layer keys of the app (OFA's format)
_KEY_CONV = re.compile(r"^(Conv|Conv_1|Conv_2)-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)$")
_KEY_LOGITS = re.compile(r"^Logits-input:1x1x(\d+)-output:(\d+)$")
_KEY_BLOCK = re.compile(r"^expanded_conv-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)-expand:(\d+)-kernel:(\d+)"
                        r"-stride:(\d+)-idskip:(\d)-se:(\d)-hs:(\d)$")


def dpu_rows(csv_path: Path, meta_path: Path) -> list[tuple[str, float]]:
    """(kernel, average ms) for every row of the DPU Summary section, checked against meta.json."""
    lines = csv_path.read_text("utf-8").splitlines()
    sections: dict[str, list[list[str]]] = {}
    current = None
    for line in lines:
        if not line.strip():
            current = None
            continue
        if "," not in line:
            current = line.strip() if line.strip().endswith("Summary") and line.strip() != "Profile Summary" else None
            if current is not None:
                sections[current] = []
            continue
        if current is not None:
            sections[current].append(next(csv.reader(io.StringIO(line))))
    timed = [name for name, rows in sections.items() if rows and any("Time" in c for c in rows[0])]
    if timed != ["DPU Summary"]:
        raise SystemExit(f"{csv_path}: expected one timed section, 'DPU Summary'; found {timed}")
    header, *rows = sections["DPU Summary"]
    name_col, avg_col = header.index("Kernel Name"), header.index("Average Time (ms)")
    out = [(row[name_col], float(row[avg_col])) for row in rows if row and row[0]]
    kernels = json.loads(meta_path.read_text("utf-8"))["kernel"]
    if not out or sorted(k for k, _ in out) != sorted(kernels):
        raise SystemExit(f"{csv_path}: DPU rows {[k for k, _ in out]} are not the kernels of meta.json {kernels}")
    return out


def folder_descriptor(name: str) -> tuple | None:
    """A hashable description of the layer a dataset folder holds (None: not a layer folder)."""
    if m := _CONV.match(name):
        c, h, w, o, k, _act = m.groups()
        return ("conv", int(h), int(w), int(c), int(o), int(k))
    if m := _LINEAR.match(name):
        return ("linear", int(m[1]), int(m[2]))
    if m := _BLOCK.match(name):
        c, h, w, o, k, e, s, act, se = m.groups()
        c, h, w, o, k, e, s = map(int, (c, h, w, o, k, e, s))
        out = _conv_out(h, s)
        return ("block", h, w, c, out, out, o, middle_channels(c, e), k, s, int(s == 1 and c == o), int(se == "True"),
                int(act == "h_swish"))
    return None


def key_descriptor(key: str) -> tuple | None:
    """The same description for an app layer key (None: a layer the dataset does not profile)."""
    if m := _KEY_CONV.match(key):
        kind, h, w, c, _oh, _ow, o = m.groups()
        return ("conv", int(h), int(w), int(c), int(o), 3 if kind == "Conv" else 1)
    if m := _KEY_LOGITS.match(key):
        return ("linear", int(m[1]), int(m[2]))
    if m := _KEY_BLOCK.match(key):
        return ("block", *map(int, m.groups()))
    return None


def build(folder: Path) -> tuple[dict[str, float], dict[str, str], list[str]]:
    """Table {layer_key: ms}, mapping {layer_key: folder}, unused folders."""
    blocks_dir = folder / "blocks"
    by_desc: dict[tuple, str] = {}
    ms: dict[str, float] = {}
    for d in sorted(p for p in blocks_dir.iterdir() if p.is_dir()):
        desc = folder_descriptor(d.name)
        if desc is None:
            raise SystemExit(f"{d}: folder name not understood")
        if desc in by_desc:
            raise SystemExit(f"{d}: same layer as {by_desc[desc]}")
        by_desc[desc] = d.name
        ms[d.name] = sum(t for _, t in dpu_rows(d / "profile_summary.csv", d / "meta.json"))
    fixed, blocks = layer_keys(R, WIDTH)
    keys = fixed + [k for per_k in blocks for per_e in per_k for k in per_e]
    table: dict[str, float] = {}
    mapping: dict[str, str] = {}
    for key in dict.fromkeys(keys):  # unique, in order
        if key.startswith("AvgPool2D-"):
            table[key] = 0.0
            mapping[key] = "(not profiled: 0.0)"
            continue
        desc = key_descriptor(key)
        if desc is None or desc not in by_desc:
            raise SystemExit(f"no FPGA folder for layer {key} ({desc})")
        table[key] = round(ms[by_desc[desc]], 6)
        mapping[key] = by_desc[desc]
    unused = sorted(set(by_desc.values()) - set(mapping.values()))
    return table, mapping, unused


NOTES = [
    "224 px only (the dataset profiles no other resolution); OFA MobileNetV3 w1.2, 1000 classes, batch 1, int8 (Vitis AI quantizer).",
    "Each layer was compiled and profiled on its own; its latency is the sum of the 'Average Time (ms)' of the rows of the "
    "'DPU Summary' of its profile_summary.csv (500 runs). Every layer is one DPU subgraph (one row, the kernel in meta.json); "
    "there are no CPU subgraphs. Squeeze-excite and residual adds are inside the block's subgraph.",
    "DPU kernel time only: host-side pre/post-processing and runner overhead are not included. A network's latency is the "
    "sum over its layers (as for OFA's Note10 tables); each per-layer xmodel pays its own subgraph start and DDR "
    "load/store of activations, so the sum likely overestimates a whole network compiled as one xmodel.",
    "AvgPool2D (global average pooling before Conv_2) was not profiled: 0.0 ms.",
    "The stem Conv was profiled with ReLU (folder Conv_in-3x224x224_out-24_k-3_act-relu) where OFA uses h-swish.",
    "The fixed first block (expand 1, kernel 3) is ResidualBlock-in_24x112x112-out_24-k_3-e_1; the dataset's k_5-e_1 and "
    "k_7-e_1 variants of that block are not in the search space and are unused.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    args = ap.parse_args()
    table, mapping, unused = build(args.folder)
    width = max(len(k) for k in mapping)
    for key, d in mapping.items():
        print(f"{key:<{width}}  {table[key]:7.3f} ms  <- {d}")
    print(f"{len(table)} layer keys; unused folders: {', '.join(unused) or 'none'}")
    doc = {"source": SOURCE, "label": LABEL, "precision": "int8", "notes": NOTES, "tables": {str(R): table}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
