"""Providers that lower layers look up by name instead of importing upward (base layer: no project imports).

The bundled world is a *user* of ``models``/``engine``, so those layers may not import it; where they need a world
part (the ``world:NAME`` model source, the world's packaged text encoder, presets for the world pipeline, its
concept scorer) they ask this registry. The face (``disco_inspect/__init__.py``) fills it with ``"module:attribute"``
strings, resolved on first use, so registering imports nothing. Contributors: add a provider with
:func:`register` in the face, look it up with :func:`resolve`.

Kinds in use: ``model_source`` (``"world"`` -> ``resolve_model(source)``), ``text_encoder`` (``"minilm"`` ->
``load_text_encoder()``), ``disco_config`` / ``edit_defaults`` / ``scorer`` (pipeline source ``"world"`` -> a
factory of the preset or scorer).
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import DiscoInspectError

_PROVIDERS: dict[tuple[str, str], Any] = {}


def register(kind: str, name: str, provider: Any) -> None:
    """Register ``provider`` (an object, or a ``"module:attribute"`` string resolved on first use)."""
    _PROVIDERS[(kind, name)] = provider


def has(kind: str, name: str) -> bool:
    """Whether a provider of ``kind`` is registered under ``name``."""
    return (kind, name) in _PROVIDERS


def resolve(kind: str, name: str) -> Any:
    """The provider of ``kind`` registered under ``name`` (a string reference is imported once and cached)."""
    try:
        provider = _PROVIDERS[(kind, name)]
    except KeyError:
        known = sorted(n for k, n in _PROVIDERS if k == kind)
        raise DiscoInspectError(
            f"No {kind} named {name!r} is registered; known: {known or 'none'}."
        ) from None
    if isinstance(provider, str):
        module, _, attr = provider.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        _PROVIDERS[(kind, name)] = provider = obj
    return provider
