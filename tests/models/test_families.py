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

from disco_inspect.testing import SD21_SCHEDULER, SD21_UNET

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sd21():
    """An SD-2.1-shaped ``StableDiffusionPipeline`` with random weights at 64 px (see the module docs)."""
    from disco_inspect.testing import sd_shaped_pipeline

    return sd_shaped_pipeline("sd21", image_size=64)


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


@pytest.fixture(scope="module")
def sd15():
    """An SD-1.5-shaped ``StableDiffusionPipeline`` with random weights at 64 px (the VAE is SD 1.5's, the same
    configuration as SD 2.1's; widths and layouts unchanged, only the resolution scaled down)."""
    from disco_inspect.testing import sd_shaped_pipeline

    return sd_shaped_pipeline("sd15", image_size=64)


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
