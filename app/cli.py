"""Command-line interface: ``python -m app <command> [options]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.export import FORMATS


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from app.train.loop import Trainer
    from app.train.recipe import Recipe

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = Recipe.load(args.recipe)
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    trainer = Trainer(recipe, args.data, out, publish_to=args.publish_to, max_steps=args.max_steps,
                      progress=not args.no_progress, continue_from=args.continue_from)
    trainer.run()
    return 0


def _cmd_average(args: argparse.Namespace) -> int:
    import torch

    from app.train.average import average_supernets
    from app.weights import load_supernet, save_supernet

    nets = [load_supernet(p) for p in args.weights]
    out = save_supernet(average_supernets(nets, args.name), args.out, dtype=torch.float16)
    print(f"wrote {out} (the mean of {len(nets)} supernets, float16)")
    return 0


def _config(text: str):
    from app.presets import resolve

    return resolve(text)


def _emit(rows: list[dict], fmt: str) -> None:
    import csv
    import json

    if fmt == "json":
        print(json.dumps(rows if len(rows) != 1 else rows[0], indent=2))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    else:
        keys = list(rows[0])
        widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
        print("  ".join(k.ljust(widths[k]) for k in keys))
        for r in rows:
            print("  ".join(str(r[k]).ljust(widths[k]) for k in keys))


def _cmd_predict(args: argparse.Namespace) -> int:
    from app.predictors import hardware_targets, predict

    cfg = _config(args.config)
    names = args.hardware or [t.name for t in hardware_targets()]
    rows = []
    for hw in names:
        p = predict(cfg, hw, precision=args.precision).to_dict()
        if args.format == "json":
            rows.append(p)
        else:
            rows.append({"hardware": hw, "precision": args.precision, "accuracy": _num(p["accuracy_supernet"]["value"]),
                         "latency_ms": _num(p["latency"]["value"]), "energy_mj": _num(p["energy"]["value"]),
                         "energy_device_mj": _num(p["energy_device"]["value"]),
                         "imagenet_val_top1": _num(p["accuracy_imagenet_val"]["value"]), "macs_M": _num(p["macs"]["value"]),
                         "params_M": _num(p["params"]["value"]), "latency_source": p["latency"]["source"]})
    _emit(rows, args.format)
    return 0


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _cmd_search(args: argparse.Namespace) -> int:
    from app.search import search

    budgets = {k: v for k, v in (("latency", args.max_latency), ("energy", args.max_energy), ("macs", args.max_macs),
                                 ("params", args.max_params)) if v is not None}
    if not budgets:
        raise ValueError("search: give at least one budget (--max-latency, --max-energy, --max-macs, --max-params)")
    from app.search import SearchSettings

    res = search(args.hardware, budgets, args.accuracy,
                 SearchSettings(population=args.population, generations=args.generations, seed=args.seed),
                 supernet_card=_searched_card(args.accuracy))
    row = {"config": res.config.to_compact(), "accuracy": round(res.accuracy, 3), "seconds": round(res.seconds, 3),
           **{k: round(v, 4) for k, v in res.metrics.items()}}
    _emit([row], args.format)
    return 0


def _searched_card(accuracy: str):
    """The bundled supernet's card when its own predictor is maximised; else OFA's ImageNet supernet (None)."""
    from app.predictors.hardware import bundled_card

    return bundled_card() if accuracy == "supernet" else None


def _cmd_pareto(args: argparse.Namespace) -> int:
    from app.search import pareto_front

    limits = [float(x) for x in args.limits.split(",") if x.strip()]
    from app.search import SearchSettings

    res = pareto_front(args.hardware, args.budget, limits, args.accuracy,
                       SearchSettings(generations=args.generations, seed=args.seed), supernet_card=_searched_card(args.accuracy))
    if not res:
        raise ValueError("pareto: every budget was infeasible")
    _emit([{"config": r.config.to_compact(), "accuracy": round(r.accuracy, 3),
            **{k: round(v, 4) for k, v in r.metrics.items()}} for r in res], args.format)
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    from app.classify import classify
    from app.data import ImageError, load_image
    from app.weights import load_supernet

    net = load_supernet(args.supernet)
    cfg = _config(args.config)
    sub = net.extract(cfg, calibrate=True)
    rows, failed = [], 0
    for path in args.images:
        try:
            res = classify(sub, load_image(path), net.card, args.topk)
        except ImageError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        ow = res.open_world
        if args.format == "json":
            rows.append({"image": path, "top1": res.top1, "probability": round(res.probabilities[0], 4), **res.to_dict()})
            continue
        rows.append({"image": path, "in_classes": ow.in_classes,
                     "answer": res.top1 if ow.in_classes else f"not one of the {net.card.num_classes} classes",
                     "top1": res.top1, "probability": round(res.probabilities[0], 4),
                     "ood_score": f"{ow.score_name} {ow.score:.4f} (accept >= {ow.threshold:.4g})",
                     "gate_guess": f"{ow.gate_guess} {ow.gate_guess_probability:.2f}" if ow.gate_guess else "",
                     "topk": "; ".join(f"{l} {p:.3f}" for l, p in zip(res.labels, res.probabilities)),
                     "ms": round(res.seconds * 1000, 1)})
    if rows:
        _emit(rows, args.format)
    return 1 if failed else 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from app.data import IMAGENETTE_CLASSES
    from app.evaluate import top1_with_training_bn
    from app.datasets import load_split
    from app.weights import load_supernet

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bn_images < 1:
        raise ValueError("--bn-images must be at least 1")
    net = load_supernet(args.supernet)
    if list(net.card.class_ids) != sorted(IMAGENETTE_CLASSES):
        raise ValueError(f"evaluate measures supernets trained on Imagenette's 10 classes; {net.card.name} has "
                         f"{net.card.num_classes} classes")
    cfgs = [_config(c) for c in (args.config or ["largest", "smallest"])]
    if args.ood:
        return _evaluate_ood(args, net, cfgs)
    if args.resolutions:
        cfgs = [c.replace(r=r) for c in cfgs for r in _resolutions(args.resolutions, "evaluate")]
    train = load_split(args.data, "train", args.cache, progress=not args.no_progress)
    val = load_split(args.data, "val", args.cache, progress=not args.no_progress)
    rows = []
    for cfg in cfgs:
        t = time.perf_counter()
        top1 = top1_with_training_bn(net, cfg, train, val, args.bn_images, args.bn_seed)
        rows.append({"config": cfg.to_compact(), "r": cfg.r, "top1": round(top1, 2), "val_images": len(val),
                     "bn_images": min(args.bn_images, len(train)), "bn_seed": args.bn_seed, "seconds": round(time.perf_counter() - t, 1)})
    _emit(rows, args.format)
    return 0


def _evaluate_ood(args: argparse.Namespace, net, cfgs) -> int:
    """``evaluate --ood``: every open-world score's AUROC, FPR at 95% TPR and accept / flag rates."""
    import json

    from app.evaluate import MODEL_CARD_SUBNETS, ood_evaluation

    if not args.config:
        cfgs = list(MODEL_CARD_SUBNETS.values())
    resolutions = _resolutions(args.resolutions or "128,160,224", "evaluate --ood")
    cfgs = [c.replace(r=r) for c in cfgs for r in resolutions]
    ood = Path(args.ood_data)
    if not ood.is_dir():
        raise FileNotFoundError(f"evaluate --ood: no folder {ood} (give --ood-data, e.g. ../shared/data/imagenet-samples)")
    log = (lambda m: print(m, file=sys.stderr)) if not args.no_progress else (lambda m: None)
    doc = ood_evaluation(net, cfgs, Path(args.data), ood, log=log)
    doc["supernet_sha256"] = net.card.sha256
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    _emit(doc["rows"], args.format)
    return 0


