"""Objectives: small callables mapping classifier logits [B, C] to a per-image loss [B]."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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


def make_objective(name: str, target: int) -> TowardClass | AwayFromClass:
    """Objective by config name (``toward`` or ``away``)."""
    return {"toward": TowardClass, "away": AwayFromClass}[name](target)
