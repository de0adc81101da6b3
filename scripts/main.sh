#!/usr/bin/env bash
# The main job, the whole path in one command: install (scripts/bootstrap.sh), train the quickstart
# preset on the built-in procedural flowers, export the EMA generator + USE encoder as a TF Serving
# SavedModel into saved_models/quickstart/<version>/, and draw a grid from that export.
# Then `.venv/bin/t2i-keras demo --model saved_models/quickstart` shows it in a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
RUN_DIR="${RUN_DIR:-runs/quickstart}"
EXPORT_DIR="${EXPORT_DIR:-saved_models/quickstart}"
.venv/bin/t2i-keras train --preset quickstart --run-dir "$RUN_DIR" "$@"
.venv/bin/t2i-keras export --run "$RUN_DIR" --export-dir "$EXPORT_DIR"
.venv/bin/t2i-keras generate --model "$EXPORT_DIR" --num 6 --seed 0 --out "$RUN_DIR/grid.png" \
  "this flower has petals that are red and has yellow stamen" \
  "a flower with orange petals" \
  "this flower has yellow round petals and a brown centre" \
  "a green flower with thin petals" \
  "this flower has blue petals" \
  "a purple flower with pointed petals" \
  "this flower has pink petals and a white centre" \
  "a white flower with five petals"
echo "Done: samples per epoch in $RUN_DIR/samples/, SavedModel in $EXPORT_DIR/, grid from it in $RUN_DIR/grid.png"
echo "See it in a browser: .venv/bin/t2i-keras demo --model $EXPORT_DIR"
