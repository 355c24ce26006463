"""Objectives: small callables mapping classifier logits [B, C] to a per-image loss [B].

``toward`` is the paper's cross-entropy. It has (almost) no gradient once the classifier already recognises the
class (p(target) near 1, the common case on real classes): Adam then normalises noise into full-size steps and
the token drifts. ``margin`` keeps a signal there: it raises the target's log-odds against the other classes,
whose gradient with respect to the logits does not vanish as p(target) -> 1. ``auto`` picks ``margin`` when the
baseline images are already recognised (mean p(target) >= :data:`SATURATION_THRESHOLD`), else ``toward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Baseline mean p(target) from which the classifier counts as saturated (``auto`` then uses ``margin``).
SATURATION_THRESHOLD = 0.9
#: Log-odds beyond which ``margin`` stops pushing (p(target) ~ 1 - 2e-9): a finite goal, no runaway.
MARGIN_CAP = 20.0


@dataclass
class TowardClass:
    """Cross-entropy toward ``target`` (the paper's objective)."""

    target: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        labels = torch.full((logits.shape[0],), self.target, dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits.float(), labels, reduction="none")


@dataclass
class AwayFromClass:
    """``-log(1 - p_target)``: push images away from ``target`` (e.g. "what makes it *not* a lobster")."""

    target: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=-1)
        others = torch.cat([logp[:, : self.target], logp[:, self.target + 1 :]], dim=1)
        return -torch.logsumexp(others, dim=1)


@dataclass
class LogOddsMargin:
    """``-min(log p/(1-p), cap)``: the target logit's margin over the log-sum-exp of the others, negated.

    Its gradient with respect to the target logit is -1 until the cap, however confident the classifier already
    is, so the token keeps learning what raises the classifier's confidence further (saturated classes).
    """

    target: int
    cap: float = MARGIN_CAP

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        z = logits.float()
        others = torch.cat([z[:, : self.target], z[:, self.target + 1 :]], dim=1)
        margin = z[:, self.target] - torch.logsumexp(others, dim=1)
        return -margin.clamp(max=self.cap)


#: Objective names -> classes (the one registry of choices; ``auto`` resolves to one of them).
OBJECTIVES = {"toward": TowardClass, "away": AwayFromClass, "margin": LogOddsMargin}
OBJECTIVE_CHOICES = (*OBJECTIVES, "auto")


def resolve_objective(name: str, baseline_target_prob: float | None) -> str:
    """The concrete objective for ``name``: ``auto`` -> ``margin`` when saturated (see module doc), else ``toward``."""
    if name != "auto":
        return name
    if baseline_target_prob is not None and baseline_target_prob >= SATURATION_THRESHOLD:
        return "margin"
    return "toward"


def regime(baseline_target_prob: float | None) -> str:
    """``saturated`` when the baseline images are already recognised, else ``learning``."""
    if baseline_target_prob is None:
        return "unknown"
    return "saturated" if baseline_target_prob >= SATURATION_THRESHOLD else "learning"


def make_objective(name: str, target: int) -> TowardClass | AwayFromClass | LogOddsMargin:
    """Objective by config name (``toward``, ``away`` or ``margin``; resolve ``auto`` first)."""
    return OBJECTIVES[name](target)
