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

Adaptive seeds (``extra_seeds``): a two-stage design (Bauer & Köhne 1994) spends more paired seeds only where a
concept is undecided. Stage 1 tests every concept on ``seeds``; a concept with stage-1 p <= ``alpha / (2 K)`` stops
for efficacy, one with p > :data:`FUTILITY` stops for futility, and the others are measured again on
``extra_seeds`` (fresh seeds, so the stage-2 p-value is independent of stage 1). Their p-values are combined by
Fisher's product with the stage-wise ordering, which gives a valid p-value at every level, so Benjamini–Hochberg
across concepts stays valid; the effect and its interval are over all the seeds a concept used.

With a reference classifier (e.g. a clean model of the same task), the same images are scored by it too and
the *differential* effect (audited minus reference, per seed) says how much more the audited model relies on
the factor: a dataset shortcut rather than a feature inherent to the class.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..engine.records import target_log_odds, target_probabilities
from ..errors import DiscoInspectError
from .factors import Intervention
from .stats import benjamini_hochberg, between_models, paired_shift, two_stage_p

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
    design: dict[str, Any] = field(default_factory=dict)
    """The sequential design: ``stage1_seeds``, ``max_seeds``, ``efficacy`` and ``futility`` bounds, and
    ``continued`` (the concepts measured on the extra seeds); empty for a fixed-seed scan."""


SCALES = ("p", "logodds")
#: Stage-1 p-value above which a concept stops for futility (its effect is not beyond the margin).
FUTILITY = 0.2


@dataclass
class _Plan:
    """The checked inputs of one scan: each concept's factor prompt and contrasts, the distinct prompts, the
    references with their class index."""

    plans: dict[str, tuple[str, list[str]]]
    prompts: list[str]
    seeds: list[int]
    references: list[Any]
    reference_targets: list[int]
    extra_seeds: list[int] = field(default_factory=list)


@dataclass
class _Scores:
    """Per prompt: the audited classifier's p(target) and its value on the scan's scale, the references' values
    (one tensor per reference) and their mean p(target), and example images."""

    probs: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    ref_probs: dict[str, torch.Tensor] = field(default_factory=dict)
    ref_values: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    examples: dict[str, torch.Tensor] = field(default_factory=dict)


