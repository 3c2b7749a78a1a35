"""Bundle the reference data the app needs at run time (from ../shared/reference) into pretrained/.

    python scripts/bundle_reference.py [--help-gpu]

* OFA's accuracy predictor -> pretrained/predictors/ofa_acc_predictor_w1.2.safetensors
* Note10 lookup tables (YAML) -> pretrained/latency/note10.json (means only, ms)
Attribution: pretrained/ATTRIBUTION.md.
"""

from __future__ import annotations

import argparse
import json

import torch
import yaml  # maintenance only; the app reads the JSON
from safetensors.torch import save_file

from app.paths import PRETRAINED, ROOT
from app.weights import atomic_write_text

SHARED = ROOT.parent / "shared" / "reference"


def main() -> None:
    state = torch.load(SHARED / "ofa" / "acc_predictor.pth", map_location="cpu", weights_only=True)
    state = {k.removeprefix("model."): v.contiguous() for k, v in state.items()}
    out = PRETRAINED / "predictors"
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "ofa_acc_predictor_w1.2.safetensors"))
    tables = {}
    for r in (160, 176, 192, 208, 224):
        with open(SHARED / "ofa" / "note10" / f"{r}_lookup_table.yaml") as f:
            lut = yaml.safe_load(f)
        tables[str(r)] = {k: v["mean"] for k, v in lut.items()}
    doc = {"source": "Samsung Galaxy Note10 latency lookup tables (ms), OFA han-cai/files ofa/note10 (MIT)",
           "tables": tables}
    atomic_write_text(PRETRAINED / "latency" / "note10.json", json.dumps(doc) + "\n")
    print("bundled:", list(state), "and", {r: len(t) for r, t in tables.items()})


def fit_help(seed: int = 0, ridge: float = 1e-3) -> dict:
    """Fit the GPU latency models on HELP's data; returns the JSON document (coefficients + held-out MAPE)."""
    import numpy as np

    from app.predictors.encoding import encode
    from app.predictors.gpu import features
    from app.space import SubnetConfig

    # HELP stores numpy scalars (r) in its pickle: trusted reference data, maintenance only
    archs = torch.load(SHARED / "help" / "ofa_archs.pt", weights_only=False)["arch"]
    cfgs = [SubnetConfig(tuple(a["ks"]), tuple(a["e"]), tuple(a["d"]), int(a["r"])) for a in archs]
    X = features(encode(cfgs))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(cfgs))
    n_train = int(0.8 * len(cfgs))
    tr, te = perm[:n_train], perm[n_train:]
    models = {}
    for path in sorted((SHARED / "help" / "latency").glob("*.pt")):
        y = np.asarray(torch.load(path, weights_only=True), dtype=np.float64)
        def fit(rows):  # least squares on relative error (rows weighted by 1/y), small ridge
            A = X[rows] / y[rows, None]
            return np.linalg.solve(A.T @ A + ridge * np.eye(A.shape[1]), A.T @ np.ones(len(rows)))

        coef = fit(tr)
        pred = X[te] @ coef
        mape = float(np.mean(np.abs(pred - y[te]) / y[te]) * 100)
        coef_all = fit(np.arange(len(y)))
        models[path.stem] = {"heldout_mape": mape, "coef": coef_all.tolist(), "n": len(y)}
        print(f"{path.stem}: held-out MAPE {mape:.2f}%")
    return {"source": "HELP (Lee et al., NeurIPS 2021), github.com/HayeonLee/HELP data/ofa, MIT",
            "split": {"seed": seed, "train": n_train, "test": len(te)}, "ridge": ridge, "models": models}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--help-gpu", action="store_true",
                    help="also fit the GPU latency models on HELP's data -> pretrained/latency/help_gpu.json")
    args = ap.parse_args()
    main()
    if args.help_gpu:
        doc = fit_help()
        atomic_write_text(PRETRAINED / "latency" / "help_gpu.json", json.dumps(doc) + "\n")
