"""The intervention scan: prompt every concept of the scorer's bank against its contrasts, on paired seeds.

The token is one way to nominate what a classifier relies on; the scan is an independent one that does not
depend on the optimisation finding the shortcut. For each concept the scorer gives a factor prompt
("a circle on a green background") and contrasting prompts (the other backgrounds). Every distinct prompt is
generated once on the same seeds; a concept's effect is, per seed, the classifier's target probability under
its prompt minus the mean under its contrasts. A one-sided sign-flip test of "effect > min_effect" and
Benjamini–Hochberg across concepts decide which are confirmed.

``scale="logodds"`` measures the same on the log-odds of the target (``log p / (1 - p)``, from the logits): when the
classifier already recognises the class, p(target) sits near 1 and compresses every effect (0.999 -> 0.99 is 0.009
in p, 2.3 in log-odds); ``min_effect`` is then in log-odds units.

With a reference classifier (e.g. a clean model of the same task), the same images are scored by it too and
the *differential* effect (audited minus reference, per seed) says how much more the audited model relies on
the factor: a dataset shortcut rather than a feature inherent to the class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..engine.records import target_log_odds, target_probabilities
from ..errors import DiscoInspectError
from .factors import Intervention
from .stats import benjamini_hochberg, between_models, paired_shift

logger = logging.getLogger(__name__)


@dataclass
class ScanResult:
    """Per concept: the :class:`Intervention` (with q-values), plus example images of the prompts."""

    interventions: dict[str, Intervention]
    prompts: list[str]
    seeds: list[int]
    examples: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    """prompt -> its first few images."""
    target_probs: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    """prompt -> the audited classifier's p(target) per seed."""
    scale: str = "p"
    """The scale the effects were measured on: ``p`` or ``logodds``."""


SCALES = ("p", "logodds")


