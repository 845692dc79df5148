"""Every kernel binary the library can build (source, entry, macros and target arch), and the
choice among them for a batch (choose_build, batch_choice: pure functions returning frozen records).

The tile shapes live here and reach the .cu files as macros, so the launcher (block size) and the
planner (rows per tile) always agree with the compiled binary; the shared-memory size is computed
by the kernel alone and read from its cubin (cubin.py).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from .schedule import L2_SECTION_BYTES, mean_blocks_per_tile

HOPPER_ARCH = "sm_90a"
PORTABLE_ARCH = "sm_80"
HOPPER_CC = (9, 0)  # the one compute capability whose wgmma/TMA code sm_90a targets
HEAD_DIMS = (64, 128, 256)
DTYPES = ("bfloat16", "float16")
# fp8 KV caches (16-bit queries): the kernels widen them to the queries' type in shared memory.
# KV_FP8 macro values (kernels_cu/fp8_convert.cuh fp8::Kind); 0 = a cache of the queries' dtype.
FP8_KV_DTYPES = {"float8_e4m3fn": 1, "float8_e5m2": 2}
# fp8 queries (issue 10, mode 2): e4m3 or e5m2, with a cache of the same kind; the output (and the
# kernels' 16-bit type, IS_BF16) is o_data_type. Q_FP8 macro values (= the cache's KV_FP8); builds of
# 16-bit queries do not pass Q_FP8. Only e4m3 queries have the e4m3-wgmma builds (fp8_mma).
FP8_Q_DTYPES = {"float8_e4m3fn": 1, "float8_e5m2": 2}
BACKENDS = ("sm90", "sm80")


def kv_fp8_code(kv_dtype: str | None) -> int:
    """The KV_FP8 macro of a cache dtype: 1 (e4m3), 2 (e5m2), 0 (16-bit, the queries' dtype)."""
    return FP8_KV_DTYPES.get(kv_dtype or "", 0)


def q_fp8_code(q_dtype: str | None) -> int:
    """The Q_FP8 macro of a query dtype: 1 (e4m3), 2 (e5m2), 0 (16-bit queries: the macro is not passed)."""
    return FP8_Q_DTYPES.get(q_dtype or "", 0)


def arch_for(compute_capability: tuple[int, int]) -> str:
    """The NVRTC target for a GPU: sm_90a on Hopper (H100/H200), sm_80 code elsewhere (Ampere, Ada
    and newer run it; Blackwell runs the sm_80 build too, the sm_90a one does not load there)."""
    return HOPPER_ARCH if tuple(compute_capability) == HOPPER_CC else PORTABLE_ARCH


def auto_backend(compute_capability: tuple[int, int]) -> str:
    """backend="auto": the Hopper kernel on compute capability 9.0 (on the H100/H200 it beat the
    portable one on every standard workload, 2026-11-24), the portable kernel elsewhere."""
    return "sm90" if tuple(compute_capability) == HOPPER_CC else "sm80"


@dataclass(frozen=True)
class Sm80Tile:
    """Tile of prefill_sm80.cu: rows of packed (token, head) queries, keys per block, warps."""

    block_m: int
    block_n: int
    warps: int
    min_blocks: int  # CTAs per SM the register budget is sized for (__launch_bounds__)
    l2_section_bytes: int = L2_SECTION_BYTES  # planner: K/V bytes of the tiles scheduled together

    @property
    def threads(self) -> int:
        return self.warps * 32


# head_dim 128 uses 48-key blocks: 64 needs > 255 registers (spills); on the H100 48 beat 32 by 12%
# on W2 (264 vs 235 TFLOP/s) and 64-with-spills by 0-3%.
SM80_TILES = {
    64: Sm80Tile(block_m=128, block_n=64, warps=4, min_blocks=2),
    128: Sm80Tile(block_m=128, block_n=48, warps=4, min_blocks=2),
    256: Sm80Tile(block_m=128, block_n=64, warps=8, min_blocks=1),
}


# The sm_80 build (pre-Hopper GPUs) keeps 32-key blocks at head_dim 128: NVRTC 13.0 spills a few
# registers there with 48 (NVRTC 13.5 does not). So do the fp8-cache builds on every arch (their
# widening needs registers beside O and P; with 48 keys the fp16 ones spill).
SM80_TILES_PORTABLE = {**SM80_TILES, 128: Sm80Tile(block_m=128, block_n=32, warps=4, min_blocks=2)}


def sm80_tile(head_dim: int, arch: str = HOPPER_ARCH, kv_dtype: str | None = None) -> Sm80Tile:
    """Tile of the portable kernel for a head dim on an arch (and cache dtype)."""
    return (SM80_TILES if arch == HOPPER_ARCH and not kv_fp8_code(kv_dtype) else SM80_TILES_PORTABLE)[head_dim]


@dataclass(frozen=True)
class Sm90Tile:
    """Tile of prefill_sm90.cu: 64 query rows per consumer warpgroup, block_n keys, one producer
    warpgroup; `stages`-deep K and V rings and `q_stages` Q buffers in 128-byte-swizzled shared
    memory."""

    block_n: int
    consumer_wgs: int = 2
    stages: int = 2
    q_stages: int = 1
    l2_section_bytes: int = L2_SECTION_BYTES  # planner: K/V bytes of the tiles scheduled together
    # CTAs an SM runs at once (CTAS_PER_SM: the launch bound, the shared-memory budget and the register
    # split of the kernel). Exactly this many fit by shared memory and registers (tests/test_launcher.py
    # reads both from the cubins). The full tiles run one per SM, so plan() sizes their persistent grid
    # without loading a build first; the short tiles' grid is the occupancy of their loaded build.
    ctas_per_sm: int = 1

    @property
    def block_m(self) -> int:
        return 64 * self.consumer_wgs

    @property
    def threads(self) -> int:
        return 128 * (1 + self.consumer_wgs)


# 128-key blocks keep S (64 x 128) and O (64 x 128) in registers at head_dim <= 128; head_dim 256
# halves the block so Q + 2 x (K, V) stages fit in 227 KB of shared memory. head_dim 64 has
# registers for three consumer warpgroups (192-row tiles: more warps to hide the softmax latency,
# a third less K/V traffic per FLOP).
# L2 sections (planner): head_dim 128 runs best with 8 MB (H200 same-call A/Bs against 12 MB, s24r4
# and s24r5, 2 and 3 rounds: W1 +0.8% / +1.5%, W3 +1.0% / +1.1%, W2, W2p1, W4, W7, W8, W10, W1f8,
# W2f8 within +-0.2%; 24 MB: W1 -2.2%, W3 -1.3%, W10 -1.3%; 6 and 4 MB no better than 8); head_dim
# 64 (192-row tiles, 1.5%) and head_dim 256 (13% on 1 x 8192 causal, 16 heads: 24 MB holds only 3 of
# its 8 MB heads) want 32 MB (H100 A/Bs).
SM90_TILES = {64: Sm90Tile(block_n=128, consumer_wgs=3, stages=2, q_stages=2, l2_section_bytes=32 << 20),
              128: Sm90Tile(block_n=128, stages=2, q_stages=2, l2_section_bytes=8 << 20),
              256: Sm90Tile(block_n=64, stages=2, q_stages=1, l2_section_bytes=32 << 20)}

# Long tiles (no consumer turn-taking) whose K/V come by TMA take 176-key blocks at head_dim 128
# (FlashAttention-3's non-causal tile): the softmax's fixed costs (row max and sum, O rescale, barrier
# handshakes) spread over more keys, and a causal tile of packed GQA rows wastes at most one
# partial block either way. H100 A/B in one device call (2026-11-24): 8K non-causal +3.5% / +5.5%,
# 8K causal +2.8%, 512-on-4096 chunks +5.3%, pages of 64 +1.8%. The cp.async gather (page sizes
# that are not a multiple of 8) loses 8.5% with it and keeps 128; sliding windows keep 128 too.
# One Q buffer, so that two K/V stages fit.
# Built without turn-taking only (with turns it fits the registers under NVRTC 13.5 / ptxas 13.0, but
# was slower on every row it would serve, W7 -0.8%, W1 -2.4%, 32 x 512 -4.7%: s24r6): plan() plans
# with the standard tile, decides turn-taking on it, then picks the tile. Planning must not tell the two apart: same
# block_m and L2 budget.
SM90_LONG_TILES = {128: Sm90Tile(block_n=176, stages=2, q_stages=1, l2_section_bytes=8 << 20)}

# fp8 caches: each block also passes through fp8 staging slots in shared memory (K and V of a block,
# 2 x block_n x head_dim bytes; one shared slot at head_dim 256, where two do not fit), so head_dim
# 128 keeps one Q buffer, and there are no 176-key builds (two K/V stages of 176 keys plus staging
# exceed 227 KB). kernels_cu/tile_sm90.cuh SmemLayout sizes the slots; the cubin reports the total.
# Their short tiles are SM90_FP8_SHORT_TILES (below); split-KV twins, yes (split_build keeps KV_FP8).
SM90_FP8_TILES = {64: SM90_TILES[64], 128: dataclasses.replace(SM90_TILES[128], q_stages=1), 256: SM90_TILES[256]}
# fp8 queries on the fp8 tensor cores (FP8_MMA builds: e4m3 wgmma k32 for Q K^T and P V; Q, K and the
# transposed V as bytes in shared memory, half the 16-bit tiles): head_dim 128 only (one 128-byte
# swizzle row is a whole fp8 row), with two Q buffers (the stages are 16 KB: 152704 B in all).
SM90_FP8_MMA_TILES = {128: dataclasses.replace(SM90_TILES[128], q_stages=2)}
assert all(t.block_m == SM90_TILES[hd].block_m and t.l2_section_bytes == SM90_TILES[hd].l2_section_bytes
           for tiles in (SM90_LONG_TILES, SM90_FP8_TILES, SM90_FP8_MMA_TILES) for hd, t in tiles.items())


# Short tiles: 64 query rows (one consumer warpgroup: wgmma's M = 64 is the smallest tile) for
# batches whose (request, KV head)s have few packed rows (sm90_short_tiles): speculative-decoding
# verification, 4 tokens x GQA group 4 = 16 rows, would fill an eighth of a 128-row tile. Such a
# batch is memory-bound (W9: 537 MB of K/V, 0.119 ms at 4.5 TB/s; its 64-row tensor work takes
# about half of that), so the tile is built to keep K/V bytes in flight: two CTAs per SM (each a
# producer and one consumer warpgroup, 113 KB of shared memory and 128 registers per thread at
# most: setmaxnreg 56 / 200), each streaming its own tile through a 2-stage ring of 32 KB (K + V)
# stages: 64-key blocks at head_dim 128, 128 at 64, 32 at 256 (two Q buffers where they fit).
# Little's law: 4.5 TB/s over 132 SMs is 34 GB/s per SM, i.e. 34-51 KB in flight at a loaded DRAM
# latency of 1-1.5 us; a CTA waiting for block n has blocks n's K and V and n+1's K in flight
# (n+1's V waits for n-1's release): 48 KB, 96 KB per SM. Two independent CTAs also hide each
# other's tile starts (Q, first block) and epilogues.
SM90_SHORT_TILES = {64: Sm90Tile(block_n=128, consumer_wgs=1, stages=2, q_stages=2, ctas_per_sm=2),
                    128: Sm90Tile(block_n=64, consumer_wgs=1, stages=2, q_stages=2, ctas_per_sm=2)}
# (A head_dim 256 short tile, 32-key blocks with P V as two 128-column wgmmas, ran correctly on the
# H200 but 16% slower than the full tiles on 4-token requests: removed. Other head_dim 128 shapes,
# H200 A/B 2026-12-03 (.notes/runs/h200_2026-12-03_s19r2_*): 128-key blocks x 3 stages at one CTA
# per SM -6.6% on W9, 64 x 4 at one CTA -20%, 48 x 3 at two CTAs -0.8%, 32 x 4 at two -14%.)
# K/V of the short tiles come by the cp.async gather, never by TMA page boxes (choose_build): on
# these memory-bound batches the gather reads HBM faster. H200, same call (s19r4, page_size 16):
# W9 0.1376 -> 0.1296 ms (3.90 -> 4.14 TB/s of K/V: FlashInfer's fa2 paged kernel's rate), the
# short-tile batches of tools/short_tile_workloads.json +3% to +9% (head_dim 64 +4.5%). Under ncu
# (s19r1) the TMA build read the same bytes at 83.7% of the DRAM peak. A likely reason (not measured
# apart): a box walks a page's 256-byte rows as two 128-byte halves eight rows apart, where a warp's
# gather copies both halves of four rows at once.
# (A switch, read by choose_build, for A/Bs and for the tests that keep the short builds' TMA path
# covered.)
SHORT_TILES_GATHER = True

# fp8 caches take the same short tiles (16-bit queries and fp8 e4m3 ones, both widened by the
# producer; never the fp8-MMA builds), with one Q buffer: then two fp8 staging slots fit in a CTA's
# 113 KB (head_dim 128: 109824 B), so the next block's K bytes land while this block's V is widened.
# H200, same call (s20r2, tools/ab.sh, 3 rounds; base: fp8 on the full tiles): one Q buffer and two
# slots W9 on an e4m3 cache 45.9 -> 60.2 TFLOP/s (+31%), with e4m3 queries +31%, 64 decodes +30%,
# GQA-8 verification +31%, pages of 1 +36%, head_dim 64 25.2 -> 55.6; two Q buffers and one slot
# gained 2% at head_dim 128 (the producer waits on its one slot). The producer's 72 registers there
# (kernels_cu/tile_sm90.cuh kProducerRegs, four widening loads in flight) added 4-5% (s20r3): W9 on
# an e4m3 cache 62.3 TFLOP/s against 65.2 for a 16-bit one.
SM90_FP8_SHORT_TILES = {hd: dataclasses.replace(t, q_stages=1) for hd, t in SM90_SHORT_TILES.items()}
_SHORT_TILE_SET = frozenset((*SM90_SHORT_TILES.values(), *SM90_FP8_SHORT_TILES.values()))


def sm90_wgmma_ns() -> tuple[int, ...]:
    """The N sizes kernels_cu/ptx_wgmma.cuh wraps (tools/gen_ptx_wgmma.py), ascending: every sm90
    tile's block_n (S = Q K^T is m64 n{block_n}) and every head dim (O += P V is m64 n{head_dim})."""
    tiles = [*SM90_TILES.values(), *SM90_LONG_TILES.values(), *SM90_SHORT_TILES.values(),
             *SM90_FP8_TILES.values()]
    return tuple(sorted({t.block_n for t in tiles} | set(SM90_TILES)))


def sm90_fp8_wgmma_ns() -> tuple[int, ...]:
    """The N sizes of the e4m3 k32 wrappers in kernels_cu/ptx_wgmma.cuh: the fp8-MMA builds' block_n
    (S = Q K^T) and head dims (O += P V)."""
    return tuple(sorted({t.block_n for t in SM90_FP8_MMA_TILES.values()} | set(SM90_FP8_MMA_TILES)))


# Short tiles pay where they cut the tensor work: a (request, KV head) of P packed rows computes
# ceil(P / block_m) * block_m rows of its keys with a head_dim's full tiles (block_m 128; 192 at
# head_dim 64) and ceil(P / 64) * 64 with the short ones. plan() takes the short tiles when their
# work, summed over the batch with each request's keys as weight, is at most SHORT_TILE_MAX_WORK of
# the full tiles'. Worked examples (head_dim 128, GQA group 4):
#   W9, 32 requests of 4 tokens on 4096 keys: 16 rows each -> 64 / 128 = 0.5: short tiles.
#   W1, 16 x 1024 tokens: 4096 rows each -> 4096 / 4096 = 1.0: full tiles (so are W2-W8 and W10).
#   31 requests of 4 tokens and one of 17 (68 rows: two short tiles), all on 4096 keys:
#     (31 * 64 + 128) / (32 * 128) = 0.52: short tiles.
#   A 2048-token prefill chunk on 2048 keys with 100 verifications of 4 tokens on 4096 keys:
#     (8192 * 2048 + 100 * 64 * 4096) / (8192 * 2048 + 100 * 128 * 4096) = 0.62: full tiles.
# A batch of one query length is short exactly when its P <= 64 (the ratio is 0.5; at least 2/3
# otherwise). H200, tools/short_tiles_ab.py (2026-12-01, runs/h200_2026-12-01_r4_short_ab.json),
# short / full time: ratios 0.50-0.56 gained 7-15% (W9 0.154 -> 0.139 ms: 3.87 TB/s of K/V read,
# 94% of a plain 4.10 TB/s read), 0.62 gained 3%, 0.72 lost 2.4%: the threshold is 0.66. At head_dim
# 256 the short tiles lost 16% even at 0.5 (32-key blocks): they serve head_dim 64 and 128 only.
SHORT_TILE_MAX_WORK = 0.66


def sm90_short_tile_work(head_dim: int, qo_lens, kv_lens, group_size: int) -> float | None:
    """The short tiles' tensor work relative to the full tiles' (see SHORT_TILE_MAX_WORK), None for
    a batch without work. qo_lens, kv_lens: int[B] query and key tokens per request."""
    if head_dim not in SM90_SHORT_TILES:
        return None
    rows = np.asarray(qo_lens, dtype=np.float64) * int(group_size)
    keys = np.asarray(kv_lens, dtype=np.float64)
    full_m, short_m = SM90_TILES[head_dim].block_m, SM90_SHORT_TILES[head_dim].block_m
    full = float(np.dot(np.ceil(rows / full_m) * full_m, keys))
    return float(np.dot(np.ceil(rows / short_m) * short_m, keys)) / full if full > 0 else None


# Short tiles never split their key ranges, so a batch takes them only when they fill the short
# grid (two CTAs per SM) on their own: at least SHORT_TILE_MIN_FILL of its CTAs get a tile. Fewer,
# longer rows go to the full tiles, which split-KV spreads over the SMs. W9: 32 requests x 8 KV
# heads = 256 short tiles on 264 CTAs (0.97): short. 3 requests x 8 heads = 24 tiles (0.09): full
# tiles, split.
SHORT_TILE_MIN_FILL = 0.75


def _clearly_full(head_dim: int, qo_lens, kv_lens, group_size: int) -> bool:
    """A cheap sufficient test for sm90_short_tile_work > SHORT_TILE_MAX_WORK (or no work): every
    request with keys has at least 3 * (block_m - 1) packed rows P. The short tiles compute at
    least P rows, the full tiles at most P + block_m - 1, so each request's ratio, and with it the
    batch's, is at least 3/4 (W1: P = 4096 per request, ratio >= 0.97)."""
    rows = np.asarray(qo_lens, dtype=np.int64)
    keys = np.asarray(kv_lens)
    if len(rows) <= _SHORT_BATCH:  # (only requests with keys count)
        live = [q for q, k in zip(rows.tolist(), keys.tolist()) if k > 0]
        fewest = min(live) if live else None
    else:
        live = rows[keys > 0] if np.count_nonzero(keys) < len(keys) else rows
        fewest = int(np.minimum.reduce(live)) if len(live) else None
    if fewest is None:
        return True  # no work: never short (sm90_short_tile_work is None)
    return fewest >= -(-3 * (SM90_TILES[head_dim].block_m - 1) // int(group_size))


# Batches of at most this many requests take the short-tile tests through Python lists: fewer steps
# than NumPy's on a few values (plan() asks on every call, decode-like batches are often this small).
_SHORT_BATCH = 64


def _short_tile_count(qo_lens, group_size: int, block_m: int) -> int:
    """Short tiles of a batch per KV head: ceil(qo_len * group_size / block_m) summed over requests."""
    if len(qo_lens) <= _SHORT_BATCH:
        g = int(group_size)
        return sum((q * g + block_m - 1) // block_m for q in np.asarray(qo_lens).tolist())
    rows = np.asarray(qo_lens, dtype=np.int64) * int(group_size)
    rows += block_m - 1
    rows //= block_m
    return int(np.add.reduce(rows))


def sm90_short_tiles(head_dim: int, qo_lens, kv_lens, group_size: int, num_kv_heads: int | None = None,
                     num_ctas: int | None = None, kv_dtype: str | None = None) -> bool:
    """Whether plan() plans an sm90 batch with SM90_SHORT_TILES: their work is at most
    SHORT_TILE_MAX_WORK of the full tiles' (sm90_short_tile_work) and, given the short grid's
    num_ctas (and num_kv_heads), their tiles fill at least SHORT_TILE_MIN_FILL of it. The same rule
    for an fp8 cache (kv_dtype, which then takes SM90_FP8_SHORT_TILES: same rows, block and grid)."""
    if head_dim not in SM90_SHORT_TILES:
        return False
    if _clearly_full(head_dim, qo_lens, kv_lens, group_size):
        return False
    # The fill first: it is the cheaper test, and it rejects the small batches (a few decode steps).
    if num_ctas is not None:
        tiles = _short_tile_count(qo_lens, group_size, SM90_SHORT_TILES[head_dim].block_m) * int(num_kv_heads)
        if tiles < SHORT_TILE_MIN_FILL * num_ctas:
            return False
    work = sm90_short_tile_work(head_dim, qo_lens, kv_lens, group_size)
    return work is not None and work <= SHORT_TILE_MAX_WORK


def sm90_tile(head_dim: int, pingpong: bool, kv_tma: bool, window_left: int = -1,
              kv_dtype: str | None = None) -> Sm90Tile:
    """The sm90 full tile of a batch: SM90_FP8_TILES for an fp8 cache; else SM90_LONG_TILES for batches
    without turn-taking (sm90_pingpong, decided on the standard tile) whose K/V blocks come by TMA and
    see no sliding window, else SM90_TILES."""
    if kv_fp8_code(kv_dtype):
        return SM90_FP8_TILES[head_dim]
    if not pingpong and sm90_long_tile_batch(head_dim, kv_tma, window_left, kv_dtype):
        return SM90_LONG_TILES[head_dim]
    return SM90_TILES[head_dim]


def sm90_long_tile_batch(head_dim: int, kv_tma: bool, window_left: int = -1, kv_dtype: str | None = None) -> bool:
    """Whether a batch runs SM90_LONG_TILES when it runs without turn-taking: a 16-bit cache whose
    K/V blocks come by TMA, no sliding window, a head dim that has a long tile."""
    return head_dim in SM90_LONG_TILES and kv_tma and window_left < 0 and not kv_fp8_code(kv_dtype)


def sm90_kv_box_tokens(page_size: int, head_dim: int, tile: Sm90Tile | None = None) -> int:
    """Tokens per TMA box of the sm90 K/V path, or 0 when the page size needs the gather path.

    A box lies inside one page and fills whole 8-row groups of the 128-byte swizzle, and a key
    block (block_n keys) is a whole number of boxes: gcd(page_size, block_n) when that is a
    multiple of 8. page_size 16 -> 8 boxes of 16 per 128-key block; 64 -> 2 of 64; 256 -> 1 of 128.
    tile: the batch's tile (default SM90_TILES[head_dim]).
    """
    box = math.gcd(int(page_size), (tile or SM90_TILES[head_dim]).block_n)
    return box if box % 8 == 0 else 0


@dataclass(frozen=True)
class KernelVariant:
    source: str                                   # file in kernels_cu/
    entry: str                                    # extern "C" kernel name
    defines: tuple[tuple[str, str | int], ...]    # -D macros, in a fixed order
    arch: str                                     # "sm_90a" or "sm_80"

    @functools.cached_property  # plan() asks for names of the same few variants on every call
    def name(self) -> str:
        parts = [self.entry]
        for key, value in self.defines:
            if key == "HEAD_DIM":
                parts.append(f"hd{value}")
            elif key == "IS_BF16":
                parts.append("bf16" if int(value) else "fp16")
            elif key == "OFFSET_UNITS" and not int(value):
                parts.append("elems")
            elif key == "PINGPONG" and not int(value):
                parts.append("nopp")
            elif key == "SPLIT_KV" and int(value):
                parts.append("split")
            elif key == "BLOCK_N" and self.entry == "prefill_sm90":
                hd = dict(self.defines)["HEAD_DIM"]
                if int(value) != SM90_TILES[hd].block_n:
                    parts.append(f"bn{value}")
            elif key == "CONSUMER_WGS":
                if int(value) != SM90_TILES[dict(self.defines)["HEAD_DIM"]].consumer_wgs:
                    parts.append(f"m{64 * int(value)}")
            elif key == "KV_FP8" and int(value):
                parts.append({1: "e4m3", 2: "e5m2"}[int(value)])
            elif key == "Q_FP8" and int(value):
                parts.append("q8")
            elif key == "FP8_MMA" and int(value):
                parts.append("mma8")
        parts.append(self.arch)
        return "_".join(parts)


def _q_fp8_defines(q_dtype: str | None, kv_dtype: str | None) -> tuple:
    """(("Q_FP8", code),) for fp8 queries (which need a cache of their kind), () for 16-bit ones."""
    code = q_fp8_code(q_dtype)
    if code and kv_fp8_code(kv_dtype) != code:
        raise ValueError(f"q_dtype={q_dtype!r} needs kv_dtype={q_dtype!r}, got {kv_dtype!r}")
    return (("Q_FP8", code),) if code else ()


def prefill_sm80_variant(head_dim: int, dtype: str, arch: str = HOPPER_ARCH, units: bool = True,
                         kv_dtype: str | None = None, q_dtype: str | None = None) -> KernelVariant:
    """The portable mma.sync kernel for one head dim and dtype ("bfloat16"/"float16").

    units: the K/V load path. True reads the int32 token-unit offset table (every pool view with
    stride_page % stride_token == 0); False the int64 element tables (the fallback).
    kv_dtype: the cache's dtype when it is fp8 (FP8_KV_DTYPES); None: dtype.
    q_dtype: "float8_e4m3fn" for fp8 queries (FP8_Q_DTYPES; widened into the 16-bit Q tile, dtype is
    then the output's); None: dtype.
    """
    tile = sm80_tile(head_dim, arch, kv_dtype)
    defines = (
        ("HEAD_DIM", head_dim),
        ("IS_BF16", 1 if dtype == "bfloat16" else 0),
        ("BLOCK_M", tile.block_m),
        ("BLOCK_N", tile.block_n),
        ("WARPS", tile.warps),
        ("MIN_BLOCKS", tile.min_blocks),
        ("OFFSET_UNITS", 1 if units else 0),
        ("KV_FP8", kv_fp8_code(kv_dtype)),
    ) + _q_fp8_defines(q_dtype, kv_dtype)
    return KernelVariant("prefill_sm80.cu", "prefill_sm80", defines, arch)


def prefill_sm90_variant(head_dim: int, dtype: str, pingpong: bool = True,
                         tile: Sm90Tile | None = None, *, split: bool = False,
                         kv_dtype: str | None = None, q_dtype: str | None = None,
                         fp8_mma: bool = False) -> KernelVariant:
    """The Hopper kernel (wgmma, warp-specialized, TMA and cp.async loads) for one head dim and dtype.

    pingpong: the consumer warpgroups take turns issuing their GEMMs (see sm90_pingpong).
    tile: SM90_TILES[head_dim] by default (SM90_FP8_TILES for an fp8 cache; see sm90_tile).
    split: the split-KV build (SPLIT_KV=1): pieces of split tiles write partial results for
    merge_split.cu; only plans with pieces (and graph-mode wrappers, which may get them) run it, so
    the other builds' SASS stays as it was.
    kv_dtype: the cache's dtype when it is fp8 (FP8_KV_DTYPES); None: dtype.
    q_dtype: "float8_e4m3fn" / "float8_e5m2" for fp8 queries (FP8_Q_DTYPES; a cache of the same kind):
    Q_FP8=1 / 2, before SPLIT_KV, so the split twin keeps it; dtype is then the output's.
    fp8_mma: e4m3 queries on the fp8 tensor cores (FP8_MMA=1, SM90_FP8_MMA_TILES: head_dim 128).
    """
    if fp8_mma and not (q_fp8_code(q_dtype) == 1 and head_dim in SM90_FP8_MMA_TILES):
        raise ValueError(f"fp8_mma needs e4m3 queries and head_dim in {tuple(SM90_FP8_MMA_TILES)}, got "
                         f"q_dtype={q_dtype!r}, head_dim={head_dim}")
    default = SM90_FP8_MMA_TILES if fp8_mma else SM90_FP8_TILES if kv_fp8_code(kv_dtype) else SM90_TILES
    tile = tile or default[head_dim]
    defines = (
        ("HEAD_DIM", head_dim),
        ("IS_BF16", 1 if dtype == "bfloat16" else 0),
        ("BLOCK_N", tile.block_n),
        ("CONSUMER_WGS", tile.consumer_wgs),
        ("KV_STAGES", tile.stages),
        ("Q_STAGES", tile.q_stages),
        ("PINGPONG", 1 if pingpong else 0),
        ("CTAS_PER_SM", tile.ctas_per_sm),
        ("KV_FP8", kv_fp8_code(kv_dtype)),
        *_q_fp8_defines(q_dtype, kv_dtype),
        *((("FP8_MMA", 1),) if fp8_mma else ()),
        ("SPLIT_KV", 1 if split else 0),
    )
    return KernelVariant("prefill_sm90.cu", "prefill_sm90", defines, HOPPER_ARCH)


# Turn-taking between the consumer warpgroups pays off when tiles visit few key blocks (a tile's
# first softmax and last P V then overlap the other warpgroup's GEMMs); on long tiles the
# intra-warpgroup overlap alone is faster. H100 A/B in one device call (2026-11-24): with turns
# +2.5% on 16 x 1024 causal prompts (4.5 blocks per tile); without +3% on 8K prompts (32 blocks),
# +3% on 8K non-causal (64), +1.5% at head_dim 256 (65), +1.2% with head_dim 64's three warpgroups
# on 4 x 4096 causal (16).
PINGPONG_MAX_BLOCKS = 8.0
# Where the build without turns is the long tile (176 keys: sm90_long_tile_batch), turns pay below
# about 5.75 blocks (of the planning tile's 128 keys). H200 same-call A/Bs (s24r1, s24r2; 3 rounds each;
# +x% = the faster side's gain): with turns 16 x 1024 (4.5 blocks) +1.6%, 16 x 1280 (5.5) +0.8%, 32 x 512
# (2.5) +6%; without (176 keys) W4 (mixed lengths, 6.0) +1.2%, W4 with other lengths (6.0) +1.3%,
# 16 x 1536 (6.5) +0.3%, W10 (8.5) +0.8%, 16 x 2048 GQA 4 (8.5) +1.3%, 8 x 3072 GQA 8 (12.5) +1.7%.
# The gathered and windowed batches (128 keys either way), fp8 caches and head_dim 64 / 256 keep 8.
PINGPONG_MAX_BLOCKS_LONG = 5.75
# fp8 caches at head_dim 128 (the widening builds, not fp8-MMA): without turns the consumers widen V
# (kConsumerV) and the producer only K (and an e4m3 Q), with turns the producer widens all of it, so
# turns stop paying earlier. H200 same-call A/B (s24r8, 3 rounds; never taking turns against 8):
# bf16 q on an e4m3 cache, W1f8 (4.5 blocks) -0.4%, 16 x 1280 (5.5) +2.2%, W4 (6.0) +1.8%, 32 x 512
# (2.5) -7.1%; e4m3 q, W1 (4.5) +10.3%. (Turns up to 16 blocks: 16 x 2048 GQA 4 (8.5) -4.3% but
# W10 (GQA 8, 8.5) +3.6%: above 8 the mean does not separate them; left at 8's side.)
PINGPONG_MAX_BLOCKS_FP8 = 5.0
PINGPONG_MAX_BLOCKS_FP8_Q = 4.0  # e4m3 queries (the producer widens Q too)


@functools.lru_cache(maxsize=1024)  # plan() asks on every call; a few configurations per process
def sm90_pingpong_limit(head_dim: int, page_size: int, window_left: int, kv_load: str, kv_dtype: str | None,
                        q_dtype: str | None, fp8_mma: bool) -> float:
    """The mean key blocks per tile below which a full-tile sm90 batch of this configuration takes
    turns (sm90_pingpong): the fp8 thresholds on the widening builds at head_dim 128, the long-tile
    one where the build without turns is the long tile, else PINGPONG_MAX_BLOCKS."""
    if kv_fp8_code(kv_dtype) and head_dim == 128 and not _fp8_mma_build(fp8_mma, q_dtype, head_dim):
        return PINGPONG_MAX_BLOCKS_FP8_Q if q_fp8_code(q_dtype) else PINGPONG_MAX_BLOCKS_FP8
    if sm90_long_tile_batch(head_dim, _kv_tma(kv_load, page_size, head_dim), window_left, kv_dtype):
        return PINGPONG_MAX_BLOCKS_LONG
    return PINGPONG_MAX_BLOCKS


def sm90_pingpong(mean_blocks_per_tile: float, limit: float) -> bool:
    """Whether the batch runs the turn-taking build of the sm90 kernel (limit: sm90_pingpong_limit)."""
    return mean_blocks_per_tile < limit


def _kv_tma(kv_load: str, page_size: int, head_dim: int) -> bool:
    """Whether the full tiles' K/V blocks may come by TMA boxes (else the gather)."""
    return kv_load == "auto" and sm90_kv_box_tokens(page_size, head_dim) > 0


def _fp8_mma_build(fp8_mma: bool, q_dtype: str | None, head_dim: int) -> bool:
    """Whether fp8_mma=True gets the e4m3-wgmma builds: e4m3 queries at a head dim that has them."""
    return bool(fp8_mma) and q_fp8_code(q_dtype) == 1 and head_dim in SM90_FP8_MMA_TILES


@functools.lru_cache(maxsize=None)  # plan() asks on every call: one variant object, its name computed once
def merge_split_variant() -> KernelVariant:
    """The merge of split tiles (kernels_cu/merge_split.cu), after an sm90 run whose plan has pieces."""
    return KernelVariant("merge_split.cu", "merge_split", (), HOPPER_ARCH)


@functools.lru_cache(maxsize=None)  # plan() asks on every call: one variant object, its name computed once
def kv_offsets_variant(arch: str = HOPPER_ARCH) -> KernelVariant:
    """The plan expansion kernel (launcher.expand_plan): per-token K/V tables and tile rows from the
    uploaded plan, after plan()'s upload and in run() for strides plan() did not see."""
    return KernelVariant("kv_offsets.cu", "expand_plan", (), arch)


@dataclass(frozen=True)
class Build:
    """What one plan runs: the kernel build(s), its tile and load geometry (variants.choose_build).

    variants: the builds run() may launch; sm90 reads either offset table at run time (one build),
    sm80 has one build per table (token units first, element offsets second).
    kv_box: tokens per TMA box of the sm90 K/V path (0: cp.async gather).
    q_box: Q's TMA box (64 columns, group_size heads, block_m / group_size tokens), None: cp.async.
    split: the split-KV build (sm90 only, see split_build): plans with pieces need it.
    """

    backend: str
    tile: "Sm90Tile | Sm80Tile"
    variants: tuple
    pingpong: bool = False
    kv_box: int = 0
    q_box: tuple | None = None
    split: bool = False

    @property
    def name(self) -> str:
        return self.variants[0].name

    @functools.cached_property
    def q_fp8(self) -> int:
        """The builds' Q_FP8 macro: 1 / 2 for e4m3 / e5m2 queries, 0 for 16-bit ones."""
        return int(dict(self.variants[0].defines).get("Q_FP8", 0))

    @functools.cached_property  # run() asks when its operands change
    def kv_fp8(self) -> int:
        """The builds' KV_FP8 macro: 0 for a 16-bit cache, else the fp8 kind (FP8_KV_DTYPES)."""
        return int(dict(self.variants[0].defines).get("KV_FP8", 0))

    @functools.cached_property
    def fp8_mma(self) -> bool:
        """The builds' FP8_MMA macro: e4m3 wgmma on fp8 queries and cache (their K map is swizzled)."""
        return bool(int(dict(self.variants[0].defines).get("FP8_MMA", 0)))

    @property
    def short_tiles(self) -> bool:
        """Planned and run with SM90_SHORT_TILES (64-row tiles, two CTAs per SM)."""
        return self.tile in _SHORT_TILE_SET

    @property
    def can_split(self) -> bool:
        """Whether plans of this build may have pieces: sm90 full tiles (the sm80 kernel and the
        short tiles plan without splits; short-tile batches fill the machine with small tiles)."""
        return self.backend == "sm90" and not self.short_tiles

    def variant_for(self, units: bool) -> KernelVariant:
        return self.variants[0] if units or len(self.variants) == 1 else self.variants[1]


def split_build(build: Build) -> Build:
    """The split-KV twin of an sm90 build: every macro the same but SPLIT_KV=1, so the same tile,
    key block and turn-taking (a plan's pieces, cut on its key block, stay valid), plus the
    partial-result epilogue of pieces."""
    if build.split or not build.can_split:
        return build
    return _split_twin(build)


@functools.lru_cache(maxsize=256)  # builds are frozen; plan() asks for the same few twins on every call
def _split_twin(build: Build) -> Build:
    v = build.variants[0]
    defines = tuple((k, x) for k, x in v.defines if k != "SPLIT_KV") + (("SPLIT_KV", 1),)  # its place: last
    variant = dataclasses.replace(v, defines=defines)
    return dataclasses.replace(build, variants=(variant,), split=True)


def planning_tile(backend: str, head_dim: int, arch: str, short_tiles: bool = False) -> "Sm90Tile | Sm80Tile":
    """The tile a batch is planned with (rows per tile, L2 budget) before its build is chosen:
    every full-tile sm90 build of a head_dim shares block_m and the L2 budget (checked above);
    short_tiles (sm90_short_tiles, decided before planning): SM90_SHORT_TILES[head_dim]."""
    if backend != "sm90":
        return sm80_tile(head_dim, arch)
    return SM90_SHORT_TILES[head_dim] if short_tiles else SM90_TILES[head_dim]


def choose_build(backend: str, arch: str, head_dim: int, dtype: str, page_size: int, group_size: int,
                 window_left: int, mean_blocks: float, kv_load: str = "auto", has_q: bool = True,
                 short_tiles: bool = False, kv_dtype: str | None = None, q_dtype: str | None = None,
                 fp8_mma: bool = False) -> Build:
    """The kernel build and geometry of a planned batch (pure: same inputs, same Build).

    sm90: the short tiles' one build when the batch was planned with them (short_tiles; mean_blocks is
    then not read); else turn-taking when tiles are short (sm90_pingpong on the planning tile's mean
    key blocks), then the tile (176-key blocks for long TMA batches, sm90_tile). Then the K/V box (0
    when the page size needs the gather, for kv_load="gather" and for short tiles) and Q's box
    (whole tiles of packed rows: group_size must divide block_m). sm80: the units and element-offset
    builds of the portable kernel.
    kv_dtype: an fp8 cache's dtype (FP8_KV_DTYPES) picks its builds (short tiles: SM90_FP8_SHORT_TILES);
    None: dtype.
    q_dtype: "float8_e4m3fn" for fp8 queries (with an e4m3 cache; dtype is then the output's): the
    mode-1 tiles with Q widened in shared memory, Q by the producer's loads (no Q box); with fp8_mma
    (and head_dim in SM90_FP8_MMA_TILES; sm90 only) the e4m3-wgmma builds instead.
    """
    pingpong = backend == "sm90" and not short_tiles and sm90_pingpong(
        mean_blocks, sm90_pingpong_limit(head_dim, page_size, window_left, kv_load, kv_dtype, q_dtype, bool(fp8_mma)))
    if short_tiles and SHORT_TILES_GATHER:  # memory-bound batches: the gather reads HBM faster than TMA boxes
        kv_load = "gather"
    return _build(backend, arch, head_dim, dtype, page_size, group_size, window_left, pingpong, kv_load, has_q,
                  short_tiles, kv_dtype, q_dtype, bool(fp8_mma))


@functools.lru_cache(maxsize=1024)
def _build(backend: str, arch: str, head_dim: int, dtype: str, page_size: int, group_size: int, window_left: int,
           pingpong: bool, kv_load: str, has_q: bool, short_tiles: bool, kv_dtype: str | None,
           q_dtype: str | None, fp8_mma: bool) -> Build:
    """choose_build once its one batch-dependent input, the mean key blocks, has become the
    turn-taking decision: memoized, since plan() asks on every call and the answers are frozen
    (a few configurations per process)."""
    if backend == "sm80":
        return Build("sm80", sm80_tile(head_dim, arch, kv_dtype),
                     (prefill_sm80_variant(head_dim, dtype, arch, True, kv_dtype, q_dtype),
                      prefill_sm80_variant(head_dim, dtype, arch, False, kv_dtype, q_dtype)))
    if short_tiles:  # one consumer warpgroup: no turns to take; fp8 queries widened (no fp8-MMA build)
        tile = (SM90_FP8_SHORT_TILES if kv_fp8_code(kv_dtype) else SM90_SHORT_TILES)[head_dim]
        fp8_mma = False
    else:
        tile = sm90_tile(head_dim, pingpong, _kv_tma(kv_load, page_size, head_dim), window_left, kv_dtype)
        fp8_mma = _fp8_mma_build(fp8_mma, q_dtype, head_dim)
        if fp8_mma:
            tile = SM90_FP8_MMA_TILES[head_dim]
    kv_box = sm90_kv_box_tokens(page_size, head_dim, tile) if kv_load == "auto" else 0
    bm = tile.block_m
    q_box = (64, group_size, bm // group_size) if has_q and bm % group_size == 0 and bm // group_size <= 256 else None
    if q_fp8_code(q_dtype):
        q_box = None  # fp8 queries: loaded and widened by the producer threads
    variant = prefill_sm90_variant(head_dim, dtype, pingpong, tile, kv_dtype=kv_dtype, q_dtype=q_dtype,
                                   fp8_mma=fp8_mma)
    return Build("sm90", tile, (variant,), pingpong, kv_box, q_box)


@dataclass(frozen=True)
class BatchChoice:
    """plan()'s kernel decisions for one batch, made around the planner (batch_choice): the planning
    tile and whether it is the short one, the build known before planning (it sets the grid), whether
    pieces are allowed, and build_for(rows), the build of the planned row tiles. The inputs of
    choose_build are kept as given; pinned is graph mode's build (the first plan's, for the
    wrapper's life: captured launches name it)."""

    backend: str
    arch: str
    head_dim: int
    dtype: str
    page_size: int
    group_size: int
    window_left: int
    kv_load: str
    has_q: bool
    kv_dtype: str | None
    q_dtype: str | None
    fp8_mma: bool
    pinned: Build | None
    short: bool
    tile: "Sm90Tile | Sm80Tile"

    @functools.cached_property
    def grid_build(self) -> Build | None:
        """The build whose occupancy (CTAs per SM) sets the grid, where it is known before planning:
        the short tiles' one build (or the pinned build that has them), sm80's token-units build;
        None for sm90's full tiles, whose grid is tile.ctas_per_sm CTAs per SM."""
        if self.short:
            return self.pinned or choose_build(self.backend, self.arch, self.head_dim, self.dtype, self.page_size,
                                               self.group_size, self.window_left, 0.0, self.kv_load,
                                               has_q=self.has_q, short_tiles=True, kv_dtype=self.kv_dtype,
                                               q_dtype=self.q_dtype)
        if self.backend != "sm90":
            return choose_build(self.backend, self.arch, self.head_dim, self.dtype, self.page_size, 1, -1, 0.0,
                                kv_dtype=self.kv_dtype, q_dtype=self.q_dtype)
        return None

    def may_split(self, disabled: bool, slots: int) -> bool:
        """Whether the planner may cut pieces: sm90 full tiles, not disable_split_kv, partial-result
        slots in the workspace, and (graph mode) a pinned build that is a split-KV twin."""
        return (self.backend == "sm90" and not self.short and not disabled and slots > 0
                and (self.pinned is None or self.pinned.split))

    def build_for(self, rows, split, graph: bool) -> Build:
        """The build of the planned row tiles (TILE_FIELDS rows, before any split; split: the
        schedule.SplitRequest or None). Graph mode: the pinned build, else the first plan's is a
        split-KV twin when later plans may split. Short tiles: their one build. fixed_split_size:
        one build whatever the batch (no turn-taking; the key block changes the summation order)."""
        if self.pinned is not None:
            return self.pinned
        if self.short:
            return self.grid_build
        fixed = split is not None and split.fixed_keys > 0
        mean = math.inf if fixed else mean_blocks_per_tile(rows, self.tile.block_n)
        b = choose_build(self.backend, self.arch, self.head_dim, self.dtype, self.page_size, self.group_size,
                         self.window_left, mean, self.kv_load, has_q=self.has_q, kv_dtype=self.kv_dtype,
                         q_dtype=self.q_dtype, fp8_mma=self.fp8_mma)
        return split_build(b) if split is not None and (fixed or graph) else b


def batch_choice(backend: str, arch: str, head_dim: int, dtype: str, page_size: int, num_qo_heads: int,
                 num_kv_heads: int, window_left: int, qo_lens, kv_lens, *, has_q: bool, kv_load: str = "auto",
                 kv_dtype: str | None = None, q_dtype: str | None = None, fp8_mma: bool = False,
                 pinned: Build | None = None, fixed_split: bool = False, sm_count: int = 132) -> BatchChoice:
    """The BatchChoice of a batch (pure). Short tiles (sm90_short_tiles on the short grid of sm_count
    SMs) unless fixed_split_size asks for split plans (the short tiles never split); a pinned build
    keeps its own choice. kv_dtype: an fp8 cache's dtype (FP8_KV_DTYPES) or None; q_dtype: fp8
    queries' dtype or None."""
    group = num_qo_heads // num_kv_heads
    if backend != "sm90" or fixed_split:
        short = False
    elif pinned is not None:
        short = pinned.short_tiles
    else:
        ctas = sm_count * SM90_SHORT_TILES[head_dim].ctas_per_sm if head_dim in SM90_SHORT_TILES else 0
        short = sm90_short_tiles(head_dim, qo_lens, kv_lens, group, num_kv_heads, ctas, kv_dtype)
    return _batch_choice(backend, arch, head_dim, dtype, page_size, group, window_left, kv_load, has_q, kv_dtype,
                         q_dtype, bool(fp8_mma), pinned, short, SHORT_TILES_GATHER)


@functools.lru_cache(maxsize=256)
def _batch_choice(backend: str, arch: str, head_dim: int, dtype: str, page_size: int, group: int, window_left: int,
                  kv_load: str, has_q: bool, kv_dtype: str | None, q_dtype: str | None, fp8_mma: bool,
                  pinned: Build | None, short: bool, short_tiles_gather: bool) -> BatchChoice:
    """batch_choice once its batch-dependent decision (short) is made: memoized, so that plan() meets
    the same few BatchChoice objects (a few configurations per process) with their grid_build
    computed once, and can key its own memos on them. short_tiles_gather is only a key: the value of
    the module knob SHORT_TILES_GATHER that grid_build's choose_build reads (tests flip it), so that a
    flipped knob never meets a choice made before."""
    return BatchChoice(backend, arch, head_dim, dtype, page_size, group, window_left, kv_load, has_q, kv_dtype,
                       q_dtype, fp8_mma, pinned, short, planning_tile(backend, head_dim, arch, short))


@functools.lru_cache(maxsize=None)
def builds_of(backend: str, arch: str, head_dim: int, dtype: str, kv_dtype: str | None = None,
              q_dtype: str | None = None, fp8_mma: bool = False) -> tuple[KernelVariant, ...]:
    """Every kernel build a plan of this backend, head_dim, dtype (and fp8 kv_dtype, fp8 q_dtype) may
    choose (compiled together, in parallel, the first time such a plan is made), plus the device
    offset builder."""
    if backend == "sm80":
        out = [prefill_sm80_variant(head_dim, dtype, arch, units, kv_dtype, q_dtype) for units in (True, False)]
    elif kv_fp8_code(kv_dtype):
        if _fp8_mma_build(fp8_mma, q_dtype, head_dim):
            out = [prefill_sm90_variant(head_dim, dtype, pp, kv_dtype=kv_dtype, q_dtype=q_dtype, fp8_mma=True)
                   for pp in (True, False)]
        else:
            out = [prefill_sm90_variant(head_dim, dtype, pp, SM90_FP8_TILES[head_dim], kv_dtype=kv_dtype,
                                        q_dtype=q_dtype) for pp in (True, False)]
        if head_dim in SM90_FP8_SHORT_TILES:  # (fp8-MMA plans of few queries too: widened queries)
            out.append(prefill_sm90_variant(head_dim, dtype, False, SM90_FP8_SHORT_TILES[head_dim],
                                            kv_dtype=kv_dtype, q_dtype=q_dtype))
    else:
        tiles = [SM90_TILES[head_dim]] + ([SM90_LONG_TILES[head_dim]] if head_dim in SM90_LONG_TILES else [])
        out = [prefill_sm90_variant(head_dim, dtype, pp, t) for t in tiles for pp in (True, False)
               if not (pp and t is not SM90_TILES[head_dim])]
        if head_dim in SM90_SHORT_TILES:
            out.append(prefill_sm90_variant(head_dim, dtype, False, SM90_SHORT_TILES[head_dim]))
    return tuple(out + [kv_offsets_variant(arch)])


def all_variants() -> list[KernelVariant]:
    out = []
    for arch in (HOPPER_ARCH, PORTABLE_ARCH):
        out += [prefill_sm80_variant(hd, dt, arch, units) for units in (True, False)
                for hd in HEAD_DIMS for dt in DTYPES]
        out.append(kv_offsets_variant(arch))
    out += [prefill_sm90_variant(hd, dt) for hd in HEAD_DIMS for dt in DTYPES]
    out += [prefill_sm90_variant(hd, dt, pingpong=False) for hd in HEAD_DIMS for dt in DTYPES]
    out += [prefill_sm90_variant(hd, dt, pingpong=False, tile=tile) for hd, tile in SM90_LONG_TILES.items()
            for dt in DTYPES]
    out += [prefill_sm90_variant(hd, dt, pingpong=False, tile=tile) for hd, tile in SM90_SHORT_TILES.items()
            for dt in DTYPES]
    out += [prefill_sm90_variant(hd, dt, pp, tile, split=True) for hd in HEAD_DIMS for dt in DTYPES
            for pp, tile in ((True, SM90_TILES[hd]), (False, SM90_TILES[hd]), (False, SM90_LONG_TILES.get(hd)))
            if tile is not None]
    out.append(merge_split_variant())
    return out + fp8_variants() + fp8_q_variants()


def fp8_variants() -> list[KernelVariant]:
    """The fp8-cache builds (16-bit queries): sm90 with and without turn-taking and their split-KV
    twins, the sm90 short tiles (SM90_FP8_SHORT_TILES), sm80 for both archs and both offset tables, for
    every head dim, query dtype and fp8 kind."""
    out = []
    for kv in FP8_KV_DTYPES:
        for arch in (HOPPER_ARCH, PORTABLE_ARCH):
            out += [prefill_sm80_variant(hd, dt, arch, units, kv) for units in (True, False)
                    for hd in HEAD_DIMS for dt in DTYPES]
        out += [prefill_sm90_variant(hd, dt, pp, split=split, kv_dtype=kv) for split in (False, True)
                for pp in (True, False) for hd in HEAD_DIMS for dt in DTYPES]
        out += [prefill_sm90_variant(hd, dt, False, tile, kv_dtype=kv) for hd, tile in SM90_FP8_SHORT_TILES.items()
                for dt in DTYPES]
    return out


def fp8_q_variants() -> list[KernelVariant]:
    """The fp8-query builds (e4m3 or e5m2 queries on a cache of the same kind, output dtype fp16 or
    bf16): sm90 with and without turn-taking and their split-KV twins, sm80 for both archs and both
    offset tables, for every head dim; the e4m3-wgmma sm90 builds (fp8_mma, e4m3 only) of
    SM90_FP8_MMA_TILES likewise; and the sm90 short tiles (SM90_FP8_SHORT_TILES, queries widened)."""
    out = []
    for q in FP8_Q_DTYPES:
        kv = q
        for arch in (HOPPER_ARCH, PORTABLE_ARCH):
            out += [prefill_sm80_variant(hd, dt, arch, units, kv, q) for units in (True, False)
                    for hd in HEAD_DIMS for dt in DTYPES]
        out += [prefill_sm90_variant(hd, dt, pp, split=split, kv_dtype=kv, q_dtype=q) for split in (False, True)
                for pp in (True, False) for hd in HEAD_DIMS for dt in DTYPES]
        if q_fp8_code(q) == 1:
            out += [prefill_sm90_variant(hd, dt, pp, split=split, kv_dtype=kv, q_dtype=q, fp8_mma=True)
                    for split in (False, True) for pp in (True, False) for hd in SM90_FP8_MMA_TILES for dt in DTYPES]
        out += [prefill_sm90_variant(hd, dt, False, tile, kv_dtype=kv, q_dtype=q)
                for hd, tile in SM90_FP8_SHORT_TILES.items() for dt in DTYPES]
    return out


def default_variants(backend: str = "sm90", arch: str = HOPPER_ARCH) -> list[KernelVariant]:
    """The common case (head_dim 128, both dtypes) of one backend: what the demo warms up."""
    return sorted({v for dt in DTYPES for v in builds_of(backend, arch, 128, dt)}, key=lambda v: v.name)
