"""Host cost of the planner part of plan() (planner.make_plan: paging, tiles, partition, upload
image) per standard workload, on the CPU: median of many repeats, optionally against an older
revision of the package.

    python tools/plan_bench.py                      # this checkout
    python tools/plan_bench.py --against HEAD~3     # and the package as it was at HEAD~3

make_plan gets what the wrapper's plan() passes on a 132-SM Hopper GPU (sm90 backend, one CTA per
SM, the head_dim's block_m and L2 budget) with the offset key of the workloads' pool
([pages, 4, 2, page_size, Hkv, D], k = buf[:, 2, 0]): ("units", 4 * 2 * page_size); the time
includes the kernel build choice (variants.choose_build) and, from split-KV on, the split decision.
Batches come from tools/bench.py's build_batch (10% spare pages, a random permutation).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("NVRTC_ATTN_LAZY_COMPILE", "1")  # no kernel compiles at import: host only
try:  # the package under test: PYTHONPATH's (--against sets it to the old revision), else this checkout
    import nvrtc_attn  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))
from bench import build_batch, load_workloads  # noqa: E402 (tools/bench.py, beside this script)

NUM_SMS = 132  # H100 / H200 SXM
WORKSPACE_BYTES = 128 << 20  # bench.py's float workspace (split-KV slots)
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
NUM_LAYERS = 4


def time_workloads(workloads: list[dict], repeats: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """make_plan milliseconds per workload id, `repeats` each (the package imported from sys.path).
    Round robin over the workloads, so that load from other processes on a shared machine spreads
    over all of them instead of landing on a few."""
    from nvrtc_attn import planner, validate, variants

    calls = {}
    for w in workloads:
        batch = build_batch(w)
        hd, ps = int(w["head_dim"]), int(w["page_size"])
        tile = variants.SM90_TILES[hd]
        a = validate.check_plan_args(batch["qo_indptr"], batch["paged_kv_indptr"], batch["paged_kv_indices"],
                                     batch["paged_kv_last_page_len"], w["num_qo_heads"], w["num_kv_heads"],
                                     hd, ps, bool(w["causal"]), None, -1, None, "bfloat16", None)
        a = a if isinstance(a, dict) else vars(a)  # PlanArgs (a dataclass) today, a dict in older revisions
        strides = (NUM_LAYERS * 2 * ps * w["num_kv_heads"] * hd, w["num_kv_heads"] * hd, hd)
        key = planner.offset_key(strides, strides, a["max_page_index"], ps)
        calls[w["id"]] = _plan_call(w, tile, planner, functools.partial(
            planner.make_plan, a["qo_indptr"], a["paged_kv_indptr"], a["paged_kv_indices"],
            a["paged_kv_last_page_len"], a["num_qo_heads"], a["num_kv_heads"], hd, ps, causal=a["causal"],
            window_left=-1, dtype="bfloat16", num_ctas=NUM_SMS * tile.ctas_per_sm, block_m=tile.block_m,
            offsets_key=key, l2_section_bytes=tile.l2_section_bytes))
        calls[w["id"]]()  # warm-up
    times = {wid: [] for wid in calls}
    for _ in range(repeats):
        for wid, plan in calls.items():
            t0 = clock()
            plan()
            times[wid].append((clock() - t0) * 1e3)
    return times


def _plan_call(w: dict, tile, planner, make_plan):
    """make_plan plus the kernel build choice, as the wrapper's plan() makes them: where the package
    has split-KV (issue 11) the build is chosen from the row tiles inside make_plan, with a split
    request for bench.py's 128 MiB float workspace; before it, from the plan's row tiles after."""
    from nvrtc_attn import schedule, variants

    hd, group = int(w["head_dim"]), w["num_qo_heads"] // w["num_kv_heads"]

    def choose_build(rows):
        return variants.choose_build("sm90", variants.HOPPER_ARCH, hd, "bfloat16", int(w["page_size"]), group, -1,
                                     schedule.mean_blocks_per_tile(rows, tile.block_n))

    if hasattr(planner, "PartialSlots"):
        slots = planner.PartialSlots.for_workspace(WORKSPACE_BYTES, tile.block_m, hd).slots
        return functools.partial(make_plan, choose_build=choose_build, split=schedule.SplitRequest(slots))
    return lambda: choose_build(make_plan().row_tiles)


def _time_revision(rev: str, workloads_path, repeats: int, clock: str, only) -> dict[str, list[float]]:
    """The same timings with nvrtc_attn/ as it was at `rev` (git archive into a temp dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "nvrtc_attn", "kernels_cu"],
                                 check=True, capture_output=True).stdout
        tar_path = Path(tmp) / "rev.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        env = dict(os.environ, PYTHONPATH=tmp)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "--workloads", str(workloads_path),
               "--repeats", str(repeats), "--clock", clock] + (["--only", *only] if only else [])
        result = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=tmp)
        return json.loads(result.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", help="workloads.json (default: tools/bench.py's choice)")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--only", nargs="*", help="workload ids (default: all)")
    ap.add_argument("--against", metavar="REV", help="also time the package at this git revision")
    ap.add_argument("--json", action="store_true", help="print {id: [ms, ...]} only")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall: elapsed time (the target's measure); cpu: this thread's CPU time, which "
                         "leaves out time the scheduler gave other processes on a shared machine")
    args = ap.parse_args()

    workloads, path = load_workloads(args.workloads)
    if args.only:
        workloads = [w for w in workloads if w["id"] in args.only]
    clock = CLOCKS[args.clock]
    if args.json:
        print(json.dumps(time_workloads(workloads, args.repeats, clock)))
        return 0
    # With --against, the two packages take turns in chunks, so both see the same machine load.
    chunks = 4 if args.against else 1
    new = {w["id"]: [] for w in workloads}
    old = {w["id"]: [] for w in workloads} if args.against else {}
    for _ in range(chunks):
        for wid, t in time_workloads(workloads, -(-args.repeats // chunks), clock).items():
            new[wid] += t
        if args.against:
            for wid, t in _time_revision(args.against, path, -(-args.repeats // chunks), args.clock,
                                          args.only).items():
                old[wid] += t
    new = {wid: statistics.median(t) for wid, t in new.items()}
    old = {wid: statistics.median(t) for wid, t in old.items()}
    head = f"{'workload':8} {'make_plan ms':>12}" + (f" {args.against + ' ms':>14} {'speed-up':>8}" if old else "")
    print(f"median {args.clock} time of {args.repeats} make_plan calls per workload ({NUM_SMS} CTAs, sm90 tiles)")
    print(head)
    for w in workloads:
        line = f"{w['id']:8} {new[w['id']]:12.3f}"
        if old:
            line += f" {old[w['id']]:14.3f} {old[w['id']] / new[w['id']]:7.1f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
