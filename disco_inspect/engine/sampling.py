"""The denoising loop, written against diffusers' Stable Diffusion parts.

It mirrors ``StableDiffusionPipeline.__call__`` step for step (same latents, scheduler calls, CFG and
decode) so that, without gradients, it reproduces the stock pipeline's images; with gradients, only
the last ``grad_steps`` UNet calls keep a graph (the paper's gradient skipping).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def image_size(pipe: Any, height: int | None = None, width: int | None = None) -> tuple[int, int]:
    """Default output size of ``pipe`` (UNet sample size x VAE scale factor)."""
    default = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return height or default, width or default


def initial_noise(pipe: Any, seeds: Sequence[int], height: int, width: int) -> torch.Tensor:
    """Per-seed Gaussian latents, bit-equal to what the pipeline draws with ``generator=[Generator(s)...]``."""
    from diffusers.utils.torch_utils import randn_tensor

    shape = (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    noise = torch.cat([randn_tensor(shape, generator=g, dtype=pipe.unet.dtype) for g in gens])
    return noise.to(pipe.device)


def encode(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    """Text-encoder hidden states for ``prompts`` (through ``pipe.encode_prompt``; keeps gradients)."""
    emb, _ = pipe.encode_prompt(list(prompts), pipe.device, 1, False)
    return emb


def denoise(
    pipe: Any,
    cond: torch.Tensor,
    noise: torch.Tensor,
    *,
    num_inference_steps: int,
    guidance_scale: float,
    uncond: torch.Tensor | None = None,
    grad_steps: int = 0,
) -> torch.Tensor:
    """Run the sampler from ``noise`` and return the final latents.

    Args:
        cond: prompt embeddings [B, L, D] (may carry a graph to the token).
        uncond: embeddings of the empty prompt [1 or B, L, D] for CFG (computed if None and CFG is on).
        grad_steps: number of final steps run with gradients (0 = none; >= steps = all).
    """
    sched, unet = pipe.scheduler, pipe.unet
    do_cfg = guidance_scale > 1.0
    if do_cfg and uncond is None:
        with torch.no_grad():
            uncond = encode(pipe, [""])
    if do_cfg:
        uncond = uncond.expand(cond.shape[0], -1, -1)
    sched.set_timesteps(num_inference_steps, device=pipe.device)
    timesteps = sched.timesteps
    latents = noise * sched.init_noise_sigma
    timestep_cond = None
    if unet.config.time_cond_proj_dim is not None:
        g = torch.tensor(guidance_scale - 1).repeat(cond.shape[0])
        timestep_cond = pipe.get_guidance_scale_embedding(g, embedding_dim=unet.config.time_cond_proj_dim).to(latents)
    first_grad = len(timesteps) - grad_steps
    grad_on = torch.is_grad_enabled()
    for i, t in enumerate(timesteps):
        with torch.set_grad_enabled(grad_on and i >= first_grad):
            c = cond if torch.is_grad_enabled() else cond.detach()
            hidden = torch.cat([uncond, c]) if do_cfg else c
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = sched.scale_model_input(model_in, t)
            eps = unet(model_in, t, encoder_hidden_states=hidden, timestep_cond=timestep_cond, return_dict=False)[0]
            if do_cfg:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + guidance_scale * (eps_c - eps_u)
            latents = sched.step(eps, t, latents, return_dict=False)[0]
    return latents


def decode(pipe: Any, latents: torch.Tensor) -> torch.Tensor:
    """VAE-decode latents to images in [0, 1] (differentiable), as the pipeline's postprocess does."""
    x = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return (x / 2 + 0.5).clamp(0, 1)


@torch.no_grad()
def generate(
    pipe: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    num_inference_steps: int = 30,
    guidance_scale: float = 7.0,
    height: int | None = None,
    width: int | None = None,
    batch_size: int = 8,
) -> torch.Tensor:
    """Images [N, 3, H, W] in [0, 1] for paired ``prompts``/``seeds`` (no gradients, batched)."""
    if len(prompts) != len(seeds):
        from ..errors import DiscoInspectError

        raise DiscoInspectError(f"`prompts` ({len(prompts)}) and `seeds` ({len(seeds)}) must have the same length.")
    h, w = image_size(pipe, height, width)
    uncond = encode(pipe, [""]) if guidance_scale > 1 else None
    out = []
    for s in range(0, len(prompts), batch_size):
        p, sd = list(prompts[s : s + batch_size]), list(seeds[s : s + batch_size])
        lat = denoise(pipe, encode(pipe, p), initial_noise(pipe, sd, h, w), num_inference_steps=num_inference_steps,
                      guidance_scale=guidance_scale, uncond=uncond)
        out.append(decode(pipe, lat).float().cpu())
    return torch.cat(out)