def _resolutions(text: str, command: str) -> tuple[int, ...]:
    """A ``--resolutions`` value: comma-separated resolutions, each one the supernet takes."""
    from app.space import RESOLUTION_CHOICES

    try:
        rs = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{command}: --resolutions {text!r} is not a comma-separated list of integers") from None
    bad = [r for r in rs if r not in RESOLUTION_CHOICES]
    if not rs or bad:
        raise ValueError(f"{command}: --resolutions {bad or text!r} not among the supernet's "
                         f"{min(RESOLUTION_CHOICES)}..{max(RESOLUTION_CHOICES)} px in steps of 4")
    return rs


def _cmd_export(args: argparse.Namespace) -> int:
    from app.export import export_to
    from app.weights import load_supernet

    net = load_supernet(args.supernet)
    sub = net.extract(_config(args.config), calibrate=True)
    path, check = export_to(sub, net.card, args.format, args.out)
    print(path)
    print(f"verified: {check}", file=sys.stderr)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import time

    import torch

    from app.weights import load_supernet
    from app.space import SubnetConfig

    net = load_supernet(args.supernet)
    rows = []
    for name, cfg in (("largest r224", SubnetConfig.largest(224)), ("smallest r128", SubnetConfig.smallest(128))):
        t = time.perf_counter(); sub = net.extract(cfg); t_ex = time.perf_counter() - t
        t = time.perf_counter(); sub = net.extract(cfg, calibrate=True); t_cal = time.perf_counter() - t
        x = torch.randn(1, 3, cfg.r, cfg.r)
        with torch.no_grad():
            sub(x)
            t = time.perf_counter(); sub(x); t_inf = time.perf_counter() - t
        rows.append({"subnet": name, "extract_ms": round(t_ex * 1e3, 1), "extract_calibrate_ms": round(t_cal * 1e3, 1),
                     "inference_ms_b1": round(t_inf * 1e3, 1)})
    _emit(rows, args.format)
    return 0


