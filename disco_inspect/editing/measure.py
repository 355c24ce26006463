"""Measure edits: reconstruction, fidelity to the source, diversity among samples, p(target), concept shifts.

Every distance is named for what it is: PSNR/SSIM (torchmetrics), the classifier's penultimate-feature distance
(always available), LPIPS only with the user's backbone weights, CLIP-T/CLIP-I only with a local open_clip model.
The diversity of N stochastic edits (mean pairwise distance) is reported beside the paper's upper bound
(eq. 5: the distance between the source and the deterministic edit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from .edit import EditResult
from .metrics import FeatureDistance, classifier_features, mean_pairwise, psnr, ssim


def _f(x: Any) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _ci(diffs: torch.Tensor, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> list[float | None]:
    """Bootstrap interval of the mean of paired differences (None with fewer than 2 pairs)."""
    if diffs.numel() < 2:
        return [None, None]
    gen = torch.Generator().manual_seed(seed)
    boot = diffs[torch.randint(0, diffs.numel(), (n_boot, diffs.numel()), generator=gen)].mean(1)
    lo, hi = torch.quantile(boot, torch.tensor([(1 - level) / 2, (1 + level) / 2]))
    return [float(lo), float(hi)]


@dataclass
class _Scores:
    """Everything measured on the whole batch at once: p(target), reconstruction and edit fidelity, concepts."""

    p_src: torch.Tensor
    p_rec: torch.Tensor
    p_det: torch.Tensor
    p_smp: torch.Tensor | None
    rec_psnr: torch.Tensor
    rec_ssim: torch.Tensor
    det_psnr: torch.Tensor
    det_ssim: torch.Tensor
    det_dist: torch.Tensor
    concepts: list[str]
    c_src: torch.Tensor | None = None
    c_det: torch.Tensor | None = None
    c_smp: torch.Tensor | None = None


@dataclass
class _Distances:
    """The per-image measures beside the batch-wide ones: distances and the optional reconstruction baselines."""

    distance: FeatureDistance
    lpips: FeatureDistance | None
    vae_ceiling: torch.Tensor | None
    plain_reconstructions: torch.Tensor | None


@torch.no_grad()
def measure_edits(
    result: EditResult,
    classifier: Any,
    target: int,
    *,
    scorer: Any = None,
    distance: FeatureDistance | None = None,
    lpips: FeatureDistance | None = None,
    clip: Any = None,
    vae_ceiling: torch.Tensor | None = None,
    plain_reconstructions: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Per-image and summary measurements of an :class:`~disco_inspect.editing.edit.EditResult` (JSON-ready).

    Args:
        classifier, target: the audited classifier and class index (p(target) before/after every edit).
        scorer: a concept scorer; per concept, the presence shift each edit caused (edit minus source).
        distance: the feature distance for fidelity and diversity (default: the classifier's penultimate layer).
        lpips: an LPIPS distance (:func:`~disco_inspect.editing.metrics.lpips_distance`) if the user has weights.
        clip: ``(model, tokenizer, preprocess)`` of a local open_clip model for CLIP-T/CLIP-I.
        vae_ceiling: the VAE's encode->decode of the sources (the reconstruction ceiling), if computed.
        plain_reconstructions: sampling from plain DDIM inversion under CFG (no null-text), if computed.
    """
    # 1. what is measured on the whole batch at once
    distance = distance or classifier_features(classifier)
    scores = _batch_scores(result, classifier, target, scorer, distance)
    # 2. one row per image
    measures = _Distances(distance, lpips, vae_ceiling, plain_reconstructions)
    rows = [_image_row(result, scores, measures, i) for i in range(len(result.sources))]
    # 3. CLIP-T/CLIP-I of the deterministic edits, with a local open_clip model
    if clip is not None:
        rows = _with_clip(rows, result, clip)
    # 4. the method-level means
    summary = summarize_edits(rows, scores.p_src, scores.p_det, scores.p_smp, scores.concepts)
    summary["distance"] = distance.name
    if lpips is not None:
        summary["lpips"] = getattr(lpips, "name", "LPIPS")
    return {"images": rows, "summary": summary}


def _batch_scores(
    result: EditResult, classifier: Any, target: int, scorer: Any, distance: FeatureDistance
) -> _Scores:
    """p(target) of every image, PSNR/SSIM of the reconstructions and edits, the edits' distance, concept scores."""
    from ..engine.records import target_probabilities

    src, rec, det = result.sources, result.reconstructions, result.edits
    samples = result.samples
    n_img = len(src)
    p_src = target_probabilities(classifier, src, target)
    p_rec = target_probabilities(classifier, rec, target)
    p_det = target_probabilities(classifier, det, target)
    p_smp = (
        target_probabilities(classifier, samples.flatten(0, 1), target).view(n_img, -1)
        if samples is not None
        else None
    )
    rec_psnr, rec_ssim = psnr(rec, src), ssim(rec, src)
    det_psnr, det_ssim, det_dist = psnr(det, src), ssim(det, src), distance(det, src)
    concepts = list(getattr(scorer, "concepts", []) or [])
    scores = _Scores(p_src, p_rec, p_det, p_smp, rec_psnr, rec_ssim, det_psnr, det_ssim, det_dist, concepts)
    if scorer is None:
        return scores
    c_src, c_det = scorer.score(src).float(), scorer.score(det).float()
    c_smp = (
        scorer.score(samples.flatten(0, 1)).float().view(n_img, samples.shape[1], -1)
        if samples is not None
        else None
    )
    return replace(scores, c_src=c_src, c_det=c_det, c_smp=c_smp)


