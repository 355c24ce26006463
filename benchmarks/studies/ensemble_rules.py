"""Reprint a benchmark run made with several references (``--reference R1,...,R5 --scan-scale auto
--confirm-differential``) under two confirmation rules, from its files:

- ``audit``: what the audit confirms — the audited model's own effect confirmed (q < alpha, above the margin) *and*
  beyond the references' spread (the between-models test);
- ``between only`` (diagnostic): the between-models test alone.

Each confirmation is judged on rendered scenes as the benchmark does (real when its scene gap >= REAL_GAP).

    python benchmarks/studies/ensemble_rules.py reports/world-saturated-ensemble [reports/world-clean-ensemble ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.world.benchmarks.randomised import REAL_GAP, scene_reliance

    for folder in map(Path, sys.argv[1:]):
        name = next(folder.glob("*_benchmark.json"))
        doc = json.loads(name.read_text())
        print(f"== {folder}")
        tally = {"audit": [0, 0, 0, 0], "between only": [0, 0, 0, 0]}  # planted top3, relied, real, confirmed
        for row in doc["cases"]:
            report = json.loads((folder / row["name"] / "report.json").read_text())
            ranked = report["factors"]["ranked"]
            rules = {
                "audit": [f["concept"] for f in ranked if f["confirmed"]],
                "between only": [
                    f["concept"]
                    for f in sorted(
                        ranked, key=lambda f: -f["intervention"]["reference"]["differential"]["effect"]
                    )
                    if f["intervention"]["reference"]["between_models"]["significant"]
                ],
            }
            truth = None
            if any(rules.values()):
                clf = load_classifier(folder / "classifiers" / f"{row['name']}.pt")
                truth = scene_reliance(clf, row["class_name"])
            line = f"{row['name']:<7} {row['bias'] or 'clean (' + row['class_name'] + ')':<34} "
            line += f"gap {row['planted_gap'] if row['planted_gap'] is not None else float('nan'):5.2f} "
            for rule, confirmed in rules.items():
                t = tally[rule]
                if row.get("relied"):
                    t[1] += 1
                    t[0] += row["planted"] in confirmed[:3]
                real = [truth[c]["gap"] >= REAL_GAP for c in confirmed] if truth else []
                t[2] += sum(real)
                t[3] += len(confirmed)
                shown = [c + ("" if r else " (NOT real)") for c, r in zip(confirmed, real, strict=True)]
                line += f"| {rule}: {', '.join(shown) or 'none'} "
            print(line)
        for rule, (hit, relied, real, n) in tally.items():
            print(
                f"{rule}: planted confirmed in the top 3 on {hit}/{relied} relied-on cases; "
                f"{real}/{n} confirmed factors real on scenes"
            )


if __name__ == "__main__":
    main()
