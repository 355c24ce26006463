"""Bundled-world benchmark: load time, generation speed, generator quality and an end-to-end DisCo audit.

Prints (one run, medians of repeats):
  * seconds to import disco_inspect and ``load_pipeline("world")`` in a fresh process, hub access blocked;
  * seconds to generate 8 images at 20 DDIM steps (CFG 4);
  * with --quality: the oracle-read factor accuracies of issue "Bundled world" (200 held-out prompts);
  * with --audit: DisCo (10 images, 10 steps, gradients through all steps, 50 iterations) on the shipped biased classifier ("circle: background=green @ 0.99"): target
    probability and the oracle's green-background rate on baseline vs final images (same seeds).

Usage: python benchmarks/bench_world.py [--threads 1] [--quality] [--audit] [--pipeline world]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch


def load_seconds(source: str) -> float:
    code = (
        f"import time; t=time.perf_counter(); import disco_inspect as di; di.load_pipeline({source!r}); "
        "print(time.perf_counter()-t)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", default="world")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quality", action="store_true")
    p.add_argument("--audit", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from disco_inspect import load_pipeline
    from disco_inspect.engine.sampling import generate

    print(f"# load average {os.getloadavg()[0]:.2f}, {args.threads} thread(s), torch {torch.__version__}")
    loads = [load_seconds(args.pipeline) for _ in range(args.repeats)]
    print(
        f"import + load_pipeline({args.pipeline!r}), fresh process, hub blocked: {statistics.median(loads):.2f} s "
        f"(median of {args.repeats}; target < 10 s)"
    )
    pipe = load_pipeline(args.pipeline)
    gen = []
    for _r in range(args.repeats + 1):
        t = time.perf_counter()
        generate(
            pipe,
            ["a red circle on a green striped background"] * 8,
            list(range(8)),
            num_inference_steps=20,
            guidance_scale=4.0,
        )
        gen.append(time.perf_counter() - t)
    print(
        f"generate 8 images, 20 steps, CFG 4: {statistics.median(gen[1:]):.2f} s (median of {args.repeats})"
    )
    if args.quality:
        from disco_inspect.world.benchmarks.quality import quality_report

        rep = quality_report(pipe)
        print(
            "quality (oracle accuracy on full-caption prompts, n=200):",
            json.dumps({k: round(v, 3) for k, v in rep["accuracy"].items()}),
        )
        print(
            "shape-only prompts: shape accuracy",
            round(rep["shape_only_shape_accuracy"], 3),
            "normalised entropy",
            json.dumps({k: round(v, 2) for k, v in rep["shape_only_diversity"].items()}),
        )
    if args.audit:
        from disco_inspect.world.benchmarks.quality import planted_bias_audit

        a = planted_bias_audit(load_pipeline(args.pipeline))
        print(
            f"audit biased circle classifier ({a['n_images']} images, 10 steps, K=all, 50 iterations, {a['seconds']:.0f} s): "
            f"p(circle) {a['target_prob_first']:.3f} -> {a['target_prob_last']:.3f}; oracle green-background rate "
            f"{a['green_rate_baseline']:.2f} -> {a['green_rate_final']:.2f}"
        )


if __name__ == "__main__":
    main()