def scan_interventions(
    pipe: Any,
    classifier: Any,
    target: int,
    class_name: str,
    scorer: Any,
    seeds: Sequence[int],
    *,
    concepts: Sequence[str] | None = None,
    reference: Any = None,
    reference_target: int | Sequence[int] | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    scale: str = "p",
    require_differential: bool = False,
    num_inference_steps: int = 30,
    guidance_scale: float = 7.0,
    height: int | None = None,
    width: int | None = None,
    n_examples: int = 4,
    progress: bool = True,
) -> ScanResult:
    """Intervene on every concept (default: all of ``scorer.concepts``) with false-discovery control.

    Args:
        scorer: a concept scorer with ``intervention(concept, class_name) -> (prompt, [contrasts])``.
        seeds: paired seeds; every prompt is generated once per seed.
        reference, reference_target: a second classifier scoring the same images and its index of the class; or
            several (a list), e.g. clean classifiers of the task trained with different seeds. The differential is
            then against their mean, and a between-models test (``reference["between_models"]``) asks whether the
            audited model's effect lies beyond the references' spread (Student's t prediction interval, R - 1
            degrees of freedom, Benjamini–Hochberg across concepts).
        alpha: false-discovery rate across concepts (Benjamini–Hochberg), for both the effect and, with a
            reference, the differential effect.
        min_effect: smallest rise that counts, on ``scale``; the test is H0 "effect <= min_effect".
        scale: ``p`` (the target probability) or ``logodds`` (its log-odds, for a classifier already near p = 1).
        require_differential: with a reference, confirm a concept only when the differential effect (audited
            minus reference) is significant too — with several references, the between-models test: what the
            audited model shares with its references (a feature of the class, or of the generator's images) is
            never confirmed.

    Returns:
        A :class:`ScanResult`; ``interventions[c].confirmed`` is ``q < alpha`` (which implies the effect exceeds
        ``min_effect``).
    """
    from tqdm.auto import tqdm

    from ..engine.sampling import generate

    if not hasattr(scorer, "intervention"):
        raise DiscoInspectError(
            f"The concept scorer {type(scorer).__name__} has no `intervention(concept, class_name)`; "
            "give it one (or a concept file with prompts) to scan concepts by intervention."
        )
    if len(seeds) < 4:
        raise DiscoInspectError(f"The intervention scan needs at least 4 paired seeds; got {len(seeds)}.")
    if scale not in SCALES:
        raise DiscoInspectError(f"`scale` = {scale!r} is invalid; use 'p' or 'logodds'.")
    if require_differential and reference is None:
        raise DiscoInspectError(
            "`require_differential` needs a `reference` classifier; give one or leave it False."
        )
    refs = (
        [] if reference is None else list(reference) if isinstance(reference, list | tuple) else [reference]
    )
    if reference_target is None:
        ref_targets = [r.resolve_class(class_name) for r in refs]
    else:
        ref_targets = (
            list(reference_target) if isinstance(reference_target, list | tuple) else [reference_target]
        )
    if len(ref_targets) != len(refs):
        raise DiscoInspectError(
            f"{len(refs)} reference classifiers but {len(ref_targets)} `reference_target`s; give one per reference."
        )
    concepts = list(scorer.concepts if concepts is None else concepts)
    plans = {c: scorer.intervention(c, class_name) for c in concepts}
    for c, (prompt, contrasts) in plans.items():
        if not contrasts:
            raise DiscoInspectError(
                f"Concept {c!r} has no contrasting prompt for {prompt!r}; give at least one."
            )
    prompts = list(dict.fromkeys(p for prompt, contrasts in plans.values() for p in (prompt, *contrasts)))
    import math

    needed = math.ceil(math.log2(max(len(plans), 1) / alpha)) + 1
    if len(seeds) < needed:  # the smallest exact sign-flip p is 2^-n; BH multiplies it by up to K
        logger.warning(
            "With %d seeds no concept can reach q < %g across %d concepts; use at least %d seeds "
            "(`intervention_seeds`).",
            len(seeds),
            alpha,
            len(plans),
            needed,
        )
    seeds = [int(s) for s in seeds]
    measure = target_probabilities if scale == "p" else target_log_odds
    probs: dict[str, torch.Tensor] = {}
    values: dict[str, torch.Tensor] = {}
    ref_probs: dict[str, torch.Tensor] = {}  # mean over the references
    ref_values: dict[str, list[torch.Tensor]] = {}  # per reference
    examples: dict[str, torch.Tensor] = {}
    for prompt in tqdm(prompts, desc="intervention scan", disable=not progress, unit="prompt"):
        images = generate(
            pipe,
            [prompt] * len(seeds),
            seeds,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            height=height,
            width=width,
            batch_size=16,
        )
        probs[prompt] = target_probabilities(classifier, images, target)
        values[prompt] = probs[prompt] if scale == "p" else measure(classifier, images, target)
        if refs:
            pairs = list(zip(refs, ref_targets, strict=True))
            ref_p = [target_probabilities(r, images, t) for r, t in pairs]
            ref_values[prompt] = ref_p if scale == "p" else [measure(r, images, t) for r, t in pairs]
            ref_probs[prompt] = torch.stack(ref_p).mean(0)
        examples[prompt] = images[:n_examples].clone()

    def pair(source: dict[str, torch.Tensor], prompt: str, contrasts: Sequence[str]) -> tuple:
        return source[prompt], torch.stack([source[x] for x in contrasts]).mean(0)

    stats = {}
    for c, (prompt, contrasts) in plans.items():
        v_f, v_c = pair(values, prompt, contrasts)
        stats[c] = (v_f, v_c, paired_shift(v_c, v_f, margin=min_effect, alternative="greater", seed=0))
    q = benjamini_hochberg(torch.tensor([float(s[2].p_value[0]) for s in stats.values()]))
    diff_q = None
    diffs = {}
    between = None
    if refs:
        ref_mean = {k: torch.stack(v).mean(0) for k, v in ref_values.items()}
        for c, (prompt, contrasts) in plans.items():
            r_f, r_c = pair(ref_mean, prompt, contrasts)
            v_f, v_c, _ = stats[c]
            diffs[c] = (
                r_f - r_c,
                paired_shift(r_f - r_c, v_f - v_c, margin=min_effect, alternative="greater", seed=0),
            )
        diff_q = benjamini_hochberg(torch.tensor([float(d[1].p_value[0]) for d in diffs.values()]))
        if len(refs) >= 2:
            per_ref = torch.tensor(  # [R, concepts]: each reference's own point effect
                [
                    [
                        float((ref_values[f][k] - torch.stack([ref_values[x][k] for x in cs]).mean(0)).mean())
                        for f, cs in plans.values()
                    ]
                    for k in range(len(refs))
                ]
            )
            own = torch.tensor([float(stats[c][2].effect[0]) for c in plans])
            between = between_models(own, per_ref)
            between_q = benjamini_hochberg(between.p_value)

    out: dict[str, Intervention] = {}
    for i, (c, (prompt, contrasts)) in enumerate(plans.items()):
        _, _, sh = stats[c]
        p_f, p_c = pair(probs, prompt, contrasts)
        effect = float(sh.effect[0])
        confirmed = bool(q[i] < alpha and effect > min_effect)
        iv = Intervention(
            factor_prompt=prompt,
            contrast_prompts=list(contrasts),
            target_prob_factor=float(p_f.mean()),
            target_prob_contrast=float(p_c.mean()),
            effect=effect,
            ci_low=float(sh.ci_low[0]),
            ci_high=float(sh.ci_high[0]),
            p_value=float(sh.p_value[0]),
            n=len(seeds),
            confirmed=confirmed,
            q_value=float(q[i]),
            scale=scale,
        )
        if refs:
            r_d, dsh = diffs[c]
            r_f, r_c = pair(ref_probs, prompt, contrasts)
            significant = bool(diff_q[i] < alpha and float(dsh.effect[0]) > min_effect)
            iv.reference = {
                "target_prob_factor": float(r_f.mean()),
                "target_prob_contrast": float(r_c.mean()),
                "effect": float(r_d.mean()),
                "differential": {
                    "effect": float(dsh.effect[0]),
                    "ci_low": float(dsh.ci_low[0]),
                    "ci_high": float(dsh.ci_high[0]),
                    "p_value": float(dsh.p_value[0]),
                    "q_value": float(diff_q[i]),
                    "significant": significant,
                },
            }
            if between is not None:
                beyond = bool(between_q[i] < alpha and float(between.effect[i]) > min_effect)
                iv.reference["between_models"] = {
                    "n_models": between.n_models,
                    "ref_effects": [float(x) for x in per_ref[:, i]],
                    "ref_sd": float(between.ref_sd[i]),
                    "effect": float(between.effect[i]),
                    "t": float(between.t[i]),
                    "p_value": float(between.p_value[i]),
                    "q_value": float(between_q[i]),
                    "significant": beyond,
                }
                significant = beyond
            iv.confirmed = confirmed and (significant or not require_differential)
        out[c] = iv
    return ScanResult(
        interventions=out, prompts=prompts, seeds=seeds, examples=examples, target_probs=probs, scale=scale
    )
