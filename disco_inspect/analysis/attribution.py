"""Captum attributions of the classifier's target logit, and "context reliance" against an object mask.

Methods (all batched; Captum is imported lazily):

* ``integrated_gradients`` — IntegratedGradients from a black image, ``internal_batch_size`` bounded.
* ``grad_cam`` — LayerGradCam on the classifier's last convolution (skipped, with a reason, when the
  model exposes no hookable convolution, e.g. a TorchScript or ONNX-converted graph).
* ``occlusion`` — Occlusion with a grey patch, ``perturbations_per_eval`` bounded.

Maps are reduced to one non-negative [N, H, W] saliency per image (absolute value summed over colour
channels, GradCAM's positive part upsampled), so they can be overlaid and compared with a mask.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DiscoInspectError, missing_extra

METHODS: tuple[str, ...] = ("integrated_gradients", "grad_cam", "occlusion")


@dataclass
class Attributions:
    """Saliency maps [N, H, W] per method for a batch of images, plus methods that could not run."""

    maps: dict[str, torch.Tensor]
    skipped: dict[str, str] = field(default_factory=dict)


def _captum() -> Any:
    try:
        import captum.attr as attr
    except ImportError as e:
        raise missing_extra("captum", "report") from e
    return attr


def last_conv_layer(classifier: Any) -> nn.Module | None:
    """The last ``nn.Conv2d`` of the classifier's module that accepts forward hooks, else ``None``."""
    module = getattr(classifier, "module", classifier)
    if isinstance(module, torch.jit.ScriptModule):
        return None
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def attribute(
    classifier: Any,
    images: torch.Tensor,
    target: int,
    *,
    methods: Sequence[str] = METHODS,
    ig_steps: int = 32,
    internal_batch_size: int = 64,
    occlusion_window: int | None = None,
    perturbations_per_eval: int = 64,
) -> Attributions:
    """Saliency of ``classifier``'s ``target`` logit for images [N, 3, H, W] in [0, 1].

    Args:
        methods: some of :data:`METHODS`.
        ig_steps: IntegratedGradients integration steps.
        internal_batch_size: IG's batch bound (rows of steps x images per forward).
        occlusion_window: side of the occluding square (default: an eighth of the image, at least 2 px);
            the stride is half the window.
        perturbations_per_eval: occlusions evaluated per forward.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DiscoInspectError(f"Unknown attribution methods {unknown}; use some of {list(METHODS)}.")
    if images.ndim != 4 or images.shape[1] != 3:
        raise DiscoInspectError(f"`images` must be [N, 3, H, W] in [0, 1]; got {tuple(images.shape)}.")
    attr = _captum()
    x = images.detach().float().clone()
    n, _, h, w = x.shape
    forward = classifier
    out: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    was_training = getattr(classifier, "training", False)
    if hasattr(classifier, "eval"):
        classifier.eval()
    try:
        if "integrated_gradients" in methods:
            ig = attr.IntegratedGradients(forward)
            a = ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=ig_steps,
                             internal_batch_size=max(internal_batch_size, 1))
            out["integrated_gradients"] = a.abs().sum(1).detach()
        if "grad_cam" in methods:
            layer = last_conv_layer(classifier)
            if layer is None:
                skipped["grad_cam"] = ("the model exposes no hookable nn.Conv2d (TorchScript/ONNX graphs hide their "
                                       "layers); load an eager module to get GradCAM")
            else:
                cam = attr.LayerGradCam(forward, layer).attribute(x, target=target, relu_attributions=True)
                cam = F.interpolate(cam.detach().float(), size=(h, w), mode="bilinear", align_corners=False)
                out["grad_cam"] = cam[:, 0].clamp(min=0)
        if "occlusion" in methods:
            win = occlusion_window or max(2, min(h, w) // 8)
            stride = max(1, win // 2)
            occ = attr.Occlusion(forward)
            a = occ.attribute(x, sliding_window_shapes=(3, win, win), strides=(3, stride, stride), target=target,
                              baselines=0.5, perturbations_per_eval=max(perturbations_per_eval, 1))
            out["occlusion"] = a.detach().sum(1).clamp(min=0)
    finally:
        if was_training:
            classifier.train()
    if not out and not skipped:
        raise DiscoInspectError("No attribution method ran; pass at least one of " f"{list(METHODS)}.")
    return Attributions(maps={k: v.float().cpu() for k, v in out.items()}, skipped=skipped)


def context_reliance(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of saliency outside the object mask, per image: sum(map * (1 - mask)) / sum(map).

    Args:
        maps: non-negative saliency [N, H, W].
        masks: object masks in [0, 1], [N, H, W] (resized to the maps if needed).
    """
    if maps.ndim != 3:
        raise DiscoInspectError(f"`maps` must be [N, H, W]; got {tuple(maps.shape)}.")
    masks = masks.float()
    if masks.shape[-2:] != maps.shape[-2:]:
        masks = F.interpolate(masks[:, None], size=maps.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    m = maps.clamp(min=0).float()
    total = m.flatten(1).sum(1).clamp(min=1e-12)
    return (m * (1 - masks)).flatten(1).sum(1) / total
