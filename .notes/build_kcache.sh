#!/bin/bash
# Prebuild the kernel cache for the device (its NVRTC 13.0.88 + cuda-core 1.2.0, mirrored by a local
# venv) so device calls skip compilation: carry .kcache and set NVRTC_ATTN_CACHE_DIR=$PWD/.kcache.
set -e
cd "$(dirname "$0")/.."
rm -rf .kcache
NVRTC_ATTN_CACHE_DIR=$PWD/.kcache NVRTC_ATTN_LAZY_COMPILE=1 PYTHONPATH=. ${VENV:-/tmp/venvC}/bin/python -c "
from nvrtc_attn import compiler, variants
r = compiler.compile_all(variants.all_variants())
bad = [x for x in r if isinstance(x, compiler.CompileError)]
print(len(r), 'variants,', len(bad), 'errors'); [print(b) for b in bad]
"