def scan_interventions(
    pipe: Any,
    classifier: Any,
    target: int,
    class_name: str,
    scorer: Any,
    seeds: Sequence[int],
    *,
    concepts: Sequence[str] | None = None,
    references: Sequence[Any] = (),
    reference_targets: Sequence[int] | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    scale: str = "p",
    require_differential: bool = False,
    num_inference_steps: int = 30,
    guidance_scale: float = 7.0,
    height: int | None = None,
    width: int | None = None,
    n_examples: int = 4,
    extra_seeds: Sequence[int] = (),
    progress: bool = True,
) -> ScanResult:
    """Intervene on every concept (default: all of ``scorer.concepts``) with false-discovery control.

    Args:
        scorer: a concept scorer with ``intervention(concept, class_name) -> (prompt, [contrasts])``.
        seeds: paired seeds; every prompt is generated once per seed.
        concepts: the concepts to test (e.g. only the top factors); Benjamini–Hochberg runs across these.
        references, reference_targets: reference classifiers scoring the same images (none, one, or several, e.g.
            clean classifiers of the task trained with different seeds) and their index of the class (default:
            resolved from ``class_name``). The differential is against their mean; with two or more, a
            between-models test (``reference["between_models"]``) asks whether the audited model's effect lies
            beyond the references' spread (Student's t prediction interval, R - 1 degrees of freedom,
            Benjamini–Hochberg across concepts).
        alpha: false-discovery rate across concepts (Benjamini–Hochberg), for both the effect and, with a
            reference, the differential effect.
        min_effect: smallest rise that counts, on ``scale``; the test is H0 "effect <= min_effect".
        scale: ``p`` (the target probability) or ``logodds`` (its log-odds, for a classifier already near p = 1).
        extra_seeds: fresh paired seeds for the concepts stage 1 leaves undecided (the two-stage design of the
            module's docstring); empty: every concept on ``seeds`` only.
        require_differential: with a reference, confirm a concept only when the differential effect (audited
            minus reference) is significant too — with several references, the between-models test: what the
            audited model shares with its references (a feature of the class, or of the generator's images) is
            never confirmed.

    Returns:
        A :class:`ScanResult`; ``interventions[c].confirmed`` is ``q < alpha`` (which implies the effect exceeds
        ``min_effect``).
    """
    # 1. check inputs: one plan per concept, every distinct prompt once
    plan = _check_inputs(
        scorer, class_name, seeds, concepts, references, reference_targets, alpha, scale, require_differential
    )
    plan.extra_seeds = [int(x) for x in extra_seeds]
    # 2. generate each prompt on the paired seeds and score it with every classifier
    gen = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    gen.update(height=height, width=width)
    scores = _score_prompts(
        pipe, classifier, target, plan, plan.prompts, plan.seeds, scale, gen, n_examples, progress
    )
    # 3. the audited model's own effect per concept (undecided ones again on the extra seeds), BH across concepts
    seq = _sequential(pipe, classifier, target, plan, scores, scale, gen, alpha, min_effect, progress)
    q = benjamini_hochberg(torch.tensor([float(sh.p_value[0]) for sh in seq.own.values()]))
    # 4. with references: the differential effect (audited minus the references' mean)
    diffs, diff_q = _differential(plan, scores, min_effect, seq.n_used) if plan.references else ({}, None)
    # 5. with two or more references: beyond the references' spread?
    between = _between_models(plan, scores, seq.own, seq.n_used) if len(plan.references) >= 2 else None
    # 6. the result
    ref = (diffs, diff_q, between, require_differential) if plan.references else None
    out = _interventions(plan, scores, seq, q, ref, alpha, min_effect, scale)
    return ScanResult(
        interventions=out,
        prompts=plan.prompts,
        seeds=plan.seeds,
        examples=scores.examples,
        target_probs=scores.probs,
        scale=scale,
        design=seq.design,
    )


def _interventions(
    plan: _Plan,
    scores: _Scores,
    seq: _Sequential,
    q: torch.Tensor,
    ref: tuple | None,
    alpha: float,
    min_effect: float,
    scale: str,
) -> dict[str, Intervention]:
    """Each concept's :class:`Intervention` (with ``ref`` = ``(diffs, diff_q, between, require_differential)``: the
    references' side and the confirmation that may require it)."""
    out = {}
    for i, (c, (prompt, contrasts)) in enumerate(plan.plans.items()):
        n = seq.n_used[c]
        iv = _intervention(
            prompt, contrasts, scores.probs, seq.own[c], float(q[i]), alpha, min_effect, scale, n
        )
        iv = replace(iv, sequential=seq.stages.get(c))
        if ref is not None:
            diffs, diff_q, between, require = ref
            iv = _with_reference(iv, i, scores, diffs[c], diff_q, between, alpha, min_effect, require, n)
        out[c] = iv
    return out


def _check_inputs(
    scorer: Any,
    class_name: str,
    seeds: Sequence[int],
    concepts: Sequence[str] | None,
    references: Sequence[Any],
    reference_targets: Sequence[int] | None,
    alpha: float,
    scale: str,
    require_differential: bool,
) -> _Plan:
    """Validate the scan's arguments (one :class:`DiscoInspectError` naming the first bad one) and plan it."""
    if not hasattr(scorer, "intervention"):
        raise DiscoInspectError(
            f"The concept scorer {type(scorer).__name__} has no `intervention(concept, class_name)`; "
            "give it one (or a concept file with prompts) to scan concepts by intervention."
        )
    if len(seeds) < 4:
        raise DiscoInspectError(f"The intervention scan needs at least 4 paired seeds; got {len(seeds)}.")
    if scale not in SCALES:
        raise DiscoInspectError(f"`scale` = {scale!r} is invalid; use 'p' or 'logodds'.")
    if not isinstance(references, list | tuple):
        raise DiscoInspectError(
            f"`references` is a {type(references).__name__}; give a list of classifiers (one, several or none)."
        )
    refs = list(references)
    if require_differential and not refs:
        raise DiscoInspectError(
            "`require_differential` needs `references` (a list of classifiers); give one or leave it False."
        )
    ref_targets = (
        [r.resolve_class(class_name) for r in refs] if reference_targets is None else list(reference_targets)
    )
    if len(ref_targets) != len(refs):
        raise DiscoInspectError(
            f"{len(refs)} reference classifiers but {len(ref_targets)} `reference_targets`; give one per reference."
        )
    concepts = list(scorer.concepts if concepts is None else concepts)
    plans = {c: scorer.intervention(c, class_name) for c in concepts}
    for c, (prompt, contrasts) in plans.items():
        if not contrasts:
            raise DiscoInspectError(
                f"Concept {c!r} has no contrasting prompt for {prompt!r}; give at least one."
            )
    _warn_if_too_few_seeds(len(seeds), len(plans), alpha)
    prompts = scan_prompts(scorer, class_name, concepts)
    return _Plan(
        plans={c: (p, list(cs)) for c, (p, cs) in plans.items()},
        prompts=prompts,
        seeds=[int(s) for s in seeds],
        references=refs,
        reference_targets=[int(t) for t in ref_targets],
    )


