"""DDIM inversion, then null-text, negative-prompt or direct inversion, batched over images and cached on disk.

1. *DDIM inversion* with the source prompt and no guidance runs the deterministic DDIM sampler backwards
   (``x_{t_prev} -> x_t``), giving the *pivot* trajectory ``x_0 ... x_T`` of each image.
2. *Null-text inversion*: sampling from ``x_T`` with classifier-free guidance drifts off that trajectory. For
   every sampling step ``i`` the unconditional ("null") embedding of each image is tuned with Adam
   (lr ``1e-2 (1 - i/100)``, at most ``inner_steps`` updates, stop once the step's MSE is below
   ``1e-5 + i 2e-5``) so that the guided step lands on the pivot's next latent; the tuned embedding then
   drives the step and the next one starts where it landed.

Step 2 has two cheaper alternatives (``method``):

- ``negative-prompt`` (Miyake et al., 2023): no optimisation; the source prompt's own embedding stands in for the
  null embedding at every step, so the guided step equals the conditional one the pivot was inverted with.
- ``direct`` (Ju et al., "PnP Inversion", ICLR 2024): the null embedding stays the empty prompt's; one guided pass
  along the pivot records, per step, the offset between the pivot's next latent and where the guided step lands.
  Sampling adds the step's offset to the source row only, as Ju et al. do: it then follows the pivot exactly, and
  the edit rows, sampled plainly, follow it through prompt-to-prompt's attention injection.

The result, :class:`Inversion`, holds ``x_T``, the pivot, one null embedding per step and image, and ``direct``'s
offsets; sampling from it with guidance reproduces the image (see :func:`reconstruct`). Only the null embeddings are optimised;
the pipeline's weights are never touched. Everything runs on ``pipe.device`` in ``pipe.unet.dtype``; the
embeddings are optimised in float32 and cast for the UNet, so float16 pipelines work on a GPU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DiscoInspectError
from ..io import atomic_write

logger = logging.getLogger(__name__)

#: Mokady et al.'s null-text schedule: Adam lr ``NULL_LR (1 - i/100)``, stop below ``NULL_TOL + i NULL_TOL_STEP``.
NULL_LR = 1e-2
NULL_TOL = 1e-5
NULL_TOL_STEP = 2e-5
#: The inversion methods (``invert(method=...)``, ``--inversion``).
INVERSION_METHODS = ("null-text", "negative-prompt", "direct")
#: The default, chosen by the side-by-side benchmark on the world (docs/benchmarks.md, 2026-12-07): direct inversion
#: reconstructs at the VAE's ceiling (26.37 dB, null-text 26.35) with the same edits, at 1.7x one generation per
#: image (null-text 12.8x). The null-text VAE (``method="null-vae"``) samples tuned null embeddings: null-text.
DEFAULT_INVERSION = "direct"
CACHE_VERSION = 1


@dataclass
class Inversion:
    """Inverted images: what :func:`~disco_inspect.editing.edit.edit` regenerates from.

    Attributes:
        images: the source images as inverted, float32 ``[B, 3, H, W]`` in [0, 1] (after resizing).
        prompts: the source prompt of each image.
        names: a name per image (file stem), used for output folders.
        latents: the DDIM-inversion pivot ``[steps + 1, B, C, h, w]``; index 0 is the encoded image, the last
            is ``x_T``; ``latents[steps - i]`` is the latent sampling step ``i`` starts from.
        null_embeddings: the unconditional embeddings ``[steps, B, L, D]`` sampling uses, one per step (null-text:
            tuned; negative-prompt: the source prompt's; direct: the empty prompt's).
        null_loss: per step ``[steps, B]``, the MSE between the guided step and the pivot before any correction
            (null-text: after its fit; diagnostics).
        method: the inversion method (:data:`INVERSION_METHODS`).
        offsets: ``direct`` only: ``[steps, B, C, h, w]``, added to the source row's latent after sampling step ``i``.
        num_inference_steps, guidance_scale, timestep_spacing: the sampler settings the inversion holds for;
            edits must use the same ones.
        cached: per image, whether its inversion came from the cache.
        keys: per image, its inversion's cache key (empty without a cache; edits are cached under it).
    """

    images: torch.Tensor
    prompts: list[str]
    names: list[str]
    latents: torch.Tensor
    null_embeddings: torch.Tensor
    null_loss: torch.Tensor
    num_inference_steps: int
    guidance_scale: float
    timestep_spacing: str
    cached: list[bool] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    method: str = DEFAULT_INVERSION
    offsets: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def x_T(self) -> torch.Tensor:  # noqa: N802 - the paper's name
        """The inverted noise ``[B, C, h, w]`` sampling starts from."""
        return self.latents[-1]

    def select(self, index: Sequence[int] | slice) -> Inversion:
        """The inversion of a subset of the images (same settings)."""
        idx = list(range(len(self)))[index] if isinstance(index, slice) else [int(i) for i in index]
        return Inversion(
            images=self.images[idx],
            prompts=[self.prompts[i] for i in idx],
            names=[self.names[i] for i in idx],
            latents=self.latents[:, idx],
            null_embeddings=self.null_embeddings[:, idx],
            null_loss=self.null_loss[:, idx],
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            timestep_spacing=self.timestep_spacing,
            cached=[self.cached[i] for i in idx] if self.cached else [],
            keys=[self.keys[i] for i in idx] if self.keys else [],
            method=self.method,
            offsets=None if self.offsets is None else self.offsets[:, idx],
        )

    def corrected(self, x: torch.Tensor, step: int, rows: Sequence[int]) -> torch.Tensor:
        """``x`` after sampling step ``step`` (row ``r`` from image ``rows[r]``): plus the step's ``direct`` offset
        of each row's image; unchanged for the other methods."""
        if self.offsets is None:
            return x
        return x + self.offsets[step][list(rows)].to(x.device, x.dtype)

    def settings(self) -> dict[str, Any]:
        """The sampler settings, JSON-ready."""
        return {
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "timestep_spacing": self.timestep_spacing,
            "inversion": self.method,
        }


