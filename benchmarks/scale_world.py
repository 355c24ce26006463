"""Many classes at once (issue 12, item 2): audit the 4 world classes of `world:clean` with 2 Ray workers x 1 torch
thread vs one after another with 1 worker x 2 threads, same command otherwise, each from an empty folder; wall-time
ratio. Run on an otherwise idle machine (2 cores): any other CPU load distorts both arms.

    python benchmarks/scale_world.py --out reports/scale-benchmark

The parallel arm's audits (OUT/parallel) are what benchmarks/paper_tables.py uses as the clean classifier's tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run(cmd: list[str], log: Path) -> float:
    """Wall seconds of ``cmd`` (its output goes to ``log``); raises if it fails."""
    start = time.perf_counter()
    with log.open("w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="reports/scale-benchmark")
    ap.add_argument("--model", default="world:clean")
    ap.add_argument("--classes", default="all")
    ap.add_argument(
        "--keep", action="store_true", help="reuse finished arms instead of starting from empty folders"
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = [sys.executable, "-m", "disco_inspect.cli", "report", args.model, "--classes", args.classes]
    arms = {
        "sequential": ["--workers", "1", "--threads", "2"],
        "parallel": ["--workers", "2", "--threads", "1"],
    }
    result = {"model": args.model, "classes": args.classes, "cpus": os.cpu_count(), "arms": {}}
    for name, flags in arms.items():
        folder = out / name
        if folder.exists() and not args.keep:
            shutil.rmtree(folder)
        seconds = run([*exe, "--out", str(folder), "--no-progress", *flags], out / f"{name}.log")
        result["arms"][name] = {"flags": " ".join(flags), "wall_s": round(seconds, 1)}
        print(f"{name:10s} {' '.join(flags):24s} {seconds:7.1f} s", flush=True)
    seq, par = result["arms"]["sequential"]["wall_s"], result["arms"]["parallel"]["wall_s"]
    result["speedup"] = round(seq / par, 2)
    print(f"speed-up of 2 workers x 1 thread over 1 worker x 2 threads: {result['speedup']:.2f}x")
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