def scan_prompts(scorer: Any, class_name: str, concepts: Sequence[str] | None = None) -> list[str]:
    """The distinct prompts the scan generates for ``concepts`` (default: all of ``scorer.concepts``): each concept's
    factor prompt and its contrasts, every prompt once (as :func:`scan_interventions` plans them)."""
    plans = [scorer.intervention(c, class_name) for c in (scorer.concepts if concepts is None else concepts)]
    return list(dict.fromkeys(p for prompt, contrasts in plans for p in (prompt, *contrasts)))


def _warn_if_too_few_seeds(n_seeds: int, n_concepts: int, alpha: float) -> None:
    """The smallest exact sign-flip p is 2^-n and BH multiplies it by up to K: say when no concept can pass."""
    needed = math.ceil(math.log2(max(n_concepts, 1) / alpha)) + 1
    if n_seeds < needed:
        logger.warning(
            "With %d seeds no concept can reach q < %g across %d concepts; use at least %d seeds "
            "(`intervention_seeds`).",
            n_seeds,
            alpha,
            n_concepts,
            needed,
        )


def _score_prompts(
    pipe: Any,
    classifier: Any,
    target: int,
    plan: _Plan,
    prompts: Sequence[str],
    seeds: Sequence[int],
    scale: str,
    gen: dict[str, Any],
    n_examples: int,
    progress: bool,
    desc: str = "intervention scan",
) -> _Scores:
    """Generate each of ``prompts`` once on the paired ``seeds``; score the images with every classifier."""
    from tqdm.auto import tqdm

    from ..engine.sampling import generate

    measure = target_probabilities if scale == "p" else target_log_odds
    pairs = list(zip(plan.references, plan.reference_targets, strict=True))
    out = _Scores()
    for prompt in tqdm(prompts, desc=desc, disable=not progress, unit="prompt"):
        images = generate(pipe, [prompt] * len(seeds), list(seeds), batch_size=16, **gen)
        out.probs[prompt] = target_probabilities(classifier, images, target)
        out.values[prompt] = out.probs[prompt] if scale == "p" else measure(classifier, images, target)
        if pairs:
            ref_p = [target_probabilities(r, images, t) for r, t in pairs]
            out.ref_values[prompt] = ref_p if scale == "p" else [measure(r, images, t) for r, t in pairs]
            out.ref_probs[prompt] = torch.stack(ref_p).mean(0)
        if n_examples:
            out.examples[prompt] = images[:n_examples].clone()
    return out


@dataclass
class _Sequential:
    """The audited model's own effect per concept (p-values combined over the stages), the seeds each used, each
    concept's stage record and the design."""

    own: dict[str, Any]
    n_used: dict[str, int]
    stages: dict[str, dict[str, Any]]
    design: dict[str, Any]


