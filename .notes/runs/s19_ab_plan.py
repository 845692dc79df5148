"""Session 19: same-process interleaved A/B of wrapper plan() on the stand-in GPU (tools/plan_bench.py, torch CPU tensors): ab/base (the tree before) against this one, calls alternating. usage: s19_ab_plan.py IDS|all ROUNDS"""
import sys, os, time, statistics, contextlib
os.environ.setdefault("NVRTC_ATTN_LAZY_COMPILE", "1")
sys.path.insert(0, os.path.abspath("tools"))
import numpy as np, torch
ids = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] != "all" else None
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
stack = contextlib.ExitStack()
calls = {}
for tag, root in (("base", os.path.abspath("ab/base")), ("new", os.path.abspath("."))):
    for m in [m for m in sys.modules if m == "nvrtc_attn" or m.startswith("nvrtc_attn.") or m in ("plan_bench", "bench")]:
        del sys.modules[m]
    sys.path.insert(0, root)
    import plan_bench as pb
    import nvrtc_attn
    assert nvrtc_attn.__file__.startswith(root)
    from bench import load_workloads
    ws, _ = load_workloads(None)
    sel = [w for w in ws if ids is None or w["id"] in ids]
    got = {}
    real = pb._round_robin
    pb._round_robin = lambda c, r, clk: got.update(c) or {}
    stack.enter_context(pb._stand_in_gpu())
    pb.time_wrapper_plans(sel, 1, torch=torch)
    calls[tag] = {k: v for k, v in got.items() if ids is None or k in ids or k == "S4"}
    sys.path.remove(root)
times = {t: {k: [] for k in calls[t]} for t in calls}
for t in calls:
    for k, c in calls[t].items():
        for _ in range(20): c()
for i in range(rounds):
    order = ("base", "new") if i % 2 == 0 else ("new", "base")
    for k in calls["base"]:
        for t in order:
            t0 = time.perf_counter(); calls[t][k](); times[t][k].append((time.perf_counter() - t0) * 1e3)
print(f"{'W':6s} {'base':>8s} {'new':>8s} {'new/base':>8s}")
r = []
for k in calls["base"]:
    a, b = statistics.median(times["base"][k]), statistics.median(times["new"][k])
    r.append(b / a)
    print(f"{k:6s} {a:8.3f} {b:8.3f} {b/a:8.3f}")
print("geomean", float(np.exp(np.mean(np.log(r)))))
