"""Reprint the saturated-stratum benchmark from its files, adding each case's ``planted_causal_rank`` (rank of the
planted factor among all scanned concepts by the scan's effect; runs that predate the field get it from the case's
``report.json``), and rewrite ``saturated_benchmark.json`` with it.

    python benchmarks/studies/saturated_summary.py [reports/world-saturated-benchmark]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from disco_inspect.io import write_json
from disco_inspect.world.benchmarks.randomised import (
    benchmark_summary,
    causal_rank,
    format_row,
    format_summary,
)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/world-saturated-benchmark")
    doc = json.loads((out / "saturated_benchmark.json").read_text())
    for row in doc["cases"]:
        if row.get("planted_causal_rank") is None and row["planted"]:
            report = json.loads((out / row["name"] / "report.json").read_text())
            row["planted_causal_rank"] = causal_rank(report["factors"], row["planted"])
    wall = doc["summary"].get("wall_seconds")
    doc["summary"] = {
        **benchmark_summary(doc["cases"]),
        "n_draws": doc["summary"]["n_draws"],
        "n_screened_out": doc["summary"]["n_screened_out"],
        **({"wall_seconds": wall} if wall is not None else {}),
    }
    write_json(out / "saturated_benchmark.json", doc)
    for row in doc["cases"]:
        print(format_row(row), f" causal rank {row['planted_causal_rank']}")
    for row in doc["screened_out"]:
        print(
            f"{row['name']:<8} {row['bias']:<36} screened out: baseline p(target) {row['baseline_target_prob']:.2f}"
        )
    s = doc["summary"]
    print(format_summary(s) + f"; drawn {s['n_draws']}, screened out {s['n_screened_out']}")


if __name__ == "__main__":
    main()
