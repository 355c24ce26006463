"""Object masks from the UNet's cross-attention to the class-name token, captured during generation.

:class:`CrossAttentionRecorder` wraps every cross-attention processor of a diffusers UNet (``attn2``):
it recomputes the attention probabilities from the layer's own ``to_q``/``to_k`` and
``get_attention_scores``, stores the mass on the class-name token positions, and then calls the
original processor unchanged, so the generated images are bit-identical to an unrecorded run. The wrappers are
installed (and a UNet without cross-attention refused) by
:class:`~disco_inspect.editing.controller.AttentionProcessorSwap`, shared with prompt-to-prompt injection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..editing.controller import AttentionProcessorSwap, attention_context, attention_probs
from ..errors import DiscoInspectError


def token_positions(tokenizer: Any, prompt: str, phrase: str) -> list[int]:
    """Positions of ``phrase``'s tokens inside the tokenised ``prompt`` (the last occurrence)."""
    ids = tokenizer(
        prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True
    ).input_ids
    sub = tokenizer(phrase, add_special_tokens=False).input_ids
    if not sub:
        raise DiscoInspectError(
            f"The phrase {phrase!r} tokenises to nothing; pass a class name with letters."
        )
    for start in range(len(ids) - len(sub), -1, -1):
        if ids[start : start + len(sub)] == sub:
            return list(range(start, start + len(sub)))
    raise DiscoInspectError(
        f"The class name {phrase!r} does not occur in the prompt {prompt!r}; "
        "object masks need prompts that name the class."
    )


class _Recording:
    """Wraps one attention processor; adds its cross-attention maps to the recorder."""

    def __init__(self, inner: Any, recorder: CrossAttentionRecorder) -> None:
        self.inner, self.recorder = inner, recorder

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if (
            encoder_hidden_states is not None
            and hidden_states.ndim == 3
            and attn.group_norm is None
            and attn.spatial_norm is None
        ):
            with torch.no_grad():
                enc = attention_context(attn, hidden_states, encoder_hidden_states)
                probs = attention_probs(attn, hidden_states, enc)  # [B*heads, Q, L]
                self.recorder.add(probs.view(hidden_states.shape[0], attn.heads, *probs.shape[1:]))
        if temb is not None:  # passed on only when given: SlicedAttnProcessor (attention slicing) takes none
            kwargs["temb"] = temb
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)


class CrossAttentionRecorder(AttentionProcessorSwap):
    """Context manager: accumulate cross-attention to given token positions over layers and steps.

    Args:
        unet: a diffusers ``UNet2DConditionModel``.
        positions: for each conditional prompt of the batch, the token positions to record.
        latent_hw: latent height and width (to fold attention rows back into maps).

    With classifier-free guidance the UNet sees ``[uncond, cond]``; only the conditional half is kept.
    """

    purpose = "object masks"

    def __init__(self, unet: Any, positions: Sequence[Sequence[int]], latent_hw: tuple[int, int]) -> None:
        super().__init__(unet)
        self.positions, self.latent_hw = [list(p) for p in positions], latent_hw
        self.sum: torch.Tensor | None = None
        self.count = 0

    def processor(self, name: str, proc: Any) -> Any:
        """Every cross-attention processor (``attn2``) wrapped in a recording one; the others unchanged."""
        return _Recording(proc, self) if name.endswith("attn2.processor") else proc

    def __enter__(self) -> CrossAttentionRecorder:
        """Install the recording processors; the recorder itself is the context's value."""
        return super().__enter__()

    def add(self, probs: torch.Tensor) -> None:
        """Add one layer call's probabilities [B, heads, Q, L]."""
        n = len(self.positions)
        probs = probs[-n:].float().mean(1)  # conditional half, mean over heads -> [n, Q, L]
        mass = torch.stack([probs[i, :, self.positions[i]].sum(-1) for i in range(n)])  # [n, Q]
        h, w = self.latent_hw
        scale = math.sqrt(h * w / mass.shape[1])
        lh, lw = max(1, round(h / scale)), max(1, round(w / scale))
        if lh * lw != mass.shape[1]:
            return  # a layer whose spatial size cannot be folded (non-standard UNet): ignore it
        maps = F.interpolate(mass.view(n, 1, lh, lw), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        self.sum = maps if self.sum is None else self.sum + maps
        self.count += 1

    def maps(self) -> torch.Tensor:
        """Mean attention maps [B, h, w] over all recorded layers and steps."""
        if self.sum is None:
            raise DiscoInspectError("No cross-attention was recorded; run the UNet inside the recorder.")
        return self.sum / self.count


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map [N, h, w] to [0, 1]."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp(min=1e-12)).view_as(maps)


def object_masks(
    pipe: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    class_name: str,
    *,
    num_inference_steps: int = 30,
    guidance_scale: float = 7.0,
    height: int | None = None,
    width: int | None = None,
    threshold: float = 0.5,
    batch_size: int = 8,
    progress: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Generate images (exactly as :func:`~disco_inspect.engine.sampling.generate` does, same batches) and, from the
    cross-attention to ``class_name``, their object masks.

    Returns:
        images [N, 3, H, W] in [0, 1], soft attention maps [N, H, W] in [0, 1] and binary masks
        [N, H, W] (map >= ``threshold``).

    ``progress``: the description of a progress bar over the images (``None``: no bar).
    """
    from tqdm.auto import tqdm

    from ..engine.sampling import generate, image_size

    h, w = image_size(pipe, height, width)
    positions = [token_positions(pipe.tokenizer, p, class_name) for p in prompts]
    latent_hw = (h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    images, maps = [], []
    bar = tqdm(total=len(prompts), desc=progress, unit="image", disable=progress is None)
    for s in range(0, len(prompts), batch_size):
        with CrossAttentionRecorder(pipe.unet, positions[s : s + batch_size], latent_hw) as rec:
            images.append(
                generate(
                    pipe,
                    prompts[s : s + batch_size],
                    seeds[s : s + batch_size],
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    height=h,
                    width=w,
                    batch_size=batch_size,
                )
            )
        maps.append(rec.maps())
        bar.update(len(images[-1]))
    bar.close()
    soft = normalise_maps(torch.cat(maps))
    soft = F.interpolate(soft[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
    return torch.cat(images), soft, (soft >= threshold).float()
