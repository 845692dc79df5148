#!/usr/bin/env bash
# usage: bash tools/ab.sh prep REV [NAME]  (here, with git: ab/NAME = REV's tree) | bash tools/ab.sh [--dry-run] [--rounds N] [--iters N] W1,W2,...  (device: the working tree "A" against every ab/* tree, rounds interleaved)
#
# One device call times several versions of the library on the same machine: this checkout's
# tools/bench.py measures every tree (bench.py --lib TREE), so the method is the same for all.
# ab/ is git-ignored: carry it ("carry": ["ab"]). Kernel caches: a tree's own .kcache when it has
# one (carried), else /tmp/kc_ab_LABEL; every tree compiles its builds in parallel processes before
# the first round (the device's NVRTC 13.0 starts cold on a fresh machine). Each round runs the
# trees in a rotated order; per-run JSON and logs go to $AB_RUNS (/tmp/ab_runs), the medians to
# $OUT/ab.json, and the table is printed last. $AB_BENCH_ARGS go to every bench.py call (e.g. --fp8-mma).
set -o pipefail
export PYTHONUNBUFFERED=1 NVRTC_ATTN_LAZY_COMPILE=1
cd "$(dirname "$0")/.." || exit 2
AB=${AB_DIR:-ab}
PY=${PYTHON:-python3}
usage() { sed -n 2p "$0" | sed 's/^# //'; exit "${1:-2}"; }

if [ "$1" = prep ]; then
    rev=$2
    [ -n "$rev" ] || usage
    name=${3:-$(git rev-parse --short "$rev")} || exit 1
    rm -rf "${AB:?}/$name" && mkdir -p "$AB/$name" || exit 1
    git archive "$rev" | tar -x -C "$AB/$name" || exit 1
    echo "$AB/$name <- $(git rev-parse --short "$rev") ($(du -sh "$AB/$name" | cut -f1)); name \"$AB\" in the device call's carry"
    exit 0
fi

DRY= ROUNDS=3 ITERS=30 ONLY=
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --iters) ITERS=$2; shift ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option $1"; usage ;;
        *) ONLY=$1 ;;
    esac
    shift
done
[ -n "$ONLY" ] || usage
RUNS=${AB_RUNS:-/tmp/ab_runs}
OUT=${OUT:-$RUNS}
rm -rf "$RUNS" && mkdir -p "$RUNS" "$OUT" || exit 2

trees=(.) labels=(A)
for d in "$AB"/*/; do
    [ -f "${d}nvrtc_attn/__init__.py" ] || continue
    trees+=("${d%/}") labels+=("$(basename "$d")")
done
kcache() { if [ -d "$1/.kcache" ]; then (cd "$1" && echo "$PWD/.kcache"); else echo "/tmp/kc_ab_$2"; fi; }
n=${#trees[@]}
echo "=== $(date +%T) ab: ${labels[*]} (${trees[*]}); workloads $ONLY; $ROUNDS rounds, $ITERS iters${DRY:+; dry run}"
[ "$n" -gt 1 ] || echo "no trees under $AB/ (bash tools/ab.sh prep REV [NAME] here, then carry $AB): timing A alone"

for i in "${!trees[@]}"; do  # compile every tree's builds at once, each into its own cache
    NVRTC_ATTN_CACHE_DIR=$(kcache "${trees[$i]}" "${labels[$i]}") timeout 300 \
        $PY tools/bench.py --lib "${trees[$i]}" --only "$ONLY" --compile needed ${DRY:+--dry-run} $AB_BENCH_ARGS \
        > "$RUNS/compile_${labels[$i]}.log" 2>&1 &
done
wait
for l in "${labels[@]}"; do echo "compile $l: $(head -1 "$RUNS/compile_$l.log")"; done

for r in $(seq "$ROUNDS"); do
    for j in $(seq 0 $((n - 1))); do
        i=$(( (j + r - 1) % n ))
        t=${trees[$i]} l=${labels[$i]}
        if [ -n "$DRY" ]; then
            [ "$r" = 1 ] || continue
            $PY tools/bench.py --lib "$t" --only "$ONLY" --dry-run > "$RUNS/${l}__dry.log" 2>&1
            echo "round $r $l: bench.py --lib $t --dry-run rc=$? ($(grep -c ': q ' "$RUNS/${l}__dry.log") workloads)"
            continue
        fi
        NVRTC_ATTN_CACHE_DIR=$(kcache "$t" "$l") timeout "${AB_TIMEOUT:-240}" \
            $PY tools/bench.py --lib "$t" --only "$ONLY" --iters "$ITERS" --no-ceiling --no-host-cost $AB_BENCH_ARGS \
            --no-precompile --json "$RUNS/${l}__r$r.json" > "$RUNS/${l}__r$r.log" 2>&1
        rc=$?
        echo "$(date +%T) round $r $l (rc $rc): $($PY tools/ab_summary.py --brief "$RUNS/${l}__r$r.json")"
        [ "$rc" = 0 ] || tail -3 "$RUNS/${l}__r$r.log"
    done
done
[ -n "$DRY" ] && { echo "dry run: no timings"; exit 0; }
echo
$PY tools/ab_summary.py "$RUNS" --base A --json "$OUT/ab.json"
