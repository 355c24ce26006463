"""The inversion methods side by side on the world's ground truth (issue 24): rendered non-green circles inverted by
null-text, negative-prompt and direct inversion, reconstructed and edited with the token learned for
``world:biased_circle_green``.

Per method: reconstruction PSNR/SSIM beside the VAE's own encode->decode ceiling, the deterministic edit's
background=green rate and shape accuracy (the oracle's reading), Δp(circle) with its paired CI (the classifier's),
and seconds per image of the inversion and of the edit as medians of ``repeats`` runs, with the ratio of the
inversion to one plain generation of the same images timed in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from .edits import CLASS_NAME, _load_bench, circle_scenes, oracle_rates


def compare_inversions(
    token: Any,
    *,
    n: int = 32,
    seed: int = 0,
    repeats: int = 3,
    methods: Sequence[str] | None = None,
    pipe: Any = None,
    classifier: Any = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Invert ``n`` rendered circle scenes by every method and edit them with ``token``; measure each (see the
    module docs). Returns ``{"settings", "generation_seconds_per_image", "vae", "methods": {method: row}}``."""
    from ...editing.inversion import INVERSION_METHODS, vae_roundtrip
    from ...editing.metrics import psnr, ssim

    # 1. the models, the scenes, and the plain generation every method's time is a ratio to
    bench = _load_bench(pipe, classifier, 0, progress, {})
    scenes = circle_scenes(n, seed)
    gen = _median_seconds(lambda: _generate(bench, scenes.captions), repeats) / n
    ceiling = vae_roundtrip(bench.pipe, scenes.images)
    vae = {
        "psnr": float(psnr(ceiling, scenes.images).mean()),
        "ssim": float(ssim(ceiling, scenes.images).mean()),
    }
    # 2. each method: inverted (timed), reconstructed and edited (timed), measured
    rows = {m: _method_row(bench, scenes, token, m, repeats, gen) for m in (methods or INVERSION_METHODS)}
    settings = {"n": n, "seed": seed, "repeats": repeats, "num_inference_steps": bench.steps, **bench.knobs}
    return {
        "settings": {**settings, "guidance_scale": bench.guidance},
        "generation_seconds_per_image": gen,
        "vae": vae,
        "methods": rows,
    }


def _median_seconds(job: Any, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``job()``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        job()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _generate(bench: Any, prompts: list[str]) -> Any:
    """One plain generation of the scenes' captions at the edit's steps and guidance."""
    from ...engine.sampling import generate

    return generate(
        bench.pipe,
        prompts,
        list(range(len(prompts))),
        num_inference_steps=bench.steps,
        guidance_scale=bench.guidance,
    )


def _method_row(bench: Any, scenes: Any, token: Any, method: str, repeats: int, gen: float) -> dict[str, Any]:
    """One inversion method's row (see the module docs)."""
    from ...editing.edit import edit
    from ...editing.inversion import invert
    from ...editing.measure import measure_edits
    from ...editing.metrics import classifier_features, psnr, ssim

    n = len(scenes.images)
    out: dict[str, Any] = {}

    def run_inversion() -> None:
        out["inv"] = invert(
            bench.pipe,
            scenes.images,
            scenes.captions,
            num_inference_steps=bench.steps,
            guidance_scale=bench.guidance,
            method=method,
            progress=bench.progress,
        )

    def run_edit() -> None:
        out["res"] = edit(
            bench.pipe, out["inv"], token, class_name=CLASS_NAME, progress=bench.progress, **bench.knobs
        )

    t_inv = _median_seconds(run_inversion, repeats) / n
    t_edit = _median_seconds(run_edit, repeats) / n
    res = out["res"]
    m = measure_edits(
        res, bench.clf, bench.target, scorer=bench.scorer, distance=classifier_features(bench.clf)
    )
    m = m["summary"]
    return {
        "reconstruction_psnr": float(psnr(res.reconstructions, scenes.images).mean()),
        "reconstruction_ssim": float(ssim(res.reconstructions, scenes.images).mean()),
        **oracle_rates(bench.oracle, res.edits),
        "delta_p": m["delta_p_edit"],
        "delta_p_ci95": m["delta_p_edit_ci95"],
        "edit_psnr": m["edit_psnr"],
        "edit_distance": m["edit_distance"],
        "inversion_seconds_per_image": t_inv,
        "edit_seconds_per_image": t_edit,
        "inversion_vs_one_generation": t_inv / gen,
    }


def format_inversion_table(result: dict[str, Any]) -> str:
    """The side-by-side table (markdown)."""
    v = result["vae"]
    lines = [
        f"{result['settings']['n']} rendered circles, {result['settings']['num_inference_steps']} steps; VAE "
        f"encode->decode ceiling {v['psnr']:.2f} dB / {v['ssim']:.3f}; one plain generation "
        f"{result['generation_seconds_per_image']:.3f} s per image (medians of {result['settings']['repeats']}).",
        "",
        "| inversion | reconstruction PSNR | SSIM | green rate | shape kept | Δp(circle) [95 % CI] | edit PSNR to "
        "source | edit feature dist. | inversion s/image | × one generation | edit s/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, r in result["methods"].items():
        lo, hi = r["delta_p_ci95"]
        lines.append(
            f"| {method} | {r['reconstruction_psnr']:.2f} | {r['reconstruction_ssim']:.3f} | {r['green_rate']:.2f} | "
            f"{r['shape_accuracy']:.2f} | {r['delta_p']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {r['edit_psnr']:.2f} | "
            f"{r['edit_distance']:.4f} | {r['inversion_seconds_per_image']:.3f} | {r['inversion_vs_one_generation']:.1f} | "
            f"{r['edit_seconds_per_image']:.3f} |"
        )
    return "\n".join(lines)