def _cmd_calibrate_hardware(args: argparse.Namespace) -> int:
    import torch

    from app.predictors.calibrate_hardware import DEFAULT_RESOLUTIONS, calibrate_hardware, save_table
    from app.predictors.hardware import user_hardware_dir
    from app.space import RESOLUTION_CHOICES
    from app.weights import load_supernet

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resolutions == "all":
        resolutions = RESOLUTION_CHOICES
    elif args.resolutions == "default":
        resolutions = DEFAULT_RESOLUTIONS
    else:
        resolutions = _resolutions(args.resolutions, "calibrate-hardware")
    out = Path(args.out) if args.out else user_hardware_dir() / f"{args.name}.json"
    net = load_supernet(args.supernet)
    bar = _ProgressBar() if not args.no_progress else None
    doc = calibrate_hardware(net, args.name, args.label, resolutions, args.validate, bar, args.fit_subnets)
    if bar:
        bar.close()
    save_table(doc, out)
    v = doc.get("validation")
    err = f"; validated on {v['subnets']} random subnets: MAPE {v['mape_percent']:.1f}% (max {v['max_ape_percent']:.1f}%)" if v else ""
    print(f"saved {out} ({doc['minutes']:.1f} min{err}); the app offers it as hardware target {args.name!r}")
    return 0


