"""Lazy attribute tables for packages (base layer, no project imports).

A package lists its public names as data, ``{name: "submodule"}``; importing the package imports none of them (so
``import disco_inspect`` stays light: diffusers, timm and captum load on first use). ``moved`` names still resolve
for one release with a :class:`DeprecationWarning` naming their new home.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def attach(
    package: str,
    table: Mapping[str, str],
    moved: Mapping[str, str] | None = None,
    eager: Mapping[str, Any] | None = None,
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``.

    Args:
        table: public name -> module that defines it (relative to ``package`` when it starts with ``.``).
        moved: former public name -> module that defines it now (deprecated here; still resolves with a warning).
        eager: names the package defines itself (listed in ``__all__``).
    """
    public = [*(eager or {}), *table]
    moved = dict(moved or {})

    def _module(ref: str) -> Any:
        return importlib.import_module(f"{package}{ref}" if ref.startswith(".") else ref)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module protocol's name
        if name in table:
            return getattr(_module(table[name]), name)
        if name in moved:
            where = moved[name] if not moved[name].startswith(".") else f"{package}{moved[name]}"
            warnings.warn(
                f"`{package}.{name}` moved to `{where}.{name}`; the old name goes in the next release.",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(_module(moved[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(public)

    return public, __getattr__, __dir__


def moved_module(old: str, new: str) -> None:
    """Make the module ``old`` an alias of ``new`` for one release, with a DeprecationWarning.

    Call it as the only statement of the old module: ``moved_module(__name__, "package.new_name")``. Afterwards
    ``import old`` and ``from old import x`` give the new module's objects (the same ones, not copies).
    """
    import sys

    warnings.warn(
        f"module `{old}` was renamed to `{new}`; the old name goes in the next release.",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)
