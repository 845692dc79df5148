#!/usr/bin/env bash
# usage: VENV=/tmp/venvC bash tools/build_kcache.sh   (here: .kcache/ with every kernel build; carry ".kcache" so the device compiles nothing)
#
# The cache key holds the NVRTC and cuda-core versions, so VENV must have the device's: NVRTC
# 13.0.88 and cuda-core 1.2.0 (../shared/DEVICE.md); with other versions every entry misses there
# (harmless: the device then compiles, ~15 s for all builds in parallel). device_run.sh and ab.sh
# use ./.kcache when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .kcache
NVRTC_ATTN_CACHE_DIR=$PWD/.kcache PYTHONPATH=. "${VENV:-/tmp/venvC}/bin/python" tools/bench.py --compile all
du -sh .kcache
