"""The denoising loop, written against diffusers' Stable Diffusion parts.

It mirrors ``StableDiffusionPipeline.__call__`` step for step (same latents, scheduler calls, CFG and
decode) so that, without gradients, it reproduces the stock pipeline's images; with gradients, only
the last ``grad_steps`` UNet calls keep a graph (the paper's gradient skipping).

Randomness is explicit: each image has its own ``torch.Generator`` seeded with its seed; it draws the
image's initial noise and then every noise a stochastic scheduler (``euler-ancestral``) adds, exactly as
the stock pipeline does with ``generator=[torch.Generator().manual_seed(s) for s in seeds]``. An image
therefore depends on its seed only, not on the batch it is in nor on the global RNG.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch


def image_size(pipe: Any, height: int | None = None, width: int | None = None) -> tuple[int, int]:
    """Default output size of ``pipe`` (UNet sample size x VAE scale factor)."""
    default = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return height or default, width or default


def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded with its seed (the stock pipeline's ``generator=`` list)."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def initial_noise(
    pipe: Any,
    seeds: Sequence[int],
    height: int,
    width: int,
    *,
    generators: Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """Per-seed Gaussian latents, bit-equal to what the pipeline draws with ``generator=[Generator(s)...]``.

    Args:
        generators: the images' generators (from :func:`seed_generators`); the noise is drawn from them,
            which advances them to where the stock pipeline's scheduler steps continue. Pass the same list
            to :func:`denoise`. Default: fresh generators from ``seeds``.
    """
    from diffusers.utils.torch_utils import randn_tensor

    gens = seed_generators(seeds) if generators is None else list(generators)
    if len(gens) != len(seeds):
        from ..errors import DiscoInspectError

        raise DiscoInspectError(
            f"`generators` ({len(gens)}) and `seeds` ({len(seeds)}) must have the same length."
        )
    shape = (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    noise = torch.cat([randn_tensor(shape, generator=g, dtype=pipe.unet.dtype) for g in gens])
    return noise.to(pipe.device)


def uses_cfg(pipe: Any, guidance_scale: float) -> bool:
    """Whether sampling runs classifier-free guidance (two UNet branches), as the stock pipeline decides.

    A distilled UNet with a guidance embedding (``time_cond_proj_dim``, LCM) takes the guidance scale as
    an input instead: one conditional pass, no unconditional branch.
    """
    return guidance_scale > 1.0 and pipe.unet.config.time_cond_proj_dim is None


def is_xl(pipe: Any) -> bool:
    """Whether ``pipe`` is an SDXL pipeline (two text encoders; the UNet also takes pooled embeddings and time ids)."""
    return getattr(pipe, "text_encoder_2", None) is not None


def encode(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    """Text-encoder hidden states for ``prompts`` (through ``pipe.encode_prompt``; keeps gradients).

    SD 1.x/2.x: [B, L, D]. SDXL: the two encoders' penultimate states side by side [B, L, D] (D = 768 + 1280, as
    ``StableDiffusionXLPipeline.encode_prompt`` gives them) with the second encoder's pooled embedding packed as
    one more row, zero-padded to D: [B, L + 1, D]. One tensor per prompt keeps every stage's batching, caching
    and null-text optimisation unchanged; :func:`unet_conditioning` unpacks it for the UNet. The empty prompt
    of a pipeline with ``force_zeros_for_empty_prompt`` (SDXL base) is zeros, as the stock pipeline's
    unconditional branch.
    """
    if not is_xl(pipe):
        emb, _ = pipe.encode_prompt(list(prompts), pipe.device, 1, False)
        return emb
    if all(p == "" for p in prompts) and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
        width = pipe.unet.config.cross_attention_dim
        length = pipe.tokenizer.model_max_length + 1
        return torch.zeros(len(prompts), length, width, device=pipe.device, dtype=pipe.text_encoder_2.dtype)
    emb, _, pooled, _ = pipe.encode_prompt(
        list(prompts), device=pipe.device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    row = torch.nn.functional.pad(pooled, (0, emb.shape[-1] - pooled.shape[-1])).unsqueeze(1)
    return torch.cat([emb, row.to(emb)], dim=1)


def unet_conditioning(pipe: Any, hidden: torch.Tensor, latents: torch.Tensor) -> dict[str, Any]:
    """The UNet's text keyword arguments for ``hidden`` (from :func:`encode`) and a batch of ``latents``.

    SD 1.x/2.x: ``encoder_hidden_states``. SDXL: the token rows as ``encoder_hidden_states`` and
    ``added_cond_kwargs`` with the pooled row (``text_embeds``) and the micro-conditioning ``time_ids``
    (original size = target size = the image size, no crop: the stock pipeline's defaults).
    """
    if not is_xl(pipe):
        return {"encoder_hidden_states": hidden}
    dtype = pipe.unet.dtype
    pooled = hidden[:, -1, : pipe.text_encoder_2.config.projection_dim]
    h, w = (int(n) * pipe.vae_scale_factor for n in latents.shape[-2:])
    ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=dtype, device=latents.device).repeat(hidden.shape[0], 1)
    return {
        "encoder_hidden_states": hidden[:, :-1].to(dtype),
        "added_cond_kwargs": {"text_embeds": pooled.to(dtype), "time_ids": ids},
    }


def denoise(
    pipe: Any,
    cond: torch.Tensor,
    noise: torch.Tensor,
    *,
    num_inference_steps: int,
    guidance_scale: float,
    uncond: torch.Tensor | None = None,
    grad_steps: int = 0,
    generators: Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """Run the sampler from ``noise`` and return the final latents.

    Args:
        cond: prompt embeddings [B, L, D] (may carry a graph to the token).
        uncond: embeddings of the empty prompt [1 or B, L, D] for CFG (computed if None and CFG is on).
        grad_steps: number of final steps run with gradients (0 = none; >= steps = all).
        generators: one generator per image, passed to every scheduler step (a stochastic scheduler such
            as euler-ancestral draws its step noise from them); use the list that drew ``noise`` (see
            :func:`initial_noise`). ``None`` leaves such a scheduler on the global RNG (not reproducible).
    """
    sched, unet = pipe.scheduler, pipe.unet
    do_cfg = uses_cfg(pipe, guidance_scale)
    step_kwargs: dict[str, Any] = {}
    if generators is not None:
        if len(generators) != noise.shape[0]:
            from ..errors import DiscoInspectError

            raise DiscoInspectError(
                f"`generators` ({len(generators)}) must hold one generator per image ({noise.shape[0]})."
            )
        if "generator" in inspect.signature(sched.step).parameters:
            step_kwargs["generator"] = list(generators)
    if do_cfg and uncond is None:
        with torch.no_grad():
            uncond = encode(pipe, [""])
    if do_cfg:
        uncond = uncond.expand(cond.shape[0], -1, -1)
    sched.set_timesteps(num_inference_steps, device=pipe.device)
    timesteps = sched.timesteps
    latents = noise * sched.init_noise_sigma
    timestep_cond = None
    if (
        unet.config.time_cond_proj_dim is not None
    ):  # as the stock pipeline: guidance as an input, no CFG batch
        g = torch.tensor(guidance_scale - 1).repeat(cond.shape[0])
        timestep_cond = pipe.get_guidance_scale_embedding(g, embedding_dim=unet.config.time_cond_proj_dim).to(
            latents
        )
    first_grad = len(timesteps) - grad_steps
    grad_on = torch.is_grad_enabled()
    for i, t in enumerate(timesteps):
        with torch.set_grad_enabled(grad_on and i >= first_grad):
            c = cond if torch.is_grad_enabled() else cond.detach()
            hidden = torch.cat([uncond, c]) if do_cfg else c
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = sched.scale_model_input(model_in, t)
            text = unet_conditioning(pipe, hidden, model_in)
            eps = unet(model_in, t, timestep_cond=timestep_cond, return_dict=False, **text)[0]
            if do_cfg:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + guidance_scale * (eps_c - eps_u)
            latents = sched.step(eps, t, latents, **step_kwargs, return_dict=False)[0]
    return latents


def decode(pipe: Any, latents: torch.Tensor) -> torch.Tensor:
    """VAE-decode latents to images in [0, 1] (differentiable), as the pipeline's postprocess does.

    A float16 VAE whose config asks for ``force_upcast`` (SDXL's, which overflows in float16) decodes in float32,
    as ``StableDiffusionXLPipeline`` does; the images come back in the latents' dtype.
    """
    vae = pipe.vae
    with vae_upcast(pipe) as dtype:
        x = vae.decode((latents / vae.config.scaling_factor).to(dtype), return_dict=False)[0]
    return (x / 2 + 0.5).clamp(0, 1).to(latents.dtype)


@contextmanager
def vae_upcast(pipe: Any) -> Iterator[torch.dtype]:
    """Within: the dtype to feed ``pipe.vae``; an SDXL float16 VAE with ``force_upcast`` runs in float32 (and is
    cast back on exit)."""
    vae = pipe.vae
    upcast = is_xl(pipe) and vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if not upcast:
        yield vae.dtype
        return
    vae.to(torch.float32)
    try:
        yield torch.float32
    finally:
        vae.to(torch.float16)


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
    progress: str | None = None,
) -> torch.Tensor:
    """Images [N, 3, H, W] in [0, 1] for paired ``prompts``/``seeds`` (no gradients, batched).

    Image ``i`` depends only on ``prompts[i]`` and ``seeds[i]`` (its own generator), not on ``batch_size``.
    ``progress``: the description of a progress bar over the images (``None``: no bar).
    """
    from tqdm.auto import tqdm

    if len(prompts) != len(seeds):
        from ..errors import DiscoInspectError

        raise DiscoInspectError(
            f"`prompts` ({len(prompts)}) and `seeds` ({len(seeds)}) must have the same length."
        )
    h, w = image_size(pipe, height, width)
    uncond = encode(pipe, [""]) if uses_cfg(pipe, guidance_scale) else None
    out = []
    bar = tqdm(total=len(prompts), desc=progress, unit="image", disable=progress is None)
    for s in range(0, len(prompts), batch_size):
        p, sd = list(prompts[s : s + batch_size]), list(seeds[s : s + batch_size])
        gens = seed_generators(sd)
        lat = denoise(
            pipe,
            encode(pipe, p),
            initial_noise(pipe, sd, h, w, generators=gens),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            uncond=uncond,
            generators=gens,
        )
        out.append(decode(pipe, lat).float().cpu())
        bar.update(len(p))
    bar.close()
    return torch.cat(out)