# ---------------------------------------------------------------------------------------------- DDIM maths
def ddim_scheduler(pipe: Any, num_inference_steps: int, timestep_spacing: str = "trailing") -> Any:
    """A DDIM scheduler with the pipeline's noise schedule (its own ``pipe.scheduler`` is left alone)."""
    from diffusers import DDIMScheduler

    from ..models.pipelines import SPACINGS

    if timestep_spacing not in SPACINGS:
        raise DiscoInspectError(
            f"`timestep_spacing` = {timestep_spacing!r} is unknown; use one of {', '.join(SPACINGS)}."
        )
    cfg = {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}
    check_prediction_type(pipe)
    # from_config keeps the pipeline's betas (DDIMScheduler.__init__ is wrapped, so its own code names no arguments)
    sched = DDIMScheduler.from_config(cfg, timestep_spacing=timestep_spacing)
    sched.set_timesteps(num_inference_steps, device=pipe.device)
    return sched


#: What the UNet can predict for DDIM inversion and editing: noise (SD 1.x, SD 2.x base, the world), v (SD 2.x
#: 768-v), or the clean sample; v and sample are converted to noise with the scheduler's alphas (as
#: ``DDIMScheduler.step`` does), so every step below works on noise.
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def check_prediction_type(pipe: Any) -> str:
    """The scheduler's ``prediction_type``, refused in one line when DDIM inversion cannot convert it."""
    kind = pipe.scheduler.config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise DiscoInspectError(
            f"{type(pipe).__name__}'s scheduler predicts {kind!r}; inversion and editing support "
            f"{', '.join(PREDICTION_TYPES)}. Use a model with one of those prediction types."
        )
    if pipe.scheduler.config.get("rescale_betas_zero_snr", False):
        raise DiscoInspectError(
            f"{type(pipe).__name__}'s scheduler rescales betas to zero terminal SNR; DDIM inversion cannot start "
            "from a pure-noise last step. Use the model's scheduler without `rescale_betas_zero_snr`."
        )
    return kind


