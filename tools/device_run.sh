#!/usr/bin/env bash
# usage: bash tools/device_run.sh [--dry-run] [--no-tests] [--no-demo] [--no-bench] [--no-flashinfer] [--only W1,W2] [--iters N]
#
# The closing GPU run in one call: FlashInfer from .peers/ when it is there (../shared/peers/README.md),
# every kernel build compiled in parallel, GPU tests ($OUT/pytest.txt), the demo ($OUT/demo.log),
# the benchmark ($OUT/bench.json, $OUT/bench.log), then a summary with the bench table last.
# Every stage is time-boxed so that the whole run ends by $DEADLINE s (default 560); --dry-run
# does what needs no GPU (collects the tests, bench.py --dry-run) and prints the GPU commands.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.
cd "$(dirname "$0")/.." || exit 2
TESTS=1 DEMO=1 BENCH=1 FI=auto DRY= BENCH_ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY=1 ;;
        --no-tests) TESTS= ;;
        --no-demo) DEMO= ;;
        --no-bench) BENCH= ;;
        --no-flashinfer) FI=off ;;
        --only|--iters) BENCH_ARGS+=("$1" "$2"); shift ;;
        -h|--help) sed -n 2p "$0" | sed 's/^# //'; exit 0 ;;
        *) echo "unknown argument $1"; sed -n 2p "$0" | sed 's/^# //'; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-/tmp/device_run}
mkdir -p "$OUT" || exit 2
if [ -z "$NVRTC_ATTN_CACHE_DIR" ]; then
    if [ -d .kcache ]; then export NVRTC_ATTN_CACHE_DIR=$PWD/.kcache; else export NVRTC_ATTN_CACHE_DIR=/tmp/kc_device; fi
fi
T0=$SECONDS
DEADLINE=${DEADLINE:-560}
stage() { echo; echo "=== $(date +%T) (+$((SECONDS - T0)) s) $*"; }
# budget CAP: seconds a stage may take, at most CAP and what is left before the deadline (10 s kept)
budget() {
    local left=$((DEADLINE - 10 - (SECONDS - T0)))
    [ "$left" -lt 1 ] && left=1
    [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

stage "start: $(nvidia-smi -L 2>/dev/null | head -1 || echo 'no nvidia-smi'); python3 $(python3 -c 'import sys; print(sys.version.split()[0])'); OUT=$OUT; kernel cache $NVRTC_ATTN_CACHE_DIR${DRY:+; dry run}"

FI_STATUS="not asked (--no-flashinfer)" FI_PATH=
if [ "$FI" = auto ] && [ -n "$BENCH" ]; then
    stage "flashinfer from .peers/"
    tgz=$(ls .peers/flashinfer-*.tgz 2>/dev/null | head -1)
    if [ -z "$tgz" ]; then
        FI_STATUS="off: no .peers/flashinfer-*.tgz (copy ../shared/peers/* into .peers/ and carry it)"
    elif [ -n "$DRY" ]; then
        FI_STATUS="dry run: would install $(ls .peers/*.whl | wc -l) wheels into /tmp/site and unpack $tgz into /tmp/fipkg"
    else
        export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
        mkdir -p /tmp/fipkg
        if timeout "$(budget 120)" bash -c "python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl \
                && tar xzf '$tgz' -C /tmp/fipkg \
                && PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site python3 -c 'import torch, flashinfer; print(\"flashinfer\", flashinfer.__version__)'" \
                > "$OUT/setup.log" 2>&1; then
            FI_PATH=$PWD:/tmp/fipkg:/tmp/site FI_STATUS="on: $(tail -1 "$OUT/setup.log")"
        else
            FI_STATUS="off: setup failed ($(tail -1 "$OUT/setup.log"))"
        fi
    fi
    echo "$FI_STATUS"
fi

stage "compile every kernel build (parallel processes)"
if [ -n "$DRY" ]; then
    python3 tools/bench.py --compile all --dry-run | cut -c1-300
else
    timeout "$(budget 120)" python3 tools/bench.py --compile all > "$OUT/compile.log" 2>&1
    echo "rc=$? $(head -1 "$OUT/compile.log")"
    grep -A3 "failed) in" "$OUT/compile.log" | grep "^  .*Error" | head -5
fi

RC_TESTS=- RC_DEMO=- RC_BENCH=-
if [ -n "$TESTS" ]; then
    stage "GPU tests: python3 -m pytest -q tests > $OUT/pytest.txt"
    if [ -n "$DRY" ]; then
        python3 -m pytest -q --co tests 2>&1 | tail -1
    else
        timeout "$(budget 260)" python3 -m pytest -q tests 2>&1 | tr -d '\000' > "$OUT/pytest.txt"
        RC_TESTS=$?
        tail -4 "$OUT/pytest.txt"
    fi
fi
if [ -n "$DEMO" ]; then
    stage "demo: python3 -m nvrtc_attn > $OUT/demo.log"
    if [ -n "$DRY" ]; then
        echo "[dry run] python3 -m nvrtc_attn"
    else
        timeout "$(budget 60)" python3 -m nvrtc_attn 2>&1 | tr -d '\000' > "$OUT/demo.log"
        RC_DEMO=$?
        tail -3 "$OUT/demo.log"
    fi
fi
if [ -n "$BENCH" ]; then
    [ -n "$FI_PATH" ] && BENCH_ARGS+=(--flashinfer)
    stage "bench: python3 tools/bench.py --json $OUT/bench.json ${BENCH_ARGS[*]} > $OUT/bench.log"
    if [ -n "$DRY" ]; then
        python3 tools/bench.py --dry-run "${BENCH_ARGS[@]}" > "$OUT/bench.log" 2>&1
        RC_BENCH=$?
    else
        left=$(budget 300)
        if [ "$left" -gt 30 ]; then
            PYTHONPATH=${FI_PATH:-.} timeout "$left" python3 tools/bench.py --json "$OUT/bench.json" "${BENCH_ARGS[@]}" 2>&1 \
                | tr -d '\000' > "$OUT/bench.log"
            RC_BENCH=$?
        else
            echo "skipped: $left s left before the deadline"
        fi
    fi
fi

stage "summary"
echo "flashinfer: $FI_STATUS"
[ -n "$TESTS" ] && echo "tests: rc=$RC_TESTS; $(grep -E '[0-9]+ (passed|failed)|error' "$OUT/pytest.txt" 2>/dev/null | tail -1)"
[ -n "$TESTS" ] && [ "$RC_TESTS" != 0 ] && [ -z "$DRY" ] && grep -E "^(FAILED|ERROR) " "$OUT/pytest.txt" | head -15
[ -n "$DEMO" ] && echo "demo: rc=$RC_DEMO; $(tail -1 "$OUT/demo.log" 2>/dev/null)"
if [ -n "$BENCH" ]; then
    echo "bench: rc=$RC_BENCH$([ "$RC_BENCH" = 124 ] && echo ' (stopped at its time limit: the table has the rows done by then)')"
    grep -E "^!!! |failed: " "$OUT/bench.log" | head -10
    if [ -s "$OUT/bench.json" ]; then
        python3 tools/bench.py --print-table "$OUT/bench.json"
    else
        tail -40 "$OUT/bench.log"
    fi
fi
echo "=== $(date +%T) done in $((SECONDS - T0)) s"
for rc in $RC_TESTS $RC_DEMO $RC_BENCH; do [ "$rc" = - ] || [ "$rc" = 0 ] || exit 1; done
exit 0
