#!/usr/bin/env bash
# Install everything the workflow and its tests need on a fresh Debian machine (run as root, or
# with sudo for the apt part). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
missing=()
# chromium: tests/test_report.py and tools/report_screenshot.py check the report in a real browser.
# libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1: Mesa's software EGL (llvmpipe, no GPU needed), so that
# render.backend egl is tested against OSMesa here (tests/test_render_egl.py); with --no-install-recommends
# libegl1 alone has no vendor library.
for pkg in libosmesa6 libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 ffmpeg chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# torch first, from the CPU wheel where one is offered: the workflow never requires CUDA to
# install, and a later plain `torch` requirement is then already satisfied.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[test]"
echo "latentman: installed ($("$PY" -c 'import torch, diffusers, snakemake; print("torch", torch.__version__, "| diffusers", diffusers.__version__, "| snakemake", snakemake.__version__)'))"