def _sequential(
    pipe: Any,
    classifier: Any,
    target: int,
    plan: _Plan,
    scores: _Scores,
    scale: str,
    gen: dict[str, Any],
    alpha: float,
    min_effect: float,
    progress: bool,
) -> _Sequential:
    """Stage 1 on every concept; with ``plan.extra_seeds``, stage 2 on the undecided ones (``scores`` grows by their
    prompts' extra seeds) and their p-values combined (:func:`~disco_inspect.analysis.stats.two_stage_p`)."""
    n1 = len(plan.seeds)
    own = {c: _effect(scores.values, f, cs, min_effect, n1) for c, (f, cs) in plan.plans.items()}
    n_used = dict.fromkeys(plan.plans, n1)
    if not plan.extra_seeds:
        return _Sequential(own, n_used, {}, {})
    # 1. stage 1 decides every concept outside (efficacy, futility]
    efficacy, n = alpha / (2 * len(plan.plans)), n1 + len(plan.extra_seeds)
    p1 = {c: float(sh.p_value[0]) for c, sh in own.items()}
    cont = [c for c in plan.plans if efficacy < p1[c] <= FUTILITY]
    stages = {
        c: {"stage1_seeds": n1, "stage1_p": p1[c], "decision": _decision(p1[c], efficacy)} for c in plan.plans
    }
    # 2. stage 2: the undecided concepts' prompts on fresh seeds
    if cont:
        prompts = list(dict.fromkeys(p for c in cont for p in (plan.plans[c][0], *plan.plans[c][1])))
        more = _score_prompts(
            pipe,
            classifier,
            target,
            plan,
            prompts,
            plan.extra_seeds,
            scale,
            gen,
            0,
            progress,
            "intervention scan, stage 2",
        )
        _append(scores, more)
    # 3. the combined p-value; the effect over all the seeds used
    for c in cont:
        f, cs = plan.plans[c]
        later = {p: v[n1:n] for p, v in scores.values.items() if len(v) >= n}
        p2 = float(_effect(later, f, cs, min_effect, None).p_value[0])
        p = two_stage_p(p1[c], p2, efficacy, FUTILITY)
        own[c] = replace(
            _effect(scores.values, f, cs, min_effect, n), p_value=torch.tensor([p], dtype=torch.float64)
        )
        n_used[c] = n
        stages[c].update(stage2_seeds=n - n1, stage2_p=p2, combined_p=p)
    design = {
        "stage1_seeds": n1,
        "max_seeds": n,
        "efficacy": efficacy,
        "futility": FUTILITY,
        "continued": cont,
        "rule": "two-stage (Bauer-Koehne): stop at stage 1 when p <= efficacy (alpha / 2K) or p > futility; "
        "otherwise fresh seeds and Fisher's product p1*p2 with the stage-wise ordering p-value",
    }
    return _Sequential(own, n_used, stages, design)


def _decision(p1: float, efficacy: float) -> str:
    """What stage 1 decided for a concept with p-value ``p1``."""
    if p1 <= efficacy:
        return "stopped at stage 1: efficacy"
    if p1 > FUTILITY:
        return "stopped at stage 1: futility"
    return "continued to stage 2"


def _append(scores: _Scores, more: _Scores) -> None:
    """Extend each prompt's per-seed values in ``scores`` by the extra seeds' (``more``)."""
    for name in ("probs", "values", "ref_probs"):
        mine, extra = getattr(scores, name), getattr(more, name)
        for prompt, v in extra.items():
            mine[prompt] = torch.cat([mine[prompt], v])
    for prompt, vs in more.ref_values.items():
        scores.ref_values[prompt] = [
            torch.cat([a, b]) for a, b in zip(scores.ref_values[prompt], vs, strict=True)
        ]


def _pair(
    source: dict[str, torch.Tensor], prompt: str, contrasts: Sequence[str], n: int | None = None
) -> tuple:
    """The factor prompt's values and the mean of its contrasts', per seed (the first ``n`` seeds)."""
    return source[prompt][:n], torch.stack([source[x][:n] for x in contrasts]).mean(0)


def _effect(
    values: dict[str, torch.Tensor], prompt: str, contrasts: Sequence[str], min_effect: float, n: int | None
) -> Any:
    """Paired shift factor minus contrasts on the first ``n`` seeds, one-sided sign-flip test of H0
    "effect <= min_effect"."""
    v_f, v_c = _pair(values, prompt, contrasts, n)
    return paired_shift(v_c, v_f, margin=min_effect, alternative="greater", seed=0)


