# Tile-shape experiment for the sm80 kernel: patch SM80_TILES, check a small case, time workloads.
import sys
sys.path.insert(0, ".")
sys.path.insert(0, ".notes")
import smoke
from nvrtc_attn import variants, launcher
configs = {
    128: [(128, 48, 4, 2), (64, 64, 4, 3), (128, 64, 8, 1), (64, 32, 4, 3)],
}
for hd, cfgs in configs.items():
    for cfg in cfgs:
        variants.SM80_TILES[hd] = variants.Sm80Tile(*cfg)
        launcher._kernels.clear()
        print("== hd", hd, cfg, flush=True)
        smoke.case(2, 100, 300, 8, 2, hd, 16, True)
        if hd == 128:
            smoke.case(1, 8192, 8192, 32, 8, 128, 16, True, timing=True, check=False)
            smoke.case(16, 1024, 1024, 32, 8, 128, 16, True, timing=True, check=False)
            pass
        elif hd == 64:
            smoke.case(4, 4096, 4096, 32, 32, 64, 16, True, timing=True, check=False)
        else:
            smoke.case(1, 8192, 8192, 16, 16, 256, 16, True, timing=True, check=False)
