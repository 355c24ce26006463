"""The paper's Table 3 on the world: FID with vs without the learned token, in the oracle's feature space.

Real images of a class are rendered scenes of that shape; generated images come from the world pipeline on paired
seeds with and without the token, with the prompts the token was trained with. The features are the oracle's
256-d trunk (:meth:`WorldOracle.penultimate`), so the table is labelled "FID (oracle features)": it is not
comparable with Inception FIDs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...analysis.fid import fid_table
from ...config import DiscoConfig
from ...engine.evaluate import EVAL_SEED
from ...engine.sampling import generate
from ...engine.token import install_token
from ...engine.token_run import TokenRun
from ...errors import DiscoInspectError
from ...models.pipelines import recorded_scheduler
from ..oracle import WorldOracle, load_oracle
from ..presets import world_config
from ..scenes import FACTOR_VALUES, generate_scenes

logger = logging.getLogger(__name__)

__all__ = ["OracleFeatures", "world_fid_table", "ORACLE_FID_NAME"]

#: Label of the world's FID table.
ORACLE_FID_NAME = "FID (oracle features)"


class OracleFeatures(nn.Module):
    """Feature network for :func:`disco_inspect.analysis.fid.frechet_distance`: the world oracle's 256-d trunk.

    ``forward(images [N, 3, H, W] in [0, 1]) -> [N, 256]`` (no gradients, oracle in eval mode). Images that are
    not 32x32 are resized to 32x32 first (bilinear, antialiased).

    Args:
        oracle: the oracle to read; default: the shipped one (:func:`load_oracle`).
    """

    #: What the features are (``fid_table`` labels its result "FID (oracle features)" from it).
    name = "oracle features"

    def __init__(self, oracle: WorldOracle | None = None) -> None:
        super().__init__()
        self.oracle = oracle if oracle is not None else load_oracle()
        self.num_features = self.oracle.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Oracle trunk features ``[N, 256]`` of images ``[N, 3, H, W]`` in ``[0, 1]``."""
        side = self.oracle.image_size
        if tuple(images.shape[-2:]) != (side, side):
            images = F.interpolate(
                images, size=(side, side), mode="bilinear", align_corners=False, antialias=True
            )
        return self.oracle.penultimate(images)


