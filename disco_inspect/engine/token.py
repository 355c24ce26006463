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


#: diffusers' SDXL textual-inversion layout: one row per text encoder, under these keys (``load_textual_inversion(
#: state_dict["clip_g"], token=..., text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2)``).
XL_KEYS = ("clip_l", "clip_g")


def text_encoders(pipe: Any) -> list[tuple[Any, Any]]:
    """The pipeline's (tokenizer, text encoder) pairs: one for SD 1.x/2.x, two for SDXL."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def token_widths(pipe: Any) -> list[int]:
    """Embedding width of each text encoder; a token's vector is their rows side by side (768 + 1280 on SDXL)."""
    return [te.get_input_embeddings().weight.shape[-1] for _, te in text_encoders(pipe)]


def _split(pipe: Any, vector: torch.Tensor) -> list[torch.Tensor]:
    return list(vector.reshape(-1).split(token_widths(pipe)))


class ClassToken:
    """Adds ``token`` to a pipeline's tokenizer(s) and makes its embedding row(s) trainable.

    The row lives in a separate float32 :class:`torch.nn.Parameter` (``vector``; on SDXL one row per text encoder,
    side by side); a forward hook on each text encoder's input embedding substitutes its part wherever the token
    id appears, so gradients reach it and nothing else. The embedding tables are never optimised: every other row
    stays bit-identical (AdamW's weight decay cannot touch them). :meth:`sync` writes the vector into the tables so
    the pipeline works without the hooks (e.g. ``pipe("a photo of a <S> lobster")``).
    """

    def __init__(self, pipe: Any, token: str = "<S>", initializer: str = "a") -> None:
        self.pipe, self.token = pipe, token
        ours = pipe.__dict__.setdefault("_disco_tokens", set())
        inits = [self._add(tok, te, ours, initializer) for tok, te in text_encoders(pipe)]
        ours.add(token)
        self.token_ids = [tok.convert_tokens_to_ids(token) for tok, _ in text_encoders(pipe)]
        self.token_id = self.token_ids[0]
        self.embeddings = [te.get_input_embeddings() for _, te in text_encoders(pipe)]
        self.embedding = self.embeddings[0]
        self.initial = torch.cat(inits)
        self.vector = torch.nn.Parameter(self.initial.clone())
        self._hooks = [emb.register_forward_hook(self._injector(i)) for i, emb in enumerate(self.embeddings)]
        self.sync()

    def _add(self, tok: Any, te: Any, ours: set[str], initializer: str) -> torch.Tensor:
        """Add the token to one tokenizer/encoder pair (reusing a row this package added); its initial row."""
        if self.token in tok.get_vocab() and self.token not in ours:
            raise DiscoInspectError(
                f"`token` = {self.token!r} is already in the tokenizer's vocabulary; choose another token string "
                "(`--token`) or load a fresh pipeline."
            )
        init_ids = tok.encode(initializer, add_special_tokens=False)
        if not init_ids:
            raise DiscoInspectError(
                f"`initializer` = {initializer!r} encodes to no tokens; use a word such as 'a'."
            )
        if len(init_ids) > 1:
            logger.info("Initializer %r splits into %d tokens; using their mean.", initializer, len(init_ids))
        if self.token not in ours:  # a token this package added earlier (e.g. a notebook re-run) is reused
            tok.add_tokens(self.token)
        try:  # mean_resizing would fit a Gaussian to the whole table; the row is overwritten anyway
            te.resize_token_embeddings(len(tok), mean_resizing=False)
        except TypeError:  # transformers < 4.46
            te.resize_token_embeddings(len(tok))
        emb = te.get_input_embeddings()
        emb.weight.requires_grad_(False)
        with torch.no_grad():
            return emb.weight[init_ids].float().mean(0)

    def _injector(self, index: int) -> Any:
        def inject(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            mask = (inputs[0] == self.token_ids[index]).unsqueeze(-1)
            part = _split(self.pipe, self.vector)[index]
            return torch.where(mask, part.to(output.dtype), output)

        return inject

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the trainable vector into the embedding tables' rows."""
        for emb, tid, part in zip(
            self.embeddings, self.token_ids, _split(self.pipe, self.vector), strict=True
        ):
            emb.weight[tid] = part.to(emb.weight.dtype)

    @torch.no_grad()
    def set(self, vector: torch.Tensor) -> None:
        """Set the token's embedding (e.g. a checkpoint) and sync it into the table."""
        self.vector.copy_(vector.to(self.vector))
        self.sync()

    def detach(self) -> None:
        """Remove the hooks; the table rows keep the current vector."""
        self.sync()
        for hook in self._hooks:
            hook.remove()

    def save(self, path: str | Path, vector: torch.Tensor | None = None) -> Path:
        """Save ``vector`` (default: the current one) in diffusers' textual-inversion format (SDXL: its layout)."""
        vector = self.vector if vector is None else vector
        widths = token_widths(self.pipe)
        return save_token(path, self.token, vector, widths if len(widths) > 1 else None)


def save_token(path: str | Path, token: str, vector: torch.Tensor, widths: list[int] | None = None) -> Path:
    """Write ``{token: vector}`` as safetensors, atomically; loadable by ``pipe.load_textual_inversion``.

    ``widths`` (SDXL's two encoders) writes diffusers' SDXL layout instead: ``clip_l`` and ``clip_g`` rows, with
    the token string in the file's metadata.
    """
    from safetensors.torch import save_file

    tensor = vector.detach().float().cpu().reshape(-1).contiguous().clone()
    if widths is None:
        return atomic_write(path, lambda tmp: save_file({token: tensor}, tmp))
    rows = {key: part.contiguous().clone() for key, part in zip(XL_KEYS, tensor.split(widths), strict=True)}
    return atomic_write(path, lambda tmp: save_file(rows, tmp, metadata={"token": token}))


def _read(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A token file's tensors and (safetensors) metadata."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
        return torch.load(path, map_location="cpu", weights_only=True), {}
    except Exception as e:
        raise DiscoInspectError(
            f"Token file `{path}` is unreadable ({type(e).__name__}: {e}); re-save it."
        ) from e


def load_token(path: str | Path) -> tuple[str, torch.Tensor]:
    """Read a textual-inversion file (diffusers safetensors/bin, its SDXL layout, or A1111) → (token, vector).

    An SDXL file's vector is its ``clip_l`` and ``clip_g`` rows side by side.
    """
    path = Path(path)
    if not path.is_file():
        raise DiscoInspectError(
            f"Token file `{path}` does not exist; pass the .safetensors written by `disco-inspect train`."
        )
    sd, meta = _read(path)
    if set(sd) == set(XL_KEYS):
        token, vec = meta.get("token", "<S>"), torch.cat([sd[k].reshape(-1) for k in XL_KEYS])
    elif "string_to_param" in sd:
        token, vec = sd.get("name", "<S>"), sd["string_to_param"]["*"]
    elif len(sd) == 1:
        token, vec = next(iter(sd.items()))
    else:
        raise DiscoInspectError(
            f"Token file `{path}` holds {len(sd)} tensors; expected one {{token: embedding}} entry "
            "(or SDXL's clip_l and clip_g)."
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
    """Give ``token`` the embedding ``vector`` in ``pipe`` (each text encoder its part); returns the token string.

    A new token is added with diffusers' ``load_textual_inversion`` (per encoder on SDXL, as diffusers documents).
    A token added earlier (by this package or a textual-inversion load, e.g. another run's file in the same
    process) has its rows overwritten, so the pipeline always holds the latest ``vector``. ``source`` names the
    vector in errors.
    """
    widths = token_widths(pipe)
    vector = vector.detach().reshape(-1)
    if vector.numel() != sum(widths):
        raise DiscoInspectError(
            f"{source} holds a {vector.numel()}-dimensional embedding for {token!r}, but this pipeline's text "
            f"encoder{'s embed' if len(widths) > 1 else ' embeds'} tokens in {' + '.join(map(str, widths))} "
            "dimensions: the token was learned on another pipeline. Load that pipeline (`--pipeline`) or train the "
            "token on this one."
        )
    if token not in pipe.tokenizer.get_vocab():
        for (tok, te), part in zip(text_encoders(pipe), _split(pipe, vector), strict=True):
            with (
                _quiet_transformers()
            ):  # its "mean_resizing" advice: the new row is set to ``part`` right after
                pipe.load_textual_inversion(part.clone(), token=token, tokenizer=tok, text_encoder=te)
        pipe.__dict__.setdefault("_disco_tokens", set()).add(
            token
        )  # ours: a later ClassToken may reuse its rows
        return token
    if token not in pipe.tokenizer.get_added_vocab():
        raise DiscoInspectError(
            f"{source} names the token {token!r}, a word of the tokenizer's own vocabulary; installing it would "
            "overwrite that word. Re-save the embedding under a new token string such as '<S>'."
        )
    write_token_rows(pipe, token, vector)
    logger.debug("Token %r was already in the pipeline; its embedding now comes from %s.", token, source)
    return token


def read_token_rows(pipe: Any, token: str) -> torch.Tensor:
    """The embedding of a token of ``pipe`` (every text encoder's row, side by side), float32 on the CPU."""
    rows = [
        te.get_input_embeddings().weight[tok.convert_tokens_to_ids(token)].detach().float().cpu()
        for tok, te in text_encoders(pipe)
    ]
    return torch.cat(rows)


@torch.no_grad()
def write_token_rows(pipe: Any, token: str, vector: torch.Tensor) -> None:
    """Set a token's row in every text encoder of ``pipe`` from ``vector`` (its parts side by side)."""
    for (tok, te), part in zip(text_encoders(pipe), _split(pipe, vector), strict=True):
        weight = te.get_input_embeddings().weight
        weight[tok.convert_tokens_to_ids(token)] = part.to(weight)