class _ProgressBar:
    """A one-line progress bar on stderr."""

    def __init__(self) -> None:
        self.last = ""
        self.shown = 0.0

    def __call__(self, done: int, total: int, what: str) -> None:
        import time

        now = time.time()
        if done < total and now - self.shown < 0.25:  # at most 4 redraws a second
            return
        self.shown = now
        frac = done / max(total, 1)
        bar = "#" * int(30 * frac)
        line = f"\r[{bar:<30}] {done}/{total} {what[:40]:<40}"
        if line != self.last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self.last = line

    def close(self) -> None:
        sys.stderr.write("\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description="OFA Explorer: Once-for-All supernet tools.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a supernet by progressive shrinking (resumable; torchrun-ready)")
    t.add_argument("--recipe", required=True, help="recipe JSON (see recipes/)")
    t.add_argument("--data", required=True, help="Imagenette root holding train/ and val/")
    t.add_argument("--out", help="run directory (default runs/<recipe name>); resumes from its checkpoint")
    t.add_argument("--continue-from", metavar="WEIGHTS",
                   help="a finished phase's weights of this recipe (e.g. pretrained/staging/<recipe name>/phase-K-*.safetensors): "
                        "go on with the next phase, keeping the hours and history (a checkpoint in --out wins)")
    t.add_argument("--publish-to", help="also write each finished phase's weights to this stem (e.g. pretrained/ofa_mbv3_w1.2_imagenette)")
    t.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke tests)")
    t.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    av = sub.add_parser("average", help="average the weights of runs of one lineage into a new supernet (a model soup)")
    av.add_argument("weights", nargs="+", help="supernet weights, oldest run first")
    av.add_argument("--out", required=True, help="stem to write <stem>.safetensors and <stem>.json to (float16)")
    av.add_argument("--name", required=True, help="a name for the result, recorded as its recipe name")
    av.set_defaults(func=_cmd_average)

    cfg_help = "a preset name (largest, smallest, an OFA specialised subnet), a .json file, inline JSON or a compact string"
    fmt = dict(choices=["table", "json", "csv"], default="table")

    c = sub.add_parser("classify", help="classify images with a subnet")
    c.add_argument("images", nargs="+")
    c.add_argument("--config", default="largest", help=cfg_help)
    c.add_argument("--supernet", help="supernet file (default: the bundled one)")
    c.add_argument("--topk", type=int, default=5)
    c.add_argument("--format", **fmt)
    c.set_defaults(func=_cmd_classify)

    pr = sub.add_parser("predict", help="predicted accuracy, latency and energy of a config")
    pr.add_argument("--config", required=True, help=cfg_help)
    pr.add_argument("--hardware", action="append", help="target name (repeatable; default: all)")
    pr.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                    help="int8: accuracy corrected by measured int8 configs, int8 energies, latency only where measured in int8")
    pr.add_argument("--format", **fmt)
    pr.set_defaults(func=_cmd_predict)

    for name, helptext in (("search", "evolutionary search under budgets"),):
        s_ = sub.add_parser(name, help=helptext)
        s_.add_argument("--hardware", default="note10")
        s_.add_argument("--max-latency", type=float, help="ms on --hardware")
        s_.add_argument("--max-energy", type=float, help="mJ (energy model)")
        s_.add_argument("--max-macs", type=float, help="millions of MACs")
        s_.add_argument("--max-params", type=float, help="millions of parameters")
        s_.add_argument("--accuracy", choices=["imagenet", "imagenet_val", "supernet"], default="imagenet")
        s_.add_argument("--population", type=int, default=100)
        s_.add_argument("--generations", type=int, default=500)
        s_.add_argument("--seed", type=int, default=0)
        s_.add_argument("--format", **fmt)
        s_.set_defaults(func=_cmd_search)

    pa = sub.add_parser("pareto", help="best predicted accuracy across a range of budgets")
    pa.add_argument("--hardware", default="note10")
    pa.add_argument("--budget", choices=["latency", "energy", "macs", "params"], default="latency")
    pa.add_argument("--limits", required=True, help="comma-separated budgets, e.g. 15,20,25,30")
    pa.add_argument("--accuracy", choices=["imagenet", "imagenet_val", "supernet"], default="imagenet")
    pa.add_argument("--generations", type=int, default=100)
    pa.add_argument("--seed", type=int, default=0)
    pa.add_argument("--format", **fmt)
    pa.set_defaults(func=_cmd_pareto)

    ev = sub.add_parser("evaluate", help="top-1 on an Imagenette-style val split, BN re-estimated on its train split (the model card's method)")
    ev.add_argument("--data", required=True, help="dataset root holding train/<wnid>/ and val/<wnid>/")
    ev.add_argument("--config", action="append", help=cfg_help + " (repeatable; default: largest and smallest)")
    ev.add_argument("--resolutions", help="comma-separated resolutions to measure each config at (default: the config's own)")
    ev.add_argument("--bn-images", type=int, default=2000, help="training images for BN re-estimation (OFA: 2000)")
    ev.add_argument("--bn-seed", type=int, default=0,
                    help="which draw of the BN images (the model card: 0); other draws show how much the figure depends on it")
    ev.add_argument("--ood", action="store_true",
                    help="measure the open-world scores instead: Imagenette val (in) against --ood-data (out); default configs: "
                         "the model card's six at r = 128, 160, 224")
    ev.add_argument("--ood-data", default="../shared/data/imagenet-samples",
                    help="folder of <wnid>_*.JPEG images; those of the supernet's classes are left out")
    ev.add_argument("--out", help="with --ood: also write the whole result as JSON here")
    ev.add_argument("--supernet", help="supernet file (default: the bundled one)")
    ev.add_argument("--cache", default="runs/cache", help="where decoded splits are cached (as training does)")
    ev.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    ev.add_argument("--no-progress", action="store_true")
    ev.add_argument("--format", **fmt)
    ev.set_defaults(func=_cmd_evaluate)

    ex = sub.add_parser("export", help="export a subnet (verified against the live one)")
    ex.add_argument("--config", required=True, help=cfg_help)
    ex.add_argument("--format", choices=list(FORMATS), default="state_dict",
                    help="onnx-int8: static int8 quantization (onnxruntime), verified on real images against fp32")
    ex.add_argument("--out", required=True, help="output file or directory")
    ex.add_argument("--supernet")
    ex.set_defaults(func=_cmd_export)

    ch = sub.add_parser("calibrate-hardware", help="measure a latency table for this machine (a new hardware target)")
    ch.add_argument("--name", required=True, help="target name (letters, digits, - _ .)")
    ch.add_argument("--label", help="label shown in the app")
    ch.add_argument("--resolutions", default="default",
                    help="'default' (128..224 every 16 px, interpolated between), 'all' (every 4 px) or a comma-separated list")
    ch.add_argument("--validate", type=int, default=30, help="random subnets measured end to end to validate (0: skip)")
    ch.add_argument("--fit-subnets", type=int, default=30,
                    help="random subnets measured end to end to fit the table's scale and offset (0: raw layer sums)")
    ch.add_argument("--out", help="output JSON (default: ~/.ofa_explorer/hardware/NAME.json, or $OFA_EXPLORER_HOME)")
    ch.add_argument("--supernet")
    ch.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    ch.add_argument("--no-progress", action="store_true")
    ch.set_defaults(func=_cmd_calibrate_hardware)

    b = sub.add_parser("bench", help="quick extraction / calibration / inference timings here")
    b.add_argument("--supernet")
    b.add_argument("--format", **fmt)
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output was piped into a command that stopped reading (e.g. `| head`)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141
