"""load_pipeline / set_scheduler: folders, schedulers, spacing; our sampler equals the stock pipeline's."""

import pytest
import torch

from disco_inspect import DiscoConfig, DiscoInspectError, load_pipeline, train_token
from disco_inspect.engine.sampling import generate
from disco_inspect.models.pipelines import set_scheduler


@pytest.mark.parametrize(
    "kind,spacing,guidance",
    [
        ("ddim", "leading", 4.0),
        ("euler", "trailing", 4.0),
        ("euler", "trailing", 0.0),
        ("euler-ancestral", "trailing", 4.0),
    ],
)
def test_schedulers_match_stock_pipeline(tiny_assets, kind, spacing, guidance):
    pipe = load_pipeline(tiny_assets / "pipe", scheduler=kind, timestep_spacing=spacing)
    assert pipe.scheduler.config.timestep_spacing == spacing
    prompts, seeds = ["a photo of a circle", "a square"], [3, 4]
    ours = generate(pipe, prompts, seeds, num_inference_steps=3, guidance_scale=guidance)
    stock = pipe(
        prompts,
        num_inference_steps=3,
        guidance_scale=guidance,
        output_type="pt",
        generator=[torch.Generator().manual_seed(s) for s in seeds],
    ).images
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("guidance", [2.0, 1.0])
def test_guidance_embedding_unet_matches_stock_pipeline(guidance):
    """Distilled (LCM-style) UNets take the guidance as an embedding: one UNet pass, no CFG batch."""
    from disco_inspect.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0, time_cond_proj_dim=8)
    assert pipe.unet.config.time_cond_proj_dim == 8
    prompts, seeds = ["a photo of a circle", "a square"], [3, 4]
    ours = generate(pipe, prompts, seeds, num_inference_steps=3, guidance_scale=guidance)
    stock = pipe(
        prompts,
        num_inference_steps=3,
        guidance_scale=guidance,
        output_type="pt",
        generator=[torch.Generator().manual_seed(s) for s in seeds],
    ).images
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=1e-4)


def test_turbo_style_training_without_cfg(tiny_assets, tiny_clf):
    pipe = load_pipeline(tiny_assets / "pipe", scheduler="euler")
    run = train_token(
        pipe,
        tiny_clf,
        "cross",
        progress=False,
        config=DiscoConfig(n_images=2, num_inference_steps=1, guidance_scale=0.0, max_iters=2),
    )
    assert len(run.trajectory) == 2 and run.trajectory[0]["grad_norm"] > 0


def test_bad_scheduler_and_sources(tiny_pipe, tmp_path):
    with pytest.raises(DiscoInspectError, match="'plms'"):
        set_scheduler(tiny_pipe, "plms")
    with pytest.raises(DiscoInspectError, match="model_index.json"):
        load_pipeline(tmp_path)
    with pytest.raises(DiscoInspectError, match="neither an existing folder nor a hub id"):
        load_pipeline("./does/not/exist")


def test_folder_without_tokenizer_gets_offline_clip_tokenizer(tiny_pipe, tmp_path):
    import shutil

    tiny_pipe.save_pretrained(tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "tokenizer")
    pipe = load_pipeline(tmp_path / "p")
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_a_pipeline_folder_of_another_class_is_refused_naming_it(tiny_pipe, tmp_path):
    """An SDXL folder (or any class but StableDiffusionPipeline) is refused in one line before any weights load."""
    import json

    tiny_pipe.save_pretrained(tmp_path / "xl")
    index = json.loads((tmp_path / "xl" / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (tmp_path / "xl" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(
        DiscoInspectError, match=r"is a StableDiffusionXLPipeline folder; .* SDXL is not supported"
    ):
        load_pipeline(tmp_path / "xl")


def test_a_pipeline_object_with_two_text_encoders_is_refused_before_training(tiny_pipe, tiny_clf):
    """An SDXL-like pipeline object (a second text encoder) passed to the API: one line naming its class."""
    import copy

    from disco_inspect.engine.optimize import train_token

    xl = copy.copy(tiny_pipe)
    xl.text_encoder_2 = tiny_pipe.text_encoder
    with pytest.raises(DiscoInspectError, match="StableDiffusionPipeline has two text encoders .SDXL."):
        train_token(xl, tiny_clf, 0, progress=False)
