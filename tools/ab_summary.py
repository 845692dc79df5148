"""Per-workload medians of tools/ab.sh rounds (files LABEL__rN.json written by bench.py --json).

    python3 tools/ab_summary.py RUNS_DIR [--base A] [--json OUT]     # the table
    python3 tools/ab_summary.py --brief RUN.json                     # one line: W TFLOP/s ...
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import format_table  # noqa: E402

RUN_FILE = re.compile(r"^(?P<label>.+)__r(?P<round>\d+)\.json$")


def collect(runs_dir: Path) -> tuple[dict, list[str]]:
    """{label: {workload: [TFLOP/s of each round]}} and the workload ids in first-seen order."""
    data, order = {}, []
    for p in sorted(runs_dir.glob("*__r*.json")):
        m = RUN_FILE.match(p.name)
        if not m:
            continue
        try:
            rows = json.loads(p.read_text())["rows"]
        except (OSError, ValueError, KeyError):
            continue
        per = data.setdefault(m["label"], {})
        for r in rows:
            if r["workload"] not in order:
                order.append(r["workload"])
            if r.get("tflops"):
                per.setdefault(r["workload"], []).append(r["tflops"])
    return data, order


def summarize(data: dict, order: list[str], base: str) -> dict:
    """{workload: {label: {"median", "min", "max", "n", "ratio" (vs base)}}}."""
    out = {}
    for wid in order:
        cells = {}
        for label, per in data.items():
            vals = per.get(wid, [])
            if vals:
                cells[label] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                                "n": len(vals)}
        ref = cells.get(base, {}).get("median")
        for label, c in cells.items():
            c["ratio"] = c["median"] / ref if ref and label != base else None
        out[wid] = cells
    return out


def table(summary: dict, labels: list[str], base: str) -> list[str]:
    head = ["W"]
    for label in labels:
        head += [f"{label} median", "min-max", "n"] + ([f"x {base}"] if label != base else [])
    lines = []
    for wid, cells in summary.items():
        line = [wid]
        for label in labels:
            c = cells.get(label)
            if c is None:
                line += ["-", "-", "0"] + (["-"] if label != base else [])
                continue
            line += [f"{c['median']:.1f}", f"{c['min']:.1f}-{c['max']:.1f}", str(c["n"])]
            if label != base:
                line.append(f"{c['ratio']:.3f}" if c["ratio"] else "-")
        lines.append(line)
    return format_table(head, lines)


def brief(path: Path) -> str:
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no result ({type(exc).__name__})"
    return ", ".join(f"{r['workload']} {r['tflops']:.1f}" if r.get("tflops") else f"{r['workload']} {r.get('status')}"
                     for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="?", help="folder of LABEL__rN.json files")
    ap.add_argument("--base", default="A", help="label the others are divided by")
    ap.add_argument("--json", default=None, help="write the medians here")
    ap.add_argument("--brief", default=None, metavar="RUN.json", help="one line for one run")
    args = ap.parse_args(argv)
    if args.brief:
        print(brief(Path(args.brief)))
        return 0
    if not args.runs:
        ap.error("RUNS_DIR or --brief is needed")
    data, order = collect(Path(args.runs))
    if not data:
        print(f"no rounds under {args.runs}")
        return 1
    labels = [args.base] * (args.base in data) + sorted(k for k in data if k != args.base)
    summary = summarize(data, order, args.base)
    if args.json:
        Path(args.json).write_text(json.dumps({"base": args.base, "tflops": summary}, indent=1))
    print(f"TFLOP/s, median over rounds (tools/ab.sh), x = median / {args.base}'s median")
    for line in table(summary, labels, args.base):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
