"""Check the report's optional dependencies up front, before minutes of training are spent."""

from __future__ import annotations

import importlib

from ..errors import EXTRAS, missing_extra

#: Packages the attribution section needs (import names; each is its pip name).
ATTRIBUTION_PACKAGES: tuple[str, ...] = ("captum",)
#: Packages the rest of the report needs: jinja2 (a core dependency) and the ``report`` extra of ``errors.EXTRAS``.
REPORT_PACKAGES: tuple[str, ...] = (
    "jinja2",
    *(p for p, extra in EXTRAS.items() if extra == "report" and p not in ATTRIBUTION_PACKAGES),
)


def check_report_dependencies(attributions: bool = True) -> None:
    """Raise :class:`~disco_inspect.errors.DiscoInspectError` naming the first missing package and its extra."""
    needed = (*REPORT_PACKAGES, *(ATTRIBUTION_PACKAGES if attributions else ()))
    for package in needed:
        try:
            importlib.import_module(package)
        except ImportError as e:
            raise missing_extra(package) from e
