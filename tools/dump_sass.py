"""Compile every kernel variant (same compiler path and flags as the library) and dump its
PTX, cubin and SASS to <outdir>/<name>.{ptx,cubin,sass}, with one resource line per variant
(dsmem: the dynamic shared memory the launcher reads from the cubin, '-' for kernels without it).

    python tools/dump_sass.py                      # all variants -> build/sass/
    python tools/dump_sass.py --filter hd128 -o /tmp/sass
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from nvrtc_attn import compiler, cubin, sass  # noqa: E402
from nvrtc_attn.variants import all_variants  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--filter", default="", help="only variants whose name contains this substring")
    ap.add_argument("-o", "--outdir", default=str(REPO / "build" / "sass"), help="default: build/sass")
    ap.add_argument("-j", "--jobs", type=int, default=None, help="parallel compiles (default: CPUs)")
    ap.add_argument("--no-cache", action="store_true", help="always run NVRTC (cold timings)")
    args = ap.parse_args(argv)

    variants = [v for v in all_variants() if args.filter in v.name]
    if not variants:
        print(f"no variant name contains {args.filter!r}", file=sys.stderr)
        return 2
    if sass.missing_tools():
        print(sass.missing_tools(), file=sys.stderr)
        return 2
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    results = compiler.compile_all(
        variants, args.jobs, want_ptx=True, use_cache=not args.no_cache, return_exceptions=True
    )
    seconds = time.perf_counter() - t0

    nvrtc = ".".join(map(str, compiler.nvrtc_version()))
    print(f"NVRTC {nvrtc}, {len(variants)} variants in {seconds:.1f} s -> {outdir}")
    header = f"{'variant':<34} {'regs':>4} {'smem':>6} {'dsmem':>6} {'stack':>5} {'local':>5} {'STL':>4} {'LDL':>4}"
    print(header + "".join(f" {op:>7}" for op in sass.FLAG_OPCODES))
    failed = 0
    for ck in results:
        if isinstance(ck, compiler.CompileError):
            failed += 1
            print(f"{ck.variant:<34} COMPILE ERROR (log in {outdir / (ck.variant + '.log')})")
            (outdir / f"{ck.variant}.log").write_text(str(ck) + "\n")
            continue
        text = sass.sass_text(ck.cubin)
        (outdir / f"{ck.name}.ptx").write_text(ck.ptx or "")
        (outdir / f"{ck.name}.cubin").write_bytes(ck.cubin)
        (outdir / f"{ck.name}.sass").write_text(text)
        if ck.log:
            (outdir / f"{ck.name}.log").write_text(ck.log + "\n")
        r = sass.kernel_report(ck.cubin, ck.variant.entry, sass=text)
        try:
            dsmem = str(cubin.symbol_int(ck.cubin, cubin.SMEM_BYTES_SYMBOL))
        except KeyError:
            dsmem = "-"
        line = (
            f"{ck.name:<34} {r['registers']:>4} {r['shared']:>6} {dsmem:>6} {r['stack']:>5} {r['local']:>5} "
            f"{r['spill_stores']:>4} {r['spill_loads']:>4}"
        )
        print(line + "".join(f" {'yes' if r[op] else 'no':>7}" for op in sass.FLAG_OPCODES))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
