"""Is the benchmark's ground truth blind in the saturated regime? Measure each case's reliance on its planted factor
on *rendered* scenes twice: as the benchmark does (accuracy with the value minus accuracy with the other values, the
``gap``) and on the target's log-odds (mean log-odds with the value minus the mean over the other values), for the
audited classifier and for the clean references, with the between-models t of the benchmark's test.

Accuracy saturates: a classifier at p ~ 1 that becomes much less confident (but still right) on scenes without the
factor has gap ~ 0. This script is a diagnostic; the benchmark's precision stays judged on the stated accuracy gap.

    python benchmarks/studies/scene_logodds.py reports/world-saturated-ensemble-64 [more folders] \
        --reference reports/world-references/clean-4242.pt,...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


@torch.no_grad()
def logodds_effect(classifier, scenes: dict[str, torch.Tensor], shape: str, concept: str) -> float:
    """Mean target log-odds on ``scenes`` (per value, from ``factor_scenes``) with the concept's value minus the mean
    over the other values."""
    from disco_inspect.engine.records import target_log_odds
    from disco_inspect.world.scenes import SHAPES

    value = concept.split("=")[1]
    means = {v: float(target_log_odds(classifier, x, SHAPES.index(shape)).mean()) for v, x in scenes.items()}
    others = [m for v, m in means.items() if v != value]
    return means[value] - sum(others) / len(others)


def main() -> None:
    from disco_inspect.analysis.stats import between_models
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.world.benchmarks.randomised import (
        REAL_GAP,
        SCENES_PER_VALUE,
        factor_scenes,
        scene_reliance,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--reference", required=True, help="comma-separated clean reference classifiers")
    ap.add_argument("--scenes", type=int, default=SCENES_PER_VALUE)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    refs = [load_classifier(p) for p in args.reference.split(",")]
    print(
        f"{'case':<7} {'concept (planted first)':<30} {'acc gap':>7} {'real':>5} {'conf':>5} {'scene logodds':>13} "
        f"{'refs (min..max)':>17} {'t':>6}"
    )
    for folder in args.folders:
        doc = json.loads(next(folder.glob("*_benchmark.json")).read_text())
        print(f"== {folder}")
        for row in doc["cases"]:
            if not row.get("planted"):
                continue
            clf = load_classifier(folder / "classifiers" / f"{row['name']}.pt")
            shape = row["class_name"]
            concepts = list(dict.fromkeys([row["planted"], *row["confirmed"]]))
            factors = list(dict.fromkeys(c.split("=")[0] for c in concepts))
            truth = scene_reliance(clf, shape, args.scenes, factors=factors)
            for concept in concepts:
                scenes = factor_scenes(shape, concept.split("=")[0], args.scenes)
                own = logodds_effect(clf, scenes, shape, concept)
                ref = [logodds_effect(r, scenes, shape, concept) for r in refs]
                t = float(between_models(torch.tensor([own]), torch.tensor(ref)[:, None]).t[0])
                conf = "yes" if concept in row["confirmed"] else "-"
                gap = truth[concept]["gap"]
                real = "yes" if gap >= REAL_GAP else "no"
                print(
                    f"{row['name']:<7} {shape + ': ' + concept:<30} {gap:7.2f} {real:>5} {conf:>5} {own:+13.2f} "
                    f"{min(ref):+8.2f}..{max(ref):+.2f} {t:6.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
