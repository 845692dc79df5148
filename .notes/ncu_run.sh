#!/bin/bash
# ncu counters of the sm90 kernel on a few workloads: bash .notes/ncu_run.sh W2 W2p1 ...
export PYTHONPATH=. NVRTC_ATTN_CACHE_DIR=$PWD/.kcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
M=gpu__time_duration.sum,sm__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,lts__t_sectors_srcunit_tex_op_read.sum,lts__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__throughput.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_lsu.sum,smsp__inst_executed_pipe_xu.sum,dram__bytes_read.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_wait_per_issue_active.ratio,smsp__average_warps_issue_stalled_membar_per_issue_active.ratio,smsp__average_warps_issue_stalled_lg_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_sleeping_per_issue_active.ratio
for wl in "$@"; do
  timeout 150 ncu --clock-control none --kernel-name prefill_sm90 --launch-skip 1 --launch-count 1 --metrics $M \
    python3 .notes/ncu_probe.py ${wl/:/ } 2>&1 | tr -d '\000' | grep -v "^==PROF==" | tail -24
done
