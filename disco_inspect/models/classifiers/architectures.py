"""Architectures a TorchScript file may be rebuilt as: a table of registered factories, never a name from a file.

A TorchScript file's ``eager`` metadata names a key of :data:`_ARCHITECTURES`; :func:`_check_eager_spec`
validates that spec as data and :func:`_eager_module` rebuilds the eager module (hookable, e.g. for GradCAM)
and loads the scripted weights into it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ...errors import DiscoInspectError
from ._common import METADATA_NAME, _first_line

__all__ = ["register_architecture"]

#: Architecture key -> factory returning an ``nn.Module``. A TorchScript file's ``eager`` metadata names a key of
#: this table; the loader never imports or calls a name taken from a file. A string value is a lazy
#: ``"module:attribute"`` reference written here in the source (``models`` must not import ``world`` at import
#: time); it is resolved on first use. Contributor note: add built-ins here, users call :func:`register_architecture`.
_ARCHITECTURES: dict[str, Callable[..., nn.Module] | str] = {
    "disco_inspect.world.scene_classifiers:SceneCNN": "disco_inspect.world.scene_classifiers:SceneCNN",
    # the name world classifiers were saved under before the module was renamed (0.1): files keep loading
    "disco_inspect.world.classifiers:SceneCNN": "disco_inspect.world.scene_classifiers:SceneCNN",
}

_EAGER_KEYS = ("factory", "kwargs")


def register_architecture(key: str, factory: Callable[..., nn.Module]) -> None:
    """Let TorchScript files whose ``eager`` metadata names ``key`` be rebuilt as ``factory(**kwargs)``.

    ``factory`` (a module class or a function) must return an ``nn.Module`` whose state dict matches the scripted
    weights; ``kwargs`` come from the file and are plain JSON scalars (or lists of them). Registering is the
    consent: a file can only pick among registered architectures.
    """
    if not isinstance(key, str) or not key.strip():
        raise DiscoInspectError(f"`key` must be a non-empty string naming the architecture, got {key!r}.")
    if not callable(factory):
        raise DiscoInspectError(
            f"`factory` for architecture {key!r} must be callable (an nn.Module class or a function returning one), "
            f"got {factory!r}."
        )
    _ARCHITECTURES[key] = factory


def _architecture(key: str, path: Path) -> Callable[..., nn.Module]:
    """The factory registered as ``key`` (a lazy built-in reference is imported here, from this file's table)."""
    factory = _ARCHITECTURES[key]
    if isinstance(factory, str):
        mod_name, _, attr = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:  # pragma: no cover - a broken built-in entry
            raise DiscoInspectError(
                f"The built-in architecture {key!r} needed by `{path}` cannot be imported ({_first_line(e)}); "
                "reinstall disco-inspect."
            ) from e
        _ARCHITECTURES[key] = factory
    return factory


def _check_eager_spec(spec: Any, where: str) -> dict[str, Any]:
    """Validate an ``eager`` spec as data: a registered key plus JSON-scalar kwargs. Nothing is imported or called."""
    fix = "re-save the model with save_torchscript_classifier, or drop the `eager` entry to use the TorchScript module"
    if not isinstance(spec, Mapping):
        raise DiscoInspectError(
            f'`eager` in {where} must be an object {{"factory": key, "kwargs": {{...}}}}, got {spec!r}; {fix}.'
        )
    unknown = sorted(str(k) for k in spec if k not in _EAGER_KEYS)
    if unknown:
        raise DiscoInspectError(
            f"Unknown `eager` key(s) {', '.join(map(repr, unknown))} in {where}; valid keys are "
            f"{', '.join(_EAGER_KEYS)}; {fix}."
        )
    key = spec.get("factory")
    if not isinstance(key, str) or key not in _ARCHITECTURES:
        known = ", ".join(map(repr, sorted(_ARCHITECTURES)))
        raise DiscoInspectError(
            f"`eager.factory` {key!r} in {where} is not a registered architecture (registered: {known}). Model "
            "metadata is data, never a function to call: if you trust this architecture, register it first with "
            f"`disco_inspect.models.classifiers.register_architecture({key!r}, YourModuleClass)`; otherwise {fix}."
        )
    kwargs = spec.get("kwargs")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise DiscoInspectError(
            f"`eager.kwargs` in {where} must be an object of keyword arguments, got {kwargs!r}; {fix}."
        )
    scalars = (str, int, float, bool, type(None))
    for name, value in kwargs.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise DiscoInspectError(
                f"`eager.kwargs` key {name!r} in {where} is not a Python identifier; {fix}."
            )
        if not (
            isinstance(value, scalars)
            or (isinstance(value, list) and all(isinstance(v, scalars) for v in value))
        ):
            raise DiscoInspectError(
                f"`eager.kwargs.{name}` = {value!r} in {where} is not allowed: kwargs values must be JSON strings, "
                f"numbers, booleans, null or lists of those; {fix}."
            )
    return {"factory": key, "kwargs": dict(kwargs)}


def _eager_module(spec: Mapping[str, Any], scripted: nn.Module, path: Path) -> nn.Module:
    """Rebuild the registered architecture a (checked) ``eager`` spec names and load the scripted weights into it.

    ``spec`` comes from :func:`_check_eager_spec`: its key is in the architecture table and its kwargs are plain
    JSON scalars, so nothing named by the file is imported or called.
    """
    key, kwargs = spec["factory"], spec["kwargs"]
    factory = _architecture(key, path)
    try:
        eager = factory(**kwargs)
    except Exception as e:
        raise DiscoInspectError(
            f"The `eager` architecture {key!r} in the `{METADATA_NAME}` metadata of `{path}` could not be built with "
            f"kwargs {kwargs} ({type(e).__name__}: {_first_line(e)}); fix the kwargs or re-save the model with "
            "save_torchscript_classifier."
        ) from e
    if not isinstance(eager, nn.Module):
        raise DiscoInspectError(
            f"The `eager` architecture {key!r} in the `{METADATA_NAME}` metadata of `{path}` returned a "
            f"`{type(eager).__name__}` instead of an nn.Module; register a factory that returns an nn.Module with "
            "register_architecture."
        )
    try:
        eager.load_state_dict(scripted.state_dict())
    except Exception as e:
        raise DiscoInspectError(
            f"The weights in `{path}` do not fit the `eager` architecture {key!r} with kwargs {kwargs} "
            f"({_first_line(e)}); fix the kwargs in its `{METADATA_NAME}` metadata or re-save the model with "
            "save_torchscript_classifier."
        ) from e
    return eager.eval()
