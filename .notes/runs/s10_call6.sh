#!/usr/bin/env bash
# session 10 call 6: the tree to land (fp8-MMA P's 2^8 as a bias of the softmax exponent, no FMULs): GPU tests of
# the fp8 paths (mma first), compute-sanitizer on the fp8-MMA cases, demo, bench (all rows and the fp8_mma rows)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
python3 tools/bench.py --compile all > /tmp/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
timeout 80 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_fp8.py tests/test_flashinfer_api.py -k "mma" > $OUT/pytest_mma.txt 2>&1; echo "pytest mma rc=$? $(( $(date +%s)-t0 ))s"; tail -2 $OUT/pytest_mma.txt
timeout 150 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_fp8.py tests/test_sm90_loads.py tests/test_split_kv.py -k "not mma" > $OUT/pytest_fp8.txt 2>&1; echo "pytest fp8 rc=$? $(( $(date +%s)-t0 ))s"; tail -2 $OUT/pytest_fp8.txt
for a in "" "--long"; do
  timeout 40 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > /tmp/rc.log 2>&1; echo "racecheck $a rc=$? $(tail -1 /tmp/rc.log)"
  timeout 40 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > /tmp/mc.log 2>&1; echo "memcheck $a rc=$? invalid=$(grep -c 'Invalid\|out of bounds' /tmp/mc.log) $(tail -1 /tmp/mc.log)"
done
timeout 30 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$?"; tail -2 $OUT/demo.log
timeout 60 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s)-t0 ))s"
timeout 25 python3 tools/bench.py --fp8-mma --only W2f8q,W7f8q --no-ceiling --no-host-cost > $OUT/bench_mma.log 2>&1; echo "mma rc=$?"
grep -E "^ *(W|GEMM|run|host)" $OUT/bench.log | cut -c1-112 | tail -21; grep -E "^W" $OUT/bench_mma.log | cut -c1-100 | tail -2
