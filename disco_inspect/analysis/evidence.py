"""The user's own images as evidence, and the one place that lines a factor's evidence up side by side.

:func:`image_evidence` reads the classifier on every real image of the class (which it puts elsewhere is listed,
not dropped), and slices the images by concept (:mod:`.reliance`). :func:`triangulate` attaches to every factor its
lines of evidence — the generated intervention, the real-data slice and the real-image counterfactual edits — each
with effect, interval, q-value and sample size, says which of them agree, and states the rule.

The rule (until the benchmark with images chooses another, docs/benchmarks.md): a factor is *confirmed* by the
generated intervention, as before; the real data support or contradict it but never confirm alone, because on a
validation split from the training distribution a concept's presence is confounded with whatever co-occurs with
it. A factor supported only by the real data says so (``only_user_images``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from .reliance import RealDataReliance, concept_groups, real_data_reliance

#: Fewest readable images from which the real-image channels conclude anything.
MIN_USABLE = 8
#: Smallest rise of p(target) on images of *other* classes that counts as false-positive reliance: there p(target)
#: sits near 0, so the in-class margin (0.05) would hide it (on 153 rendered non-circles a green background raised
#: p(circle) from 0.000 to 0.112 for the classifier with the green shortcut; q 0.43 at a 0.05 margin).
OTHER_CLASS_MARGIN = 0.01

TRIANGULATION_RULE = (
    "confirmed by the generated intervention (the scan's rule); the user's images (the real-data slice: images with "
    "vs without the concept; the counterfactual edits: each image edited toward the concept vs its contrasts) support "
    "a factor when significant, contradict it when the interval lies below zero, and never confirm alone: presence "
    "in real data is confounded with what co-occurs with it, and edits toward different prompts damage the image "
    "differently (on 12 rendered circles the clean classifier's edits showed +0.24 for background=green, q = 0.001)"
)


@dataclass
class ImageEvidence:
    """What the user's images showed: how many were read, which the classifier puts in another class, the regime on
    them, and the real-data reliance (``None`` with a ``cannot_conclude`` reason when too few images were usable)."""

    n_read: int
    unreadable: list[dict[str, str]]
    off_class: list[dict[str, Any]]
    mean_target_prob: float
    regime: str
    scale: str
    real_data: RealDataReliance | None
    cannot_conclude: str | None = None
    files: list[str] = field(default_factory=list, repr=False)
    other_classes: RealDataReliance | None = None
    """From a labelled tree: the same slice on the images of the *other* classes (p(target) with vs without each
    concept: false-positive reliance, e.g. plates raising p(lobster) on non-lobsters); ``None`` without them."""
    n_other: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (report.json's ``evidence.images``)."""
        d = asdict(self)
        d["real_data"] = None if self.real_data is None else self.real_data.to_dict()
        d["other_classes"] = None if self.other_classes is None else self.other_classes.to_dict()
        d["n_off_class"] = len(self.off_class)
        d["n_unreadable"] = len(self.unreadable)
        return d


@torch.no_grad()
def image_evidence(
    classifier: Any,
    target: int,
    loaded: Any,
    scorer: Any,
    *,
    alpha: float = 0.05,
    margin_p: float = 0.05,
    margin_logodds: float = 1.0,
    scale: str = "p",
    seed: int = 0,
    others: Any = None,
) -> ImageEvidence:
    """The classifier and the concept scorer on the user's images of class ``target`` (``loaded``: an
    :class:`~disco_inspect.editing.images.ImageLoad`), and the real-data reliance of every concept.

    ``scale``: ``p`` (the target probability, default), ``logodds`` or ``auto`` (log-odds when the classifier already
    recognises the class on these images, mean p(target) >= the saturation threshold), with the margin of that
    scale. ``others`` (images of the other classes, from a labelled tree) get the same slice of p(target): what raises
    the class's probability where the class is absent. Log-odds are not the default: on 64 rendered circles the world's *clean* classifier, accurate on every
    value, is far surer of white and of large circles (+10.7 and +13.2 log-odds, q < 0.01), which is confidence, not
    reliance (docs/method.md, "The user's images as evidence")."""
    from ..engine.objectives import regime
    from ..engine.records import target_log_odds

    # 1. the classifier on every image: p(target) and its top-1 (images of another class are listed)
    images, files = loaded.images, [str(p) for p in loaded.paths]
    probs = torch.cat(
        [classifier(images[i : i + 64]).float().softmax(-1).cpu() for i in range(0, len(images), 64)]
    )
    p = probs[:, target]
    off = [
        {"file": files[i], "top1": classifier.class_name(int(probs[i].argmax())), "p_target": float(p[i])}
        for i in range(len(images))
        if int(probs[i].argmax()) != target
    ]
    reg = regime(float(p.mean()))
    scale = ("logodds" if reg == "saturated" else "p") if scale == "auto" else scale
    common = {"unreadable": list(loaded.failures), "off_class": off, "mean_target_prob": float(p.mean())}
    # 2. too few usable images: the real-image channels say they cannot conclude
    if len(images) < MIN_USABLE:
        why = f"cannot conclude: {len(images)} usable images (at least {MIN_USABLE} needed)"
        return ImageEvidence(
            len(images), regime=reg, scale=scale, real_data=None, cannot_conclude=why, **common
        )
    # 3. per concept: images with vs without it
    values = p.double() if scale == "p" else target_log_odds(classifier, images, target)
    present, absent, rule = concept_groups(scorer, scorer.score(images))
    real = real_data_reliance(
        list(scorer.concepts),
        present,
        absent,
        values,
        scale=scale,
        margin=margin_p if scale == "p" else margin_logodds,
        alpha=alpha,
        rule=rule,
        seed=seed,
    )
    other = _other_classes(classifier, target, others, scorer, alpha, seed) if others is not None else None
    n_other = 0 if others is None else len(others.images)
    return ImageEvidence(
        len(images),
        regime=reg,
        scale=scale,
        real_data=real,
        files=files,
        other_classes=other,
        n_other=n_other,
        **common,
    )


