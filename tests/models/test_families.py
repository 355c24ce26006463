"""Real Stable Diffusion families with random weights: SD 1.5, the SD 2.1 768-v model (v-prediction) and an
SD-Turbo-shaped few-step configuration (SD 2.1's architecture, one step, no guidance), nothing downloaded.

The components are built with ``from_config`` from the model's published configuration (stabilityai/
stable-diffusion-2-1: the UNet at its full widths, 865 M parameters; the VAE; the OpenCLIP-H text tower as
``CLIPTextModel``, 23 layers; DDIM with ``prediction_type="v_prediction"``). Only the resolution (64 px instead of
768) and the step counts (2) are scaled down, for time; memory does not force anything else (6.6 GB peak RSS,
~80 s on the project's 2-core CPU, measured 2026-12-03). SD 1.5 likewise (its published UNet and CLIP ViT-L/14 text
configurations at 64 px). The module: 10.6 GB peak RSS, ~5 min (AMD EPYC 2-core, 2026-12-04).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module")
def sd21():
    """An SD-2.1-shaped ``StableDiffusionPipeline`` with random weights at 64 px (see the module docs)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from disco_inspect.testing import assemble_pipeline

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**SD21_UNET, "sample_size": 8})  # 64 px images
    vae = AutoencoderKL.from_config({**SD21_VAE, "sample_size": 64})
    text = CLIPTextModel(CLIPTextConfig(**SD21_TEXT))
    scheduler = DDIMScheduler.from_config(SD21_SCHEDULER)
    return assemble_pipeline(unet, vae, text, scheduler, source="sd21-shaped-random")


def test_the_sd21_shaped_pipeline_has_the_real_layout(sd21):
    assert sd21.scheduler.config.prediction_type == "v_prediction"
    assert sd21.unet.config.cross_attention_dim == 1024 == sd21.text_encoder.config.hidden_size
    assert sd21.unet.config.use_linear_projection and sd21.unet.config.upcast_attention
    assert list(sd21.unet.config.down_block_types) == SD21_UNET["down_block_types"]
    assert sd21.vae_scale_factor == 8


def test_train_two_iterations_then_edit_one_image_on_sd21(sd21, tmp_path):
    """`train` 2 iterations (only the new token's row changes), then `edit` one image with the learned token: the
    v-prediction inversion reconstructs finite images and the edit runs."""
    from disco_inspect.config import DiscoConfig
    from disco_inspect.editing.edit import edit
    from disco_inspect.editing.inversion import invert, reconstruct
    from disco_inspect.engine.optimize import train_token
    from disco_inspect.testing import tiny_classifier

    before = sd21.text_encoder.get_input_embeddings().weight.detach().clone()
    cfg = DiscoConfig(max_iters=2, n_images=1, num_inference_steps=2, guidance_scale=3.0, seed=0)
    clf = tiny_classifier(seed=0, input_size=64)
    run = train_token(sd21, clf, 0, config=cfg, out=tmp_path / "run", progress=False)
    after = sd21.text_encoder.get_input_embeddings().weight.detach()
    changed = (after[: len(before)] != before).any(1).nonzero().flatten().tolist()
    assert changed == [] and after.shape[0] == before.shape[0] + 1  # only the new row, appended
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    name = clf.class_name(0)
    inv = invert(
        sd21, images, f"a photo of a {name}", num_inference_steps=2, guidance_scale=3.0, progress=False
    )
    assert torch.isfinite(reconstruct(sd21, inv)).all()
    res = edit(sd21, inv, run.token_path, class_name=name, progress=False)
    assert res.edits.shape == (1, 3, 64, 64) and torch.isfinite(res.edits).all()


# --- SD 1.5 (runwayml/stable-diffusion-v1-5): CLIP ViT-L/14 text tower, 8 heads, no linear projection -------------

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


@pytest.fixture(scope="module")
def sd15():
    """An SD-1.5-shaped ``StableDiffusionPipeline`` with random weights at 64 px (the VAE is SD 1.5's, the same
    configuration as SD 2.1's; widths and layouts unchanged, only the resolution scaled down)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from disco_inspect.testing import assemble_pipeline

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**SD15_UNET, "sample_size": 8})
    vae = AutoencoderKL.from_config({**SD21_VAE, "sample_size": 64})
    text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
    return assemble_pipeline(
        unet, vae, text, DDIMScheduler.from_config(SD15_SCHEDULER), source="sd15-shaped-random"
    )


def test_report_through_the_scan_and_evaluate_on_sd15(sd15, tmp_path, audit_through_the_scan):
    assert sd15.unet.config.cross_attention_dim == 768 == sd15.text_encoder.config.hidden_size
    calls = audit_through_the_scan(sd15, tmp_path)
    assert calls["interventions"]["unet"] == 3 * 4 * 2 * 2  # 3 distinct prompts x 4 seeds x 2 steps x CFG


def test_report_through_the_scan_and_evaluate_on_sd21_v_prediction(sd21, tmp_path, audit_through_the_scan):
    calls = audit_through_the_scan(sd21, tmp_path)
    assert calls["token"]["unet_grad"] == 2 * 1 * 2  # 2 iterations x 1 image x CFG x K=1 step


def test_report_through_the_scan_on_a_turbo_shaped_few_step_pipeline(sd21, tmp_path, audit_through_the_scan):
    """SD-Turbo is SD 2.1's architecture with epsilon prediction, one step and no guidance (trailing spacing): the
    same random components with that scheduler; one UNet row per image and step, no unconditional branch."""
    from diffusers import EulerDiscreteScheduler

    from disco_inspect.models.pipelines import set_scheduler
    from disco_inspect.testing import assemble_pipeline

    shipped = EulerDiscreteScheduler.from_config({**SD21_SCHEDULER, "prediction_type": "epsilon"})
    turbo = assemble_pipeline(sd21.unet, sd21.vae, sd21.text_encoder, shipped, source="turbo-shaped-random")
    set_scheduler(turbo, "euler-ancestral", "trailing")  # a stochastic few-step sampler, seeded per image
    calls = audit_through_the_scan(turbo, tmp_path, steps=1, guidance=0.0)
    assert calls["interventions"]["unet"] == 3 * 4 * 1  # 3 distinct prompts x 4 seeds x 1 step, no CFG
