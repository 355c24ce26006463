"""Cost of counterfactual editing on this CPU (issue 10, item 7): inversion + deterministic edit + 4 samples of 8
world images, and null-text inversion per image as a ratio to one plain generation. Medians of --repeats runs.

    python benchmarks/edit_perf.py --token reports/edit-benchmark/run --out reports/edit-benchmark/perf.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--token", required=True)
    ap.add_argument("--out", default="reports/edit-benchmark/perf.json")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from disco_inspect.editing.edit import edit
    from disco_inspect.editing.inversion import invert
    from disco_inspect.engine.sampling import generate
    from disco_inspect.models.pipelines import load_pipeline
    from disco_inspect.world.benchmarks.edits import circle_scenes
    from disco_inspect.world.presets import WORLD_EDIT

    pipe = load_pipeline("world")
    scenes = circle_scenes(8, seed=1)
    steps, g = WORLD_EDIT["num_inference_steps"], WORLD_EDIT["guidance_scale"]
    kw = {"cross_replace": WORLD_EDIT["cross_replace"], "self_replace": WORLD_EDIT["self_replace"]}
    times: dict[str, list[float]] = {
        "generate_8": [],
        "invert_8": [],
        "plain_invert_8": [],
        "edit_8": [],
        "noise_4_samples_8": [],
    }
    for _ in range(args.repeats):
        t = time.perf_counter()
        generate(pipe, scenes.captions, list(range(8)), num_inference_steps=steps, guidance_scale=g)
        times["generate_8"].append(time.perf_counter() - t)
        t = time.perf_counter()
        invert(
            pipe,
            scenes.images,
            scenes.captions,
            num_inference_steps=steps,
            guidance_scale=g,
            inner_steps=0,
            progress=False,
        )
        times["plain_invert_8"].append(time.perf_counter() - t)
        t = time.perf_counter()
        inv = invert(
            pipe, scenes.images, scenes.captions, num_inference_steps=steps, guidance_scale=g, progress=False
        )
        times["invert_8"].append(time.perf_counter() - t)
        t = time.perf_counter()
        edit(pipe, inv, args.token, class_name="circle", progress=False, **kw)
        times["edit_8"].append(time.perf_counter() - t)
        t = time.perf_counter()
        edit(pipe, inv, args.token, class_name="circle", method="noise", samples=4, progress=False, **kw)
        times["noise_4_samples_8"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "median_seconds": med,
        "runs": times,
        "threads": args.threads,
        "images": 8,
        "steps": steps,
        "null_text_per_image_vs_one_generation": (med["invert_8"] / 8) / (med["generate_8"] / 8),
        "whole_job_seconds": med["invert_8"] + med["noise_4_samples_8"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        json.dumps({k: round(v, 2) for k, v in med.items()}),
        "ratio",
        round(result["null_text_per_image_vs_one_generation"], 1),
    )


if __name__ == "__main__":
    main()
