#!/usr/bin/env bash
# Bundle a finished training run as the app's default supernet, then re-measure everything tied to its weights:
# the herded calibration images, the model card (24 cells, full val) and the accuracy predictor's data and fit.
#
#   scripts/bundle_supernet.sh RUN_DIR [--wait]
#
# RUN_DIR is a `python -m app train --out` directory, a run staged in git by scripts/stage_run_weights.py
# (pretrained/staging/<recipe name>, removed once bundled), or a directory holding a weight average written by
# `python -m app average --out RUN_DIR/phase-0-average ...`; its last phase's weights (phase-K-<name>.safetensors + .json)
# become pretrained/ofa_mbv3_w1.2_imagenette.*. --wait first waits for the run's training process to end.
# 55-75 minutes on an idle 2-core machine (v11, Xeon: calibration 7, model card 27, 80 accuracy configs 20, fit 1); run
# nothing else meanwhile, the timings in the model card come from it. Logs: runs/<RUN_DIR's name>/bundle-<step>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: scripts/bundle_supernet.sh RUN_DIR [--wait]}
run=${run%/}
py=${PYTHON:-.venv/bin/python}
logs=runs/$(basename "$run")
mkdir -p "$logs"

if [[ "${2:-}" == "--wait" ]]; then
    while pgrep -f "app train .*--out $run( |$)" >/dev/null; do sleep 20; done
fi
weights=$(ls "$run"/phase-*.safetensors 2>/dev/null | sort -V | tail -n 1 || true)
[[ -n "$weights" && -f "${weights%.safetensors}.json" ]] || { echo "no phase weights in $run" >&2; exit 1; }
echo "$(date -u +%FT%TZ) bundling $weights"
cp "$weights" pretrained/ofa_mbv3_w1.2_imagenette.safetensors
cp "${weights%.safetensors}.json" pretrained/ofa_mbv3_w1.2_imagenette.json
[[ "$run" == pretrained/staging/* ]] && rm -r "$run"  # bundled now; keeps pretrained/ under 60 MB

step() {
    local name=$1; shift
    echo "$(date -u +%FT%TZ) $name: $*"
    "$@" > "$logs/bundle-$name.log" 2>&1 || { echo "$name failed: see $logs/bundle-$name.log" >&2; exit 1; }
}
step select "$py" scripts/select_calibration_images.py
step evaluate "$py" scripts/evaluate_supernet.py
step dataset "$py" scripts/measure_accuracy_dataset.py --n 80
step fit env OPENBLAS_NUM_THREADS=1 "$py" scripts/fit_accuracy_predictor.py
echo "$(date -u +%FT%TZ) done: update the README's figures from pretrained/MODEL_CARD.md and $run/bundle-fit.log, then make test"
