#!/usr/bin/env bash
# The main job: install (scripts/bootstrap.sh), train the quickstart preset on the built-in
# procedural flowers, then draw a grid of new images from the trained run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
RUN_DIR="${RUN_DIR:-runs/quickstart}"
.venv/bin/python scripts/train.py --preset quickstart --run-dir "$RUN_DIR" "$@"
.venv/bin/python scripts/generate.py --run "$RUN_DIR" --num 6 --seed 0 --out "$RUN_DIR/grid.png" \
  "this flower has petals that are red and has yellow stamen" \
  "a flower with orange petals" \
  "this flower has yellow round petals and a brown centre" \
  "a green flower with thin petals" \
  "this flower has blue petals" \
  "a purple flower with pointed petals" \
  "this flower has pink petals and a white centre" \
  "a white flower with five petals"
echo "Done: samples per epoch in $RUN_DIR/samples/, final grid in $RUN_DIR/grid.png"
