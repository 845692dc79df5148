"""Host cost of plan() per standard workload, on the CPU: median of many repeats, optionally
against an older revision of the package.

    python tools/plan_bench.py                      # this checkout: make_plan
    python tools/plan_bench.py --path wrapper       # the wrapper's whole plan() on a stand-in GPU
    python tools/plan_bench.py --against HEAD~3     # and the package as it was at HEAD~3

--path make_plan (default) times the planner part (planner.make_plan: paging, tiles, partition,
upload image). --path wrapper times BatchPrefillWithPagedKVCacheWrapper.plan() as tools/bench.py
calls it (host int32 index arrays, the pool's K/V views as paged_kv_cache), validation included, on
a stand-in H200 (132 SMs, kernels "loaded" with their tile's CTAs per SM, workspace and pool host
buffers seen as device 0): the driver calls (the upload of plan.image, the expansion launch) are
no-ops, so what the GPU machine's driver adds to plan() (tens of microseconds) is not in it. It
adds "S4", the small batch of tools/run_cost.py (4 requests of one query token on 512 keys).
--path torch: the same with what tools/bench.py passes on the GPU machine, torch CPU tensors (the
index arrays, and the pool, seen as device 0); needs torch.

make_plan gets what the wrapper's plan() passes on a 132-SM Hopper GPU (sm90 backend, one CTA per
SM, the head_dim's block_m and L2 budget) with the offset key of the workloads' pool
([pages, 4, 2, page_size, Hkv, D], k = buf[:, 2, 0]): ("units", 4 * 2 * page_size); the time
includes the kernel build choice (variants.choose_build) and, from split-KV on, the split decision.
Batches come from tools/bench.py's build_batch (10% spare pages, a random permutation).
"""
from __future__ import annotations

import argparse
import contextlib
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

import numpy as np

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
        # PlanArgs: a NamedTuple today, a dataclass before it, a dict in older revisions
        a = a if isinstance(a, dict) else a._asdict() if hasattr(a, "_asdict") else vars(a)
        strides = (NUM_LAYERS * 2 * ps * w["num_kv_heads"] * hd, w["num_kv_heads"] * hd, hd)
        key = planner.offset_key(strides, strides, a["max_page_index"], ps)
        calls[w["id"]] = _plan_call(w, tile, planner, functools.partial(
            planner.make_plan, a["qo_indptr"], a["paged_kv_indptr"], a["paged_kv_indices"],
            a["paged_kv_last_page_len"], a["num_qo_heads"], a["num_kv_heads"], hd, ps, causal=a["causal"],
            window_left=-1, dtype="bfloat16", num_ctas=NUM_SMS * tile.ctas_per_sm, block_m=tile.block_m,
            offsets_key=key, l2_section_bytes=tile.l2_section_bytes))
        calls[w["id"]]()  # warm-up
    return _round_robin(calls, repeats, clock)


def _round_robin(calls: dict, repeats: int, clock) -> dict[str, list[float]]:
    """Milliseconds of `repeats` calls of each of `calls` ({id: function}), taking turns."""
    times = {wid: [] for wid in calls}
    for _ in range(repeats):
        for wid, plan in calls.items():
            t0 = clock()
            plan()
            times[wid].append((clock() - t0) * 1e3)
    return times


def time_wrapper_plans(workloads: list[dict], repeats: int, clock=time.perf_counter,
                       torch=None) -> dict[str, list[float]]:
    """Wrapper plan() milliseconds per workload id (see the module doc: a stand-in GPU), `repeats`
    each, round robin; workloads whose dtypes the package declines are left out. torch (the module):
    index arrays and pool as torch CPU tensors, as bench.py passes them."""
    import nvrtc_attn

    from bench import dtypes  # tools/bench.py

    calls = {}
    with _stand_in_gpu():
        for w in [*workloads, SMALL_BATCH]:
            batch = build_batch(w)
            q_dt, kv_dt = dtypes(w)
            hkv, d, ps = w["num_kv_heads"], w["head_dim"], int(w["page_size"])
            # The pool is never read: np.empty maps it without touching its pages (torch.empty too).
            shape = (batch["max_pages"], NUM_LAYERS, 2, ps, hkv, d)
            if torch is None:
                pool = np.empty(shape, dtype=np.uint8 if kv_dt.startswith("float8") else np.uint16)
            else:
                pool = torch.empty(shape, dtype=torch.float8_e4m3fn if kv_dt.startswith("float8") else torch.bfloat16)
            ws = np.empty(WORKSPACE_BYTES, dtype=np.uint8)
            wrapper = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, kv_layout="NHD")
            index_args = tuple(batch[k] if torch is None else torch.as_tensor(batch[k])
                               for k in ("qo_indptr", "paged_kv_indptr", "paged_kv_indices",
                                         "paged_kv_last_page_len"))
            call = functools.partial(wrapper.plan, *index_args, w["num_qo_heads"], hkv, d, ps,
                                     causal=bool(w["causal"]), q_data_type=q_dt, kv_data_type=kv_dt,
                                     paged_kv_cache=(pool[:, 2, 0], pool[:, 2, 1]),
                                     **({"o_data_type": "bfloat16"} if q_dt != "bfloat16" else {}))
            try:
                call()  # warm-up (sizes the plan buffer)
            except NotImplementedError:
                continue
            calls[w["id"]] = call
        return _round_robin(calls, repeats, clock)


