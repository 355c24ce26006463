"""Captum attributions of the classifier's target logit, and "context reliance" against an object mask.

Methods (all batched; Captum is imported lazily):

* ``integrated_gradients`` — IntegratedGradients from a black image, ``internal_batch_size`` bounded.
* ``grad_cam`` — LayerGradCam on the classifier's last convolution (skipped, with a reason, when the
  model exposes no hookable convolution, e.g. a TorchScript or ONNX-converted graph, or when its last
  convolution is a transformer's patch embedding, after which there is no spatial feature map).
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
#: IntegratedGradients integration steps (:func:`attribute`'s default).
IG_STEPS = 32


def occlusion_geometry(h: int, w: int, window: int | None = None) -> tuple[int, int, int]:
    """The occluding square's side (default: an eighth of the image, at least 2 px), its stride (half the side) and
    the number of positions it takes on an ``h`` x ``w`` image."""
    win = window or max(2, min(h, w) // 8)
    stride = max(1, win // 2)
    return win, stride, ((h - win) // stride + 1) * ((w - win) // stride + 1)


def classifier_rows(methods: Sequence[str], h: int, w: int, grad_cam: bool = True) -> int:
    """Classifier rows :func:`attribute` runs per image at the defaults (what the cost plan counts): ``ig_steps``
    for IntegratedGradients, one for GradCAM (``grad_cam``: its layer exists), the unoccluded image and every
    occlusion."""
    rows = IG_STEPS if "integrated_gradients" in methods else 0
    rows += 1 if "grad_cam" in methods and grad_cam else 0
    return rows + (1 + occlusion_geometry(h, w)[2] if "occlusion" in methods else 0)


@dataclass
class Attributions:
    """Saliency maps [N, H, W] per method for a batch of images, plus methods that could not run."""

    maps: dict[str, torch.Tensor]
    skipped: dict[str, str] = field(default_factory=dict)


def _captum() -> Any:
    try:
        import captum.attr as attr
    except ImportError as e:
        raise missing_extra("captum") from e
    return attr


def last_conv_layer(classifier: Any) -> nn.Module | None:
    """The last hookable ``nn.Conv2d`` of the classifier's module that yields a spatial feature map, else ``None``.

    ``None`` for TorchScript graphs and for transformers whose last convolution is the patch embedding.
    """
    return _gradcam_layer(classifier)[0]


def _is_patch_embedding(name: str, conv: nn.Conv2d) -> bool:
    """A patchify convolution: named so (timm ``patch_embed``, HF ``patch_embeddings``) or non-overlapping strided."""
    kernel, stride = tuple(conv.kernel_size), tuple(conv.stride)
    return "patch_embed" in name or (kernel == stride and max(stride) > 1)


def _gradcam_layer(classifier: Any) -> tuple[nn.Module | None, str]:
    """The layer GradCAM runs on, or ``None`` and the reason it cannot run."""
    module = getattr(classifier, "module", classifier)
    if isinstance(module, torch.jit.ScriptModule):
        return None, (
            "the model exposes no hookable nn.Conv2d (TorchScript/ONNX graphs hide their layers); load an "
            "eager module to get GradCAM"
        )
    convs = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return None, "the model has no nn.Conv2d whose feature map GradCAM could weight"
    name, conv = convs[-1]
    if _is_patch_embedding(name, conv):
        return None, (
            f"the last nn.Conv2d (`{name}`) is a transformer's patch embedding: there is no spatial conv "
            "feature map after it, so GradCAM would be meaningless; skipped"
        )
    return conv, ""


def attribute(
    classifier: Any,
    images: torch.Tensor,
    target: int,
    *,
    methods: Sequence[str] = METHODS,
    ig_steps: int = IG_STEPS,
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
            a = ig.attribute(
                x,
                baselines=torch.zeros_like(x),
                target=target,
                n_steps=ig_steps,
                internal_batch_size=max(internal_batch_size, 1),
            )
            out["integrated_gradients"] = a.abs().sum(1).detach()
        if "grad_cam" in methods:
            layer, reason = _gradcam_layer(classifier)
            if layer is None:
                skipped["grad_cam"] = reason
            else:
                cam = attr.LayerGradCam(forward, layer).attribute(x, target=target, relu_attributions=True)
                cam = F.interpolate(cam.detach().float(), size=(h, w), mode="bilinear", align_corners=False)
                out["grad_cam"] = cam[:, 0].clamp(min=0)
        if "occlusion" in methods:
            win, stride, _ = occlusion_geometry(h, w, occlusion_window)
            occ = attr.Occlusion(forward)
            a = occ.attribute(
                x,
                sliding_window_shapes=(3, win, win),
                strides=(3, stride, stride),
                target=target,
                baselines=0.5,
                perturbations_per_eval=max(perturbations_per_eval, 1),
            )
            out["occlusion"] = a.detach().sum(1).clamp(min=0)
    finally:
        if was_training:
            classifier.train()
    if not out and not skipped:
        raise DiscoInspectError(f"No attribution method ran; pass at least one of {list(METHODS)}.")
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
        masks = F.interpolate(masks[:, None], size=maps.shape[-2:], mode="bilinear", align_corners=False)[
            :, 0
        ]
    m = maps.clamp(min=0).float()
    total = m.flatten(1).sum(1).clamp(min=1e-12)
    return (m * (1 - masks)).flatten(1).sum(1) / total
