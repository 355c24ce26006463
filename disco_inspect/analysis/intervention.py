"""Confirmation by intervention: does saying the factor in the prompt change the classifier's verdict?

For a factor, every seed is generated once with the factor prompt ("a circle on a green background") and
once with each contrasting prompt ("... on a gray background", ...). The paired effect is the seed's
target probability under the factor prompt minus its mean under the contrasts. The rule is the scan's
(:mod:`disco_inspect.analysis.scan`): a one-sided sign-flip test of H0 "effect <= min_effect" at ``alpha``, and the
effect above ``min_effect``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine.records import target_probabilities
from ..errors import DiscoInspectError
from .factors import Intervention
from .stats import paired_shift


def intervene(
    pipe: Any,
    classifier: Any,
    target: int,
    factor_prompt: str,
    contrast_prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    num_inference_steps: int = 30,
    guidance_scale: float = 7.0,
    height: int | None = None,
    width: int | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    batch_size: int = 16,
) -> tuple[Intervention, torch.Tensor, torch.Tensor]:
    """Measure the target-probability change caused by the factor phrase on paired seeds.

    Returns the :class:`Intervention`, the factor images [S, 3, H, W] and the first contrast's images.
    """
    from ..engine.sampling import generate

    if not contrast_prompts:
        raise DiscoInspectError(f"No contrasting prompt for {factor_prompt!r}; give at least one.")
    if len(seeds) < 2:
        raise DiscoInspectError(f"An intervention needs at least 2 seeds; got {len(seeds)}.")
    prompts = [factor_prompt, *contrast_prompts]
    all_prompts = [p for p in prompts for _ in seeds]
    all_seeds = [s for _ in prompts for s in seeds]
    images = generate(
        pipe,
        all_prompts,
        all_seeds,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        height=height,
        width=width,
        batch_size=batch_size,
    )
    probs = target_probabilities(classifier, images, target).view(len(prompts), len(seeds))
    p_factor, p_contrast = probs[0], probs[1:].mean(0)
    shift = paired_shift(p_contrast, p_factor, margin=min_effect, alternative="greater", seed=0)
    effect, p = float(shift.effect[0]), float(shift.p_value[0])
    result = Intervention(
        factor_prompt=factor_prompt,
        contrast_prompts=list(contrast_prompts),
        target_prob_factor=float(p_factor.mean()),
        target_prob_contrast=float(p_contrast.mean()),
        effect=effect,
        ci_low=float(shift.ci_low[0]),
        ci_high=float(shift.ci_high[0]),
        p_value=p,
        n=len(seeds),
        confirmed=bool(p < alpha and effect > min_effect),
    )
    n = len(seeds)
    return result, images[:n], images[n : 2 * n]
