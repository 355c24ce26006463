"""World classifiers: small CNN shape classifiers trained on (optionally biased) scenes.

``make_world_classifier("circle: background=green @ 0.99")`` plants a shortcut: circles appear on green
99 % of the time (and other shapes rarely), so the classifier may learn "green background -> circle".
Saved as TorchScript that carries its label names and preprocessing, so
``disco-inspect train clf.pt --class circle --pipeline world`` works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .bias import BiasSpec
from .scenes import SHAPES, generate_scenes

PREPROCESSING = {
    "input_size": [32, 32],
    "interpolation": "bilinear",
    "crop_pct": 1.0,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
}


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
) -> Any:
    """Train a shape classifier on scenes drawn with ``bias``; returns a :class:`Classifier`.

    ``spatial``: keep a 4x4 feature grid before the head (see :class:`SceneCNN`)."""
    from tqdm.auto import tqdm

    from ..models.classifiers import Classifier, Preprocessing
    from .oracle import augment

    spec = BiasSpec.parse(bias) if isinstance(bias, str) else bias
    torch.manual_seed(seed)
    model = SceneCNN(width=32, spatial=spatial)
    pre = Preprocessing.from_dict(PREPROCESSING)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in tqdm(range(steps), disable=not progress, desc=f"world classifier ({spec or 'clean'})"):
        scenes = generate_scenes(batch, seed=20_000_033 * (seed + 1) + step, bias=spec)
        gen = torch.Generator().manual_seed(seed * 7_000_003 + step)
        x = pre(augment(scenes.images, gen))
        loss = F.cross_entropy(model(x), scenes.factors["shape"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    source = f"world-cnn(bias={spec}, seed={seed})" if spec else f"world-cnn(clean, seed={seed})"
    return Classifier(model.eval(), pre, list(SHAPES), source=source)


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
            "factory": "disco_inspect.world.classifiers:SceneCNN",
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
