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


@pytest.mark.parametrize("kind", ["StableDiffusionXLImg2ImgPipeline", "StableDiffusionImg2ImgPipeline"])
def test_a_pipeline_folder_of_another_class_is_refused_naming_it(tiny_pipe, tmp_path, kind):
    """A folder of a class disco-inspect does not run (the SDXL refiner, image-to-image) is refused in one line
    naming it, before any weights load."""
    import json

    tiny_pipe.save_pretrained(tmp_path / "other")
    index = json.loads((tmp_path / "other" / "model_index.json").read_text())
    index["_class_name"] = kind
    (tmp_path / "other" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(DiscoInspectError, match=rf"is a {kind} folder; disco-inspect runs .*SDXL base"):
        load_pipeline(tmp_path / "other")


def test_an_sdxl_folder_without_its_second_text_encoder_is_refused_naming_the_part(tiny_pipe, tmp_path):
    import json

    tiny_pipe.save_pretrained(tmp_path / "xl")
    index = json.loads((tmp_path / "xl" / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (tmp_path / "xl" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(DiscoInspectError, match="has no `text_encoder_2`; a StableDiffusionXLPipeline needs"):
        load_pipeline(tmp_path / "xl")


def test_an_sdxl_folder_loads_as_the_sdxl_pipeline(tmp_path):
    """A saved SDXL folder loads as StableDiffusionXLPipeline with both encoders frozen."""
    from disco_inspect.testing import tiny_xl_pipeline

    tiny_xl_pipeline(seed=0).save_pretrained(tmp_path / "xl")
    pipe = load_pipeline(tmp_path / "xl")
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    assert not any(p.requires_grad for p in pipe.text_encoder_2.parameters())


def test_a_pipeline_object_without_its_first_text_encoder_is_refused_before_training(tiny_pipe, tiny_clf):
    """A refiner-like pipeline object (only a second text encoder) passed to the API: one line naming its class
    and the missing part."""
    import copy

    from disco_inspect.engine.optimize import train_token

    refiner = copy.copy(tiny_pipe)
    refiner.text_encoder_2, refiner.tokenizer_2 = tiny_pipe.text_encoder, tiny_pipe.tokenizer
    refiner.text_encoder = None
    with pytest.raises(DiscoInspectError, match="StableDiffusionPipeline has no `text_encoder`"):
        train_token(refiner, tiny_clf, 0, progress=False)


def test_a_hub_id_not_in_the_cache_is_one_error_offline(tmp_path, monkeypatch):
    """Offline, a hub id whose files are not cached (its model_index.json names the class) is one clear error."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DiscoInspectError, match="Could not load the pipeline `someone/not-cached`"):
        load_pipeline("someone/not-cached", local_files_only=True)
