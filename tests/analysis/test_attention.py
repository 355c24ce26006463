"""Cross-attention object masks: recording does not change the images, and the mask covers the object."""

import pytest
import torch

from disco_inspect.analysis.attention import CrossAttentionRecorder, object_masks, token_positions
from disco_inspect.engine.sampling import generate
from disco_inspect.errors import DiscoInspectError


def test_recording_leaves_images_bit_identical_and_restores_processors(tiny_pipe):
    prompts, seeds = ["a photo of a dog", "a dog on the grass"], [1, 2]
    before = dict(tiny_pipe.unet.attn_processors)
    ref = generate(tiny_pipe, prompts, seeds, num_inference_steps=3, guidance_scale=3.0)
    images, soft, masks = object_masks(
        tiny_pipe, prompts, seeds, "dog", num_inference_steps=3, guidance_scale=3.0
    )
    assert torch.equal(images, ref)
    one = object_masks(
        tiny_pipe, prompts, seeds, "dog", num_inference_steps=3, guidance_scale=3.0, batch_size=1
    )
    ref_one = generate(tiny_pipe, prompts, seeds, num_inference_steps=3, guidance_scale=3.0, batch_size=1)
    assert torch.equal(one[0], ref_one) and torch.allclose(one[1], soft, atol=1e-4)
    assert soft.shape == masks.shape == (2, *images.shape[-2:])
    assert float(soft.min()) >= 0 and float(soft.max()) <= 1 and set(masks.unique().tolist()) <= {0.0, 1.0}
    assert {k: type(v) for k, v in tiny_pipe.unet.attn_processors.items()} == {
        k: type(v) for k, v in before.items()
    }


def test_token_positions_finds_the_class_name(tiny_pipe):
    tok = tiny_pipe.tokenizer
    pos = token_positions(tok, "a photo of a hot dog", "hot dog")
    ids = tok("a photo of a hot dog").input_ids
    assert [ids[i] for i in pos] == tok("hot dog", add_special_tokens=False).input_ids
    with pytest.raises(DiscoInspectError, match="does not occur"):
        token_positions(tok, "a photo of a cat", "lobster")


def test_recorder_needs_cross_attention(tiny_pipe):
    rec = CrossAttentionRecorder(tiny_pipe.unet, [[1]], (8, 8))
    with pytest.raises(DiscoInspectError, match="No cross-attention"):
        rec.maps()


def test_world_mask_covers_the_shape(world_pipeline):
    """On the world, the attention mask to 'circle' lies on the red circle, not the green background."""
    pipe = world_pipeline
    prompts = ["a red circle on a green background"] * 4
    images, soft, masks = object_masks(
        pipe, prompts, [0, 1, 2, 3], "circle", num_inference_steps=10, guidance_scale=4.0
    )
    red = (images[:, 0] > 0.6) & (images[:, 1] < 0.4)  # the circle's pixels
    inside = (red.float() * masks).sum() / masks.sum()
    assert inside > 0.5, float(inside)  # most of the mask is circle
    assert (red.float() * masks).sum() / red.float().sum() > 0.6  # and it covers most of the circle