def world_fid_table(
    pipe: Any,
    token_runs: Mapping[str, TokenRun | str | Path],
    n: int = 64,
    *,
    seed: int | None = None,
    real_seed: int = 0,
    oracle: WorldOracle | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """FID in oracle features of world images generated without and with each class's token (the paper's Table 3).

    For every class: ``n`` images on seeds ``seed .. seed + n - 1`` with the baseline prompts and the same ``n``
    seeds with the token prompts (image ``j`` uses template ``j % len(templates)`` of the token's training config,
    the baseline drops the token, as in training), and ``n`` rendered real scenes of that shape
    (``generate_scenes(n, seed=real_seed, fixed={"shape": class_name})``). A TokenRun also brings its sampling
    settings (steps, guidance, size, scheduler); a token file or token string uses :func:`world_config`'s.

    Args:
        pipe: the world pipeline (``load_pipeline("world")``).
        token_runs: class name (a world shape: circle, square, triangle, cross) -> a :class:`TokenRun`, a token
            file (textual-inversion format), or a token string already in ``pipe``'s tokenizer. Each token is
            installed right before its class's images are generated, so several runs may share the string "<S>".
        n: images per set (real, baseline, token); FID is biased upward at small ``n`` (256-d features), so
            compare values only at equal ``n``.
        seed: first generation seed; default: :data:`~disco_inspect.engine.evaluate.EVAL_SEED` (1000), or just past a
            TokenRun's training seeds (as ``evaluate_accuracy`` does), so no generated image is a training image.
        real_seed: seed of the rendered real scenes (the same for every class).
        oracle: the oracle whose features are compared; default: the shipped one.
        batch_size: images per denoising batch.

    Returns:
        :func:`~disco_inspect.analysis.fid.fid_table`'s result, ``{"metric": "FID (oracle features)", "rows":
        {class_name: {"baseline", "token", "n_real", "n_generated"}, ..., "mean": {...}}}``, plus ``"seeds"``:
        class name -> the generation seeds used.

    Raises:
        DiscoInspectError: ``n`` < 2, a class that is not a world shape, a TokenRun learned for another class, a
            token string missing from the tokenizer, or an unreadable token file.
    """
    # 1. check inputs
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise DiscoInspectError(
            f"`n` = {n!r} is invalid; FID needs at least 2 images per set (use 64 or more)."
        )
    if not token_runs:
        raise DiscoInspectError("`token_runs` is empty; pass {class_name: TokenRun or token file}.")
    real: dict[str, torch.Tensor] = {}
    generated: dict[str, dict[str, torch.Tensor]] = {}
    seeds_used: dict[str, list[int]] = {}
    for class_name, token in token_runs.items():
        # 2. per class: generated images without and with its token, and rendered real scenes
        generated[class_name], seeds = _class_images(pipe, class_name, token, seed, n, batch_size)
        real[class_name] = generate_scenes(n, seed=real_seed, fixed={"shape": class_name}).images
        seeds_used[class_name] = seeds
        logger.info("FID images for %r: %d per set, seeds %d..%d", class_name, n, seeds[0], seeds[-1])
    # 3. FID of every set against the real scenes, in the oracle's features
    table = fid_table(real, generated, OracleFeatures(oracle), batch_size=64, name=ORACLE_FID_NAME)
    return {**table, "seeds": seeds_used}


def _class_images(
    pipe: Any, class_name: str, token: TokenRun | str | Path, seed: int | None, n: int, batch_size: int
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Install the class's token and generate ``n`` baseline and ``n`` token images; returns them and the seeds."""
    shapes = FACTOR_VALUES["shape"]
    if class_name not in shapes:
        raise DiscoInspectError(
            f"Class {class_name!r} of `token_runs` is not a world class; use one of {', '.join(shapes)}."
        )
    if isinstance(token, TokenRun) and token.class_name != class_name:
        raise DiscoInspectError(
            f"`token_runs[{class_name!r}]` is a run for the class {token.class_name!r}; key it by "
            f"{token.class_name!r} or pass the run of {class_name!r}."
        )
    cfg, token_str = _install(pipe, token, class_name)
    first = _first_seed(token, seed, n)
    seeds = list(range(first, first + n))
    settings = cfg.replace(n_images=n, seed_pool=0, token=token_str)
    recorded = token.pipeline if isinstance(token, TokenRun) else None
    images: dict[str, torch.Tensor] = {}
    with recorded_scheduler(pipe, recorded):
        for kind, with_token in (("baseline", False), ("token", True)):
            images[kind] = generate(
                pipe,
                settings.prompts(class_name, with_token=with_token),
                seeds,
                num_inference_steps=cfg.num_inference_steps,
                guidance_scale=cfg.guidance_scale,
                height=cfg.height,
                width=cfg.width,
                batch_size=batch_size,
            )
    return images, seeds


def _install(pipe: Any, token: TokenRun | str | Path, class_name: str) -> tuple[DiscoConfig, str]:
    """Put the class's token into ``pipe``; its training config (the world's defaults for files and strings)."""
    if isinstance(token, TokenRun):
        return token.config, token.install(pipe)
    if isinstance(token, Path) or (
        isinstance(token, str) and token.endswith((".safetensors", ".bin", ".pt"))
    ):
        return world_config(), install_token(pipe, token)
    if not isinstance(token, str):
        raise DiscoInspectError(
            f"`token_runs[{class_name!r}]` is a {type(token).__name__}; pass a TokenRun, a token file path or a "
            f"token string already in the pipeline's tokenizer."
        )
    if token not in pipe.tokenizer.get_vocab():
        raise DiscoInspectError(
            f"`token_runs[{class_name!r}]` = {token!r} is not in the pipeline's tokenizer; pass the token file "
            f"or the TokenRun instead."
        )
    return world_config(), token


def _first_seed(token: Any, seed: int | None, n: int) -> int:
    """``seed``, or the first seed past EVAL_SEED and past a TokenRun's training seeds (evaluate_accuracy's rule)."""
    trained = token.training_seeds() if isinstance(token, TokenRun) else set()
    if seed is None:
        return max(EVAL_SEED, max(trained, default=-1) + 1)
    overlap = trained.intersection(range(seed, seed + n))
    if overlap:
        logger.warning(
            "FID seeds %d..%d overlap %d of the run's training seeds: those images are not held out. Omit `seed` "
            "to start past them.",
            seed,
            seed + n - 1,
            len(overlap),
        )
    return seed
