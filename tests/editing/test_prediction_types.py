"""DDIM inversion and editing with v- and sample-predicting UNets (SD 2.x 768-v), on tiny random components.

The same random UNet serves every prediction type: only the scheduler's ``prediction_type`` changes, so the
tests compare how inversion treats each reading of the same outputs.
"""

from __future__ import annotations

import copy

import pytest
import torch

from disco_inspect import DiscoInspectError
from disco_inspect.editing.edit import edit_to_prompts
from disco_inspect.editing.inversion import ddim_scheduler, ddim_step, invert, reconstruct, to_epsilon

#: How far the v-prediction reconstruction error may be from the epsilon one on the same UNet (ratio, and absolute).
RATIO_TOL, ABS_TOL = 2.0, 0.01


def _with_prediction(pipe, kind: str, **extra):
    """A copy of ``pipe`` sharing its UNet, VAE and text encoder, whose scheduler predicts ``kind``."""
    from diffusers import DDIMScheduler

    other = copy.copy(pipe)
    own = {
        k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")
    }  # `_use_default_values` drops keys
    config = {**own, "prediction_type": kind, **extra}
    other.register_modules(scheduler=DDIMScheduler.from_config(config))
    return other


def _images(n: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, size, size).clone()
    base[:, :, 8:24, 8:24] = torch.rand(n, 3, 1, 1, generator=g)
    return base


@pytest.mark.parametrize("kind", ["v_prediction", "sample"])
def test_a_ddim_step_on_converted_output_is_diffusers_own_step(tiny_pipe, kind):
    """Our step on ``to_epsilon(output)`` equals ``DDIMScheduler.step(output)`` with that prediction type."""
    from diffusers import DDIMScheduler

    pipe = _with_prediction(tiny_pipe, kind)
    ours = ddim_scheduler(pipe, 10)
    theirs = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    theirs.set_timesteps(10)
    g = torch.Generator().manual_seed(1)
    x, out = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    for t in ours.timesteps[:-1]:
        mine = ddim_step(ours, to_epsilon(pipe, out, t, x), t, x)
        ref = theirs.step(out, t, x, eta=0.0).prev_sample
        assert torch.allclose(mine, ref, atol=1e-5), int(t)


def test_v_prediction_inversion_reconstructs_as_well_as_epsilon_on_the_same_unet(tiny_pipe):
    imgs = _images()
    errors = {}
    for kind in ("epsilon", "v_prediction"):
        pipe = _with_prediction(tiny_pipe, kind)
        for method in ("null-text", "direct"):
            inv = invert(
                pipe,
                imgs,
                "a photo of a circle",
                num_inference_steps=4,
                guidance_scale=5.0,
                method=method,
                progress=False,
            )
            errors[kind, method] = float((reconstruct(pipe, inv) - imgs).pow(2).mean())
    for method in ("null-text", "direct"):
        assert errors["v_prediction", method] <= RATIO_TOL * errors["epsilon", method] + ABS_TOL, errors


def test_prompt_to_prompt_edits_run_on_a_v_prediction_pipeline(tiny_pipe):
    pipe = _with_prediction(tiny_pipe, "v_prediction")
    inv = invert(
        pipe, _images(), "a photo of a circle", num_inference_steps=3, guidance_scale=3.0, progress=False
    )
    edits = edit_to_prompts(pipe, inv, ["a photo of a red circle"], progress=False)
    assert edits.shape == (1, 2, 3, 32, 32) and torch.isfinite(edits).all()


def test_what_inversion_cannot_convert_is_refused_naming_the_pipeline(tiny_pipe):
    pipe = _with_prediction(tiny_pipe, "epsilon", rescale_betas_zero_snr=True)
    with pytest.raises(DiscoInspectError, match="StableDiffusionPipeline's scheduler rescales betas"):
        invert(pipe, _images(1), "a circle", num_inference_steps=2, progress=False)
    flow = copy.copy(tiny_pipe)
    flow.register_modules(scheduler=copy.deepcopy(tiny_pipe.scheduler))
    flow.scheduler.register_to_config(prediction_type="flow_prediction")
    with pytest.raises(
        DiscoInspectError, match="StableDiffusionPipeline's scheduler predicts 'flow_prediction'"
    ):
        invert(flow, _images(1), "a circle", num_inference_steps=2, progress=False)


def test_inversion_steps_with_the_pipelines_own_noise_schedule(tiny_pipe, world_pipeline):
    """The DDIM scheduler of inversion and editing has the pipeline's betas (SD's scaled-linear), not diffusers'
    defaults (linear 0.0001-0.02)."""
    for pipe in (tiny_pipe, world_pipeline):
        sched = ddim_scheduler(pipe, 10)
        assert sched.config.beta_schedule == pipe.scheduler.config.beta_schedule == "scaled_linear"
        assert torch.allclose(sched.alphas_cumprod, pipe.scheduler.alphas_cumprod)
        assert sched.config.timestep_spacing == "trailing"