def _other_classes(
    classifier: Any, target: int, others: Any, scorer: Any, alpha: float, seed: int
) -> RealDataReliance | None:
    """The real-data slice of p(target) on the other classes' images, margin :data:`OTHER_CLASS_MARGIN` (``None``
    below :data:`MIN_USABLE` of them)."""
    from ..engine.records import target_probabilities

    if len(others.images) < MIN_USABLE:
        return None
    values = target_probabilities(classifier, others.images, target).double()
    present, absent, rule = concept_groups(scorer, scorer.score(others.images))
    return real_data_reliance(
        list(scorer.concepts),
        present,
        absent,
        values,
        margin=OTHER_CLASS_MARGIN,
        alpha=alpha,
        rule=rule,
        seed=seed,
    )


def _generated_line(iv: Any) -> dict[str, Any] | None:
    """The generated intervention as an evidence line."""
    if iv is None:
        return None
    return {
        "effect": iv.effect,
        "ci_low": iv.ci_low,
        "ci_high": iv.ci_high,
        "q_value": iv.q_value,
        "n": iv.n,
        "unit": "paired seeds",
        "scale": iv.scale,
        "supports": bool(iv.confirmed),
    }


def _judged(x: Any, scale: str) -> dict[str, Any]:
    """The judged part of a real-image evidence line: effect, CI, q-value, and whether it supports or contradicts."""
    return {
        "effect": x.effect,
        "ci_low": x.ci_low,
        "ci_high": x.ci_high,
        "q_value": x.q_value,
        "scale": scale,
        "supports": bool(x.significant),
        "contradicts": bool(x.ci_high is not None and x.ci_high < 0),
    }


_UNJUDGED = {"supports": False, "contradicts": False}


def _real_data_line(s: Any, scale: str) -> dict[str, Any] | None:
    """A concept's real-data slice as an evidence line (``judgeable`` False with the reason when too few images)."""
    if s is None:
        return None
    line = {
        "n": s.n_present + s.n_absent,
        "n_present": s.n_present,
        "n_absent": s.n_absent,
        "unit": "your images",
    }
    if not s.judgeable:
        return {**line, "judgeable": False, "reason": s.reason, **_UNJUDGED}
    return {**line, "judgeable": True, **_judged(s, scale)}


def _real_edit_line(e: Any, scale: str) -> dict[str, Any] | None:
    """A concept's counterfactual edits of the real images as an evidence line (``editable`` False with the reason
    when the edits did not take)."""
    if e is None:
        return None
    line = {
        "n": e.n_images,
        "unit": "your images, edited",
        "took_rate": e.took_rate,
        "editable": e.editable,
        "also_moved": list(getattr(e, "also_moved", [])),
    }
    if not e.editable:
        return {**line, "reason": e.reason, **_UNJUDGED}
    return {**line, **_judged(e, scale)}


def triangulate(factors: Any, images: ImageEvidence | None, real_edits: Any = None) -> Any:
    """A copy of ``factors`` (a :class:`~disco_inspect.analysis.factors.FactorAudit`) whose every factor carries its
    ``evidence`` lines (``generated``, ``real_data``, ``real_edit``, ``other_classes``), which ``agree``, and ``only_user_images`` when
    the user's images alone support it; the rule is recorded in ``method["triangulation"]``. Ranking and
    confirmation are unchanged (:data:`TRIANGULATION_RULE`)."""
    real = images.real_data if images is not None else None
    other = images.other_classes if images is not None else None
    edited = real_edits.concepts if real_edits is not None else {}
    out = []
    for f in factors.factors:
        lines = {
            "generated": _generated_line(f.intervention),
            "real_data": None if real is None else _real_data_line(real.slices.get(f.concept), real.scale),
            "real_edit": None
            if real_edits is None
            else _real_edit_line(edited.get(f.concept), real_edits.scale),
            "other_classes": None if other is None else _real_data_line(other.slices.get(f.concept), "p"),
        }
        supporting = sorted(k for k, v in lines.items() if v and v["supports"])
        evidence = {
            **lines,
            "agree": supporting if len(supporting) > 1 else [],
            "contradicted_by": sorted(k for k, v in lines.items() if v and v.get("contradicts")),
            "only_user_images": bool(supporting) and "generated" not in supporting,
        }
        out.append(replace(f, evidence=evidence))
    method = {**factors.method, "triangulation": TRIANGULATION_RULE}
    return replace(factors, factors=out, method=method)


def edit_shortlist(factors: Any, evidence: Any, k: int) -> tuple[list[str], str]:
    """The concepts the real-image counterfactual scan edits toward (at most ``k``) and the rule, stated: confirmed by
    the generated scan (in rank order), then supported by the real data (by effect), then the rest by the generated
    effect."""
    real = evidence.real_data.slices if evidence is not None and evidence.real_data is not None else {}
    confirmed = [f.concept for f in factors.factors if f.confirmed]
    by_data = sorted((c for c, sl in real.items() if sl.significant), key=lambda c: -(real[c].effect or 0))
    rest = sorted(
        (f for f in factors.factors if f.intervention is not None), key=lambda f: -f.intervention.effect
    )
    ordered = list(dict.fromkeys([*confirmed, *by_data, *(f.concept for f in rest)]))
    rule = (
        f"at most {k}: the concepts the generated scan confirmed, then those the real data support, then the rest by "
        "the generated effect"
    )
    return ordered[:k], rule
