# First device run of prefill_sm90: V descriptor orientation A/B, correctness, then W2/W1 timing.
import sys, dataclasses, traceback
sys.path.insert(0, ".")
sys.path.insert(0, ".notes")
import smoke
from nvrtc_attn import variants, launcher
orig = variants.prefill_sm90_variant
for swap in (0,):
    def patched(hd, dt, _swap=swap):
        v = orig(hd, dt)
        return dataclasses.replace(v, defines=v.defines + (("V_DESC_SWAP", _swap),))
    variants.prefill_sm90_variant = patched
    launcher._kernels.clear()
    print("== V_DESC_SWAP", swap, flush=True)
    try:
        smoke.case(1, 128, 128, 2, 2, 64, 16, False, backend="sm90")
        smoke.case(1, 128, 128, 2, 2, 128, 16, False, backend="sm90")
        smoke.case(2, 100, 300, 8, 2, 128, 16, True, backend="sm90")
        smoke.case(2, 100, 300, 8, 2, 128, 5, False, layout="HND", backend="sm90")
        smoke.case(3, [37, 0, 64], [100, 0, 64], 4, 4, 64, 1, True, window=20, backend="sm90")
        smoke.case(2, 70, 50, 8, 1, 256, 64, False, cap=30.0, backend="sm90")
        smoke.case(1, 8192, 8192, 32, 8, 128, 16, True, timing=True, check=False, backend="sm90")
        smoke.case(16, 1024, 1024, 32, 8, 128, 16, True, timing=True, check=False, backend="sm90")
        smoke.case(1, 8192, 8192, 16, 16, 256, 16, True, timing=True, check=False, backend="sm90")
        smoke.case(4, 4096, 4096, 32, 32, 64, 16, True, timing=True, check=False, backend="sm90")
    except Exception:
        traceback.print_exc()
        break
