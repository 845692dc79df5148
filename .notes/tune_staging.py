# A/B of the row-offset staging schemes (STAGE_VIA_REGS 0/1) at equal tile shapes, hd128.
import sys, dataclasses
sys.path.insert(0, ".")
sys.path.insert(0, ".notes")
import smoke
from nvrtc_attn import variants, launcher
orig = variants.prefill_sm80_variant
for svr, bn in [(0, 48), (1, 32), (0, 32), (1, 48), (0, 48)]:
    def patched(hd, dt, arch=variants.HOPPER_ARCH, _svr=svr):
        v = orig(hd, dt, arch)
        return dataclasses.replace(v, defines=v.defines + (("STAGE_VIA_REGS", _svr),))
    variants.prefill_sm80_variant = patched
    variants.SM80_TILES[128] = variants.Sm80Tile(128, bn, 4, 2)
    launcher._kernels.clear()
    print("== STAGE_VIA_REGS", svr, "BN", bn, flush=True)
    smoke.case(2, 100, 300, 8, 2, 128, 16, True)
    smoke.case(2, 100, 300, 8, 2, 128, 5, False, layout="HND")
    smoke.case(1, 8192, 8192, 32, 8, 128, 16, True, timing=True, check=False)
    smoke.case(16, 1024, 1024, 32, 8, 128, 16, True, timing=True, check=False)
