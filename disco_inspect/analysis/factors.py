"""Factor discovery: which concepts does the class token add to the images, and how surely?

For every concept: the paired shift of its presence between baseline and token images (same seeds and
templates), a bootstrap interval, a one-sided sign-flip test of "the shift exceeds ``min_effect``",
Benjamini–Hochberg q-values across concepts, and the correlation of the concept's presence with the
target probability along the optimisation trajectory. The result is a ranked list of :class:`Factor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from ..errors import DiscoInspectError
from .stats import PairedShift, benjamini_hochberg, correlation, paired_shift


@dataclass
class Intervention:
    """Confirmation of a factor by prompting it explicitly vs. contrasting phrases on paired seeds."""

    factor_prompt: str
    contrast_prompts: list[str]
    target_prob_factor: float
    target_prob_contrast: float
    effect: float
    """Mean paired change of the classifier's target probability (factor minus contrasts), on :attr:`scale`."""
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    confirmed: bool
    q_value: float | None = None
    """Benjamini–Hochberg q-value across the scanned concepts (None when only a few top factors were tested)."""
    reference: dict[str, Any] | None = None
    """With a reference classifier: its target probabilities, its effect, and the ``differential`` effect (audited
    minus reference, per seed: effect, ci_low, ci_high, p_value, q_value, significant)."""
    scale: str = "p"
    """What ``effect`` (and its interval, and the reference's) measures: ``p`` (target probability) or ``logodds``
    (its log-odds); ``target_prob_*`` are probabilities either way."""
    sequential: dict[str, Any] | None = None
    """With adaptive seeds: ``stage1_seeds``, ``stage1_p``, the ``decision`` and, for a concept measured again,
    ``stage2_seeds``, ``stage2_p`` and ``combined_p`` (= ``p_value``); ``n`` is the seeds it used in all."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


@dataclass
class Factor:
    """One concept's audit: presence with/without the token, the paired effect and its evidence."""

    concept: str
    baseline_rate: float
    token_rate: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    q_value: float
    trajectory_corr: float | None
    """Correlation of the concept's mean presence with the mean target probability over iterations."""
    significant: bool
    """The token raised the concept beyond chance: q < alpha of the test against the null control when one ran
    (token vs untrained/random-direction tokens), else against the baseline."""
    rank: int = 0
    intervention: Intervention | None = None
    control: dict[str, Any] | None = None
    """Null control: the concept's rate under control tokens and the token-minus-control ``effect`` with its
    interval; ``baseline_p_value``/``baseline_q_value`` keep the plain test against the baseline."""
    evidence: dict[str, Any] | None = None
    """Its lines of evidence side by side (:func:`~disco_inspect.analysis.evidence.triangulate`): ``generated`` (the
    intervention), ``real_data`` (the user's images with vs without the concept), which ``agree``,
    ``contradicted_by`` and ``only_user_images``."""

    @property
    def confirmed(self) -> bool:
        """True when an intervention showed the classifier's target probability depends on the factor."""
        return bool(self.intervention and self.intervention.confirmed)

    @property
    def nominated_by(self) -> str | None:
        """Which evidence names the factor: ``both`` (token shift and intervention agree), ``token``, ``scan``
        (intervention only), or None."""
        if self.significant and self.confirmed:
            return "both"
        if self.significant:
            return "token"
        if self.confirmed:
            return "scan"
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN correlations become ``None``)."""
        d = asdict(self)
        d["confirmed"] = self.confirmed
        d["nominated_by"] = self.nominated_by
        if d["trajectory_corr"] is not None and d["trajectory_corr"] != d["trajectory_corr"]:
            d["trajectory_corr"] = None
        return d


@dataclass
class FactorAudit:
    """Ranked factors plus the settings that produced them."""

    factors: list[Factor]
    alpha: float
    min_effect: float
    n_pairs: int
    method: dict[str, Any] = field(default_factory=dict)

    @property
    def significant(self) -> list[Factor]:
        """Factors whose q-value is below :attr:`alpha` (in rank order)."""
        return [f for f in self.factors if f.significant]

    @property
    def reported(self) -> list[Factor]:
        """The factors the audit claims the classifier relies on: confirmed by intervention (prompting the factor
        changes the classifier's verdict), in rank order. When no intervention ran (a scorer without
        ``intervention``), the significant token shifts stand in for them."""
        if not any(f.intervention is not None for f in self.factors):
            return self.significant
        return [f for f in self.factors if f.confirmed]

    @property
    def candidates(self) -> list[Factor]:
        """Token-only findings: the token raised them beyond the null control, but prompting them does not change
        the verdict. In the saturated regime these are what raises the classifier's confidence further (e.g. the
        world's clean classifier is far more confident on white circles: log-odds 37 vs 17-26 on rendered scenes)."""
        reported = self.reported
        return [f for f in self.factors if f.significant and f not in reported]

    def top(self, k: int = 3) -> list[Factor]:
        """The first ``k`` reported factors."""
        return self.reported[:k]

    def get(self, concept: str) -> Factor:
        """The factor of one concept."""
        for f in self.factors:
            if f.concept == concept:
                return f
        raise DiscoInspectError(f"No factor {concept!r}; concepts are {[f.concept for f in self.factors]}.")

    def rank_by_reliance(self) -> None:
        """Final order once interventions ran: factors confirmed by intervention first, by their causal effect on
        the classifier (with a reference classifier: by the differential effect, audited minus reference), then the
        other significant ones by presence shift, then the rest."""
        differential = any(f.intervention is not None and f.intervention.reference for f in self.factors)

        def causal(f: Factor) -> float:
            iv = f.intervention
            if differential and iv is not None and iv.reference:
                return iv.reference["differential"]["effect"]
            return iv.effect if iv is not None else 0.0

        def key(f: Factor) -> tuple[int, float]:
            if f.confirmed:
                return (0, -causal(f))
            return (1 if f.significant else 2, -f.effect)

        self.factors.sort(key=key)
        for r, f in enumerate(self.factors, 1):
            f.rank = r
        self.method["ranking"] = (
            "confirmed factors first, by the intervention's effect on the target probability"
            + (" minus the reference classifier's (differential)" if differential else "")
            + "; then other significant factors, then the rest, by presence shift"
        )
        self.method["ranking_kind"] = "bias" if differential else "reliance"

    def with_interventions(
        self, results: dict[str, Intervention], method: dict[str, Any] | None = None
    ) -> FactorAudit:
        """A copy with each concept's intervention attached (``results``: concept -> its :class:`Intervention`),
        ranked by :meth:`rank_by_reliance`, with ``method`` entries recorded after the ranking's; this audit is
        unchanged."""
        factors = [replace(f, intervention=results.get(f.concept, f.intervention)) for f in self.factors]
        out = replace(self, factors=factors, method=dict(self.method))
        out.rank_by_reliance()
        out.method.update(method or {})
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "n_pairs": self.n_pairs,
            "method": self.method,
            "factors": [f.to_dict() for f in self.factors],
        }


