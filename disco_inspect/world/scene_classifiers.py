"""World classifiers: small CNN shape classifiers trained on (optionally biased) scenes.

``make_world_classifier("circle: background=green @ 0.99")`` plants a shortcut: circles appear on green
99 % of the time (and other shapes rarely), so the classifier may learn "green background -> circle".
Saved as TorchScript that carries its label names and preprocessing, so
``disco-inspect train clf.pt --class circle --pipeline world`` works.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DiscoInspectError
from .bias import BiasSpec
from .scenes import SHAPES, generate_scenes

PREPROCESSING = {
    "input_size": [32, 32],
    "interpolation": "bilinear",
    "crop_pct": 1.0,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
}

MIN_STEPS = 11
"""Fewest training steps the one-cycle schedule accepts (its warm-up, 10 % of the steps, must exceed one step)."""


class SceneCNN(nn.Module):
    """A 3-conv-layer CNN classifier for 32x32 scenes.

    ``spatial=False`` pools globally (translation invariant: a sun detector also fires on a sun-coloured
    shape); ``spatial=True`` keeps a 4x4 grid before the head, so the model can tie a cue to its position.
    """

    def __init__(self, num_classes: int = len(SHAPES), width: int = 16, spatial: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4 if spatial else 1),
        )
        self.head = nn.Linear(2 * width * (16 if spatial else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def train_world_classifier(
    bias: BiasSpec | str | None = None,
    *,
    steps: int = 1500,
    batch: int = 128,
    seed: int = 0,
    lr: float = 3e-3,
    spatial: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Any:
    """Train a shape classifier on fresh scenes drawn with ``bias`` at every step.

    Args:
        bias: the planted shortcut (a :class:`BiasSpec` or its text); ``None`` trains a clean classifier.
        steps: optimisation steps (one batch of new scenes each).
        batch: scenes per step.
        seed: seeds the initial weights, the scenes and the augmentation.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        spatial: keep a 4x4 feature grid before the head (see :class:`SceneCNN`).
        progress: show a progress bar.
        device: where the classifier trains (the scenes are drawn on the CPU); it is returned on the CPU.

    Returns:
        A :class:`~disco_inspect.models.classifiers.Classifier` over :data:`SHAPES`.
    """
    spec = BiasSpec.parse(bias) if isinstance(bias, str) else bias

    def draw(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        scenes = generate_scenes(batch, seed=20_000_033 * (seed + 1) + step, bias=spec)
        return scenes.images, scenes.factors["shape"]

    source = f"world-cnn(bias={spec}, seed={seed})" if spec else f"world-cnn(clean, seed={seed})"
    return _train(
        draw,
        steps=steps,
        seed=seed,
        lr=lr,
        spatial=spatial,
        progress=progress,
        desc=f"world classifier ({spec or 'clean'})",
        source=source,
        device=device,
    )


def train_on_images(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = 1000,
    batch: int = 32,
    seed: int = 0,
    lr: float = 6e-3,
    spatial: bool = False,
    progress: bool = True,
) -> Any:
    """Train a shape classifier on a fixed labelled image set, with the loop of :func:`train_world_classifier`.

    Each step draws ``batch`` images from the set uniformly with replacement (so a set smaller than a batch
    works: every copy is augmented differently) and applies the oracle's blur/noise/colour augmentation.

    Args:
        images: ``[N, 3, 32, 32]`` in [0, 1] (rendered scenes, generated images or both).
        labels: ``[N]`` shape indices into :data:`SHAPES`.
        steps: optimisation steps.
        batch: images per step.
        seed: seeds the initial weights, the draws and the augmentation.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        spatial: keep a 4x4 feature grid before the head (see :class:`SceneCNN`).
        progress: show a progress bar.

    Returns:
        A :class:`~disco_inspect.models.classifiers.Classifier` over :data:`SHAPES`.

    Raises:
        DiscoInspectError: empty or mismatched ``images``/``labels``, labels outside ``0..len(SHAPES)-1``,
            ``steps`` below :data:`MIN_STEPS` or ``batch`` below 1.
    """
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels).long()
    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise DiscoInspectError(
            f"`images` has shape {tuple(images.shape)}; pass a non-empty [N, 3, H, W] tensor in [0, 1]."
        )
    if labels.shape != (len(images),):
        raise DiscoInspectError(
            f"`labels` has shape {tuple(labels.shape)}; pass one shape index per image ([{len(images)}])."
        )
    if labels.min() < 0 or labels.max() >= len(SHAPES):
        raise DiscoInspectError(
            f"`labels` holds values outside 0..{len(SHAPES) - 1} (the indices of {', '.join(SHAPES)})."
        )
    if steps < MIN_STEPS:
        raise DiscoInspectError(
            f"`steps` = {steps!r} is invalid; use an integer >= {MIN_STEPS} (the one-cycle schedule warms up over "
            "the first 10 % of the steps)."
        )
    if batch < 1:
        raise DiscoInspectError(f"`batch` = {batch!r} is invalid; use an integer >= 1.")
    images = images.float()

    def draw(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(30_000_001 * (seed + 1) + step)
        idx = torch.randint(len(images), (batch,), generator=gen)
        return images[idx], labels[idx]

    return _train(
        draw,
        steps=steps,
        seed=seed,
        lr=lr,
        spatial=spatial,
        progress=progress,
        desc=f"world classifier ({len(images)} images)",
        source=f"world-cnn({len(images)} fixed images, seed={seed})",
    )


def _train(
    draw: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    seed: int,
    lr: float,
    spatial: bool,
    progress: bool,
    desc: str,
    source: str,
    device: str | torch.device = "cpu",
) -> Any:
    """The training loop of both trainers: ``draw(step)`` gives that step's (images in [0, 1], shape labels);
    trains on ``device``, returns the classifier on the CPU."""
    from tqdm.auto import tqdm

    from ..models.classifiers import Classifier, Preprocessing
    from .oracle import augment

    torch.manual_seed(seed)
    model = SceneCNN(width=32, spatial=spatial).to(device)
    pre = Preprocessing.from_dict(PREPROCESSING)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in tqdm(range(steps), disable=not progress, desc=desc):
        images, labels = draw(step)
        gen = torch.Generator().manual_seed(seed * 7_000_003 + step)
        x = pre(augment(images, gen)).to(device)
        loss = F.cross_entropy(model(x), labels.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return Classifier(model.cpu().eval(), pre, list(SHAPES), source=source)


def save_world_classifier(clf: Any, path: str | Path) -> Path:
    """Save as TorchScript with labels + preprocessing metadata."""
    from ..models.classifiers import save_torchscript_classifier

    width = clf.module.features[0].out_channels
    spatial = clf.module.head.in_features != 2 * width
    save_torchscript_classifier(
        clf.module,
        path,
        label_names=clf.label_names,
        preprocessing=clf.preprocessing.to_dict(),
        eager={
            "factory": "disco_inspect.world.scene_classifiers:SceneCNN",
            "kwargs": {"num_classes": len(clf.label_names), "width": width, "spatial": spatial},
        },
    )
    return Path(path)


@torch.no_grad()
def bias_accuracy(clf: Any, spec: BiasSpec | str, n: int = 1000, seed: int = 12345) -> dict[str, float]:
    """Accuracy on bias-aligned vs bias-conflicting scenes of the biased class.

    Aligned: the biased shape with the planted value. Conflicting: the biased shape with other values.
    Also reports accuracy on other shapes shown with the planted value (where a shortcut causes false
    positives).
    """
    spec = BiasSpec.parse(spec) if isinstance(spec, str) else spec
    from .scenes import FACTOR_VALUES

    others = [v for v in FACTOR_VALUES[spec.factor] if v != spec.value]
    aligned = generate_scenes(n, seed=seed, fixed={"shape": spec.shape, spec.factor: spec.value})
    conflicting = [
        generate_scenes(n // len(others) + 1, seed=seed + 1 + i, fixed={"shape": spec.shape, spec.factor: v})
        for i, v in enumerate(others)
    ]
    target = SHAPES.index(spec.shape)
    out_shapes = [s for s in SHAPES if s != spec.shape]
    decoys = [
        generate_scenes(
            n // len(out_shapes) + 1, seed=seed + 100 + i, fixed={"shape": s, spec.factor: spec.value}
        )
        for i, s in enumerate(out_shapes)
    ]

    def acc(images: torch.Tensor, labels: torch.Tensor) -> float:
        return float((clf(images).argmax(-1) == labels).float().mean())

    conf_imgs = torch.cat([c.images for c in conflicting])
    decoy_imgs = torch.cat([d.images for d in decoys])
    decoy_labels = torch.cat([d.factors["shape"] for d in decoys])
    return {
        "aligned": acc(aligned.images, torch.full((n,), target)),
        "conflicting": acc(conf_imgs, torch.full((len(conf_imgs),), target)),
        "other_shapes_with_value": acc(decoy_imgs, decoy_labels),
    }
