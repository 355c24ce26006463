"""Check the report's optional dependencies up front, before minutes of training are spent."""

from __future__ import annotations

import importlib

from ..errors import missing_extra

#: Packages the report needs (import name -> pip name); captum only for the attribution section.
REPORT_PACKAGES = {
    "jinja2": "jinja2",
    "plotly": "plotly",
    "matplotlib": "matplotlib",
    "jsonschema": "jsonschema",
}
ATTRIBUTION_PACKAGES = {"captum": "captum"}


def check_report_dependencies(attributions: bool = True) -> None:
    """Raise :class:`~disco_inspect.errors.DiscoInspectError` naming the first missing package and its extra."""
    needed = {**REPORT_PACKAGES, **(ATTRIBUTION_PACKAGES if attributions else {})}
    for module, package in needed.items():
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise missing_extra(package) from e
