"""Ground truth for counterfactual edits on the world: rendered circles on non-green backgrounds, edited with the token
learned for ``world:biased_circle_green`` (whose classifier relies on green backgrounds).

Every number is read off the edited images by the oracle and the classifier, never from what was asked for:
the reconstruction against the VAE's own ceiling and plain DDIM inversion under CFG; the oracle's background=green
rate and shape accuracy; p(circle) before and after (paired 95 % CI); and, per stochastic method, fidelity and the
diversity among samples beside the paper's upper bound (eq. 5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import DiscoInspectError

logger = logging.getLogger(__name__)

CLASSIFIER = "biased_circle_green"
CLASS_NAME = "circle"


def circle_scenes(n: int, seed: int = 0) -> Any:
    """``n`` rendered circle scenes whose background is not green, captioned by their shape ("a circle")."""
    from ..scenes import FACTOR_VALUES, SceneBatch, generate_scenes

    green = FACTOR_VALUES["background"].index("green")
    batch = generate_scenes(4 * n, seed=seed, fixed={"shape": CLASS_NAME}, detail="shape")
    keep = (batch.factors["background"] != green).nonzero().flatten()[:n]
    if len(keep) < n:
        raise DiscoInspectError(
            f"Only {len(keep)} non-green circle scenes among {4 * n}; ask for fewer than {n}."
        )
    return SceneBatch(
        images=batch.images[keep],
        factors={k: v[keep] for k, v in batch.factors.items()},
        captions=[batch.captions[i] for i in keep.tolist()],
    )


def save_circle_scenes(folder: str | Path, n: int = 8, seed: int = 0) -> list[Path]:
    """Write ``n`` rendered non-green circle scenes as PNGs (``circle_00.png``, ...): images to try
    ``disco-inspect edit`` on."""
    from ...engine.run_folder import save_png

    folder = Path(folder)
    scenes = circle_scenes(n, seed)
    paths = [folder / f"circle_{i:02d}.png" for i in range(n)]
    for path, image in zip(paths, scenes.images, strict=True):
        save_png(path, image)
    return paths


def oracle_rates(oracle: Any, images: torch.Tensor) -> dict[str, float]:
    """The oracle's background=green rate and circle (shape) rate on ``images``."""
    from ..scenes import FACTOR_VALUES

    read = oracle.read(images)
    return {
        "green_rate": float(
            (read["background"] == FACTOR_VALUES["background"].index("green")).float().mean()
        ),
        "shape_accuracy": float((read["shape"] == FACTOR_VALUES["shape"].index(CLASS_NAME)).float().mean()),
    }


