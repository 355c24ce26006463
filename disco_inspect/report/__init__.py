"""Rendering what it is given: the audit's HTML and report.json schema, the edit page, static figures."""

from __future__ import annotations

from .._lazy import attach

__all__, __getattr__, __dir__ = attach(
    __name__,
    {
        "validate_report": ".schema",
        "REPORT_SCHEMA": ".schema",
        "render_report": ".html",
        "write_report": ".html",
        "write_index": ".html",
        "render_edit_page": ".edit_page",
        "factor_figure": ".figures",
        "trajectory_figure": ".figures",
    },
)
