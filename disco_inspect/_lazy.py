"""Lazy attribute tables for packages (base layer, no project imports).

A package lists its public names as data, ``{name: "submodule"}``; importing the package imports none of them (so
``import disco_inspect`` stays light: diffusers, timm and captum load on first use).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def attach(
    package: str,
    table: Mapping[str, str],
    eager: Mapping[str, Any] | None = None,
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``.

    Args:
        table: public name -> module that defines it (relative to ``package`` when it starts with ``.``).
        eager: names the package defines itself (listed in ``__all__``).
    """
    public = [*(eager or {}), *table]

    def _module(ref: str) -> Any:
        return importlib.import_module(f"{package}{ref}" if ref.startswith(".") else ref)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module protocol's name
        if name in table:
            return getattr(_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(public)

    return public, __getattr__, __dir__
