#!/usr/bin/env bash
# Set up the environment (if needed) and run the whole pipeline on the embedded default backends
# (no model weights, no GPU):
#   1. make a synthetic multi-view scene with ground-truth objects (mastsam synth),
#   2. train mastsam-splat on CPU: the MastSAM tracker (classical segmenter + geometric matcher)
#      makes consistent masks, then Gaussians with an instance feature are fitted to them,
#   3. export the segmented Gaussians, one PLY per object (mastsam export).
# Everything goes under demo/ (or $MASTSAM_DEMO_DIR). Rerunning reuses the scene and the tracker cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh

OUT="${MASTSAM_DEMO_DIR:-demo}"
STEPS="${MASTSAM_DEMO_STEPS:-300}"
SCENE="$OUT/scene"
RUN="$OUT/outputs/scene/mastsam-splat/demo"
# One BLAS/OpenMP thread per process is faster for the small CPU rasterizer workloads on a shared machine.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

if [ ! -f "$SCENE/transforms.json" ]; then
  .venv/bin/mastsam synth --output-dir "$SCENE" --frames 40 --width 320 --height 240 --seed 0 --trajectory orbit
else
  echo "[demo] reusing synthetic scene $SCENE"
fi

.venv/bin/ns-train mastsam-splat --data "$SCENE" --output-dir "$OUT/outputs" --timestamp demo \
  --machine.device-type cpu --max-num-iterations "$STEPS" \
  --vis tensorboard --viewer.quit-on-train-completion True

.venv/bin/mastsam export --load-config "$RUN/config.yml" --output-dir "$OUT/export"

echo
echo "[demo] consistent masks:        $SCENE/mastsam/training-views/ (masks/, overlays/, contact_sheet.png)"
echo "[demo] trained run:             $RUN (config.yml, eval_metrics.json)"
echo "[demo] segmented Gaussians:     $OUT/export (scene.ply with instance_id, objects/*.ply, objects.json)"
echo "[demo] open it in the viewer:   .venv/bin/ns-viewer --load-config $RUN/config.yml"
if [ -f "$RUN/eval_metrics.json" ]; then
  echo "[demo] eval figures:"
  .venv/bin/python - "$RUN/eval_metrics.json" <<'PY'
import json, sys

metrics = json.load(open(sys.argv[1]))
for section in ("eval", "timing"):
    for key, value in metrics.get(section, {}).items():
        print(f"    {key}: {value:.4g}" if isinstance(value, float) else f"    {key}: {value}")
PY
fi
