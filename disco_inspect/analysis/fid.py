"""Fréchet distance between image sets in a feature space the caller supplies: the paper's Table-3 protocol.

The source paper reports FID of images generated with vs without the learned token against real images of the
class. The Inception weights FID normally uses come with no dependency and disco-inspect never downloads weights,
so every function takes the feature network as an argument: the audited classifier's penultimate layer
(:func:`features_from_classifier`), the world oracle's trunk (``disco_inspect.world.benchmarks.oracle_fid.OracleFeatures``)
or the user's own Inception module. Results are named for the features they use ("FID (oracle features)"), never
plain "FID" (the world's Table 3 in these features: docs/benchmarks.md).

The distance itself is torchmetrics' :class:`~torchmetrics.image.fid.FrechetInceptionDistance` on the custom-
module path: nothing here ever builds torchmetrics' default Inception network, so nothing is downloaded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import DiscoInspectError

logger = logging.getLogger(__name__)

__all__ = [
    "frechet_distance",
    "fid_table",
    "merge_fid_tables",
    "format_fid_table",
    "features_from_classifier",
    "ClassifierFeatures",
]

#: Keys of one generated set per class in :func:`fid_table`.
KINDS: tuple[str, ...] = ("baseline", "token")
#: Name of the row that averages the classes in :func:`fid_table`.
MEAN_ROW = "mean"
#: Tolerance on the ``[0, 1]`` value range of input images.
_RANGE_SLACK = 1e-3


# --------------------------------------------------------------------------------------------------
# Feature networks
# --------------------------------------------------------------------------------------------------


class ClassifierFeatures(nn.Module):
    """Penultimate-layer features ``[N, d]`` of a disco_inspect ``Classifier`` (built by :func:`features_from_classifier`).

    The features are the input of the classifier's last ``nn.Linear`` layer, captured by
    :func:`disco_inspect.editing.metrics.classifier_features`; a classifier without a hookable Linear layer
    (e.g. TorchScript) falls back to its logits, and :attr:`name` then says ``"classifier logits"``.

    Attributes:
        name: what the features are, for labels: ``"classifier penultimate features"`` or ``"classifier logits"``.
        classifier: the wrapped classifier (a submodule, so ``.to(device)`` moves it).
    """

    def __init__(self, classifier: nn.Module) -> None:
        from ..editing.metrics import CLASSIFIER_LOGIT_NAME, classifier_features

        super().__init__()
        distance = classifier_features(classifier)  # raises DiscoInspectError for non-Classifiers
        self.classifier = classifier
        self._features = distance.features
        self.name = (
            "classifier logits"
            if distance.name == CLASSIFIER_LOGIT_NAME
            else "classifier penultimate features"
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``[N, d]`` (float32) of images ``[N, 3, H, W]`` in ``[0, 1]``."""
        return self._features(images)


def features_from_classifier(classifier: nn.Module) -> ClassifierFeatures:
    """A feature network for :func:`frechet_distance`: the classifier's penultimate-layer features.

    Args:
        classifier: a :class:`disco_inspect.models.classifiers.Classifier` (it applies its own preprocessing to
            images in ``[0, 1]``).

    Returns:
        A :class:`ClassifierFeatures` module mapping images ``[N, 3, H, W]`` in ``[0, 1]`` to ``[N, d]``.

    Raises:
        DiscoInspectError: ``classifier`` is not a disco_inspect Classifier.
    """
    return ClassifierFeatures(classifier)


class _CheckedFeatures(nn.Module):
    """What torchmetrics sees: the user's module, its feature width as ``num_features`` (so torchmetrics does not
    probe it with a 299x299 dummy image) and checks on its output, returned as float64."""

    def __init__(self, features: nn.Module, num_features: int) -> None:
        super().__init__()
        self.features = features
        self.num_features = num_features
        self.what = "images"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = _check_features(self.features(images), len(images), self.what, self.features)
        if out.shape[1] != self.num_features:
            raise DiscoInspectError(
                f"`features` returned {out.shape[1]} features per image for the {self.what} but "
                f"{self.num_features} for the first real images; it must return a fixed width [N, d]."
            )
        # float64 features: torchmetrics accumulates in float64 and casts the result to this dtype
        return out.double()


