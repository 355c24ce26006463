"""Memory options for one GPU (`load_pipeline(memory=...)`, `--memory`): diffusers' own switches, checked before
anything loads; the audit's images are unchanged by them (tiny random pipeline)."""

import pytest
import torch

from disco_inspect.errors import DiscoInspectError
from disco_inspect.models.pipelines import apply_memory_options, check_memory_options
from disco_inspect.testing import tiny_pipeline


def test_slicing_and_tiling_reach_the_real_modules_and_keep_the_images():
    from disco_inspect.analysis.attention import object_masks
    from disco_inspect.engine.sampling import generate

    plain = tiny_pipeline(seed=0)
    before = generate(plain, ["a cat", "a dog"], [0, 1], num_inference_steps=2, guidance_scale=2.0)
    masks_before = object_masks(
        plain, ["a cat", "a red cat"], [0, 1], "cat", num_inference_steps=2, guidance_scale=2.0
    )
    pipe = apply_memory_options(tiny_pipeline(seed=0), ["attention-slicing", "vae-slicing", "vae-tiling"])
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    assert any("Sliced" in type(p).__name__ for p in pipe.unet.attn_processors.values())
    after = generate(pipe, ["a cat", "a dog"], [0, 1], num_inference_steps=2, guidance_scale=2.0)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    masks_after = object_masks(
        pipe, ["a cat", "a red cat"], [0, 1], "cat", num_inference_steps=2, guidance_scale=2.0
    )
    for a, b in zip(masks_after, masks_before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bad_options_are_refused_before_anything_loads():
    with pytest.raises(DiscoInspectError, match="'vae-slice' is not a memory option"):
        check_memory_options(["vae-slice"], "cpu")
    with pytest.raises(DiscoInspectError, match="cpu-offload moves models to a CUDA device"):
        check_memory_options(["cpu-offload"], "cpu")
    assert check_memory_options(["", " vae-slicing"], "cpu") == ["vae-slicing"]


def test_the_memory_flag_is_checked_before_any_model_loads(capsys, monkeypatch):
    from disco_inspect.cli import main
    from disco_inspect.models import classifiers

    def never(*a, **k):
        raise AssertionError("a model loaded before the flag was checked")

    monkeypatch.setattr(classifiers, "load_classifier", never)
    code = main(["report", "world:biased_circle_green", "--class", "circle", "--memory", "vae-slice"])
    assert code == 2 and "`--memory` = 'vae-slice' is not a memory option" in capsys.readouterr().err