# tools/run_cost.py's batch: 4 requests of one query token on 512 keys (32/8 heads, head_dim 128).
SMALL_BATCH = {"id": "S4", "requests": 4, "qo_len": 1, "kv_len": 512, "num_qo_heads": 32, "num_kv_heads": 8,
               "head_dim": 128, "page_size": 16, "causal": True}


class _Kernel:
    """A loaded kernel as plan() sees it: its occupancy and a launch that does nothing."""

    threads = 256

    def __init__(self, blocks_per_sm: int = 1):
        self.blocks_per_sm = blocks_per_sm

    def launch(self, *args) -> None:
        pass


@contextlib.contextmanager
def _stand_in_gpu():
    """plan() on a host without a GPU: an H200 (compute capability 9.0, 132 SMs) whose kernels
    load without compiling, host arrays seen as device 0 (uint16 ones as bfloat16), the plan buffer
    a host array, and the driver calls (upload, launches) no-ops."""
    from nvrtc_attn import arrays, launcher, wrapper

    real_wrap = arrays.wrap

    def wrap(x, name, stream=0):
        op = real_wrap(x, name, stream)
        if op.kind not in ("numpy", "torch") or op.device is not None:
            return op
        return op._replace(device=0, dtype="bfloat16" if op.dtype == "uint16" else op.dtype)

    def reserve(self, nbytes):
        if nbytes > self._plan_bytes:
            self._plan_buffer = np.empty(max(nbytes + nbytes // 4, 1 << 20), dtype=np.uint8)
            self._plan_ptr, self._plan_bytes = self._plan_buffer.ctypes.data, self._plan_buffer.nbytes

    patches = [(arrays, "wrap", wrap), (arrays, "current_stream", lambda op, stream=None: 0),
               (launcher, "compute_capability", lambda device: (9, 0)), (launcher, "sm_count", lambda device: NUM_SMS),
               (launcher, "prepare", lambda variants, device: None),
               (launcher, "load_build", lambda build, device: tuple(_Kernel(build.tile.ctas_per_sm)
                                                                    for _ in build.variants)),
               (launcher, "merge_kernel", lambda device: _Kernel()),
               (launcher, "offsets_kernel", lambda device: _Kernel()),
               (launcher, "device_context", lambda device: contextlib.nullcontext()),
               (launcher, "copy_host_to_device", lambda ptr, host, stream: None),
               (wrapper.BatchPrefillWithPagedKVCacheWrapper, "_reserve_plan_buffer", reserve)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


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


def time_torch_plans(workloads: list[dict], repeats: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """time_wrapper_plans with torch CPU tensors."""
    import torch

    return time_wrapper_plans(workloads, repeats, clock, torch)


PATHS = {"make_plan": time_workloads, "wrapper": time_wrapper_plans, "torch": time_torch_plans}


def _time_revision(rev: str, workloads_path, repeats: int, clock: str, only, path: str) -> dict[str, list[float]]:
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
               "--repeats", str(repeats), "--clock", clock, "--path", path] + (["--only", *only] if only else [])
        result = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=tmp)
        return json.loads(result.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", help="workloads.json (default: tools/bench.py's choice)")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--only", nargs="*", help="workload ids (default: all)")
    ap.add_argument("--against", metavar="REV", help="also time the package at this git revision")
    ap.add_argument("--json", action="store_true", help="print {id: [ms, ...]} only")
    ap.add_argument("--path", choices=sorted(PATHS), default="make_plan",
                    help="make_plan: the planner part; wrapper: the whole plan() on a stand-in GPU")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall: elapsed time (the target's measure); cpu: this thread's CPU time, which "
                         "leaves out time the scheduler gave other processes on a shared machine")
    args = ap.parse_args()

    workloads, path = load_workloads(args.workloads)
    if args.only:
        workloads = [w for w in workloads if w["id"] in args.only]
    clock = CLOCKS[args.clock]
    if args.json:
        print(json.dumps(PATHS[args.path](workloads, args.repeats, clock)))
        return 0
    # With --against, the two packages take turns in chunks, so both see the same machine load.
    chunks = 4 if args.against else 1
    new, old = {}, {}
    for _ in range(chunks):
        for wid, t in PATHS[args.path](workloads, -(-args.repeats // chunks), clock).items():
            new.setdefault(wid, []).extend(t)
        if args.against:
            for wid, t in _time_revision(args.against, path, -(-args.repeats // chunks), args.clock,
                                          args.only, args.path).items():
                old.setdefault(wid, []).extend(t)
    new = {wid: statistics.median(t) for wid, t in new.items()}
    old = {wid: statistics.median(t) for wid, t in old.items()}
    what = f"{args.path} ms"
    head = f"{'workload':8} {what:>12}" + (f" {args.against + ' ms':>14} {'speed-up':>8}" if old else "")
    print(f"median {args.clock} time of {args.repeats} {args.path} calls per workload ({NUM_SMS} SMs, sm90)")
    print(head)
    for wid in new:
        line = f"{wid:8} {new[wid]:12.3f}"
        if wid in old:
            line += f" {old[wid]:14.3f} {old[wid] / new[wid]:7.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
