"""Prompt-to-prompt attention injection (Hertz et al., 2022) for diffusers UNets.

While the source image and its edits are denoised in one batch, the edit rows take the source row's
cross-attention maps for the words the two prompts share (aligned token by token, so inserting ``<S>`` shifts
nothing), for the first ``cross_replace`` fraction of the steps; new words keep their own maps. Self-attention
maps are copied for the first ``self_replace`` fraction. Only the conditional half of a classifier-free-guided
batch is touched. The processor computes attention explicitly (``get_attention_scores``), as diffusers'
``AttnProcessor`` does, so it works with any ``Attention`` layer of a ``UNet2DConditionModel``.

:class:`AttentionProcessorSwap` (install processors, refuse a UNet without cross-attention, restore on exit) and
:func:`attention_probs` are shared with :mod:`disco_inspect.analysis.attention`'s recorder.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import DiscoInspectError


def token_alignment(tokenizer: Any, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """For each token position of ``target``: the ``source`` position it shares (index) and whether it does (1/0).

    Both prompts are tokenised to the tokenizer's full padded length, as the text encoder sees them.
    """

    def ids(text: str) -> list[int]:
        return tokenizer(
            text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True
        ).input_ids

    src, tgt = ids(source), ids(target)
    index = torch.arange(len(tgt)).clamp_max(len(src) - 1)
    alpha = torch.zeros(len(tgt))
    for block in difflib.SequenceMatcher(a=src, b=tgt, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            index[block.b + k] = block.a + k
            alpha[block.b + k] = 1.0
    return index, alpha


def attention_context(
    attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None
) -> torch.Tensor:
    """What an ``Attention`` layer's keys and values read: the text (normalised if the layer does) or, for
    self-attention, ``hidden_states``."""
    if encoder_hidden_states is None:
        return hidden_states
    return (
        attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
    )


def attention_probs(
    attn: Any, hidden_states: torch.Tensor, context: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The layer's attention probabilities ``[batch * heads, Q, K]``, computed as diffusers' ``AttnProcessor`` does."""
    q = attn.head_to_batch_dim(attn.to_q(hidden_states))
    k = attn.head_to_batch_dim(attn.to_k(context))
    return attn.get_attention_scores(q, k, attention_mask)


class AttentionProcessorSwap:
    """Context manager: give a UNet's attention layers other processors (:meth:`processor`), restore them on exit.

    The guard shared by prompt-to-prompt injection and cross-attention recording: a UNet without cross-attention
    layers (``attn2``) is refused, naming what needed them (``purpose``).
    """

    purpose = "attention processors"

    def __init__(self, unet: Any) -> None:
        self.unet = unet
        self._saved: dict[str, Any] | None = None

    def processor(self, name: str, proc: Any) -> Any:
        """The processor layer ``name`` gets in place of ``proc`` (by default ``proc`` itself)."""
        return proc

    def __enter__(self) -> Any:
        self._saved = dict(self.unet.attn_processors)
        procs = {name: self.processor(name, proc) for name, proc in self._saved.items()}
        if not any(name.endswith("attn2.processor") for name in procs):
            raise DiscoInspectError(
                f"This UNet has no cross-attention layers (attn2); {self.purpose} need a "
                "text-conditioned UNet2DConditionModel."
            )
        self.unet.set_attn_processor(procs)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._saved is not None:
            self.unet.set_attn_processor(self._saved)


class AttentionInjection:
    """Shared state of the injecting processors: the batch layout, the alignments and the current step.

    Args:
        sources: for each row of the conditional batch, the row whose maps it takes (itself for source rows).
        alignments: per row, ``(index, alpha)`` from :func:`token_alignment` (ignored for source rows).
        num_steps: sampling steps; ``cross_replace``/``self_replace`` are fractions of them.
    """

    def __init__(
        self,
        sources: Sequence[int],
        alignments: Sequence[tuple[torch.Tensor, torch.Tensor]],
        num_steps: int,
        cross_replace: float = 0.8,
        self_replace: float = 0.4,
    ) -> None:
        for name, v in (("cross_replace", cross_replace), ("self_replace", self_replace)):
            if not 0.0 <= v <= 1.0:
                raise DiscoInspectError(
                    f"`{name}` = {v!r} is invalid; use a fraction of the steps in [0, 1]."
                )
        self.sources = torch.as_tensor(list(sources))
        self.edited = (self.sources != torch.arange(len(self.sources))).nonzero().flatten()
        self.index = torch.stack([a[0] for a in alignments])
        self.alpha = torch.stack([a[1] for a in alignments]).float()
        self.cross_steps = round(cross_replace * num_steps)
        self.self_steps = round(self_replace * num_steps)
        self.step = 0
        self.enabled = True

    def modify(self, probs: torch.Tensor, batch: int, heads: int, is_cross: bool) -> torch.Tensor:
        """Return attention probabilities [batch*heads, Q, K] with the edit rows' maps injected."""
        limit = self.cross_steps if is_cross else self.self_steps
        rows = len(self.sources)
        if not self.enabled or self.step >= limit or not len(self.edited) or batch not in (rows, 2 * rows):
            return probs
        p = probs.view(batch, heads, *probs.shape[1:])
        cond = p[batch - rows :]  # the conditional half under CFG, the whole batch otherwise
        src = cond[self.sources[self.edited]]  # [E, heads, Q, K]
        if is_cross:
            idx = self.index[self.edited].to(p.device)  # [E, K]
            gathered = torch.gather(src, 3, idx[:, None, None, :].expand(-1, src.shape[1], src.shape[2], -1))
            a = self.alpha[self.edited].to(p)[:, None, None, :]
            new = gathered * a + cond[self.edited] * (1 - a)
        else:
            new = src
        cond = cond.clone()
        cond[self.edited] = new
        p = torch.cat([p[: batch - rows], cond]) if batch != rows else cond
        return p.reshape(probs.shape)


class InjectingProcessor:
    """An attention processor that computes attention explicitly and lets :class:`AttentionInjection` edit it."""

    def __init__(self, state: AttentionInjection, is_cross: bool) -> None:
        self.state, self.is_cross = state, is_cross

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
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, seq, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = attention_context(attn, hidden_states, encoder_hidden_states)
        probs = attention_probs(attn, hidden_states, context, attention_mask)
        v = attn.head_to_batch_dim(attn.to_v(context))
        probs = self.state.modify(probs, hidden_states.shape[0], attn.heads, self.is_cross)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        out = attn.to_out[1](attn.to_out[0](out))
        if ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class inject_attention(AttentionProcessorSwap):  # noqa: N801 - used as a context manager
    """Context manager: install injecting processors on every ``attn1``/``attn2`` of ``unet``, restore on exit."""

    purpose = "prompt-to-prompt edits"

    def __init__(self, unet: Any, state: AttentionInjection) -> None:
        super().__init__(unet)
        self.state = state

    def processor(self, name: str, proc: Any) -> Any:
        """An injecting processor on every self- (``attn1``) and cross-attention (``attn2``) layer."""
        if name.endswith("attn2.processor"):
            return InjectingProcessor(self.state, True)
        if name.endswith("attn1.processor"):
            return InjectingProcessor(self.state, False)
        return proc

    def __enter__(self) -> AttentionInjection:
        super().__enter__()
        return self.state
