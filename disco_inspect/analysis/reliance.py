"""Real-data reliance: on the user's own images, is the classifier surer of the class when a concept is present?

Correlational evidence, as data slicing has it (B2T, Domino, spuriosity rankings): each real image is scored by
the concept scorer and split, per concept, into images *with* the concept and images *without* it by a stated
rule (the world's oracle: the value it reads for the factor; other scorers: the top vs the bottom third of the
concept's score, the middle third left out). Per concept the effect is the classifier's mean value (the target
probability, or its log-odds when the classifier already recognises the class) with the concept minus without,
with a stratified bootstrap interval, a one-sided two-sample permutation test of H0 "effect <= margin", and
Benjamini–Hochberg across the judgeable concepts. A concept with fewer than ``min_group`` images on either side is
*not judgeable on these images*, with the counts — never a silent zero.

On images from the classifier's own training distribution a planted shortcut is rarely absent (that is what makes
it a shortcut), so its group without the concept is often too small: the counts say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import DiscoInspectError
from .stats import benjamini_hochberg

#: Fewest images on each side (with / without the concept) from which a concept is judged.
MIN_GROUP = 5
#: The rule of scorers without their own ``presence``: top vs bottom third of each concept's score.
TERTILE_RULE = "present: the top third of the images by the concept's score; absent: the bottom third"


@dataclass
class ConceptSlice:
    """One concept on the real images: group sizes, the classifier's mean value with and without it, the effect
    (with minus without) with its interval, p- and q-value; ``judgeable`` is False (and ``reason`` says why) when a
    group is too small."""

    concept: str
    n_present: int
    n_absent: int
    judgeable: bool
    reason: str | None = None
    mean_present: float | None = None
    mean_absent: float | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    significant: bool = False
    """``q < alpha`` and the effect exceeds the margin."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