def run_edit_benchmark(
    token: Any,
    *,
    n: int = 32,
    seed: int = 0,
    methods: Sequence[str] = ("none", "noise", "null-vae", "cond-vae"),
    samples: int = 4,
    template: str = "{caption}",
    pipe: Any = None,
    classifier: Any = None,
    cache_dir: Any = None,
    progress: bool = True,
    **edit_kwargs: Any,
) -> dict[str, Any]:
    """Invert ``n`` rendered non-green circle scenes (null-text, the paper's: Method 1 samples its tuned null
    embeddings), edit them with ``token`` by every method, and measure.

    Args:
        token: the token learned for ``world:biased_circle_green`` (file, run folder or ``(string, vector)``).
        template: the source prompt from each scene's caption (``"{caption}"`` = "a circle").
        cache_dir: reuse inversions across calls (see :func:`~disco_inspect.editing.inversion.invert`).
        edit_kwargs: passed to :func:`~disco_inspect.editing.edit.edit` (e.g. ``cross_replace``).

    Returns:
        ``{"settings", "reconstruction", "methods": {method: row}, "seconds"}``; each row holds green rate, shape
        accuracy, p(circle) and its paired CI, fidelity and diversity.
    """
    from ...editing.inversion import invert, reconstruct, vae_roundtrip
    from ...editing.metrics import classifier_features

    # 1. load the models; render the source scenes and their prompts
    bench = _load_bench(pipe, classifier, samples, progress, edit_kwargs)
    scenes = circle_scenes(n, seed)
    prompts = [template.format(caption=c) for c in scenes.captions]
    # 2. invert the scenes once; the VAE's own ceiling and plain DDIM inversion to compare the reconstruction with
    t0 = time.perf_counter()
    inv = invert(
        bench.pipe,
        scenes.images,
        prompts,
        num_inference_steps=bench.steps,
        guidance_scale=bench.guidance,
        method="null-text",
        progress=progress,
        cache_dir=cache_dir,
    )
    seconds: dict[str, float] = {"inversion": time.perf_counter() - t0}
    ceiling, plain = vae_roundtrip(bench.pipe, inv.images), reconstruct(bench.pipe, inv, use_null=False)
    distance = classifier_features(bench.clf)
    source = oracle_rates(bench.oracle, scenes.images)
    # 3. edit with every method and measure (the reconstruction and deterministic edit from the first method)
    rows: dict[str, Any] = {}
    first: dict[str, Any] = {}
    for method in methods:
        t1 = time.perf_counter()
        res, m = _edit_and_measure(bench, inv, token, method, distance)
        seconds[method] = time.perf_counter() - t1
        if not first:
            first = {
                "reconstruction": _reconstruction(bench.oracle, res, inv.images, ceiling, plain),
                "deterministic": _deterministic(bench.oracle, res, m),
            }
        rows[method] = _method_row(bench.oracle, res, m, seconds[method], first["deterministic"])
        logger.info("edit benchmark %s: %s", method, rows[method])
    # 4. the result
    settings = {
        "n": n,
        "seed": seed,
        "samples": samples,
        "template": template,
        "num_inference_steps": bench.steps,
        "guidance_scale": bench.guidance,
        **bench.knobs,
    }
    result = {"settings": settings, "source": source, "methods": rows, "seconds": seconds}
    return {**result, **first, "distance": distance.name}


@dataclass(frozen=True)
class _Bench:
    """What every edit method of one run shares: the models, the class, the sampler and the edit knobs."""

    pipe: Any
    clf: Any
    target: int
    oracle: Any
    scorer: Any
    steps: int
    guidance: float
    knobs: dict[str, Any]
    samples: int
    progress: bool


def _load_bench(
    pipe: Any, classifier: Any, samples: int, progress: bool, edit_kwargs: dict[str, Any]
) -> _Bench:
    """Load the world pipeline, the biased classifier and the oracle (unless given); merge the edit knobs."""
    from ...models.classifiers import load_classifier
    from ...models.pipelines import load_pipeline
    from ..make import resolve_model
    from ..oracle import load_oracle
    from ..presets import WORLD_EDIT
    from ..scorer import OracleScorer

    pipe = pipe or load_pipeline("world")
    clf = classifier or load_classifier(resolve_model(f"world:{CLASSIFIER}"))
    target = clf.resolve_class(CLASS_NAME)
    oracle = load_oracle()
    knobs = {
        "cross_replace": WORLD_EDIT["cross_replace"],
        "self_replace": WORLD_EDIT["self_replace"],
        **edit_kwargs,
    }
    steps, guidance = WORLD_EDIT["num_inference_steps"], WORLD_EDIT["guidance_scale"]
    return _Bench(pipe, clf, target, oracle, OracleScorer(oracle), steps, guidance, knobs, samples, progress)


def _edit_and_measure(
    bench: _Bench, inv: Any, token: Any, method: str, distance: Any
) -> tuple[Any, dict[str, Any]]:
    """Edit the inverted scenes with ``token`` by ``method``; returns the edit result and its measured summary."""
    from ...editing.edit import edit
    from ...editing.measure import measure_edits

    res = edit(
        bench.pipe,
        inv,
        token,
        class_name=CLASS_NAME,
        method=method,
        samples=bench.samples if method != "none" else 0,
        scorer=bench.scorer,
        features=distance.features,
        classifier=bench.clf,
        target=bench.target,
        progress=bench.progress,
        **bench.knobs,
    )
    m = measure_edits(res, bench.clf, bench.target, scorer=bench.scorer, distance=distance)["summary"]
    return res, m