def discover_factors(
    concepts: Sequence[str],
    baseline_scores: torch.Tensor,
    token_scores: torch.Tensor,
    *,
    control_scores: torch.Tensor | None = None,
    trajectory_scores: torch.Tensor | None = None,
    trajectory_target: Sequence[float] | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    n_boot: int = 2000,
    n_perm: int = 10000,
    seed: int = 0,
) -> FactorAudit:
    """Rank concepts by how much the token raises their presence.

    Args:
        concepts: K concept names.
        baseline_scores, token_scores: concept presence in [0, 1], [N, K], row i of both from the same seed
            and template.
        control_scores: presence under the null control [N, K] (same seeds and prompts as ``token_scores``, with
            control tokens: untrained, or moved as far as the learned token in random directions; averaged per
            seed). When given, significance is of the token-minus-control shift: what the classifier taught the
            token, not the drift of inserting and moving a token.
        trajectory_scores: mean presence per recorded iteration [T, K] (optional).
        trajectory_target: mean target probability per recorded iteration [T] (optional).
        alpha: false-discovery rate for :attr:`Factor.significant`.
        min_effect: smallest presence shift that counts; the test is H0 "shift <= min_effect".

    Significant factors come first, ordered by effect; the rest follow by effect.
    """
    # 1. check inputs
    _check_inputs(concepts, baseline_scores, token_scores, control_scores, alpha, min_effect)
    # 2. the paired tests: token vs baseline, and token vs the null control when one ran
    tests = {"margin": min_effect, "alternative": "greater", "n_boot": n_boot, "n_perm": n_perm, "seed": seed}
    shift = paired_shift(baseline_scores, token_scores, **tests)
    ctrl = None if control_scores is None else paired_shift(control_scores, token_scores, **tests)
    evidence = _Evidence.of(shift, ctrl)
    # 3. the correlation of each concept with the target probability along the trajectory
    corr: list[float | None] = [None] * len(concepts)
    if trajectory_scores is not None and trajectory_target is not None and len(trajectory_target) >= 3:
        corr = [float(v) for v in correlation(torch.tensor(list(trajectory_target)), trajectory_scores)]
    # 4. one factor per concept, significant ones first, each by effect
    factors = [evidence.factor(i, c, corr[i], alpha) for i, c in enumerate(concepts)]
    ranked = sorted(factors, key=lambda f: (not f.significant, -f.effect))
    factors = [replace(f, rank=r) for r, f in enumerate(ranked, 1)]
    # 5. the audit, with how it was computed
    against = "the null control (token vs control tokens, same seeds)" if ctrl is not None else "the baseline"
    method = {
        "effect": "mean paired shift of concept presence (token - baseline)",
        "interval": f"percentile bootstrap, {n_boot} resamples, {int(shift.level * 100)}%",
        "test": f"one-sided paired sign-flip test of H0: shift <= {min_effect} against {against} "
        f"({n_perm} flips or exact)",
        "fdr": "Benjamini-Hochberg across concepts",
        "trajectory": "Pearson r of mean presence vs mean target "
        "probability over recorded iterations (validation iterations: the baseline's seeds)",
    }
    return FactorAudit(factors=factors, alpha=alpha, min_effect=min_effect, n_pairs=shift.n, method=method)


