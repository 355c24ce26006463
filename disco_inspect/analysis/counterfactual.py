"""The real-image counterfactual scan: edit each of the user's inverted images toward a concept and toward its
contrasts, and measure what the edit does to the classifier (LANCE-style, causal, on real images).

For every concept of a shortlist the scorer gives a factor prompt ("a circle on a green background") and contrasts
(the other backgrounds). Each inverted image is edited toward every distinct prompt with prompt-to-prompt from its
source prompt (:func:`~disco_inspect.editing.edit.edit_to_prompts`). Per image, a concept's effect is the
classifier's value (p(target), or its log-odds) on the factor edit minus the mean over the contrast edits: paired
over images, with a bootstrap interval, a one-sided sign-flip test of H0 "effect <= margin" and Benjamini–Hochberg
across the editable concepts.

Whether an edit *took* is measured, not assumed: per image, the scorer reads the concept more on its factor edit than
on the mean of the contrast edits. A concept whose edits take on fewer than ``min_took`` of the images is *not
editable here* (its effect is not judged), never "no effect".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import DiscoInspectError
from .stats import benjamini_hochberg, paired_shift

#: Share of images on which a concept's edits must take for the concept to be judged.
MIN_TOOK = 0.5


@dataclass
class EditedConcept:
    """One concept's counterfactual edits of the real images: the prompts, the edit-took rate, and (when editable)
    the paired effect on the classifier with its interval, p- and q-value."""

    concept: str
    factor_prompt: str
    contrast_prompts: list[str]
    n_images: int
    took_rate: float
    editable: bool
    reason: str | None = None
    target_prob_factor: float | None = None
    target_prob_contrast: float | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    significant: bool = False
    #: Other concepts of the bank the factor edits also moved (read more on the factor edit than on the contrast
    #: edits, on at least ``min_took`` of the images): an edit toward "a blue background" that also turns a shape blue
    #: lists the shape's colour, so an effect can be read against what else the edit changed.
    also_moved: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


@dataclass
class CounterfactualScan:
    """Every shortlisted concept's :class:`EditedConcept`, the rule that chose them, and example edits per concept
    (``examples[concept]``: ``source``, ``factor``, ``contrast`` images and their p(target))."""

    concepts: dict[str, EditedConcept]
    n_images: int
    scale: str
    margin: float
    alpha: float
    shortlist_rule: str
    method: str
    examples: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def significant(self) -> list[str]:
        """Concepts whose factor edits raise the classifier's value beyond the margin (``q < alpha``)."""
        return [c for c, e in self.concepts.items() if e.significant]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (report.json's ``evidence.real_edits``), without the example tensors."""
        return {
            "concepts": {c: e.to_dict() for c, e in self.concepts.items()},
            "n_images": self.n_images,
            "scale": self.scale,
            "margin": self.margin,
            "alpha": self.alpha,
            "shortlist_rule": self.shortlist_rule,
            "method": self.method,
            "editable_rate": (
                sum(e.editable for e in self.concepts.values()) / len(self.concepts)
                if self.concepts
                else None
            ),
        }


def _values(
    classifier: Any, images: torch.Tensor, target: int, scale: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """p(target) and the value on ``scale`` of each image of ``images`` [P, B, ...] as [P, B]."""
    from ..engine.records import target_log_odds, target_probabilities

    flat = images.flatten(0, 1)
    p = target_probabilities(classifier, flat, target).double().view(images.shape[:2])
    v = p if scale == "p" else target_log_odds(classifier, flat, target).view(images.shape[:2])
    return p, v


def _concept(
    c: str,
    plan: tuple[str, list[str]],
    index: dict[str, int],
    p: torch.Tensor,
    v: torch.Tensor,
    scores: torch.Tensor,
    col: dict[str, int],
    margin: float,
    min_took: float,
) -> tuple[EditedConcept, Any]:
    """One concept's edit-took rate, the other concepts its factor edits also moved, and, when editable, its paired
    shift (factor edit minus mean contrast edit). ``scores`` [P, B, K]: the scorer on every edit."""
    prompt, contrasts = plan
    fi, ci = index[prompt], [index[x] for x in contrasts]
    rose = (scores[fi] > scores[ci].mean(0)).double().mean(0)  # [K]: share of images each concept rose on
    took = float(rose[col[c]])
    row = EditedConcept(c, prompt, list(contrasts), p.shape[1], took, editable=took >= min_took)
    row.also_moved = [k for k, j in col.items() if k != c and float(rose[j]) >= min_took]
    if not row.editable:
        row.reason = (
            f"not editable here: the edits took on {took:.0%} of the images (at least {min_took:.0%} needed)"
        )
        return row, None
    shift = paired_shift(v[ci].mean(0), v[fi], margin=margin, alternative="greater", seed=0)
    row.target_prob_factor, row.target_prob_contrast = float(p[fi].mean()), float(p[ci].mean())
    row.effect, row.ci_low, row.ci_high = (
        float(shift.effect[0]),
        float(shift.ci_low[0]),
        float(shift.ci_high[0]),
    )
    row.p_value = float(shift.p_value[0])
    return row, shift


def counterfactual_scan(
    pipe: Any,
    inversion: Any,
    classifier: Any,
    target: int,
    class_name: str,
    scorer: Any,
    concepts: list[str],
    *,
    scale: str = "p",
    margin: float = 0.05,
    alpha: float = 0.05,
    min_took: float = MIN_TOOK,
    shortlist_rule: str = "",
    n_examples: int = 3,
    edit_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> CounterfactualScan:
    """Edit the inverted real images toward each concept's factor prompt and its contrasts; judge each concept.

    Args:
        inversion: the user's images inverted (:func:`~disco_inspect.editing.inversion.invert`).
        scorer: a concept scorer with ``score`` and ``intervention(concept, class_name)``.
        concepts: the shortlist to scan (``shortlist_rule`` says how it was chosen; recorded).
        scale: ``p`` or ``logodds``; ``margin`` is in its units.
        min_took: share of images on which the edits must take for a concept to be judged.
        edit_options: ``cross_replace``, ``self_replace``, ``batch_size`` of the prompt-to-prompt edits.
    """
    from ..editing.edit import edit_to_prompts

    # 1. check inputs and plan: each concept's prompts, every distinct prompt once
    if len(inversion) < 2:
        raise DiscoInspectError(
            f"The counterfactual scan needs at least 2 inverted images; got {len(inversion)}."
        )
    plans = {c: scorer.intervention(c, class_name) for c in concepts}
    prompts = list(dict.fromkeys(x for f, cs in plans.values() for x in (f, *cs)))
    index = {x: i for i, x in enumerate(prompts)}
    # 2. edit every image toward every prompt; the classifier and the scorer on each edit
    edits = edit_to_prompts(pipe, inversion, prompts, progress=progress, **(edit_options or {}))
    p, v = _values(classifier, edits, target, scale)
    col = {c: i for i, c in enumerate(scorer.concepts)}
    scores = scorer.score(edits.flatten(0, 1)).view(len(prompts), len(inversion), -1).double()
    # 3. per concept: did the edits take, and the paired effect; BH across the editable concepts
    rows, shifts = {}, {}
    for c, plan in plans.items():
        rows[c], shift = _concept(c, plan, index, p, v, scores, col, margin, min_took)
        if shift is not None:
            shifts[c] = shift
    q = benjamini_hochberg(torch.tensor([rows[c].p_value for c in shifts], dtype=torch.float64))
    for c, qv in zip(shifts, q, strict=True):
        rows[c].q_value = float(qv)
        rows[c].significant = bool(qv < alpha and rows[c].effect > margin)
    # 4. the result, with example edits of each concept
    examples = {
        c: {
            "source": inversion.images[:n_examples],
            "factor": edits[index[f], :n_examples],
            "contrast": edits[index[cs[0]], :n_examples],
            "p_factor": [float(x) for x in p[index[f], :n_examples]],
            "p_contrast": [float(x) for x in p[index[cs[0]], :n_examples]],
        }
        for c, (f, cs) in plans.items()
    }
    method = (
        f"each of {len(inversion)} inverted images edited (prompt-to-prompt) toward the concept's factor prompt and "
        f"each contrast; per image {'p(target)' if scale == 'p' else 'log-odds of the target'} on the factor edit "
        f"minus the mean over the contrast edits; one-sided sign-flip test of H0: effect <= {margin}; "
        "Benjamini-Hochberg across the editable concepts; an edit took when the scorer reads the concept more on the "
        f"factor edit than on the contrast edits (editable: on >= {min_took:.0%} of the images)"
    )
    return CounterfactualScan(rows, len(inversion), scale, margin, alpha, shortlist_rule, method, examples)
