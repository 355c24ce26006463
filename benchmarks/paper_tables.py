"""The source paper's Table 1 and Table 3 on the bundled world (issue 12, items 3 and 5).

Table 1: top-1/top-5 of generated images without and with each class's learned token, 100 paired seeds per class,
for the clean world classifier and for a weak one (a clean classifier trained for only 150 steps: 0.69 accuracy on
rendered scenes, docs/lab-notes.md). Table 3: FID between 64 generated and 64 rendered scenes per class, without
and with each classifier's tokens, in the oracle's penultimate features.

    python benchmarks/scale_world.py --out reports/scale-benchmark        # the clean classifier's 4 audits
    python benchmarks/paper_tables.py --clean-runs reports/scale-benchmark/parallel --out reports/paper-tables

The weak classifier and its 4 audits are made here (resumable: a rerun reuses them). Table 2 is
benchmarks/paper_table2.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "disco_inspect.cli"]


def sh(args: list[str], log: Path) -> None:
    """Run the CLI with ``args`` (output appended to ``log``); raise if it fails."""
    with log.open("a") as f:
        f.write(f"$ disco-inspect {' '.join(args)}\n")
        f.flush()
        subprocess.run([*CLI, *args], stdout=f, stderr=subprocess.STDOUT, check=True)


def table3(clean_runs: Path, out: Path, n: int, threads: int) -> dict:
    """FID (oracle features) per class, without and with the clean classifier's tokens."""
    import torch

    torch.set_num_threads(threads)
    from disco_inspect.engine.token_run import TokenRun
    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.benchmarks.oracle_fid import world_fid_table
    from disco_inspect.world.vocabulary import SHAPES

    pipe = load_pipeline("world")
    runs = {c: TokenRun.load(next(clean_runs.glob(f"*/{i}-{c}/run"))) for i, c in enumerate(SHAPES)}
    return world_fid_table(pipe, runs, n=n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--clean-runs", default="reports/scale-benchmark/parallel", help="report --out of world:clean"
    )
    ap.add_argument("--out", default="reports/paper-tables")
    ap.add_argument("--weak-steps", type=int, default=150)
    ap.add_argument("--n-seeds", type=int, default=100)
    ap.add_argument("--fid-n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "paper_tables.log"
    start = time.perf_counter()
    weak = out / "weak.pt"
    if not weak.is_file():
        sh(
            [
                "world",
                "make-classifier",
                "--train-steps",
                str(args.weak_steps),
                "--seed",
                "0",
                "--out",
                str(weak),
            ],
            log,
        )
    audits = out / "audits"
    sh(
        ["report", str(weak), "--classes", "all", "--out", str(audits), "--workers", "2", "--threads", "1"],
        log,
    )
    tables = {}
    for name, model, runs in (("clean", "world:clean", args.clean_runs), ("weak", str(weak), str(audits))):
        dest = out / f"table1-{name}.json"
        sh(
            ["evaluate", model, "--classes", "all", "--runs", runs, "--eval-seeds", str(args.n_seeds)]
            + ["--json", str(dest), "--workers", "1", "--threads", str(args.threads), "--no-progress"],
            log,
        )
        tables[name] = json.loads(dest.read_text())["table"]
    from disco_inspect.analysis.accuracy import format_accuracy_table
    from disco_inspect.analysis.fid import format_fid_table

    t3 = {
        "clean": table3(Path(args.clean_runs), out, args.fid_n, args.threads),
        "weak": table3(audits, out, args.fid_n, args.threads),
    }
    (out / "table3.json").write_text(json.dumps(t3, indent=2) + "\n")
    md = [
        f"## Table 1, world:clean ({args.n_seeds} paired seeds per class)",
        format_accuracy_table(tables["clean"]),
    ]
    md += [
        f"## Table 1, weak classifier ({args.weak_steps} training steps)",
        format_accuracy_table(tables["weak"]),
    ]
    for name in ("clean", "weak"):
        md += [
            f"## Table 3, {name} classifier's tokens ({args.fid_n} images per set)",
            format_fid_table(t3[name]),
        ]
    text = "\n\n".join(md) + "\n"
    (out / "tables.md").write_text(text)
    print(text)
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
