"""The world's oracle: one small CNN with a head per factor, trained on procedural labels.

It reads every factor (shape, colour, background, texture, co-object, size) of a 32x32 scene. It is the
world's ground-truth concept scorer and the quality check of the world's generator. It is trained with
blur/noise/colour augmentation so that it also reads the (softer) images the diffusion model draws.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DiscoInspectError
from .scenes import FACTOR_VALUES, FACTORS, generate_scenes

logger = logging.getLogger(__name__)


class WorldOracle(nn.Module):
    """``forward(images in [0, 1], [B, 3, 32, 32]) -> {factor: logits [B, n_values]}``."""

    #: Side of the square images the oracle reads (its trunk's Linear layer fixes it).
    image_size: int = 32
    #: Width of the trunk output that feeds every head (:meth:`penultimate`).
    num_features: int = 256

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, 256), nn.ReLU())
        self.heads = nn.ModuleDict({f: nn.Linear(256, len(FACTOR_VALUES[f])) for f in FACTORS})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(self.features(images * 2 - 1))
        return {f: head(h) for f, head in self.heads.items()}

    @torch.no_grad()
    def penultimate(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """The trunk output every factor head reads, ``[B, 256]``, for images ``[B, 3, 32, 32]`` in ``[0, 1]``.

        Computed in eval mode (the oracle stays in eval mode afterwards, as with :meth:`read`) without gradients.

        Args:
            images: float images ``[B, 3, 32, 32]`` in ``[0, 1]``.
            batch_size: images per forward pass.

        Returns:
            Float features ``[B, 256]`` (after the trunk's ReLU), on the oracle's device.
        """
        self.eval()
        if len(images) == 0:
            return images.new_zeros(0, self.num_features)
        outs = [
            self.trunk(self.features(images[i : i + batch_size] * 2 - 1))
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(outs)

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Predicted value index per factor, ``{factor: int64 [B]}``."""
        self.eval()
        outs = [self(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return {f: torch.cat([o[f] for o in outs]).argmax(-1) for f in FACTORS}

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Softmax per factor, ``{factor: [B, n_values]}``."""
        self.eval()
        outs = [self(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return {f: torch.cat([o[f] for o in outs]).softmax(-1) for f in FACTORS}


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur, noise and small colour shifts, so the oracle also reads generated (softer) images."""
    n = images.shape[0]
    sigma = torch.rand(n, generator=generator) * 1.2
    k = torch.arange(-2, 3, dtype=images.dtype)
    kern = torch.exp(-(k[None] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    kern = kern / kern.sum(-1, keepdim=True)  # [n, 5]
    x = images.reshape(1, n * 3, *images.shape[2:])
    kx = kern.repeat_interleave(3, 0)[:, None, None, :]
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kx, groups=n * 3)
    x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kx.transpose(2, 3), groups=n * 3)
    x = x.reshape_as(images)
    x = x * (1 + 0.1 * (torch.rand(n, 3, 1, 1, generator=generator) - 0.5)) + 0.05 * (
        torch.rand(n, 3, 1, 1, generator=generator) - 0.5
    )
    x = x + torch.randn(x.shape, generator=generator) * torch.rand(n, 1, 1, 1, generator=generator) * 0.06
    return x.clamp(0, 1)


def train_oracle(
    steps: int = 3000, batch: int = 128, seed: int = 0, lr: float = 2e-3, progress: bool = True
) -> WorldOracle:
    """Train the oracle from scratch on fresh procedural scenes (deterministic in ``seed``)."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = WorldOracle()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in tqdm(range(steps), disable=not progress, desc="world oracle"):
        scenes = generate_scenes(batch, seed=10_000_019 * (seed + 1) + step)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        out = model(augment(scenes.images, gen))
        loss = sum(F.cross_entropy(out[f], scenes.factors[f]) for f in FACTORS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def oracle_accuracy(
    oracle: WorldOracle, images: torch.Tensor, factors: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Per-factor accuracy of the oracle against known labels."""
    pred = oracle.read(images)
    return {f: float((pred[f] == factors[f]).float().mean()) for f in FACTORS if f in factors}


def oracle_path() -> Path:
    """Shipped oracle weights (package data)."""
    return Path(__file__).resolve().parent / "assets" / "oracle.safetensors"


def save_oracle(oracle: WorldOracle, path: str | Path | None = None) -> Path:
    """Save weights as safetensors."""
    from safetensors.torch import save_file

    path = Path(path) if path else oracle_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in oracle.state_dict().items()}, str(path))
    return path


def load_oracle(path: str | Path | None = None) -> WorldOracle:
    """Load the shipped (or a given) oracle."""
    from safetensors.torch import load_file

    path = Path(path) if path else oracle_path()
    if not path.is_file():
        raise DiscoInspectError(
            f"World oracle weights are missing at `{path}`; train them with "
            "`python -m disco_inspect.world.make oracle`."
        )
    model = WorldOracle()
    model.load_state_dict(load_file(str(path)))
    return model.eval()
