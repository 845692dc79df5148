"""bench.py's plan() median (20 calls right after the first plan) against the same after 200 more
plans, on one wrapper, and with gc frozen / off: is bench's plan ms a warm-up or a GC effect? (session 13)"""
import gc, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s13_wrappers import bench, planned_wrappers  # noqa: E402

gpu = bench.Gpu()
for wid, call in planned_wrappers(gpu, (sys.argv[1] if len(sys.argv) > 1 else "W2,W4,W8").split(",")):
    first = bench.host_median_ms(gpu, call, 20)
    bench.host_median_ms(gpu, call, 200)
    warm = bench.host_median_ms(gpu, call, 20)
    gc.freeze()
    frozen = bench.host_median_ms(gpu, call, 20)
    gc.unfreeze()
    gc.disable()
    nogc = bench.host_median_ms(gpu, call, 20)
    gc.enable()
    print(f"{wid}: first 20 {first:.3f} ms, after 200 more {warm:.3f}, gc frozen {frozen:.3f}, gc off {nogc:.3f}",
          flush=True)
