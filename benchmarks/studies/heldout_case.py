"""Held-out planted bias (issue 22, items 4 and 7): a square classifier relying on *small* squares, a bias outside
the project's examples and outside the saturated strata (the generator draws small squares on fewer than half of
its "a square" images, so the stratum's rejection sampling never draws it).

The issue measured it on main 949c554 with 16 fixed seeds: the scan's effect was right (+0.16 p(square)) but
Benjamini-Hochberg over 20 concepts left q 0.16, so nothing about size was reported. This script audits the same
kind of classifier with the report's defaults (adaptive seeds in the saturated regime), then again with 64 of "your"
images drawn from its training distribution, and prints the planted factor's evidence in each run:

    python benchmarks/studies/heldout_case.py --threads 2

Output: the two benchmark rows under ``reports/heldout-case/<rate>-<steps>steps-seed<seed>/`` and the lines on stdout (kept in
``benchmarks/results/heldout_case.last.txt``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CASE = {
    "name": "heldout-small-squares",
    "bias": "square: size=small @ 0.99",
    "class_name": "square",
    "planted": "size=small",
    "train_seed": 0,
}


def _evidence(folder: Path, concept: str) -> dict:
    """The concept's evidence lines (per channel: effect, CI, q, n) in the audit's report.json."""
    doc = json.loads((folder / "report.json").read_text())
    for f in doc["factors"]["ranked"]:
        if f["concept"] == concept:
            keep = ("effect", "ci_low", "ci_high", "q_value", "n", "supports", "took_rate")
            return {
                ch: {k: round(v[k], 3) if isinstance(v[k], float) else v[k] for k in keep if k in v}
                for ch, v in (f.get("evidence") or {}).items()
                if isinstance(v, dict)
            }
    return {}


def _line(row: dict, folder: Path) -> str:
    """The planted factor's ground truth, rank, confirmation and evidence in one audited run."""
    planted, acc = row["planted"], row["planted_acc"]
    return (
        f"gap on scenes {row['planted_gap']:.2f} (accuracy with {acc['acc_with']:.2f}, without "
        f"{acc['acc_without']:.2f}); baseline p(target) {row['baseline_target_prob']:.2f} ({row['regime']}); "
        f"reported {row['reported'][:5]}; confirmed {row['confirmed']}; planted rank {row['planted_rank']}, "
        f"confirmed {row['planted_confirmed']}; its evidence {json.dumps(_evidence(folder, planted))}; "
        f"{row.get('evidence') or ''}"
    )


def main() -> None:
    """Audit the held-out case without and with 64 images and print both."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="reports/heldout-case")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--bias", default=CASE["bias"], help="e.g. 'square: size=small @ 0.9'")
    ap.add_argument(
        "--train-steps", type=int, default=None, help="classifier training steps (benchmark default)"
    )
    ap.add_argument("--train-seed", type=int, default=CASE["train_seed"])
    args = ap.parse_args()

    import torch

    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.benchmarks.randomised import audit_case

    torch.set_num_threads(args.threads)
    pipe = load_pipeline("world")
    from disco_inspect.world.benchmarks.randomised import CLASSIFIER_STEPS

    steps = args.train_steps or CLASSIFIER_STEPS
    case = {**CASE, "bias": args.bias, "train_seed": args.train_seed}
    tag = f"{args.bias.split('@')[-1].strip()}-{steps}steps-seed{args.train_seed}"
    out = Path(args.out) / tag
    import shutil

    trained = None
    for label, k in (("without images", 0), (f"with {args.images} images", args.images)):
        run = out / label.replace(" ", "-")
        # train once, audit twice
        if trained is not None and not (run / "classifiers" / trained.name).is_file():
            (run / "classifiers").mkdir(parents=True, exist_ok=True)
            shutil.copy2(trained, run / "classifiers" / trained.name)
        row = audit_case(case, run, images=k, steps=steps, pipe=pipe, progress=False)
        head = f"{case['bias']} ({steps} training steps, seed {args.train_seed}), {label}"
        print(f"{head}: {_line(row, run / case['name'])} [{row['seconds']:.0f} s]", flush=True)
        trained = run / "classifiers" / f"{case['name']}.pt"


if __name__ == "__main__":
    main()