def _check_inputs(
    concepts: Sequence[str],
    baseline_scores: torch.Tensor,
    token_scores: torch.Tensor,
    control_scores: torch.Tensor | None,
    alpha: float,
    min_effect: float,
) -> None:
    """Raise on an invalid ``alpha`` or ``min_effect``, or scores of the wrong shape."""
    if not 0 < alpha < 1:
        raise DiscoInspectError(
            f"`alpha` = {alpha!r} is invalid; use a false-discovery rate in (0, 1), e.g. 0.05."
        )
    if min_effect < 0:
        raise DiscoInspectError(f"`min_effect` = {min_effect!r} is invalid; use a shift >= 0, e.g. 0.05.")
    k = len(concepts)
    if baseline_scores.ndim != 2 or baseline_scores.shape[1] != k:
        raise DiscoInspectError(
            f"Scores must have shape [N, {k}] (one column per concept); got {tuple(baseline_scores.shape)}."
        )
    if control_scores is not None and control_scores.shape != token_scores.shape:
        raise DiscoInspectError(
            f"`control_scores` must have the shape of the token scores {tuple(token_scores.shape)}; "
            f"got {tuple(control_scores.shape)}."
        )


@dataclass(frozen=True)
class _Evidence:
    """The paired tests of all concepts: token vs baseline (``shift``, its q-values ``q``) and, when a null control
    ran, token vs control (``ctrl``), which then decides significance."""

    shift: PairedShift
    q: torch.Tensor
    ctrl: PairedShift | None
    test_p: torch.Tensor
    """The p-values that decide significance (against the control when one ran, else the baseline)."""
    test_q: torch.Tensor

    @classmethod
    def of(cls, shift: PairedShift, ctrl: PairedShift | None) -> _Evidence:
        """The evidence of the two tests, with Benjamini-Hochberg q-values across concepts."""
        q = benjamini_hochberg(shift.p_value)
        if ctrl is None:
            return cls(shift=shift, q=q, ctrl=None, test_p=shift.p_value, test_q=q)
        return cls(shift=shift, q=q, ctrl=ctrl, test_p=ctrl.p_value, test_q=benjamini_hochberg(ctrl.p_value))

    def factor(self, i: int, concept: str, trajectory_corr: float | None, alpha: float) -> Factor:
        """The (unranked) factor of concept ``i``."""
        shift, ctrl, test_p, test_q = self.shift, self.ctrl, self.test_p, self.test_q
        control = None
        if ctrl is not None:
            control = {
                "rate": float(ctrl.mean_a[i]),
                "effect": float(ctrl.effect[i]),
                "ci_low": float(ctrl.ci_low[i]),
                "ci_high": float(ctrl.ci_high[i]),
                "baseline_p_value": float(shift.p_value[i]),
                "baseline_q_value": float(self.q[i]),
            }
        return Factor(
            concept=concept,
            baseline_rate=float(shift.mean_a[i]),
            token_rate=float(shift.mean_b[i]),
            effect=float(shift.effect[i]),
            ci_low=float(shift.ci_low[i]),
            ci_high=float(shift.ci_high[i]),
            p_value=float(test_p[i]),
            q_value=float(test_q[i]),
            trajectory_corr=trajectory_corr,
            significant=bool(test_q[i] < alpha),
            control=control,
        )
