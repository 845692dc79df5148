"""Time batches with the sm90 short tiles and with the full tiles in one process, rounds interleaved:
the measurement behind nvrtc_attn/variants.py's SHORT_TILE_MAX_WORK. For each workload (W9 of
tools/workloads.json and the batches of tools/short_tile_workloads.json) it prints the short tiles'
work ratio the rule sees, the build the rule picks, the median time of both (bench.py's method: CUDA
events behind a GPU sleep, a spot check against float32 first) and the K/V read rate, after the read
rate of a plain reduction on the same machine (the yardstick for memory-bound batches).

    PYTHONPATH=. python3 tools/short_tiles_ab.py                          # W9 and S1..S10
    PYTHONPATH=. python3 tools/short_tiles_ab.py --only W9,S6 --rounds 5 --json $OUT/short_ab.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tools")]

import bench  # noqa: E402  (tools/bench.py)

SHORT_FILE = REPO / "tools" / "short_tile_workloads.json"
# SHORT_TILE_MAX_WORK values that force each choice: every batch's ratio lies in (0, 1].
FORCE = {"full": 0.0, "short": 1.0}


def workloads(only: str) -> list[dict]:
    std, _ = bench.load_workloads()
    extra = json.loads(SHORT_FILE.read_text())["workloads"]
    return bench.select([w for w in std if w["id"] == "W9"] + extra, only)


def read_ceiling(gpu, nbytes: int = 1 << 30, iters: int = 30) -> float:
    """TB/s of a plain read: torch's sum over a contiguous bf16 tensor of nbytes (a yardstick for the
    K/V read rate of memory-bound batches, from the same machine and run)."""
    x = gpu.randn((nbytes // 2,), seed=3)
    ms = gpu.time_ms(lambda: x.sum(dtype=gpu.torch.float32), iters, 5)
    del x
    gpu.free()
    return nbytes / (ms * 1e-3) / 1e12


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated ids (default: W9 and every S workload)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (full, short), order alternating")
    ap.add_argument("--iters", type=int, default=30, help="timed calls per measurement (median)")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args(argv)
    _, bargs = bench.parse_args(["--iters", str(args.iters), "--plan-iters", "1"])
    gpu = bench.Gpu()
    from nvrtc_attn import variants

    ceiling = read_ceiling(gpu)
    print(f"read ceiling (torch sum over 1 GiB of bf16): {ceiling:.2f} TB/s", flush=True)
    rule_max, rows = variants.SHORT_TILE_MAX_WORK, []
    for w in workloads(args.only):
        qo, kv = bench.lengths(w)
        ratio = variants.sm90_short_tile_work(w["head_dim"], qo, kv, w["num_qo_heads"] // w["num_kv_heads"])
        batch = bench.build_batch(w, seed=0)
        ops = bench.make_operands(gpu, w, batch)
        times, kernels = {m: [] for m in FORCE}, {}
        try:
            for r in range(args.rounds):
                for mode in (("full", "short") if r % 2 == 0 else ("short", "full")):
                    variants.SHORT_TILE_MAX_WORK = FORCE[mode]
                    res = bench.measure_ours(gpu, w, batch, ops, bargs)
                    times[mode].append(res["ms"])
                    kernels[mode] = res["kernel"]
        finally:
            variants.SHORT_TILE_MAX_WORK = rule_max
        ms = {m: statistics.median(t) for m, t in times.items()}
        rows.append({"workload": w["id"], "what": w.get("what"), "short_work": ratio,
                     "rule": "short" if variants.sm90_short_tiles(w["head_dim"], qo, kv, w["num_qo_heads"]
                                                                  // w["num_kv_heads"]) else "full",
                     "ms_full": ms["full"], "ms_short": ms["short"], "times": times, "kernels": kernels,
                     "kv_tbps_short": bench.kv_bytes(w) / (ms["short"] * 1e-3) / 1e12})
        del ops
        gpu.free()
        r = rows[-1]
        print(f"{r['workload']:<5} work {ratio:5.3f} rule {r['rule']:<5} full {ms['full']:8.4f} ms  short "
              f"{ms['short']:8.4f} ms  short/full {ms['short'] / ms['full']:5.3f}  K/V {r['kv_tbps_short']:4.2f} TB/s"
              f"  ({kernels['short']} / {kernels['full']})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"short_tile_max_work": rule_max, "read_ceiling_tbps": ceiling,
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
