"""Shared setup of the session-13 plan() timing scripts that had not run yet (s13_plan_warm.py): per
workload id, the bench.py operands, our wrapper and a plan() call as bench.py makes it."""
import sys

sys.path.insert(0, "tools")
import bench  # noqa: E402


def planned_wrappers(gpu, ids):
    """Yield (workload id, plan() call) after one first plan, as tools/bench.py's measure_ours."""
    ws = {w["id"]: w for w in bench.load_workloads(None)[0]}
    for wid in ids:
        w = ws[wid]
        batch = bench.build_batch(w)
        ops = bench.make_operands(gpu, w, batch)
        wr = bench.ours_wrapper(gpu, "auto", "auto")
        idx = bench.host_indices(gpu.torch, batch)
        bench.plan_ours(wr, w, idx, ops)
        gpu.sync()
        yield wid, lambda: bench.plan_ours(wr, w, idx, ops)
        del ops, wr
