#!/usr/bin/env bash
# Set up the environment (if needed) and run the main job on the embedded default backends
# (no model weights, no GPU): make a synthetic multi-view scene with ground truth and summarise it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
OUT="${MASTSAM_DEMO_DIR:-demo}"
.venv/bin/mastsam synth --output-dir "$OUT/scene" --frames 40 --width 320 --height 240 --seed 0 --trajectory orbit
echo "Scene written to $OUT/scene (Nerfstudio dataset with ground-truth instances/ and parts/)."
