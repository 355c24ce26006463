"""Peak memory of token training on an SD-1.5-shaped pipeline (issue 23, item 5): gradients through the last step
only (K=1, the paper's gradient skipping) vs through every step, each with and without gradient checkpointing.

The pipeline is SD 1.5's published configuration at full widths with random weights (``sd_shaped_pipeline``),
at 256 px; one token iteration on one image with CFG. Each configuration runs in its own process, so its peak RSS
is its own; the baseline is the RSS after the pipeline is built (weights), and the peak minus it is what training
adds (activations kept for the backward pass). CPU RSS, not GPU memory: the ratios carry over, the bytes do not.

Run: ``python benchmarks/memory_sd15.py [--size 256] [--steps 10]`` (writes benchmarks/results/memory-sd15.json).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "memory-sd15.json"
CONFIGS = {
    "K=1": {"grad_steps": 1, "gradient_checkpointing": False},
    "K=1, checkpointing": {"grad_steps": 1, "gradient_checkpointing": True},
    "all steps": {"grad_steps": -1, "gradient_checkpointing": False},
    "all steps, checkpointing": {"grad_steps": -1, "gradient_checkpointing": True},
}


def _rss_gb() -> float:
    """This process's current resident set (Linux /proc), in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def measure(name: str, size: int, steps: int) -> dict:
    """One configuration, in this process: build the pipeline, train one iteration, report the memory."""
    import tempfile

    import torch

    from disco_inspect.config import DiscoConfig
    from disco_inspect.engine.optimize import train_token
    from disco_inspect.testing import sd_shaped_pipeline, tiny_classifier

    torch.set_num_threads(2)
    pipe = sd_shaped_pipeline("sd15", image_size=size)
    base = _rss_gb()
    cfg = DiscoConfig(
        max_iters=1, n_images=1, num_inference_steps=steps, guidance_scale=7.0, seed=0, **CONFIGS[name]
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train_token(pipe, tiny_classifier(seed=0, input_size=size), 0, config=cfg, out=tmp, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {
        "config": name,
        "baseline_gb": base,
        "peak_gb": peak,
        "added_gb": peak - base,
        "seconds": time.perf_counter() - t,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: measure this configuration
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.steps)))
        return
    rows = []
    for name in CONFIGS:
        cmd = [sys.executable, __file__, "--one", name, "--size", str(args.size), "--steps", str(args.steps)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    doc = {
        "what": f"SD-1.5-shaped, {args.size} px, {args.steps} steps, CFG 7, 1 image, 1 iteration",
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
