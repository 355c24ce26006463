"""Image metrics for counterfactual edits: PSNR, SSIM, feature-space distances (classifier features, real
LPIPS) and CLIP scores.

Images are float tensors ``[N, 3, H, W]`` in ``[0, 1]``; pairwise metrics compare ``a[i]`` with ``b[i]`` and
return one value per pair ``[N]``. Nothing here downloads: LPIPS takes the backbone from a user file, CLIP
takes a model the caller already loaded.

Naming is deliberate: a distance in the audited classifier's feature space is *not* LPIPS and is never
called so; only :func:`lpips_distance` (torchmetrics' LPIPS with its calibrated linear heads) is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DiscoInspectError

logger = logging.getLogger(__name__)

__all__ = [
    "psnr",
    "ssim",
    "FeatureDistance",
    "LpipsDistance",
    "classifier_features",
    "lpips_distance",
    "mean_pairwise",
    "clip_scores",
]

CLASSIFIER_FEATURE_NAME = "classifier-feature distance (1 - cos, penultimate layer)"
CLASSIFIER_LOGIT_NAME = "classifier-logit distance (1 - cos)"

#: LPIPS network name -> torchvision architecture whose ``features`` it slices.
LPIPS_ARCHS: dict[str, str] = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
#: LPIPS backbones, the default first.
LPIPS_NETS: tuple[str, ...] = tuple(LPIPS_ARCHS)
_LPIPS_ALIASES = {"alexnet": "alex", "vgg16": "vgg", "squeezenet1_1": "squeeze", "squeezenet": "squeeze"}
#: Smallest image side each LPIPS backbone accepts (smaller inputs pool to 0x0 inside the network).
_LPIPS_MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def _check_images(x: Any, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        got = (
            f"a {x.dtype} tensor of shape {tuple(x.shape)}"
            if isinstance(x, torch.Tensor)
            else type(x).__name__
        )
        raise DiscoInspectError(
            f"`{what}` must be a float image tensor [N, 3, H, W] in [0, 1], got {got}; convert it, e.g. "
            f"`torch.from_numpy(uint8_hwc).permute(2, 0, 1)[None].float() / 255`."
        )
    return x


def _check_pair(a: Any, b: Any, names: tuple[str, str] = ("a", "b")) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _check_images(a, names[0]), _check_images(b, names[1])
    if a.shape != b.shape:
        raise DiscoInspectError(
            f"`{names[0]}` has shape {tuple(a.shape)} but `{names[1]}` has shape {tuple(b.shape)}; pass "
            f"image batches of the same size and resolution (resize one of them, e.g. with F.interpolate)."
        )
    if b.dtype != a.dtype or b.device != a.device:
        b = b.to(dtype=a.dtype, device=a.device)
    return a, b


# --------------------------------------------------------------------------------------------------
# PSNR / SSIM
# --------------------------------------------------------------------------------------------------


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image pair ``[N]`` (``data_range=1``; ``inf`` if identical)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = _check_pair(a, b)
    return peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3)).reshape(len(a))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image pair ``[N]`` (torchmetrics, Gaussian window, ``data_range=1``).

    The usual 11-px window (sigma 1.5) is used when it fits; smaller images get the largest odd window that
    fits their shorter side, with sigma scaled so the Gaussian spans exactly that window.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _check_pair(a, b)
    side = min(a.shape[-2:])
    if side < 3:
        raise DiscoInspectError(
            f"SSIM needs images of at least 3x3 pixels, got {tuple(a.shape[-2:])}; upsample the images first."
        )
    if side >= 11:
        kernel, sigma = 11, 1.5
    else:
        kernel = side if side % 2 else side - 1
        sigma = (kernel - 1) / 7  # torchmetrics' Gaussian size is int(3.5 * sigma + 0.5) * 2 + 1 == kernel
    out = structural_similarity_index_measure(
        a, b, data_range=1.0, reduction="none", kernel_size=kernel, sigma=sigma
    )
    return out.reshape(len(a))


# --------------------------------------------------------------------------------------------------
# Feature-space distances
# --------------------------------------------------------------------------------------------------


class FeatureDistance:
    """A named distance between images in some network's feature space.

    By default ``distance(a, b) = 1 - cos(features(a), features(b))`` per pair (0 for identical images);
    subclasses such as :class:`LpipsDistance` override ``__call__`` with their own definition.

    Args:
        name: what the distance is, for reports, e.g.
            ``"classifier-feature distance (1 - cos, penultimate layer)"``.
        features: maps images ``[N, 3, H, W]`` in ``[0, 1]`` to features ``[N, F]``, differentiably.
    """

    def __init__(self, name: str, features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.name = name
        self._features = features

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``[N, F]`` of images ``[N, 3, H, W]`` in ``[0, 1]``; differentiable w.r.t. the images."""
        if self._features is None:
            raise DiscoInspectError(
                f"The distance {self.name!r} has no per-image feature vector; compare images with "
                f"`distance(a, b)` or `distance.pairwise(images)` instead of `.features(...)`."
            )
        images = _check_images(images, "images")
        return self._features(images).flatten(1).float()

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance per pair ``[N]``: ``1 - cos`` of the features of ``a[i]`` and ``b[i]`` (0 when equal)."""
        a, b = _check_pair(a, b)
        fa, fb = self.features(torch.cat([a, b])).split(len(a))
        return _one_minus_cos(fa, fb)

    def pairwise(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Mean distance over all unordered pairs ``i < j`` of ``images`` (0-d tensor; ``nan`` if < 2 images).

        Pairs are compared with ``__call__`` in chunks of ``batch_size`` pairs; the plain ``1 - cos`` distance
        computes each image's features once instead (same values, N instead of N*(N-1) forwards).
        """
        images = _check_images(images, "images")
        n = len(images)
        if n < 2:
            return torch.tensor(float("nan"))
        if batch_size < 1:
            raise DiscoInspectError(f"`batch_size` must be >= 1, got {batch_size}; use e.g. 64.")
        i, j = torch.triu_indices(n, n, offset=1, device=images.device)
        if self._features is not None and type(self).__call__ is FeatureDistance.__call__:
            feats = torch.cat([self.features(images[k : k + batch_size]) for k in range(0, n, batch_size)])
            return _one_minus_cos(feats[i], feats[j]).mean()
        parts = [
            self(images[i[k : k + batch_size]], images[j[k : k + batch_size]])
            for k in range(0, len(i), batch_size)
        ]
        return torch.cat(parts).mean()


