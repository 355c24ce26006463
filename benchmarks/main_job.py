"""The main job's cost (issue 24 item 3): wall clock, peak RSS and a per-stage breakdown of
``disco-inspect report world:biased_circle_green --class circle`` from an empty folder, in a fresh process.

Stages come from the report's ``timings`` (token, evaluation, null control, scan, real data, attributions, report);
``imports and loads`` is what a fresh process spends importing the CLI, torch and diffusers and loading the world
pipeline and classifier (timed in a separate process just before); the rest of the wall clock is ``other``
(interpreter start, argument checks, the classifier's fingerprint, the console summary, exit).

    python benchmarks/main_job.py --out benchmarks/results/main-job.json [--repeats 1] [--images DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = (
    "import time; t = time.perf_counter(); import disco_inspect.cli, disco_inspect.auditor, torch, diffusers; "
    "from disco_inspect.models.pipelines import load_pipeline; from disco_inspect.models.classifiers import "
    "load_classifier; load_pipeline('world'); load_classifier('world:biased_circle_green'); "
    "print(time.perf_counter() - t)"
)


def one_run(images: str | None, threads: int | None) -> dict[str, object]:
    """One main job in a fresh process from an empty folder: wall seconds, peak RSS, the report's stage timings."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "disco_inspect.cli",
            "report",
            "world:biased_circle_green",
            "--class",
            "circle",
        ]
        cmd += ["--out", tmp, "--no-progress"]
        cmd += ["--images", images] if images else []
        cmd += ["--threads", str(threads)] if threads else []
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        (report,) = Path(tmp).glob("*/*/report.json")
        timings = json.loads(report.read_text())["timings"]
    return {
        "wall": wall,
        "peak_rss_gb": max(peak, before) / 1024**2,
        "timings": timings,
        "stdout": proc.stdout,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/main-job.json")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--images", default=None, help="also pass --images DIR (the user's images)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    loads = [
        float(
            subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True).stdout
        )
    ]
    runs = [one_run(args.images, args.threads) for _ in range(args.repeats)]
    wall = statistics.median(r["wall"] for r in runs)
    stages = {k: statistics.median(r["timings"][k] for r in runs) for k in runs[0]["timings"]}
    breakdown = {"imports and loads": loads[0], **stages}
    breakdown["other"] = wall - sum(breakdown.values())
    result = {
        "command": "disco-inspect report world:biased_circle_green --class circle"
        + (f" --images {args.images}" if args.images else ""),
        "wall_seconds": wall,
        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
        "breakdown_seconds": breakdown,
        "runs": [{k: v for k, v in r.items() if k != "stdout"} for r in runs],
        "printed": runs[-1]["stdout"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wall {wall:.1f} s, peak RSS {result['peak_rss_gb']:.2f} GB")
    for k, v in breakdown.items():
        print(f"  {k:<18} {v:6.1f} s")
    print(runs[-1]["stdout"])


if __name__ == "__main__":
    main()
