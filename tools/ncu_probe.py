"""usage: ncu --clock-control none --kernel-name prefill_sm90 --launch-skip 1 --launch-count 1 --metrics $(python3 tools/ncu_probe.py --metrics) python3 tools/ncu_probe.py W2 [--kv-load gather] [--fp8-mma]

Two run() launches of one standard workload (tools/workloads.json, the benchmark's strided pool
and data, tools/bench.py) through the wrapper, for ncu: the first warms up, the second is profiled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

# Counters that explained the sm90 kernel so far: time, tensor pipe, issue, L2/L1, stalls.
METRICS = (
    "gpu__time_duration.sum", "sm__inst_executed.sum",
    "smsp__issue_active.avg.pct_of_peak_sustained_active",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
    "lts__t_sectors_srcunit_tex_op_read.sum", "lts__throughput.avg.pct_of_peak_sustained_elapsed",
    "l1tex__throughput.avg.pct_of_peak_sustained_active", "smsp__inst_executed_pipe_lsu.sum",
    "smsp__inst_executed_pipe_xu.sum", "dram__bytes_read.sum",
    "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum",
    # memory-bound batches (W9, the short tiles): DRAM rate and how many warps an SM really holds
    "dram__throughput.avg.pct_of_peak_sustained_elapsed", "sm__warps_active.avg.per_cycle_active",
    "launch__occupancy_limit_shared_mem", "launch__occupancy_limit_registers",
    *(f"smsp__average_warps_issue_stalled_{s}_per_issue_active.ratio"
      for s in ("barrier", "long_scoreboard", "math_pipe_throttle", "wait", "membar", "lg_throttle",
                "mio_throttle", "sleeping")),
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", nargs="?", help="a workload id, e.g. W2")
    ap.add_argument("--kv-load", default="auto", choices=("auto", "gather"))
    ap.add_argument("--backend", default="auto", choices=("auto", "sm80", "sm90"))
    ap.add_argument("--workloads", default=None, help="workloads.json (default: tools/workloads.json)")
    ap.add_argument("--fp8-mma", action="store_true", help="fp8-query workloads on the e4m3 wgmma builds (fp8_mma=True)")
    ap.add_argument("--metrics", action="store_true", help="print the metric list for ncu --metrics and exit")
    args = ap.parse_args(argv)
    if args.metrics:
        print(",".join(METRICS))
        return 0
    if not args.workload:
        ap.error("a workload id is needed")
    sys.path.insert(0, str(bench.REPO))
    w = bench.select(bench.load_workloads(args.workloads)[0], args.workload)[0]
    gpu = bench.Gpu()
    batch = bench.build_batch(w, seed=0)
    ops = bench.make_operands(gpu, w, batch)
    wrapper = bench.ours_wrapper(gpu, args.backend, args.kv_load, fp8_mma=args.fp8_mma)
    bench.plan_ours(wrapper, w, bench.host_indices(gpu.torch, batch), ops)
    for _ in range(2):
        wrapper.run(ops.q, (ops.k, ops.v), out=ops.out, **ops.run_kw)
    gpu.sync()
    print(w["id"], getattr(wrapper, "kernel_name", None), getattr(wrapper, "kv_load_path", None), "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