def _one_minus_cos(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` per row, clamped at 0; exactly 0 for identical rows (even all-zero ones)."""
    d = (1 - F.cosine_similarity(fa, fb, dim=1)).clamp_min(0)
    return torch.where((fa == fb).all(dim=1), torch.zeros_like(d), d)


def mean_pairwise(distance: FeatureDistance, images: torch.Tensor) -> float:
    """Mean ``distance`` over all unordered pairs ``i < j`` of ``images`` (diversity); ``nan`` if < 2."""
    if not isinstance(distance, FeatureDistance):
        raise DiscoInspectError(
            f"`distance` must be a FeatureDistance, got {type(distance).__name__}; build one with "
            f"`classifier_features(classifier)` or `lpips_distance(weights_file)`."
        )
    with torch.no_grad():
        return float(distance.pairwise(images))


# -- classifier features ---------------------------------------------------------------------------------


def last_linear(module: nn.Module) -> nn.Module | None:
    """The last ``nn.Linear`` leaf of ``module`` (for TorchScript: the last submodule originally a Linear)."""
    found = None
    for m in module.modules():
        if isinstance(m, nn.Linear):
            found = m
    if found is None and isinstance(module, torch.jit.ScriptModule):
        for _, m in module.named_modules():
            if getattr(m, "original_name", None) == "Linear":
                found = m
    return found


def classifier_features(classifier: nn.Module) -> FeatureDistance:
    """Distance ``1 - cos`` between the classifier's penultimate features (the input of its last Linear).

    The features are captured with a forward pre-hook on the last ``nn.Linear`` of ``classifier.module``
    while ``classifier(images)`` runs (the hook is removed after every call), so they stay differentiable
    w.r.t. the images. If the model has no usable Linear layer (e.g. TorchScript modules, whose submodules
    take no hooks), the logits are compared instead and the distance is named
    ``"classifier-logit distance (1 - cos)"``.
    """
    module = getattr(classifier, "module", None)
    if not isinstance(classifier, nn.Module) or not isinstance(module, nn.Module):
        raise DiscoInspectError(
            f"`classifier` must be a disco_inspect Classifier, got {type(classifier).__name__}; wrap your "
            f"model with `disco_inspect.models.classifiers.Classifier(module, preprocessing, label_names)`."
        )
    linear = last_linear(module)

    def penultimate(images: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []

        def hook(_mod: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], torch.Tensor):
                captured.append(args[0])

        handle = linear.register_forward_pre_hook(hook)  # type: ignore[union-attr]
        try:
            classifier(images)
        finally:
            handle.remove()
        if not captured:
            raise DiscoInspectError(
                f"The last Linear layer of {type(module).__name__} was not called in the forward pass; use "
                f"a distance on the logits instead."
            )
        return captured[-1]

    if linear is not None:
        # one probe decides whether the hook works (TorchScript refuses hooks or never calls them)
        h, w = getattr(getattr(classifier, "preprocessing", None), "input_size", (32, 32))
        probe = torch.rand(2, 3, int(h), int(w), generator=torch.Generator().manual_seed(0))
        param = next(classifier.parameters(), None)
        if param is not None:
            probe = probe.to(param.device)
        try:
            with torch.no_grad():
                ok = penultimate(probe).shape[0] == 2
        except (RuntimeError, DiscoInspectError) as e:
            logger.debug("penultimate features of %s unavailable (%s)", type(module).__name__, e)
            ok = False
        if ok:
            return FeatureDistance(CLASSIFIER_FEATURE_NAME, penultimate)
    logger.info(
        "%s exposes no hookable Linear layer; the classifier distance compares logits", type(module).__name__
    )
    return FeatureDistance(CLASSIFIER_LOGIT_NAME, lambda images: classifier(images))


# -- LPIPS --------------------------------------------------------------------------------------------


class LpipsDistance(FeatureDistance):
    """LPIPS (Zhang et al., 2018) with torchmetrics' calibrated linear heads and the user's backbone weights.

    ``distance(a, b)`` is the LPIPS value per pair ``[N]`` for images in ``[0, 1]`` (mapped to ``[-1, 1]``
    internally); differentiable w.r.t. the images. Build it with :func:`lpips_distance`.
    """

    def __init__(self, net: str, lpips_module: nn.Module) -> None:
        super().__init__(f"LPIPS ({net})")
        self.net = net
        self.module = lpips_module

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS per pair ``[N]`` between ``a[i]`` and ``b[i]`` (images in ``[0, 1]``)."""
        a, b = _check_pair(a, b)
        side = min(a.shape[-2:])
        low = _LPIPS_MIN_SIDE[self.net]
        if side < low:
            raise DiscoInspectError(
                f"{self.name} needs images of at least {low}x{low} "
                f"pixels, got {tuple(a.shape[-2:])}; upsample them first (e.g. F.interpolate to 64x64)."
            )
        param = next(self.module.parameters())
        if param.device != a.device:
            self.module.to(a.device)
        out = self.module(a.float(), b.float(), normalize=True)  # normalize=True: [0, 1] -> [-1, 1]
        return out.reshape(len(a))


def _torchvision_state_dict(path: Path, arch: str) -> Mapping[str, torch.Tensor]:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise DiscoInspectError(
            f"Could not read the LPIPS backbone file '{path}' as a state dict ({type(e).__name__}: {e}); "
            f"save it with `torch.save(torchvision.models.{arch}(weights=...).state_dict(), path)`."
        ) from e
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DiscoInspectError(
            f"The LPIPS backbone file '{path}' holds a {type(sd).__name__}, not a state dict of tensors; "
            f"save a torchvision {arch} state dict with `torch.save(model.state_dict(), path)`."
        )
    return sd


def lpips_distance(backbone_weights: str | Path, net: str = "alex") -> LpipsDistance:
    """Real LPIPS from torchmetrics, with the backbone loaded from the user's torchvision weights file.

    Args:
        backbone_weights: a ``torch.save``-d state dict of ``torchvision.models.alexnet`` (``net="alex"``),
            ``vgg16`` (``"vgg"``) or ``squeezenet1_1`` (``"squeeze"``); the state dict of its ``features``
            alone also works. Nothing is downloaded: the linear heads ship inside torchmetrics.
        net: ``"alex"`` (default), ``"vgg"`` or ``"squeeze"`` (torchvision names are accepted too).

    Returns:
        An :class:`LpipsDistance` named e.g. ``"LPIPS (alex)"``.
    """
    import torchvision
    from torchmetrics.functional.image.lpips import _LPIPS

    key = _LPIPS_ALIASES.get(str(net), str(net))
    if key not in LPIPS_ARCHS:
        raise DiscoInspectError(
            f"Unknown LPIPS network {net!r}; use one of {sorted(LPIPS_ARCHS)} (torchvision "
            f"{sorted(LPIPS_ARCHS.values())})."
        )
    arch = LPIPS_ARCHS[key]
    path = Path(backbone_weights).expanduser()
    if not path.is_file():
        raise DiscoInspectError(
            f"LPIPS backbone weights file '{path}' does not exist; save torchvision's {arch} weights there "
            f"with `torch.save(torchvision.models.{arch}(weights='DEFAULT').state_dict(), '{path}')` on a "
            f"machine with network access (disco-inspect never downloads weights)."
        )
    sd = _torchvision_state_dict(path, arch)
    backbone = getattr(torchvision.models, arch)(weights=None)
    try:
        backbone.load_state_dict(sd)
    except RuntimeError as full_error:
        try:  # a state dict of `model.features` alone
            backbone.features.load_state_dict(sd)
        except RuntimeError:
            lines = [d.strip() for d in str(full_error).splitlines() if d.strip()]
            detail = (lines[1] if len(lines) > 1 else (lines[0] if lines else "")).rstrip(".")
            detail = detail if len(detail) <= 200 else detail[:200] + "..."
            raise DiscoInspectError(
                f"The LPIPS backbone file '{path}' is not a torchvision {arch} state dict (needed for "
                f"net={key!r}): {detail}; save "
                f"`torchvision.models.{arch}(...).state_dict()`, or pick the `net` matching your file "
                f"({', '.join(f'{k!r} = {v}' for k, v in LPIPS_ARCHS.items())})."
            ) from full_error
    # pretrained=True loads the linear heads shipped with torchmetrics; pnet_rand=True builds a random
    # backbone (no download), whose slices we then fill with the user's layers.
    module = _LPIPS(pretrained=True, net=key, pnet_rand=True)
    slices: list[nn.Module] = []  # alex/vgg: net.slice1..slice5; squeeze: net.slices (a ModuleList)
    for child in module.net.children():
        slices.extend(child if isinstance(child, nn.ModuleList) else [child])
    copied = set()
    for s in slices:
        for name in list(s._modules):
            s._modules[name] = backbone.features[int(name)]
            copied.add(int(name))
    if not copied:
        raise DiscoInspectError(
            f"torchmetrics' LPIPS ({key}) has an unexpected layout; reinstall torchmetrics (`pip install --force-reinstall torchmetrics`)."
        )
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return LpipsDistance(key, module)


# --------------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------------


def clip_scores(
    model: nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    edits: torch.Tensor,
    sources: torch.Tensor,
    texts: str | Sequence[str],
    batch_size: int = 32,
) -> dict[str, torch.Tensor]:
    """CLIP-T and CLIP-I of edited images, per image.

    * ``clip_t[i] = cos(encode_image(preprocess(edits[i])), encode_text(tokenizer([texts[i]])))``:
      does the edit show its prompt;
    * ``clip_i[i] = cos(encode_image(preprocess(edits[i])), encode_image(preprocess(sources[i])))``:
      is it still the source image.

    Args:
        model: an open_clip CLIP model (anything with ``encode_image`` / ``encode_text``).
        tokenizer: its tokenizer (``open_clip.get_tokenizer(...)``), mapping a list of strings to token ids.
        preprocess: maps images ``[N, 3, H, W]`` in ``[0, 1]`` to the model's normalised input with torch ops.
        edits: edited images ``[N, 3, H, W]`` in ``[0, 1]``.
        sources: their source images, ``[N, 3, H', W']`` (or one image ``[1, ...]`` shared by all edits).
        texts: the edit prompt per edit (or one prompt for all).
        batch_size: images encoded per forward.

    Returns:
        ``{"clip_t": [N], "clip_i": [N]}``, values in ``[-1, 1]``. Differentiable; wrap the call in
        ``torch.no_grad()`` when only evaluating.
    """
    edits = _check_images(edits, "edits")
    sources = _check_images(sources, "sources")
    n = len(edits)
    if len(sources) not in (1, n):
        raise DiscoInspectError(
            f"`sources` has {len(sources)} images but `edits` has {n}; pass one source per edit (or one "
            f"source for all)."
        )
    texts = [texts] if isinstance(texts, str) else list(texts)
    if len(texts) not in (1, n) or not all(isinstance(t, str) for t in texts):
        raise DiscoInspectError(
            f"`texts` must be one string or {n} strings (one per edit), got {len(texts)} items; pass the "
            f"prompt of each edit."
        )
    if batch_size < 1:
        raise DiscoInspectError(f"`batch_size` must be >= 1, got {batch_size}; use e.g. 32.")
    if not (hasattr(model, "encode_image") and hasattr(model, "encode_text")):
        raise DiscoInspectError(
            f"`model` must be an open_clip CLIP model with encode_image/encode_text, got "
            f"{type(model).__name__}; create it with `open_clip.create_model(name, pretrained=local_file)`."
        )
    param = next(model.parameters(), None)
    device = param.device if param is not None else edits.device

    def encode_images(x: torch.Tensor) -> torch.Tensor:
        parts = []
        for k in range(0, len(x), batch_size):
            parts.append(model.encode_image(preprocess(x[k : k + batch_size].to(device))).float())
        return F.normalize(torch.cat(parts), dim=-1)

    def encode_texts(t: list[str]) -> torch.Tensor:
        parts = []
        for k in range(0, len(t), batch_size):
            parts.append(model.encode_text(tokenizer(t[k : k + batch_size]).to(device)).float())
        return F.normalize(torch.cat(parts), dim=-1)

    f_edit = encode_images(edits)
    f_src = encode_images(sources)
    f_text = encode_texts(texts)
    clip_t = (f_edit * f_text).sum(-1).clamp(-1, 1)
    clip_i = (f_edit * f_src).sum(-1).clamp(-1, 1)
    return {"clip_t": clip_t, "clip_i": clip_i}
