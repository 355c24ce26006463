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


def tiny_xl_pipeline(seed: int = 0, sample_size: int = 16) -> Any:
    """A random-weight ``StableDiffusionXLPipeline`` in SDXL's layout at toy widths (as diffusers' own SDXL tests
    build it): two CLIP text encoders (the second with a projection, giving the pooled embedding), a UNet with
    SDXL's ``text_time`` added conditioning, linear projections and 1 then 2 transformer layers per level. Images are
    ``2 * sample_size`` pixels square (32 by default); DDIM, trailing spacing."""
    from diffusers import DDIMScheduler, StableDiffusionXLPipeline

    from .models.pipelines import freeze, set_scheduler
    from .models.tokenizers import clip_tokenizer

    # 1. the random components: UNet (cross-attention over both encoders' states, 16 + 16), VAE, two encoders
    unet = _tiny_unet(
        seed,
        sample_size,
        32,
        None,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 16,  # six time ids x 8 + the pooled embedding
    )
    vae = _tiny_vae(seed + 1, 2, 2 * sample_size)
    text_encoder = _tiny_text_encoder(seed + 2, 16)
    text_encoder_2 = _tiny_text_encoder(seed + 3, 16, projection_dim=16)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1
    )
    # 2. the pipeline with the offline CLIP tokenizer (twice), frozen, no progress bars, DDIM trailing
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    freeze(pipe)
    set_scheduler(pipe, "ddim", "trailing")
    pipe._disco_source = f"tiny-random-xl(seed={seed})"
    return pipe


#: stabilityai/stable-diffusion-2-1's published configurations (unet/, vae/, text_encoder/, scheduler/).
SD21_UNET = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 96,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "upcast_attention": True,
    "use_linear_projection": True,
}
SD21_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 768,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD21_TEXT = {
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "projection_dim": 512,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
SD21_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


#: runwayml/stable-diffusion-v1-5's (its VAE is SD 2.1's configuration).
SD15_UNET = {
    **SD21_UNET,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "sample_size": 64,
    "upcast_attention": False,
    "use_linear_projection": False,
}
SD15_TEXT = {
    **SD21_TEXT,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "projection_dim": 768,
}
SD15_SCHEDULER = {**SD21_SCHEDULER, "prediction_type": "epsilon"}


def sd_shaped_pipeline(family: str = "sd15", image_size: int = 64) -> Any:
    """A random-weight ``StableDiffusionPipeline`` from SD 1.5's or SD 2.1's (768-v) published configurations at
    full widths (``family``: ``sd15`` or ``sd21``), nothing downloaded; only the resolution is chosen
    (``image_size``). DDIM with the family's prediction type, trailing spacing."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_cfg, text_cfg, sched_cfg = {
        "sd15": (SD15_UNET, SD15_TEXT, SD15_SCHEDULER),
        "sd21": (SD21_UNET, SD21_TEXT, SD21_SCHEDULER),
    }[family]
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**unet_cfg, "sample_size": image_size // 8})
    vae = AutoencoderKL.from_config({**SD21_VAE, "sample_size": image_size})
    text = CLIPTextModel(CLIPTextConfig(**text_cfg))
    scheduler = DDIMScheduler.from_config(sched_cfg)
    return assemble_pipeline(unet, vae, text, scheduler, source=f"{family}-shaped-random")


#: stabilityai/stable-diffusion-xl-base-1.0's published configurations (unet/, vae/, text_encoder/, text_encoder_2/).
SDXL_UNET = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
SDXL_VAE = {**SD21_VAE, "force_upcast": True, "sample_size": 1024, "scaling_factor": 0.13025}
SDXL_TEXT = SD15_TEXT  # CLIP ViT-L/14, as SD 1.5's
SDXL_TEXT_2 = {
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
    **{
        k: SD21_TEXT[k]
        for k in ("vocab_size", "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id")
    },
}
SDXL_SCHEDULER = SD15_SCHEDULER  # the same betas and epsilon prediction (SDXL ships Euler on them)


def sdxl_shaped_pipeline(
    image_size: int = 64, unet_width: float = 1.0, text_2_layers: int | None = None
) -> Any:
    """A random-weight ``StableDiffusionXLPipeline`` from SDXL base's published configurations (:data:`SDXL_UNET`
    and the others), nothing downloaded. ``unet_width`` scales the UNet's block widths (0.5 halves them; block
    types, transformer depths 1/2/10, heads, the 2048-wide cross-attention and the 2816-wide added embedding are
    kept); ``text_2_layers`` shortens the OpenCLIP-bigG tower (its 1280 width and pooled projection kept). At
    1.0 and None every width is the real one (2.6 B + 0.8 B parameters: 13.7 GB peak in float32)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from .models.pipelines import freeze, set_scheduler
    from .models.tokenizers import clip_tokenizer

    # 1. the components from their configurations, at the stated scale
    torch.manual_seed(0)
    widths = [int(round(w * unet_width)) for w in SDXL_UNET["block_out_channels"]]
    unet = UNet2DConditionModel.from_config(
        {**SDXL_UNET, "block_out_channels": widths, "sample_size": image_size // 8}
    )
    vae = AutoencoderKL.from_config({**SDXL_VAE, "sample_size": image_size})
    text_2 = {**SDXL_TEXT_2, "num_hidden_layers": text_2_layers or SDXL_TEXT_2["num_hidden_layers"]}
    # 2. the pipeline with the offline CLIP tokenizer for both encoders, frozen, DDIM trailing
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(CLIPTextConfig(**SDXL_TEXT)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text_2)),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(),
        unet=unet,
        scheduler=DDIMScheduler.from_config(SDXL_SCHEDULER),
    )
    pipe.set_progress_bar_config(disable=True)
    set_scheduler(freeze(pipe), "ddim", "trailing")
    pipe._disco_source = f"sdxl-shaped-random(unet_width={unet_width}, text_2_layers={text_2_layers})"
    return pipe


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


def _tiny_unet(
    seed: int, sample_size: int, text_width: int, time_cond_proj_dim: int | None, **extra: Any
) -> Any:
    """A random UNet with blocks (32, 64), one cross-attention level (``extra``: more or other config entries)."""
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
        norm_num_groups=16,
        time_cond_proj_dim=time_cond_proj_dim,
        **{"attention_head_dim": 8, **extra},
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


def _tiny_text_encoder(seed: int, text_width: int, projection_dim: int | None = None) -> Any:
    """A random 2-layer CLIP text encoder over the CLIP vocabulary (with a projection: SDXL's second encoder)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

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
        projection_dim=projection_dim or 512,
    )
    return CLIPTextModel(te_cfg) if projection_dim is None else CLIPTextModelWithProjection(te_cfg)


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
