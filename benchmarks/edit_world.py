"""World ground truth of counterfactual editing (issue 10): the editing table of docs/benchmarks.md.

Learns the token for world:biased_circle_green exactly as the main job does (world preset), then inverts 32
rendered non-green circle scenes and edits them by every method (deterministic, noise, null-vae, cond-vae).
With ``--inversions``: instead, the inversion methods side by side (null-text, negative-prompt, direct; issue 24):
reconstruction, green rate, shape kept, Δp(circle), seconds per image and the ratio to one generation (medians of
``--repeats`` runs, all in this one run).

    python benchmarks/edit_world.py --out reports/edit-benchmark   # ~5 min on 2 CPU cores
    python benchmarks/edit_world.py --inversions --token reports/edit-benchmark/run --out reports/inversions
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="reports/edit-benchmark")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--token", default=None, help="an existing token file/run folder (default: learn it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inversions", action="store_true", help="compare the inversion methods instead")
    ap.add_argument("--repeats", type=int, default=3, help="--inversions: timed runs per method (medians)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from disco_inspect.auditor import default_config
    from disco_inspect.engine.optimize import train_token
    from disco_inspect.models.classifiers import load_classifier
    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.benchmarks.edits import CLASS_NAME, CLASSIFIER, format_table, run_edit_benchmark
    from disco_inspect.world.make import resolve_model

    out = Path(args.out)
    pipe = load_pipeline("world")
    clf = load_classifier(resolve_model(f"world:{CLASSIFIER}"))
    token = args.token
    t0 = time.perf_counter()
    if token is None:
        run = train_token(pipe, clf, CLASS_NAME, config=default_config(pipe), out=out / "run", progress=False)
        token = str(run.token_path)
    t_train = time.perf_counter() - t0
    if args.inversions:
        return _inversions(args, token, pipe, clf, out)
    result = run_edit_benchmark(
        token, n=args.n, samples=args.samples, pipe=pipe, classifier=clf, progress=False
    )
    result["seconds"]["token_training"] = t_train
    out.mkdir(parents=True, exist_ok=True)
    (out / "edit_benchmark.json").write_text(json.dumps(result, indent=2))
    table = format_table(result)
    (out / "edit_benchmark.md").write_text(table + "\n")
    print(table)
    print("seconds:", {k: round(v, 1) for k, v in result["seconds"].items()})


def _inversions(args: argparse.Namespace, token: str, pipe: object, clf: object, out: Path) -> None:
    """``--inversions``: the side-by-side table into OUT/inversion_benchmark.{json,md}."""
    from disco_inspect.world.benchmarks.inversions import compare_inversions, format_inversion_table

    result = compare_inversions(token, n=args.n, repeats=args.repeats, pipe=pipe, classifier=clf)
    result["threads"] = args.threads
    out.mkdir(parents=True, exist_ok=True)
    (out / "inversion_benchmark.json").write_text(json.dumps(result, indent=2))
    table = format_inversion_table(result)
    (out / "inversion_benchmark.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