def _reconstruction(
    oracle: Any, res: Any, source: torch.Tensor, ceiling: torch.Tensor, plain: torch.Tensor
) -> dict[str, Any]:
    """Null-text reconstruction PSNR/SSIM beside the VAE ceiling and plain DDIM inversion; the oracle's rates."""
    from ...editing.metrics import psnr, ssim

    return {
        "null_text_psnr": float(psnr(res.reconstructions, source).mean()),
        "null_text_ssim": float(ssim(res.reconstructions, source).mean()),
        "vae_psnr": float(psnr(ceiling, source).mean()),
        "vae_ssim": float(ssim(ceiling, source).mean()),
        "plain_ddim_psnr": float(psnr(plain, source).mean()),
        "plain_ddim_ssim": float(ssim(plain, source).mean()),
        **{f"reconstruction_{k}": v for k, v in oracle_rates(oracle, res.reconstructions).items()},
    }


def _deterministic(oracle: Any, res: Any, m: dict[str, Any]) -> dict[str, Any]:
    """The deterministic edit's row: the oracle's rates, p(circle) before and after, fidelity."""
    return {
        **oracle_rates(oracle, res.edits),
        "p_source": m["p_target_source"],
        "p_edit": m["p_target_edit"],
        "delta_p": m["delta_p_edit"],
        "delta_p_ci95": m["delta_p_edit_ci95"],
        "psnr": m["edit_psnr"],
        "ssim": m["edit_ssim"],
        "distance": m["edit_distance"],
        "upper_bound": m["upper_bound"],
    }


def _method_row(
    oracle: Any, res: Any, m: dict[str, Any], seconds: float, deterministic: dict[str, Any]
) -> dict[str, Any]:
    """One method's row: its samples' rates, p(circle), fidelity and diversity (the deterministic row without)."""
    row: dict[str, Any] = {"seconds": seconds}
    if res.samples is None:
        return {**row, **deterministic}
    return {
        **row,
        **oracle_rates(oracle, res.samples.flatten(0, 1)),
        "p_samples": m["p_target_samples"],
        "delta_p": m["delta_p_samples"],
        "delta_p_ci95": m["delta_p_samples_ci95"],
        "psnr": m["samples_psnr"],
        "ssim": m["samples_ssim"],
        "distance": m["samples_distance"],
        "diversity": m["diversity"],
        "upper_bound": m["upper_bound"],
    }


def format_table(result: dict[str, Any]) -> str:
    """A markdown table like the paper's: method x reconstruction, fidelity, diversity, Δp(circle), green rate."""
    r = result["reconstruction"]
    lines = [
        f"Reconstruction of {result['settings']['n']} rendered scenes: null-text inversion PSNR "
        f"{r['null_text_psnr']:.2f} dB / SSIM {r['null_text_ssim']:.3f}; VAE encode->decode ceiling "
        f"{r['vae_psnr']:.2f} dB / {r['vae_ssim']:.3f}; plain DDIM inversion under CFG {r['plain_ddim_psnr']:.2f} dB / "
        f"{r['plain_ddim_ssim']:.3f}.",
        "",
        "| method | green rate | shape acc. | Δp(circle) [95 % CI] | PSNR to source | SSIM | feature dist. to source "
        "| diversity (upper bound) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    src = result["source"]
    lines.append(
        f"| source images | {src['green_rate']:.2f} | {src['shape_accuracy']:.2f} | – | – | – | – | – |"
    )
    for method, row in result["methods"].items():
        lo, hi = row["delta_p_ci95"]
        ci = f"[{lo:+.3f}, {hi:+.3f}]" if lo is not None else ""
        div = (
            f"{row['diversity']:.4f} ({row['upper_bound']:.4f})"
            if "diversity" in row
            else "– (" + f"{row['upper_bound']:.4f})"
        )
        name = "deterministic edit" if method == "none" else f"{method} samples"
        lines.append(
            f"| {name} | {row['green_rate']:.2f} | {row['shape_accuracy']:.2f} | {row['delta_p']:+.3f} {ci} | "
            f"{row['psnr']:.2f} | {row['ssim']:.3f} | {row['distance']:.4f} | {div} |"
        )
    return "\n".join(lines)