def _check_features(out: Any, n: int, what: str, module: nn.Module) -> torch.Tensor:
    name = type(module).__name__
    if not isinstance(out, torch.Tensor):
        raise DiscoInspectError(
            f"`features` ({name}) returned a {type(out).__name__} for the {what}; it must return one tensor "
            f"[N, d] (e.g. end its forward with `.flatten(1)`)."
        )
    if out.ndim != 2 or out.shape[0] != n:
        raise DiscoInspectError(
            f"`features` ({name}) returned shape {tuple(out.shape)} for {n} {what}; it must return a 2-D "
            f"tensor [N, d] with one row per image (flatten or pool its output, e.g. `.flatten(1)`)."
        )
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).any(dim=1).sum())
        raise DiscoInspectError(
            f"`features` ({name}) returned non-finite values (NaN or inf) for {bad} of {n} {what}; check the "
            f"images (finite, in [0, 1]) and the feature network's weights."
        )
    return out


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def _check_images(x: Any, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = (
            f"a {x.dtype} tensor of shape {tuple(x.shape)}"
            if isinstance(x, torch.Tensor)
            else type(x).__name__
        )
        raise DiscoInspectError(
            f"`{what}` must be a float tensor [N, 3, H, W] with values in [0, 1], got {got}; convert uint8 "
            f"images with `images.float() / 255`."
        )
    if x.shape[0] < 2:
        raise DiscoInspectError(
            f"`{what}` holds {x.shape[0]} image(s); FID needs at least 2 per set (a covariance), and far more "
            f"for a stable value: pass more images."
        )
    if not torch.isfinite(x).all():
        raise DiscoInspectError(f"`{what}` contains NaN or inf values; pass finite images in [0, 1].")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        raise DiscoInspectError(
            f"`{what}` has values in [{lo:.3g}, {hi:.3g}]; images must be in [0, 1] (divide 0..255 images by "
            f"255, map -1..1 images with `x / 2 + 0.5`)."
        )
    return x


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DiscoInspectError(f"`batch_size` = {batch_size!r} is invalid; use an integer >= 1.")
    return batch_size


def _module_device(module: nn.Module) -> torch.device:
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------------


def frechet_distance(
    real: torch.Tensor,
    generated: torch.Tensor,
    features: nn.Module,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> float:
    """Fréchet distance (FID) between two image sets in the feature space of ``features``.

    ``||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` over the features' means and covariances, computed by
    torchmetrics' ``FrechetInceptionDistance`` with ``features`` as its custom feature extractor (accumulated in
    float64). Nothing is downloaded: torchmetrics' default Inception network is never built.

    FID is a biased estimator: with few images it is biased upward (and a covariance from N images has rank at most
    N - 1, below the feature width d when N <= d), so values are comparable only between sets of equal size, in the
    same feature space. Even two sets from one distribution give a positive value at small N. Tiny negative
    results from round-off are reported as 0.

    Args:
        real: reference images, float ``[N, C, H, W]`` in ``[0, 1]``, N >= 2.
        generated: images to compare, float ``[M, C, H', W']`` in ``[0, 1]``, M >= 2, same C as ``real``.
        features: a ``torch.nn.Module`` mapping a batch of images in ``[0, 1]`` to features ``[B, d]`` (e.g.
            :func:`features_from_classifier`, ``disco_inspect.world.benchmarks.oracle_fid.OracleFeatures``, or an Inception network
            with weights the user loaded). It runs in eval mode without gradients; its train/eval mode is restored
            afterwards.
        batch_size: images per forward pass of ``features``.
        device: where to run ``features`` (it is moved there); default: the device of its first parameter (CPU when
            it has none).

    Returns:
        The distance, a float >= 0 (0 for identical sets).

    Raises:
        DiscoInspectError: a set holds fewer than 2 images, images are not float ``[N, C, H, W]`` in ``[0, 1]``, the
            sets differ in channel count, ``features`` does not return a 2-D ``[N, d]`` tensor, or returns
            non-finite values.
    """
    return _fids(real, {"generated": generated}, features, batch_size=batch_size, device=device)["generated"]


def _fids(
    real: torch.Tensor,
    generated: Mapping[str, torch.Tensor],
    features: nn.Module,
    *,
    batch_size: int,
    device: str | torch.device | None,
    real_name: str = "real",
    progress: str | None = None,
) -> dict[str, float]:
    """FID of each generated set against ``real``; the real features are computed once (``reset_real_features``);
    ``progress``: the description of a bar over the images (``None``: no bar)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from tqdm.auto import tqdm

    if not isinstance(features, nn.Module):
        raise DiscoInspectError(
            f"`features` must be a torch.nn.Module mapping images [N, 3, H, W] in [0, 1] to [N, d], got "
            f"{type(features).__name__}; wrap a function in an nn.Module, or use `features_from_classifier`."
        )
    batch_size = _check_batch_size(batch_size)
    real = _check_images(real, real_name)
    for name, images in generated.items():
        images = _check_images(images, name)
        if images.shape[1] != real.shape[1]:
            raise DiscoInspectError(
                f"`{name}` has {images.shape[1]} channels but `{real_name}` has {real.shape[1]}; both sets must "
                f"have the same channel count (RGB: 3; repeat grey images with `x.expand(-1, 3, -1, -1)`)."
            )
    dev = torch.device(device) if device is not None else _module_device(features)
    modes = [(m, m.training) for m in features.modules()]
    features.eval()
    try:
        with torch.no_grad():
            probe = real[:2].to(dev, torch.float32)
            width = _check_features(
                features.to(dev)(probe), len(probe), f"`{real_name}` images", features
            ).shape[1]
        if real.shape[0] <= width or any(g.shape[0] <= width for g in generated.values()):
            logger.info(
                "FID with %d real / %s generated images in %d-d features: the covariances are rank-deficient and "
                "the value is biased upward; compare only values computed at equal N.",
                real.shape[0],
                "/".join(str(g.shape[0]) for g in generated.values()),
                width,
            )
        checked = _CheckedFeatures(features, width)
        metric = FrechetInceptionDistance(feature=checked, reset_real_features=False, normalize=True).to(dev)
        checked.what = f"`{real_name}` images"
        total = len(real) + sum(len(g) for g in generated.values())
        bar = tqdm(total=total, desc=progress, unit="image", disable=progress is None)
        for i in range(0, len(real), batch_size):
            metric.update(real[i : i + batch_size].to(dev, torch.float32), real=True)
            bar.update(len(real[i : i + batch_size]))
        out: dict[str, float] = {}
        for name, images in generated.items():
            metric.reset()  # keeps the real statistics (reset_real_features=False)
            checked.what = f"`{name}` images"
            for i in range(0, len(images), batch_size):
                metric.update(images[i : i + batch_size].to(dev, torch.float32), real=False)
                bar.update(len(images[i : i + batch_size]))
            value = float(metric.compute())
            if not math.isfinite(value):
                raise DiscoInspectError(
                    f"FID of `{name}` against `{real_name}` is {value}; the feature covariances are degenerate. Pass "
                    f"more images, or features that vary across images."
                )
            out[name] = max(value, 0.0)
        bar.close()
        return out
    finally:
        for m, training in modes:
            m.training = training


def fid_table(
    real_by_class: Mapping[str, torch.Tensor],
    generated_by_class: Mapping[str, Mapping[str, torch.Tensor]],
    features: nn.Module,
    batch_size: int = 64,
    *,
    name: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The paper's Table 3: per class, FID of images generated without and with the token against real images.

    Args:
        real_by_class: class name -> real images of the class, float ``[N, 3, H, W]`` in ``[0, 1]``.
        generated_by_class: class name -> ``{"baseline": images, "token": images}``, generated without and with
            the token (the same number of images each, ideally on the same seeds); same classes as
            ``real_by_class``.
        features: the feature network (see :func:`frechet_distance`).
        batch_size: images per forward pass of ``features``.
        name: label of the table; default ``"FID (<features.name>)"`` when the module has a ``name`` attribute
            (e.g. ``"FID (oracle features)"``), else ``"FID (custom features)"``.
        device: see :func:`frechet_distance`.
        progress: show a progress bar over each class's images (``FID <class>``).

    Returns:
        ``{"metric": name, "rows": {class_name: row, ..., "mean": row}}`` where a row is ``{"baseline": float,
        "token": float, "n_real": int, "n_generated": int}`` (``n_generated`` per kind). The ``"mean"`` row
        averages the classes' FIDs and sums their counts. Lower is closer to the real images; values are
        comparable only at equal image counts (see :func:`frechet_distance`).

    Raises:
        DiscoInspectError: the classes of the two mappings differ, a class is named ``"mean"``, a class lacks a
            ``"baseline"`` or ``"token"`` set, or the two sets differ in size; and every error of
            :func:`frechet_distance`.
    """
    if not real_by_class:
        raise DiscoInspectError(
            "`real_by_class` is empty; pass {class_name: real images} for at least one class."
        )
    missing = [c for c in real_by_class if c not in generated_by_class]
    extra = [c for c in generated_by_class if c not in real_by_class]
    if missing or extra:
        raise DiscoInspectError(
            f"`real_by_class` and `generated_by_class` must name the same classes; only real images for "
            f"{missing}, only generated images for {extra}."
        )
    if MEAN_ROW in real_by_class:
        raise DiscoInspectError(
            f"A class is named {MEAN_ROW!r}, the name of the table's average row; rename the class."
        )
    if name is None:
        label = getattr(features, "name", None)
        name = f"FID ({label})" if isinstance(label, str) and label else "FID (custom features)"
    rows: dict[str, dict[str, Any]] = {}
    for cls, real in real_by_class.items():
        gen = generated_by_class[cls]
        if not isinstance(gen, Mapping) or any(k not in gen for k in KINDS):
            got = sorted(gen) if isinstance(gen, Mapping) else type(gen).__name__
            raise DiscoInspectError(
                f"`generated_by_class[{cls!r}]` must be {{'baseline': images, 'token': images}}, got {got}."
            )
        sizes = {k: len(gen[k]) if isinstance(gen[k], torch.Tensor) else None for k in KINDS}
        if sizes["baseline"] != sizes["token"]:
            raise DiscoInspectError(
                f"Class {cls!r} has {sizes['baseline']} baseline and {sizes['token']} token images; FID is "
                f"comparable only at equal N, so generate the same number (the same seeds) for both."
            )
        names = {k: f"generated_by_class[{cls!r}][{k!r}]" for k in KINDS}
        values = _fids(
            real,
            {names[k]: gen[k] for k in KINDS},
            features,
            batch_size=batch_size,
            device=device,
            real_name=f"real_by_class[{cls!r}]",
            progress=f"FID {cls}" if progress else None,
        )
        row = {k: values[names[k]] for k in KINDS}
        rows[cls] = {**row, "n_real": int(len(real)), "n_generated": int(sizes["baseline"] or 0)}
    return merge_fid_tables([{"metric": name, "rows": rows}])


def merge_fid_tables(tables: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One table from per-class tables of :func:`fid_table` (e.g. computed by separate tasks): their class rows
    and a ``"mean"`` row averaging the classes' FIDs and summing their counts."""
    if not tables:
        raise DiscoInspectError("`tables` is empty; pass at least one FID table.")
    metrics = {t["metric"] for t in tables}
    if len(metrics) > 1:
        raise DiscoInspectError(f"FID tables in different features cannot be merged: {sorted(metrics)}.")
    rows: dict[str, dict[str, Any]] = {}
    for t in tables:
        for cls, row in t["rows"].items():
            if cls != MEAN_ROW:
                rows[cls] = dict(row)
    classes = list(rows.values())
    rows[MEAN_ROW] = {
        **{k: sum(r[k] for r in classes) / len(classes) for k in KINDS},
        "n_real": sum(r["n_real"] for r in classes),
        "n_generated": sum(r["n_generated"] for r in classes),
    }
    return {"metric": metrics.pop(), "rows": rows}


def format_fid_table(table: Mapping[str, Any]) -> str:
    """Markdown: per class, the FID without and with the token (lower = closer to the real images)."""
    lines = [
        f"| class | {table['metric']} without token | with token | n real / generated |",
        "|---|---|---|---|",
    ]
    for cls, r in table["rows"].items():
        label = f"**{cls}**" if cls == MEAN_ROW else cls
        lines.append(
            f"| {label} | {r['baseline']:.1f} | {r['token']:.1f} | {r['n_real']} / {r['n_generated']} |"
        )
    return "\n".join(lines)
