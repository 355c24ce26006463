"""The new class token: added to the tokenizer, one trainable embedding row, saved in TI format."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import DiscoInspectError
from ..io import atomic_write

logger = logging.getLogger(__name__)


class ClassToken:
    """Adds ``token`` to a pipeline's tokenizer and makes its embedding row trainable.

    The row lives in a separate float32 :class:`torch.nn.Parameter` (``vector``); a forward hook on the
    text encoder's input embedding substitutes it wherever the token id appears, so gradients reach it
    and nothing else. The embedding table itself is never optimised: every other row stays
    bit-identical (AdamW's weight decay cannot touch them). :meth:`sync` writes the vector into the
    table so the pipeline works without the hook (e.g. ``pipe("a photo of a <S> lobster")``).
    """

    def __init__(self, pipe: Any, token: str = "<S>", initializer: str = "a") -> None:
        tok, te = pipe.tokenizer, pipe.text_encoder
        ours = pipe.__dict__.setdefault("_disco_tokens", set())
        if token in tok.get_vocab() and token not in ours:
            raise DiscoInspectError(
                f"`token` = {token!r} is already in the tokenizer's vocabulary; choose another token string "
                "(`--token`) or load a fresh pipeline."
            )
        init_ids = tok.encode(initializer, add_special_tokens=False)
        if not init_ids:
            raise DiscoInspectError(
                f"`initializer` = {initializer!r} encodes to no tokens; use a word such as 'a'."
            )
        if len(init_ids) > 1:
            logger.info(
                "Initializer %r splits into %d tokens; using the mean of their embeddings.",
                initializer,
                len(init_ids),
            )
        if token not in ours:  # a token this package added earlier (e.g. a notebook re-run) is reused
            tok.add_tokens(token)
            ours.add(token)
        self.token_id = tok.convert_tokens_to_ids(token)
        try:  # mean_resizing would fit a Gaussian to the whole table; the row is overwritten anyway
            te.resize_token_embeddings(len(tok), mean_resizing=False)
        except TypeError:  # transformers < 4.46
            te.resize_token_embeddings(len(tok))
        self.embedding = te.get_input_embeddings()
        self.embedding.weight.requires_grad_(False)
        self.token = token
        with torch.no_grad():
            init = self.embedding.weight[init_ids].float().mean(0)
        self.initial = init.clone()
        self.vector = torch.nn.Parameter(init.clone())
        self._hook = self.embedding.register_forward_hook(self._inject)
        self.sync()

    def _inject(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        ids = inputs[0]
        mask = (ids == self.token_id).unsqueeze(-1)
        return torch.where(mask, self.vector.to(output.dtype), output)

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the trainable vector into the embedding table's row."""
        self.embedding.weight[self.token_id] = self.vector.to(self.embedding.weight.dtype)

    @torch.no_grad()
    def set(self, vector: torch.Tensor) -> None:
        """Set the token's embedding (e.g. a checkpoint) and sync it into the table."""
        self.vector.copy_(vector.to(self.vector))
        self.sync()

    def detach(self) -> None:
        """Remove the hook; the table row keeps the current vector."""
        self.sync()
        self._hook.remove()

    def save(self, path: str | Path, vector: torch.Tensor | None = None) -> Path:
        """Save ``vector`` (default: the current one) in diffusers' textual-inversion format."""
        return save_token(path, self.token, self.vector if vector is None else vector)


def save_token(path: str | Path, token: str, vector: torch.Tensor) -> Path:
    """Write ``{token: vector}`` as safetensors, atomically; loadable by ``pipe.load_textual_inversion``."""
    from safetensors.torch import save_file

    tensor = vector.detach().float().cpu().contiguous().clone()
    return atomic_write(path, lambda tmp: save_file({token: tensor}, tmp))


def load_token(path: str | Path) -> tuple[str, torch.Tensor]:
    """Read a textual-inversion file (diffusers safetensors/bin or A1111 format) → (token, vector)."""
    path = Path(path)
    if not path.is_file():
        raise DiscoInspectError(
            f"Token file `{path}` does not exist; pass the .safetensors written by `disco-inspect train`."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DiscoInspectError(
            f"Token file `{path}` is unreadable ({type(e).__name__}: {e}); re-save it."
        ) from e
    if "string_to_param" in sd:
        token, vec = sd.get("name", "<S>"), sd["string_to_param"]["*"]
    elif len(sd) == 1:
        token, vec = next(iter(sd.items()))
    else:
        raise DiscoInspectError(
            f"Token file `{path}` holds {len(sd)} tensors; expected one {{token: embedding}} entry."
        )
    return token, vec.reshape(-1).float()


def install_token(pipe: Any, path: str | Path) -> str:
    """Load a saved token file into ``pipe`` (see :func:`put_token`); returns the token string."""
    token, vector = load_token(path)
    return put_token(pipe, token, vector, source=f"Token file `{path}`")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' warnings (it resets its logger's level when first imported, after the CLI set it)."""
    root = logging.getLogger("transformers")
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@torch.no_grad()
def put_token(pipe: Any, token: str, vector: torch.Tensor, source: str = "The token") -> str:
    """Give ``token`` the embedding ``vector`` in ``pipe``; returns the token string.

    A new token is added with diffusers' ``load_textual_inversion``. A token added earlier (by this
    package or a textual-inversion load, e.g. another run's file in the same process) has its row
    overwritten, so the pipeline always holds the latest ``vector``. ``source`` names the vector in errors.
    """
    emb = pipe.text_encoder.get_input_embeddings()
    width = emb.weight.shape[-1]
    vector = vector.detach().reshape(-1)
    if vector.numel() != width:
        raise DiscoInspectError(
            f"{source} holds a {vector.numel()}-dimensional embedding for {token!r}, but this pipeline's text encoder "
            f"embeds tokens in {width} dimensions: the token was learned on another pipeline. Load that pipeline "
            "(`--pipeline`) or train the token on this one."
        )
    tok = pipe.tokenizer
    if token not in tok.get_vocab():
        with (
            _quiet_transformers()
        ):  # its "mean_resizing" advice: the new row is set to ``vector`` right after
            pipe.load_textual_inversion({token: vector.clone()})
        pipe.__dict__.setdefault("_disco_tokens", set()).add(
            token
        )  # ours: a later ClassToken may reuse its row
        return token
    if token not in tok.get_added_vocab():
        raise DiscoInspectError(
            f"{source} names the token {token!r}, a word of the tokenizer's own vocabulary; installing it would "
            "overwrite that word. Re-save the embedding under a new token string such as '<S>'."
        )
    emb.weight[tok.convert_tokens_to_ids(token)] = vector.to(emb.weight)
    logger.debug("Token %r was already in the pipeline; its embedding now comes from %s.", token, source)
    return token
