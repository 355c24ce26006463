"""Edits cached on disk per image, so an interrupted run keeps the edits it finished.

An image's edit is cached only when its inversion was (``Inversion.keys`` is set by
:func:`~disco_inspect.editing.inversion.invert` with a ``cache_dir``). The key joins the inversion's key (pipeline,
image, source prompt, sampler settings) with the edit prompt, the prompt-to-prompt knobs and an ``identity`` of what
else the rows depend on (the token's vector; for stochastic rows the method's noise or VAE and the image's index,
which seeds its generator). Batches are the same whether or not some of their images came from the cache, so a
resumed run gives the same edits. A damaged file is computed again, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write

logger = logging.getLogger(__name__)

#: Bump when what an edit's cache file holds or how it is computed changes.
EDIT_CACHE_VERSION = 1
#: The parts whose image axis is 1 (``edit_latents`` is [steps + 1, B, C, h, w]); the others have it first.
_STEP_MAJOR = ("edit_latents",)


def tensor_identity(*tensors: Any, extra: str = "") -> bytes:
    """A short digest of tensors (and a string) for :class:`EditCache`'s ``identity``."""
    h = hashlib.sha256(extra.encode())
    for t in tensors:
        if isinstance(t, torch.nn.Module):
            for name, p in sorted(t.state_dict().items()):
                h.update(name.encode())
                h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
        elif t is not None:
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.digest()


@dataclass
class EditCache:
    """Where and under which key each image's edit rows are cached (see the module docs)."""

    folder: Path
    keys: list[str]

    @classmethod
    def build(
        cls,
        cache_dir: str | Path | None,
        inversion: Any,
        prompts: tuple[list[str], list[str]],
        knobs: tuple[float, float],
        identity: bytes,
        per_index: bool,
    ) -> EditCache | None:
        """The cache of one pass over ``inversion``; None when there is no folder or the inversion has no keys.

        ``prompts`` are the source and edit prompts per image, ``knobs`` the cross/self-replace fractions;
        ``per_index`` puts the image's index in its key (stochastic rows are seeded by it)."""
        keys = list(getattr(inversion, "keys", []) or [])
        if cache_dir is None or len(keys) != len(inversion):
            return None
        out = []
        for i, key in enumerate(keys):
            h = hashlib.sha256(f"{EDIT_CACHE_VERSION}|{key}|{prompts[0][i]}|{prompts[1][i]}|{knobs}".encode())
            h.update(identity)
            if per_index:
                h.update(str(i).encode())
            out.append(h.hexdigest()[:32])
        return cls(Path(cache_dir), out)

    def _path(self, i: int) -> Path:
        return self.folder / f"edit-{self.keys[i]}.safetensors"

    def load(self, images: list[int]) -> dict[str, torch.Tensor] | None:
        """The parts of a batch (as the sampler returns them) when every image of it is cached, else None."""
        found = [self._read(i) for i in images]
        if any(f is None for f in found):
            return None
        names = found[0].keys()  # type: ignore[union-attr]
        return {k: torch.stack([f[k] for f in found], 1 if k in _STEP_MAJOR else 0) for k in names}  # type: ignore[index]

    def save(self, images: list[int], parts: dict[str, torch.Tensor]) -> None:
        """Write each image's slice of a batch's ``parts`` (atomically: a crash leaves no half-written file)."""
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(images):
            tensors = {
                k: (v[:, j] if k in _STEP_MAJOR else v[j]).float().cpu().contiguous()
                for k, v in parts.items()
            }
            meta = {"key": self.keys[i], "version": str(EDIT_CACHE_VERSION)}
            atomic_write(self._path(i), lambda tmp, t=tensors, m=meta: save_file(t, tmp, metadata=m))

    def _read(self, i: int) -> dict[str, torch.Tensor] | None:
        from safetensors import safe_open

        path = self._path(i)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != self.keys[i]:
                    return None
                return {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # a damaged cache file is recomputed, never trusted
            logger.warning("Ignoring unreadable edit cache `%s` (%s); editing again.", path, e)
            return None
