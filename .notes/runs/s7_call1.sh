#!/usr/bin/env bash
# session 7 device call 1: tile handover (a tile's last P V with the next tile's first S): demo, A/B vs 4ec51aa, sm90 GPU tests
# (call 4 ran this same script on the second handover, .notes/runs/s7_handover2_rejected.diff)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
t0=$(date +%s)
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout 60 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/demo.log
AB_TIMEOUT=120 timeout 300 bash tools/ab.sh --rounds 2 W1,W2,W3,W4,W5,W6,W7,W8,W9,W10,W2p1 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -16 $OUT/ab.log
left=$(( 585 - ($(date +%s)-t0) ))
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout $left python3 -m pytest -q -x -n 8 -p no:cacheprovider tests/test_prefill.py tests/test_split_kv.py tests/test_sm90_short.py tests/test_sm90_loads.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"; tail -4 $OUT/pytest.txt
