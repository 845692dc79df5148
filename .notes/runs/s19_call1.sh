#!/usr/bin/env bash
# session 19, call 1: FlashInfer from .peers, every build compiled, bench.py with FlashInfer in the
# same run (plan() round robin, ours and fa2's), W9 against plain HBM reads (s19_w9_probe.py), ncu of
# W9 (ours, FlashInfer fa2's paged split-KV kernel), and plan() of ab/base vs this tree on the host.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-120
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout 200 python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-64
timeout 60 python3 .notes/runs/s19_w9_probe.py > $OUT/w9_probe.log 2>&1; echo "w9 probe rc=$? $(el)s"; cat $OUT/w9_probe.log | tail -10
M=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.per_cycle_active,launch__grid_size,launch__block_size,launch__registers_per_thread,lts__t_sector_hit_rate.pct,sm__cycles_active.avg,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio
timeout 90 ncu --clock-control none --kernel-name regex:prefill_sm90 --launch-skip 1 --launch-count 1 --metrics $M --csv python3 tools/ncu_probe.py W9 > $OUT/ncu_ours_W9.csv 2>/tmp/ncu_ours.err; echo "ncu ours rc=$? $(el)s"; tail -2 /tmp/ncu_ours.err
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout 120 ncu --clock-control none --kernel-name regex:BatchPrefillWithPagedKVCache --launch-skip 2 --launch-count 1 --metrics $M --csv python3 tools/bench.py --only W9 --flashinfer --iters 2 --warmup 1 --no-ceiling --no-host-cost --plan-rounds 1 --plan-iters 1 > $OUT/ncu_fi_W9.csv 2>/tmp/ncu_fi.err; echo "ncu fi rc=$? $(el)s"; tail -2 /tmp/ncu_fi.err
for f in $OUT/ncu_ours_W9.csv $OUT/ncu_fi_W9.csv; do grep -E '"(gpu__time|dram__|sm__warps|launch__grid|launch__block|launch__reg|lts__t_sector_hit)' $f | awk -F'","' '{print $5" | "$(NF-2)" | "$NF}' | cut -c1-150; done
timeout 60 python3 .notes/runs/s19_ab_plan.py all 40 > $OUT/ab_plan.log 2>&1; echo "ab plan rc=$? $(el)s"; tail -20 $OUT/ab_plan.log
