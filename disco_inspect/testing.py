"""Tiny random diffusers components and classifiers for tests and benchmarks (as diffusers' own tests do).

Everything here is seeded and built offline: the tokenizer is the real CLIP BPE tokenizer
(see :mod:`disco_inspect.models.tokenizers`); the UNet, VAE and text encoder are randomly initialised.
"""

from __future__ import annotations

from typing import Any

import torch

from .world.scene_classifiers import SceneCNN

TINY_LABELS = ("circle", "square", "triangle", "cross")


def tiny_pipeline(
    seed: int = 0,
    sample_size: int = 16,
    text_width: int = 32,
    vae_factor: int = 2,
    time_cond_proj_dim: int | None = None,
) -> Any:
    """A random-weight ``StableDiffusionPipeline``: UNet (32, 64), VAE, 2-layer CLIP text encoder.

    Images are ``vae_factor * sample_size`` pixels square (32 px by default); ``vae_factor`` is 2, 4 or 8
    (8 = Stable Diffusion's). Scheduler: DDIM, trailing spacing. ``time_cond_proj_dim`` gives the UNet a
    guidance-scale embedding, as distilled (LCM) UNets have.
    """
    n_vae_blocks = {2: 2, 4: 3, 8: 4}[vae_factor]
    from diffusers import DDIMScheduler

    # 1. the random components, each from its own seed
    unet = _tiny_unet(seed, sample_size, text_width, time_cond_proj_dim)
    vae = _tiny_vae(seed + 1, n_vae_blocks, vae_factor * sample_size)
    text_encoder = _tiny_text_encoder(seed + 2, text_width)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    # 2. the pipeline, frozen, with the offline CLIP tokenizer, DDIM trailing spacing and its source recorded
    return assemble_pipeline(unet, vae, text_encoder, scheduler, source=f"tiny-random(seed={seed})")


def assemble_pipeline(unet: Any, vae: Any, text_encoder: Any, scheduler: Any, *, source: str) -> Any:
    """A ``StableDiffusionPipeline`` of given (random-weight) components, as tests use it: the offline CLIP
    tokenizer, no safety checker, frozen eval-mode parts, no progress bars, DDIM with trailing spacing, and
    ``source`` recorded in run folders."""
    from diffusers import StableDiffusionPipeline

    from .models.pipelines import set_scheduler
    from .models.tokenizers import clip_tokenizer

    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        part.requires_grad_(False).eval()
    set_scheduler(pipe, "ddim", "trailing")
    pipe._disco_source = source
    return pipe


def _tiny_unet(seed: int, sample_size: int, text_width: int, time_cond_proj_dim: int | None) -> Any:
    """A random UNet with blocks (32, 64), one cross-attention level."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_width,
        attention_head_dim=8,
        norm_num_groups=16,
        time_cond_proj_dim=time_cond_proj_dim,
    )


def _tiny_vae(seed: int, n_blocks: int, image_size: int) -> Any:
    """A random VAE with ``n_blocks`` levels (a latent ``2 ** (n_blocks - 1)`` times smaller than the image)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=(16, 32, 32, 32)[:n_blocks],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=16,
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        sample_size=image_size,
    )


def _tiny_text_encoder(seed: int, text_width: int) -> Any:
    """A random 2-layer CLIP text encoder over the CLIP vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    te_cfg = CLIPTextConfig(
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        hidden_size=text_width,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=49408,
        max_position_embeddings=77,
    )
    return CLIPTextModel(te_cfg)


#: A 3-layer CNN classifier (random or trained), for tests: the world's scene classifier architecture.
TinyCNN = SceneCNN


class ColourScorer:
    """A user-written concept scorer for tests: the mean redness and greenness of an image; its interventions
    name the colour against one contrast ("a red cat" vs "a blue cat")."""

    concepts = ["red", "green"]

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Per image [N, 2]: the mean of the red and of the green channel."""
        return torch.stack([images[:, 0].mean((1, 2)), images[:, 1].mean((1, 2))], 1)

    def intervention(self, concept: str, class_name: str) -> tuple[str, list[str]]:
        """The factor prompt and its one contrast."""
        other = "blue" if concept == "red" else "red"
        return f"a {concept} {class_name}", [f"a {other} {class_name}"]


def tiny_classifier(seed: int = 0, num_classes: int = 4, input_size: int = 32) -> Any:
    """A random :class:`~disco_inspect.models.classifiers.Classifier` over ``TINY_LABELS``-style names."""
    from .models.classifiers import Classifier, Preprocessing

    torch.manual_seed(seed)
    labels = list(TINY_LABELS[:num_classes]) + [f"class_{i}" for i in range(len(TINY_LABELS), num_classes)]
    pre = Preprocessing(
        input_size=(input_size, input_size),
        interpolation="bilinear",
        crop_pct=1.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
    return Classifier(TinyCNN(num_classes), pre, labels, source=f"tiny-cnn(seed={seed})")


def counting_job(task: Any, steps: int = 6, pause: float = 0.0, fail_on: str | None = None) -> dict[str, Any]:
    """A resumable toy job for runner tests: counts to ``steps`` in ``task.folder/count.txt`` (one step per
    ``pause`` seconds), logging each start in ``starts.txt``; raises ``ValueError`` for the class ``fail_on``."""
    import os
    import time
    from pathlib import Path

    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "starts.txt", "a") as f:
        f.write(f"{os.getpid()}\n")
    if task.class_name == fail_on:
        raise ValueError(f"planted failure in {task.class_name}")
    count_file = folder / "count.txt"
    done = int(count_file.read_text()) if count_file.is_file() else 0
    for i in range(done, steps):
        time.sleep(pause)
        tmp = count_file.with_suffix(".tmp")
        tmp.write_text(str(i + 1))
        os.replace(tmp, count_file)
    return {"class_name": task.class_name, "count": int(count_file.read_text()), "resumed_from": done}
