"""Quality check of the world's generator, read by the oracle (issue "Bundled world", acceptance 1-2).

For held-out scenes, the full caption ("a large red circle on a green striped background with a sun") is
fed to the pipeline; the oracle reads each factor of the generated image and is compared with the
caption. Shape-only prompts ("a circle") must give varied factors (a prior, not a constant).
:func:`planted_bias_audit` checks the other end: DisCo on the shipped biased classifier moves the oracle's
green-background rate up.

    python -m disco_inspect.world.benchmarks.quality --pipeline path/to/world  [--from-work world-work]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ...engine.sampling import generate
from ..oracle import WorldOracle, load_oracle
from ..scenes import FACTOR_VALUES, FACTORS, generate_scenes


@torch.no_grad()
def quality_report(
    pipe: Any,
    oracle: WorldOracle | None = None,
    *,
    n: int = 200,
    seed: int = 900_001,
    steps: int = 20,
    guidance: float = 4.0,
    batch_size: int = 50,
) -> dict[str, Any]:
    """Per-factor accuracy on full-caption prompts, object presence accuracy, and shape-only diversity."""
    oracle = oracle or load_oracle()
    scenes = generate_scenes(n, seed=seed, detail="full")
    seeds = list(range(seed, seed + n))
    images = generate(
        pipe,
        scenes.captions,
        seeds,
        num_inference_steps=steps,
        guidance_scale=guidance,
        batch_size=batch_size,
    )
    read = oracle.read(images)
    acc = {f: float((read[f] == scenes.factors[f]).float().mean()) for f in FACTORS}
    acc["object_presence"] = float(((read["object"] > 0) == (scenes.factors["object"] > 0)).float().mean())
    # shape-only prompts: the other factors should vary
    shapes = generate_scenes(n, seed=seed + 1, detail="shape")
    imgs2 = generate(
        pipe,
        shapes.captions,
        [s + n for s in seeds],
        num_inference_steps=steps,
        guidance_scale=guidance,
        batch_size=batch_size,
    )
    read2 = oracle.read(imgs2)
    diversity = {}
    for f in FACTORS:
        if f == "shape":
            continue
        counts = torch.bincount(read2[f], minlength=len(FACTOR_VALUES[f])).float()
        p = counts / counts.sum()
        ent = -(p[p > 0] * p[p > 0].log()).sum().item()
        diversity[f] = min(1.0, max(0.0, ent / math.log(len(FACTOR_VALUES[f]))))  # normalised entropy
    shape_only_acc = float((read2["shape"] == shapes.factors["shape"]).float().mean())
    return {
        "n": n,
        "steps": steps,
        "guidance": guidance,
        "accuracy": acc,
        "shape_only_shape_accuracy": shape_only_acc,
        "shape_only_diversity": diversity,
    }


def planted_bias_audit(pipe: Any, n_images: int = 10, iters: int = 50, lr: float = 0.005) -> dict[str, Any]:
    """DisCo for 'circle' under the shipped biased classifier; oracle green rate before/after."""
    from ...config import DiscoConfig
    from ...engine.optimize import train_token
    from ...models.classifiers import load_classifier
    from ..make import ASSETS
    from ..scenes import BACKGROUNDS

    clf = load_classifier(ASSETS / "classifiers" / "biased_circle_green.pt")
    cfg = DiscoConfig(
        n_images=n_images,
        num_inference_steps=10,
        guidance_scale=4.0,
        max_iters=iters,
        lr=lr,
        grad_steps=-1,
        accuracy_threshold=1.0,
        patience=iters,
        templates=("a photo of a {token} {class_name}", "a {token} {class_name}"),
    )
    t = time.perf_counter()
    run = train_token(pipe, clf, "circle", config=cfg, progress=False)
    seconds = time.perf_counter() - t
    oracle, green = load_oracle(), BACKGROUNDS.index("green")
    base, last = oracle.read(run.baseline_images), oracle.read(run.last_images)
    return {
        "seconds": seconds,
        "target_prob_first": run.target_probs()[0],
        "target_prob_last": run.target_probs()[-1],
        "green_rate_baseline": float((base["background"] == green).float().mean()),
        "green_rate_final": float((last["background"] == green).float().mean()),
        "n_images": n_images,
    }


def pipeline_from_work(work: Path, dest: Path | None = None) -> Any:
    """Export the EMA UNet + VAE of a (running) training folder to a pipeline and load it."""
    from ...models.pipelines import load_pipeline
    from ..model import build_unet, build_vae
    from ..train import WorldTrainConfig, export_pipeline, set_scaling_factor

    vae_state = torch.load(work / "vae_ckpt.pt", map_location="cpu", weights_only=True)
    unet_state = torch.load(work / "unet_ckpt.pt", map_location="cpu", weights_only=True)
    vae, unet = build_vae(), build_unet()
    vae.load_state_dict(vae_state["model"])
    unet.load_state_dict(unet_state["ema"])
    cfg_file = work / "config.json"
    cfg = WorldTrainConfig(**json.loads(cfg_file.read_text())) if cfg_file.exists() else WorldTrainConfig()
    set_scaling_factor(vae.eval(), cfg)  # the factor the UNet was trained with
    dest = dest or Path(tempfile.mkdtemp()) / "world"
    export_pipeline(vae, unet, dest)
    return load_pipeline(dest), int(unet_state["step"])


def main(argv: list[str] | None = None) -> int:
    """CLI: print the quality report as JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", default="world")
    p.add_argument("--from-work", default=None, help="evaluate the EMA weights of a training folder instead")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    step = None
    if args.from_work:
        pipe, step = pipeline_from_work(Path(args.from_work))
    else:
        from ...models.pipelines import load_pipeline

        pipe = load_pipeline(args.pipeline)
    report = quality_report(pipe, n=args.n, steps=args.steps, guidance=args.guidance)
    report["unet_step"] = step
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