@dataclass
class RealDataReliance:
    """Every concept's :class:`ConceptSlice` on the user's images, and how they were judged."""

    slices: dict[str, ConceptSlice]
    n_images: int
    scale: str
    margin: float
    alpha: float
    rule: str
    min_group: int
    method: str = ""

    @property
    def significant(self) -> list[str]:
        """Concepts whose presence raises the classifier's value beyond the margin (``q < alpha``)."""
        return [c for c, s in self.slices.items() if s.significant]

    @property
    def not_judgeable(self) -> list[str]:
        """Concepts with too few images on one side."""
        return [c for c, s in self.slices.items() if not s.judgeable]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (report.json's ``evidence.real_data``)."""
        d = asdict(self)
        d["slices"] = {c: s.to_dict() for c, s in self.slices.items()}
        return d


def concept_groups(scorer: Any, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Which images have each concept and which lack it: ``(present, absent, rule)`` with boolean [N, K] masks.

    A scorer with ``presence(scores)`` states its own rule (the world's oracle: the value it reads); otherwise the
    top third of the images by the concept's score are *present* and the bottom third *absent*."""
    scores = torch.as_tensor(scores, dtype=torch.float64)
    if scores.ndim != 2:
        raise DiscoInspectError(f"Concept scores must be [N, K]; got shape {tuple(scores.shape)}.")
    if hasattr(scorer, "presence"):
        present, absent, rule = scorer.presence(scores)
        return present.bool(), absent.bool(), rule
    n = scores.shape[0]
    k = n // 3
    order = torch.argsort(scores, dim=0, descending=True, stable=True)
    present = torch.zeros_like(scores, dtype=torch.bool)
    absent = torch.zeros_like(scores, dtype=torch.bool)
    if k:
        present.scatter_(0, order[:k], True)
        absent.scatter_(0, order[-k:], True)
    return present, absent, TERTILE_RULE


def _slice_test(
    with_: torch.Tensor, without: torch.Tensor, margin: float, n_boot: int, n_perm: int, gen: torch.Generator
) -> tuple[float, float, float, float]:
    """Effect ``mean(with) - mean(without)``, its stratified bootstrap 95 % interval, and the one-sided permutation
    p-value of H0 "effect <= margin" (the margin is taken off the images with the concept before permuting)."""
    effect = float(with_.mean() - without.mean())
    bi = torch.randint(0, len(with_), (n_boot, len(with_)), generator=gen)
    bo = torch.randint(0, len(without), (n_boot, len(without)), generator=gen)
    boot = with_[bi].mean(1) - without[bo].mean(1)
    lo, hi = (float(v) for v in torch.quantile(boot, torch.tensor([0.025, 0.975], dtype=boot.dtype)))
    pooled = torch.cat([with_ - margin, without])
    n1 = len(with_)
    perms = torch.argsort(torch.rand(n_perm, len(pooled), generator=gen), dim=1)
    null = pooled[perms[:, :n1]].mean(1) - pooled[perms[:, n1:]].mean(1)
    observed = float((with_ - margin).mean() - without.mean())
    p = (int((null >= observed - 1e-12).sum()) + 1) / (n_perm + 1)  # never 0 (Phipson & Smyth 2010)
    return effect, lo, hi, p


def real_data_reliance(
    concepts: Sequence[str],
    present: torch.Tensor,
    absent: torch.Tensor,
    values: torch.Tensor,
    *,
    scale: str = "p",
    margin: float = 0.0,
    alpha: float = 0.05,
    min_group: int = MIN_GROUP,
    rule: str = "",
    n_boot: int = 2000,
    n_perm: int = 5000,
    seed: int = 0,
) -> RealDataReliance:
    """Compare the classifier's ``values`` (one per image: p(target) or its log-odds) on images with vs without
    each concept.

    Args:
        concepts: the K concept names, in the columns' order.
        present, absent: boolean [N, K] masks (:func:`concept_groups`); an image may be in neither.
        values: [N] the classifier's value per image, on ``scale``.
        margin: smallest effect of interest; the test asks whether the effect exceeds it.
        alpha: false-discovery rate across the judgeable concepts (Benjamini–Hochberg).
        min_group: fewest images on each side for a concept to be judged.
        rule: how ``present``/``absent`` were decided (recorded).
    """
    # 1. check the inputs
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    present, absent = torch.as_tensor(present).bool(), torch.as_tensor(absent).bool()
    if present.shape != absent.shape or present.shape != (len(values), len(concepts)):
        raise DiscoInspectError(
            f"`present`/`absent` must be [N, K] = [{len(values)}, {len(concepts)}]; got "
            f"{tuple(present.shape)} and {tuple(absent.shape)}."
        )
    if min_group < 2:
        raise DiscoInspectError(f"`min_group` = {min_group!r} is too small; use at least 2 images per side.")
    # 2. per concept: the groups, and the test where both are large enough
    gen = torch.Generator().manual_seed(seed)
    slices: dict[str, ConceptSlice] = {}
    tested: list[str] = []
    for k, c in enumerate(concepts):
        w, wo = values[present[:, k]], values[absent[:, k]]
        if min(len(w), len(wo)) < min_group:
            reason = (
                f"not judgeable on these images: {len(w)} with the concept and {len(wo)} without "
                f"(at least {min_group} on each side needed)"
            )
            slices[c] = ConceptSlice(c, len(w), len(wo), judgeable=False, reason=reason)
            continue
        effect, lo, hi, p = _slice_test(w, wo, margin, n_boot, n_perm, gen)
        slices[c] = ConceptSlice(
            c, len(w), len(wo), True, None, float(w.mean()), float(wo.mean()), effect, lo, hi, p
        )
        tested.append(c)
    # 3. Benjamini–Hochberg across the judged concepts
    q = benjamini_hochberg(torch.tensor([slices[c].p_value for c in tested], dtype=torch.float64))
    for c, qv in zip(tested, q, strict=True):
        s = slices[c]
        s.q_value = float(qv)
        s.significant = bool(qv < alpha and s.effect is not None and s.effect > margin)
    method = (
        f"per concept: mean {'target probability' if scale == 'p' else 'target log-odds'} on images with the "
        f"concept minus without ({rule or 'given groups'}); stratified bootstrap 95 % interval; one-sided "
        f"permutation test of H0: effect <= {margin}; Benjamini-Hochberg across the judged concepts; fewer than "
        f"{min_group} images on a side: not judgeable"
    )
    return RealDataReliance(slices, len(values), scale, margin, alpha, rule, min_group, method)