def to_epsilon(pipe: Any, output: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """The noise the UNet's ``output`` at ``t`` on ``x`` stands for (identity for epsilon prediction).

    v prediction: ``eps = sqrt(a) v + sqrt(1 - a) x``; sample prediction: ``eps = (x - sqrt(a) x0) / sqrt(1 - a)``,
    with ``a`` the scheduler's ``alphas_cumprod[t]``. Linear in ``output``, so guidance before or after is the same.
    """
    kind = pipe.scheduler.config.get("prediction_type", "epsilon")
    if kind == "epsilon":
        return output
    a = _alphas_cumprod(pipe)[int(t)].to(x.device, torch.float32)
    if kind == "v_prediction":
        eps = a.sqrt() * output.float() + (1 - a).sqrt() * x.float()
    else:
        eps = (x.float() - a.sqrt() * output.float()) / (1 - a).sqrt()
    return eps.to(output.dtype)


def _alphas_cumprod(pipe: Any) -> torch.Tensor:
    """The training noise schedule's cumulative alphas (every diffusers scheduler of the config holds the same)."""
    found = getattr(pipe.scheduler, "alphas_cumprod", None)
    if found is None:
        from diffusers import DDIMScheduler

        found = DDIMScheduler.from_config(pipe.scheduler.config).alphas_cumprod
    return found


def _alpha_pair(sched: Any, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_bar at ``t``, alpha_bar at the step DDIM goes to from ``t``), as ``DDIMScheduler.step`` computes them."""
    t = int(t)
    prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
    a_t = sched.alphas_cumprod[t]
    a_prev = sched.alphas_cumprod[prev] if prev >= 0 else sched.final_alpha_cumprod
    return a_t, a_prev


def ddim_step(sched: Any, eps: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step ``x_t -> x_{t_prev}`` (eta = 0; differentiable)."""
    a_t, a_prev = (a.to(x.device, torch.float32) for a in _alpha_pair(sched, t))
    x0 = (x.float() - (1 - a_t).sqrt() * eps.float()) / a_t.sqrt()
    return (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps.float()).to(x.dtype)


def ddim_inverse_step(sched: Any, eps: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """The DDIM step run backwards: ``x_{t_prev} -> x_t`` with the noise predicted at ``t``."""
    a_t, a_prev = (a.to(x.device, torch.float32) for a in _alpha_pair(sched, t))
    x0 = (x.float() - (1 - a_prev).sqrt() * eps.float()) / a_prev.sqrt()
    return (a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps.float()).to(x.dtype)


def predict_x0(sched: Any, eps: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """DDIM's estimate of the clean latent from ``x_t`` and the predicted noise (differentiable)."""
    a_t = sched.alphas_cumprod[int(t)].to(x.device, torch.float32)
    return ((x.float() - (1 - a_t).sqrt() * eps.float()) / a_t.sqrt()).to(x.dtype)


def guided_eps(
    pipe: Any,
    x: torch.Tensor,
    t: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    guidance_scale: float,
) -> torch.Tensor:
    """Classifier-free-guided noise prediction for ``x`` [B, ...] (one UNet call on ``[uncond, cond]``); a v- or
    sample-predicting UNet's output is converted to noise (:func:`to_epsilon`).

    ``uncond`` None (or guidance <= 1) predicts with ``cond`` alone. A UNet with a guidance embedding (LCM) gets
    the guidance scale as its input, as the stock pipeline does.
    """
    from ..engine.sampling import unet_conditioning, uses_cfg

    unet, dtype = pipe.unet, pipe.unet.dtype
    tcond = None
    if unet.config.time_cond_proj_dim is not None:
        g = torch.tensor(guidance_scale - 1).repeat(x.shape[0])
        tcond = pipe.get_guidance_scale_embedding(g, embedding_dim=unet.config.time_cond_proj_dim).to(x)
    if uncond is None or not uses_cfg(pipe, guidance_scale):
        text = unet_conditioning(pipe, cond.to(dtype), x)
        out = unet(x.to(dtype), t, timestep_cond=tcond, return_dict=False, **text)
        return to_epsilon(pipe, out[0], t, x)
    hidden = torch.cat([uncond.to(dtype), cond.to(dtype)])
    text = unet_conditioning(pipe, hidden, torch.cat([x, x]))
    eps = unet(torch.cat([x, x]).to(dtype), t, return_dict=False, **text)[0]
    eps_u, eps_c = eps.chunk(2)
    return to_epsilon(pipe, eps_u + guidance_scale * (eps_c - eps_u), t, x)


@torch.no_grad()
def encode_images(pipe: Any, images: torch.Tensor) -> torch.Tensor:
    """VAE latents of images in [0, 1] (the posterior mean, scaled; deterministic), in the UNet's dtype."""
    from ..engine.sampling import vae_upcast

    with vae_upcast(pipe) as dtype:
        x = images.to(pipe.device, dtype) * 2 - 1
        latents = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    return latents.to(pipe.unet.dtype)


@torch.no_grad()
def vae_roundtrip(pipe: Any, images: torch.Tensor) -> torch.Tensor:
    """Encode then decode: the best any inversion can reconstruct (the VAE's own ceiling)."""
    from ..engine.sampling import decode

    return decode(pipe, encode_images(pipe, images)).float().cpu()


def empty_embedding(pipe: Any) -> torch.Tensor:
    """Text-encoder hidden states of the empty prompt [1, L, D] (the untuned null embedding)."""
    from ..engine.sampling import encode

    with torch.no_grad():
        return encode(pipe, [""]).float()


# ---------------------------------------------------------------------------------------------- inversion
def _check_inputs(
    pipe: Any,
    images: torch.Tensor,
    prompts: Sequence[str],
    num_inference_steps: int,
    guidance_scale: float,
    inner_steps: int,
) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise DiscoInspectError(
            f"`images` must be a float tensor [N, 3, H, W] in [0, 1]; got "
            f"{getattr(images, 'shape', type(images).__name__)}. Use `load_images` for files."
        )
    if len(images) == 0:
        raise DiscoInspectError("`images` is empty; pass at least one image.")
    if len(prompts) != len(images):
        raise DiscoInspectError(
            f"`prompts` has {len(prompts)} entries for {len(images)} images; pass one per image "
            "(or a single string for all)."
        )
    expected = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if tuple(images.shape[-2:]) != (expected, expected):
        raise DiscoInspectError(
            f"`images` are {tuple(images.shape[-2:])} but this pipeline works at "
            f"{expected}x{expected}; load them with `load_images(..., size={expected})`."
        )
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise DiscoInspectError(
            f"`num_inference_steps` = {num_inference_steps!r} is invalid; use a positive integer "
            "(the world: 20, Stable Diffusion: 50)."
        )
    if inner_steps < 0:
        raise DiscoInspectError(
            f"`inner_steps` = {inner_steps!r} is invalid; use 0 (plain DDIM inversion) or more."
        )
    if guidance_scale < 0:
        raise DiscoInspectError(f"`guidance_scale` = {guidance_scale!r} is invalid; use a value >= 0.")


def check_inversion_method(method: str, flag: str = "method") -> str:
    """``method`` if it is one of :data:`INVERSION_METHODS`, else one line naming ``flag`` and the choices."""
    if method not in INVERSION_METHODS:
        raise DiscoInspectError(
            f"`{flag}` = {method!r} is not an inversion method; use one of {', '.join(INVERSION_METHODS)}."
        )
    return method


def pipeline_fingerprint(pipe: Any) -> str:
    """A cheap identity of a pipeline's weights and noise schedule (for the inversion cache key)."""
    h = hashlib.sha256()
    for tensor in (
        pipe.unet.conv_in.weight,
        pipe.unet.conv_out.weight,
        pipe.vae.encoder.conv_in.weight,
        pipe.vae.decoder.conv_out.weight,
        pipe.text_encoder.get_input_embeddings().weight[:512],
    ):
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(
        json.dumps(
            {k: v for k, v in pipe.scheduler.config.items() if k.startswith(("beta", "num_train"))},
            sort_keys=True,
            default=str,
        ).encode()
    )
    h.update(str(pipe.unet.dtype).encode())
    return h.hexdigest()[:16]


def _cache_key(fingerprint: str, image: torch.Tensor, prompt: str, settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(fingerprint.encode())
    h.update((image.float().cpu() * 255).round().to(torch.uint8).numpy().tobytes())
    h.update(prompt.encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(str(CACHE_VERSION).encode())
    return h.hexdigest()[:32]


def _save_cached(
    path: Path, part: dict[str, torch.Tensor], prompt: str, settings: dict[str, Any], key: str
) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.float().cpu().contiguous() for k, v in part.items()}
    meta = {"key": key, "prompt": prompt, "settings": json.dumps(settings), "version": str(CACHE_VERSION)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _load_cached(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # a damaged cache file is recomputed, never trusted
        logger.warning("Ignoring unreadable inversion cache `%s` (%s); inverting again.", path, e)
        return None


@dataclass
class _InversionJob:
    """The checked inputs of one :func:`invert` call: images, prompts, names, settings and cache keys."""

    images: torch.Tensor
    prompts: list[str]
    names: list[str]
    settings: dict[str, Any]
    cache: Path | None
    keys: list[str]


def invert(
    pipe: Any,
    images: torch.Tensor,
    prompts: str | Sequence[str],
    *,
    names: Sequence[str] | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    timestep_spacing: str = "trailing",
    inner_steps: int = 10,
    fixed_point_steps: int = 0,
    method: str = DEFAULT_INVERSION,
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Inversion:
    """Invert ``images`` with their source ``prompts``: DDIM inversion, then null-text (or negative-prompt, or
    direct) inversion.

    Args:
        pipe: a diffusers Stable Diffusion pipeline (epsilon, v or sample prediction) or the bundled world.
        images: float ``[N, 3, H, W]`` in [0, 1] at the pipeline's resolution (see
            :func:`~disco_inspect.editing.images.load_images`).
        prompts: the source prompt of each image (a single string is used for all), e.g. ``"a photo of a lobster"``.
        names: a name per image (default ``image_000``, ...).
        num_inference_steps: DDIM steps (Mokady et al.: 50; the world: 20). Edits must use the same number.
        guidance_scale: the classifier-free guidance the null embeddings are tuned for (SD: 7.5; the world: 4).
            ``<= 1`` needs no null-text step: the plain DDIM inversion is returned.
        timestep_spacing: DDIM timestep spacing (``trailing``, ``leading``, ``linspace``).
        inner_steps: Adam updates per step for the null embedding (10 as Mokady et al.; 0 = plain DDIM inversion).
        fixed_point_steps: extra noise predictions per inversion step at the latent the step lands on (fixed-point
            DDIM inversion); 0 is the classic approximation ``eps(x_{t_prev}, t)``. A small, rough UNet (the
            world's) inverts much more exactly with a few (see docs/editing.md).
        method: ``direct`` (default; Ju et al.: recorded per-step offsets), ``null-text`` (Mokady et al.) or
            ``negative-prompt`` (Miyake et al.: no optimisation); see the module docs and docs/editing.md.
        batch_size: images inverted together (each image's embedding is optimised independently).
        cache_dir: a folder for per-image results (safetensors); an image inverted before with the same
            pipeline, prompt and settings is read back instead of inverted again.
        progress: show a progress bar.

    Returns:
        An :class:`Inversion` (``cached[i]`` says whether image ``i`` came from the cache).
    """
    # 1. check the inputs, fix the settings and the cache keys
    prompts = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
    _check_inputs(pipe, images, prompts, num_inference_steps, guidance_scale, inner_steps)
    check_inversion_method(method)
    settings = {
        "method": method,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": float(guidance_scale),
        "timestep_spacing": timestep_spacing,
        "inner_steps": inner_steps,
        "fixed_point_steps": fixed_point_steps,
    }
    job = _inversion_job(pipe, images, prompts, names, settings, cache_dir)
    # 2. read back the images inverted before
    found = _read_cache(job)
    # 3. invert the others, batch by batch
    todo = [i for i in range(len(job.images)) if i not in found]
    computed = _invert_missing(pipe, job, todo, batch_size, progress) if todo else {}
    # 4. one Inversion of every image, in order
    inv = _assemble(job, {**found, **computed}, set(found))
    if job.cache is not None:
        logger.info("Inversion cache `%s`: %d read, %d written.", job.cache, len(found), len(todo))
    return inv


def _inversion_job(
    pipe: Any,
    images: torch.Tensor,
    prompts: list[str],
    names: Sequence[str] | None,
    settings: dict[str, Any],
    cache_dir: str | Path | None,
) -> _InversionJob:
    """Check the ``names`` of checked images; return the inputs normalised, with one cache key per image."""
    names = list(names) if names is not None else [f"image_{i:03d}" for i in range(len(images))]
    if len(names) != len(images):
        raise DiscoInspectError(
            f"`names` has {len(names)} entries for {len(images)} images; pass one per image."
        )
    images = images.float().cpu().clamp(0, 1)
    cache = Path(cache_dir) if cache_dir is not None else None
    fp = pipeline_fingerprint(pipe) if cache is not None else ""
    keys = [_cache_key(fp, images[i], prompts[i], settings) for i in range(len(images))] if cache else []
    return _InversionJob(images, prompts, names, settings, cache, keys)


def _read_cache(job: _InversionJob) -> dict[int, dict[str, torch.Tensor]]:
    """The cached parts (``latents``, ``null_embeddings``, ``null_loss``) of the images inverted before, by index."""
    found: dict[int, dict[str, torch.Tensor]] = {}
    if job.cache is not None:
        for i, key in enumerate(job.keys):
            hit = _load_cached(job.cache / f"{key}.safetensors", key)
            if hit is not None:
                found[i] = hit
    return found


def _invert_missing(
    pipe: Any, job: _InversionJob, todo: list[int], batch_size: int, progress: bool
) -> dict[int, dict[str, torch.Tensor]]:
    """Invert the images ``todo`` in batches; each batch is saved to the cache as it finishes."""
    from tqdm.auto import tqdm

    parts: dict[int, dict[str, torch.Tensor]] = {}
    bar = tqdm(
        total=len(todo) * job.settings["num_inference_steps"] * 2,
        desc=f"{job.settings['method']} inversion",
        disable=not progress,
        leave=False,
    )
    for s in range(0, len(todo), batch_size):
        idx = todo[s : s + batch_size]
        batch = _invert_batch(
            pipe,
            job.images[idx],
            [job.prompts[i] for i in idx],
            job.settings,
            on_step=functools.partial(bar.update, len(idx)),
        )
        for j, i in enumerate(idx):
            parts[i] = {k: v[:, j] for k, v in batch.items()}
            if job.cache is not None:  # saved per batch: an interrupted run keeps what it finished
                key = job.keys[i]
                _save_cached(job.cache / f"{key}.safetensors", parts[i], job.prompts[i], job.settings, key)
    bar.close()
    return parts


def _assemble(job: _InversionJob, parts: dict[int, dict[str, torch.Tensor]], cached: set[int]) -> Inversion:
    """The :class:`Inversion` of every image of ``job`` from its per-image ``parts``."""
    n = len(job.images)
    direct = "offsets" in parts[0]
    return Inversion(
        images=job.images,
        prompts=job.prompts,
        names=job.names,
        latents=torch.stack([parts[i]["latents"] for i in range(n)], 1),
        null_embeddings=torch.stack([parts[i]["null_embeddings"] for i in range(n)], 1),
        null_loss=torch.stack([parts[i]["null_loss"] for i in range(n)], 1),
        num_inference_steps=job.settings["num_inference_steps"],
        guidance_scale=job.settings["guidance_scale"],
        timestep_spacing=job.settings["timestep_spacing"],
        cached=[i in cached for i in range(n)],
        keys=list(job.keys),
        method=job.settings["method"],
        offsets=torch.stack([parts[i]["offsets"] for i in range(n)], 1) if direct else None,
    )


def _invert_batch(
    pipe: Any, images: torch.Tensor, prompts: list[str], settings: dict[str, Any], on_step: Callable[[], None]
) -> dict[str, torch.Tensor]:
    """One batch on the CPU: ``latents`` (the pivot ``[n+1, B, ...]``), ``null_embeddings`` ``[n, B, L, D]``,
    ``null_loss`` ``[n, B]`` and, for ``direct``, ``offsets`` ``[n, B, C, h, w]``."""
    from ..engine.sampling import encode

    sched = ddim_scheduler(pipe, settings["num_inference_steps"], settings["timestep_spacing"])
    with torch.no_grad():
        cond = encode(pipe, prompts)
        pivot = _ddim_pivot(
            pipe, sched, encode_images(pipe, images), cond, settings["fixed_point_steps"], on_step
        )
    fit = {"negative-prompt": _negative_prompt, "direct": _direct_offsets}.get(settings["method"], _null_text)
    return {"latents": pivot.float().cpu(), **fit(pipe, sched, pivot, cond, settings, on_step)}


@torch.no_grad()
def _ddim_pivot(
    pipe: Any,
    sched: Any,
    x: torch.Tensor,
    cond: torch.Tensor,
    fixed_point_steps: int,
    on_step: Callable[[], None],
) -> torch.Tensor:
    """The DDIM-inversion pivot ``[n+1, B, C, h, w]`` from the encoded images ``x`` (x_0 -> x_T, the noise predicted
    with the source prompt and no guidance; ``fixed_point_steps`` re-predictions at the latent each step lands on)."""
    pivot = [x]
    for t in reversed(sched.timesteps):
        x_prev = x
        x = ddim_inverse_step(sched, guided_eps(pipe, x_prev, t, cond, None, 1.0), t, x_prev)
        for _ in range(fixed_point_steps):
            x = ddim_inverse_step(sched, guided_eps(pipe, x, t, cond, None, 1.0), t, x_prev)
        pivot.append(x)
        on_step()
    return torch.stack(pivot)


def _negative_prompt(
    pipe: Any,
    sched: Any,
    pivot: torch.Tensor,
    cond: torch.Tensor,
    settings: dict[str, Any],
    on_step: Callable[[], None],
) -> dict[str, torch.Tensor]:
    """Negative-prompt inversion: the source prompt's embedding is every step's null embedding (no model call;
    ``null_loss`` is not measured: NaN)."""
    n = len(sched.timesteps)
    for _ in range(n):
        on_step()
    nulls = cond.float().cpu().unsqueeze(0).expand(n, -1, -1, -1).clone()
    return {"null_embeddings": nulls, "null_loss": torch.full((n, len(cond)), float("nan"))}


@torch.no_grad()
def _direct_offsets(
    pipe: Any,
    sched: Any,
    pivot: torch.Tensor,
    cond: torch.Tensor,
    settings: dict[str, Any],
    on_step: Callable[[], None],
) -> dict[str, torch.Tensor]:
    """Direct inversion: the empty prompt as null embedding; per step, the offset from the guided step taken on
    the pivot to the pivot's next latent (one guided UNet call per step)."""
    n, g = len(sched.timesteps), settings["guidance_scale"]
    uncond = empty_embedding(pipe).expand(len(cond), -1, -1)
    offsets, losses = [], []
    for i, t in enumerate(sched.timesteps):
        x = pivot[n - i]
        landed = ddim_step(sched, guided_eps(pipe, x, t, cond, uncond, g), t, x)
        off = (pivot[n - 1 - i].float() - landed.float()).cpu()
        offsets.append(off)
        losses.append(off.pow(2).flatten(1).mean(1))
        on_step()
    nulls = uncond.float().cpu().unsqueeze(0).expand(n, -1, -1, -1).clone()
    return {"null_embeddings": nulls, "null_loss": torch.stack(losses), "offsets": torch.stack(offsets)}


def _null_text(
    pipe: Any,
    sched: Any,
    pivot: torch.Tensor,
    cond: torch.Tensor,
    settings: dict[str, Any],
    on_step: Callable[[], None],
) -> dict[str, torch.Tensor]:
    """Null-text inversion (Mokady et al.): per step, Adam on the null embedding so the guided step lands on the
    pivot; the tuned embedding drives the step and the next starts where it landed."""
    from ..engine.sampling import uses_cfg

    n, g = settings["num_inference_steps"], settings["guidance_scale"]
    uncond = empty_embedding(pipe).expand(len(cond), -1, -1).clone()
    nulls, losses = [], []
    latent = pivot[-1]
    tune = uses_cfg(pipe, g) and settings["inner_steps"] > 0
    for i, t in enumerate(sched.timesteps):
        last = torch.zeros(len(cond))
        if tune:
            uncond, last = _fit_null(
                pipe, sched, (latent, pivot[n - 1 - i]), cond, uncond, (i, t, g), settings
            )
        nulls.append(uncond.float().cpu())
        losses.append(last)
        with torch.no_grad():
            latent = ddim_step(sched, guided_eps(pipe, latent, t, cond, uncond, g), t, latent)
        on_step()
    return {"null_embeddings": torch.stack(nulls), "null_loss": torch.stack(losses)}


def _fit_null(
    pipe: Any,
    sched: Any,
    latents: tuple[torch.Tensor, torch.Tensor],
    cond: torch.Tensor,
    uncond: torch.Tensor,
    step: tuple[int, Any, float],
    settings: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of null-text inversion: (the tuned null embedding, each image's final MSE) for the step from
    ``latents[0]`` that should land on ``latents[1]``."""
    (latent, target), (i, t, g) = latents, step
    with torch.no_grad():
        eps_c = guided_eps(pipe, latent, t, cond, None, 1.0).float()
    u = uncond.clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=NULL_LR * (1.0 - i / 100.0))
    tol = NULL_TOL + i * NULL_TOL_STEP
    last = torch.zeros(len(cond))
    for _ in range(settings["inner_steps"]):
        eps_u = guided_eps(pipe, latent, t, u, None, 1.0).float()
        x_prev = ddim_step(sched, eps_u + g * (eps_c - eps_u), t, latent.float())
        per = F.mse_loss(x_prev, target.float(), reduction="none").flatten(1).mean(1)
        opt.zero_grad(set_to_none=True)
        per.sum().backward()
        opt.step()
        last = per.detach().cpu()
        if float(per.detach().max()) < tol:
            break
    return u.detach(), last


@torch.no_grad()
def reconstruct(
    pipe: Any, inversion: Inversion, *, use_null: bool = True, batch_size: int = 8
) -> torch.Tensor:
    """Sample each inverted image back from ``x_T`` with its source prompt and guidance.

    ``use_null=False`` samples with the plain empty-prompt embedding (and no ``direct`` offsets) instead: plain
    DDIM, the degradation the inversion methods exist to fix (reported beside the method's reconstruction).
    """
    from ..engine.sampling import decode, encode

    sched = ddim_scheduler(pipe, inversion.num_inference_steps, inversion.timestep_spacing)
    plain = empty_embedding(pipe)
    out = []
    for s in range(0, len(inversion), batch_size):
        part = inversion.select(slice(s, s + batch_size))
        cond = encode(pipe, part.prompts)
        x = part.x_T.to(pipe.device, pipe.unet.dtype)
        for i, t in enumerate(sched.timesteps):
            u = part.null_embeddings[i] if use_null else plain.expand(len(part), -1, -1)
            x = ddim_step(sched, guided_eps(pipe, x, t, cond, u.to(pipe.device), part.guidance_scale), t, x)
            x = part.corrected(x, i, range(len(part))) if use_null else x
        out.append(decode(pipe, x).float().cpu())
    return torch.cat(out)