def _differential(
    plan: _Plan, scores: _Scores, min_effect: float, n_used: dict[str, int]
) -> tuple[dict, Any]:
    """Per concept: the references' mean effect and the audited-minus-reference shift on the seeds the concept used
    (a fixed-sample test on them); BH across concepts."""
    ref_mean = {k: torch.stack(v).mean(0) for k, v in scores.ref_values.items()}
    diffs = {}
    for c, (prompt, contrasts) in plan.plans.items():
        r_f, r_c = _pair(ref_mean, prompt, contrasts, n_used[c])
        v_f, v_c = _pair(scores.values, prompt, contrasts, n_used[c])
        diffs[c] = (
            r_f - r_c,
            paired_shift(r_f - r_c, v_f - v_c, margin=min_effect, alternative="greater", seed=0),
        )
    diff_q = benjamini_hochberg(torch.tensor([float(d[1].p_value[0]) for d in diffs.values()]))
    return diffs, diff_q


def _between_models(
    plan: _Plan, scores: _Scores, own: dict[str, Any], n_used: dict[str, int]
) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Each reference's own point effect [R, concepts], the between-models test and its BH q-values."""
    rv = scores.ref_values
    per_ref = torch.tensor(
        [
            [
                float(
                    (rv[f][k][: n_used[c]] - torch.stack([rv[x][k][: n_used[c]] for x in cs]).mean(0)).mean()
                )
                for c, (f, cs) in plan.plans.items()
            ]
            for k in range(len(plan.references))
        ]
    )
    effects = torch.tensor([float(own[c].effect[0]) for c in plan.plans])
    between = between_models(effects, per_ref)
    return between, benjamini_hochberg(between.p_value), per_ref


def _intervention(
    prompt: str,
    contrasts: list[str],
    probs: dict[str, torch.Tensor],
    shift: Any,
    q: float,
    alpha: float,
    min_effect: float,
    scale: str,
    n: int,
) -> Intervention:
    """One concept's :class:`Intervention` on its first ``n`` seeds: confirmed when ``q < alpha`` and the effect
    exceeds ``min_effect``."""
    p_f, p_c = _pair(probs, prompt, contrasts, n)
    effect = float(shift.effect[0])
    return Intervention(
        factor_prompt=prompt,
        contrast_prompts=list(contrasts),
        target_prob_factor=float(p_f.mean()),
        target_prob_contrast=float(p_c.mean()),
        effect=effect,
        ci_low=float(shift.ci_low[0]),
        ci_high=float(shift.ci_high[0]),
        p_value=float(shift.p_value[0]),
        n=len(p_f),
        confirmed=bool(q < alpha and effect > min_effect),
        q_value=q,
        scale=scale,
    )


def _with_reference(
    iv: Intervention,
    i: int,
    scores: _Scores,
    diff: tuple[torch.Tensor, Any],
    diff_q: torch.Tensor,
    between: tuple[Any, torch.Tensor, torch.Tensor] | None,
    alpha: float,
    min_effect: float,
    require_differential: bool,
    n: int,
) -> Intervention:
    """``iv`` with the references' side (their effect, the differential, between models) and the confirmation
    that may require it."""
    r_d, dsh = diff
    r_f, r_c = _pair(scores.ref_probs, iv.factor_prompt, iv.contrast_prompts, n)
    significant = bool(diff_q[i] < alpha and float(dsh.effect[0]) > min_effect)
    reference: dict[str, Any] = {
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
        test, between_q, per_ref = between
        significant = bool(between_q[i] < alpha and float(test.effect[i]) > min_effect)
        reference["between_models"] = {
            "n_models": test.n_models,
            "ref_effects": [float(x) for x in per_ref[:, i]],
            "ref_sd": float(test.ref_sd[i]),
            "effect": float(test.effect[i]),
            "t": float(test.t[i]),
            "p_value": float(test.p_value[i]),
            "q_value": float(between_q[i]),
            "significant": significant,
        }
    confirmed = iv.confirmed and (significant or not require_differential)
    return replace(iv, reference=reference, confirmed=confirmed)