def _image_row(result: EditResult, scores: _Scores, measures: _Distances, i: int) -> dict[str, Any]:
    """The measurements of image ``i`` (``edit.json``'s row, before the CLIP scores)."""
    src, det, samples, s = result.sources, result.edits, result.samples, scores
    distance, lpips = measures.distance, measures.lpips
    row: dict[str, Any] = {
        "name": result.names[i],
        "source_prompt": result.source_prompts[i],
        "edit_prompt": result.edit_prompts[i],
        "reconstruction": {"psnr": _f(s.rec_psnr[i]), "ssim": _f(s.rec_ssim[i])},
        "p_target": {
            "source": float(s.p_src[i]),
            "reconstruction": float(s.p_rec[i]),
            "edit": float(s.p_det[i]),
            "samples": [float(v) for v in s.p_smp[i]] if s.p_smp is not None else [],
        },
        "fidelity": {
            "edit": {"psnr": _f(s.det_psnr[i]), "ssim": _f(s.det_ssim[i]), "distance": _f(s.det_dist[i])}
        },
        "upper_bound": _f(s.det_dist[i]),
    }
    if measures.vae_ceiling is not None:
        row["reconstruction"]["vae_psnr"] = _f(psnr(measures.vae_ceiling[i : i + 1], src[i : i + 1])[0])
    if measures.plain_reconstructions is not None:
        row["reconstruction"]["plain_ddim_psnr"] = _f(
            psnr(measures.plain_reconstructions[i : i + 1], src[i : i + 1])[0]
        )
    if samples is not None:
        smp = samples[i]
        ref = src[i : i + 1].expand_as(smp)
        row["fidelity"]["samples"] = {
            "psnr": _mean([_f(v) for v in psnr(smp, ref)]),
            "ssim": _mean([_f(v) for v in ssim(smp, ref)]),
            "distance": _mean([_f(v) for v in distance(smp, ref)]),
        }
        row["diversity"] = _f(mean_pairwise(distance, smp))
    if lpips is not None:
        row["lpips"] = {"edit": _f(lpips(det[i : i + 1], src[i : i + 1])[0])}
        if samples is not None:
            row["lpips"]["diversity"] = _f(mean_pairwise(lpips, samples[i]))
    if s.c_src is not None:
        row["concept_shift"] = {c: float(s.c_det[i, k] - s.c_src[i, k]) for k, c in enumerate(s.concepts)}
        if samples is not None:
            row["concept_shift_samples"] = {
                c: float((s.c_smp[i, :, k] - s.c_src[i, k]).mean()) for k, c in enumerate(s.concepts)
            }
    return row


def _with_clip(rows: list[dict[str, Any]], result: EditResult, clip: Any) -> list[dict[str, Any]]:
    """``rows`` with each image's CLIP-T (edit vs the edit prompt's words) and CLIP-I (edit vs source)."""
    from .metrics import clip_scores

    model, tokenizer, preprocess = clip
    words = [
        " ".join(w for w in p.split() if not (w.startswith("<") and w.endswith(">")))
        for p in result.edit_prompts
    ]
    cs = clip_scores(model, tokenizer, preprocess, result.edits, result.sources, words)
    return [
        {**row, "clip": {"clip_t": float(cs["clip_t"][i]), "clip_i": float(cs["clip_i"][i])}}
        for i, row in enumerate(rows)
    ]


def summarize_edits(
    rows: list[dict[str, Any]],
    p_src: torch.Tensor,
    p_det: torch.Tensor,
    p_smp: torch.Tensor | None,
    concepts: Sequence[str],
) -> dict[str, Any]:
    """Method-level means: reconstruction, fidelity, diversity vs its bound, Δp(target) with a paired 95 % CI."""
    d_det = (p_det - p_src).float()
    out: dict[str, Any] = {
        "n_images": len(rows),
        "reconstruction_psnr": _mean([r["reconstruction"]["psnr"] for r in rows]),
        "reconstruction_ssim": _mean([r["reconstruction"]["ssim"] for r in rows]),
        "edit_psnr": _mean([r["fidelity"]["edit"]["psnr"] for r in rows]),
        "edit_ssim": _mean([r["fidelity"]["edit"]["ssim"] for r in rows]),
        "edit_distance": _mean([r["fidelity"]["edit"]["distance"] for r in rows]),
        "upper_bound": _mean([r["upper_bound"] for r in rows]),
        "p_target_source": float(p_src.mean()),
        "p_target_edit": float(p_det.mean()),
        "delta_p_edit": float(d_det.mean()),
        "delta_p_edit_ci95": _ci(d_det),
    }
    if rows and "vae_psnr" in rows[0]["reconstruction"]:
        out["vae_psnr"] = _mean([r["reconstruction"]["vae_psnr"] for r in rows])
    if rows and "plain_ddim_psnr" in rows[0]["reconstruction"]:
        out["plain_ddim_psnr"] = _mean([r["reconstruction"]["plain_ddim_psnr"] for r in rows])
    if p_smp is not None:
        d_smp = (p_smp.mean(1) - p_src).float()
        out.update(
            {
                "samples_psnr": _mean([r["fidelity"]["samples"]["psnr"] for r in rows]),
                "samples_ssim": _mean([r["fidelity"]["samples"]["ssim"] for r in rows]),
                "samples_distance": _mean([r["fidelity"]["samples"]["distance"] for r in rows]),
                "diversity": _mean([r["diversity"] for r in rows]),
                "p_target_samples": float(p_smp.mean()),
                "delta_p_samples": float(d_smp.mean()),
                "delta_p_samples_ci95": _ci(d_smp),
            }
        )
    if concepts and rows and "concept_shift" in rows[0]:
        mean_shift = {c: _mean([r["concept_shift"][c] for r in rows]) for c in concepts}
        out["concept_shift"] = mean_shift
        out["top_concepts"] = sorted(concepts, key=lambda c: -(mean_shift[c] or 0.0))[:3]
    return out
