"""Render counterfactual-edit results (edit.json plus the image tensors) as one self-contained offline HTML page.

One row per image: the source, its reconstruction from the inversion, the deterministic edit with the class token, and
the stochastic samples, each with the classifier's p(target) beneath. Images are inline data URIs (exact PNG when
small, else a WebP thumbnail: :func:`~disco_inspect.report.render.image_uri`) and the page loads nothing from the
network; all user text goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DiscoInspectError
from ..io import atomic_write_text
from .render import env as _env
from .render import image_uri

_REQUIRED = ("class_name", "target", "method", "token", "settings", "images")
_METHODS = {
    "none": "deterministic edit only",
    "noise": "stochastic samples from noised class-token embeddings",
    "null-vae": "stochastic samples from the unconditional embedding VAE",
    "cond-vae": "stochastic samples from the class-conditional embedding VAE",
}


def _scalar(v: Any) -> Any:
    """Plain Python value for numpy/torch scalars; other values unchanged."""
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:
        return v.item()
    return v


def format_value(v: Any) -> str:
    """A summary value as text: floats to 3 significant digits, None as a dash, lists joined by commas."""
    v = _scalar(v)
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isnan(f):
            return "–"
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        text = f"{f:.3g}"
        if "e+" in text and abs(f) < 1e6:  # 1234.5 -> 1230, not 1.23e+03
            text = str(int(float(text)))
        return text
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x) for x in v)
    return str(v)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", "1")]``, keys in the dict's order."""
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            rows.extend(_flatten(v, f"{key}.") if v else [(key, "–")])
        else:
            rows.append((key, format_value(v)))
    return rows


def _num(v: Any, digits: int) -> str:
    v = _scalar(v)
    if v is None or not isinstance(v, numbers.Real) or isinstance(v, bool):
        return "–"
    f = float(v)
    if math.isnan(f):
        return "–"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:.{digits}f}"


def _uri(t: Any) -> str | None:
    return None if t is None else image_uri(t)


def _row(entry: Mapping[str, Any], tensors: Mapping[str, Any] | None) -> dict[str, Any]:
    """The template's view of one image: header text and cells (label, data URI or None, formatted p)."""
    tensors = tensors or {}
    p = entry.get("p_target") or {}
    rec = entry.get("reconstruction") or {}
    cells = [
        {"kind": key, "label": label, "uri": _uri(tensors.get(key)), "p": _num(p.get(key), 3)}
        for key, label in (
            ("source", "source"),
            ("reconstruction", "reconstruction"),
            ("edit", "deterministic edit"),
        )
    ]
    samples = tensors.get("samples")
    p_samples = list(p.get("samples") or [])
    n = 0 if samples is None else int(samples.shape[0])
    for j in range(n):
        cells.append(
            {
                "kind": "sample",
                "label": f"sample {j + 1}",
                "uri": image_uri(samples[j]),
                "p": _num(p_samples[j] if j < len(p_samples) else None, 3),
            }
        )
    finite = [
        float(_scalar(x))
        for x in p_samples
        if isinstance(_scalar(x), numbers.Real) and math.isfinite(float(_scalar(x)))
    ]
    return {
        "name": str(entry.get("name", "")),
        "source_file": str(entry.get("source_file") or ""),
        "source_prompt": str(entry.get("source_prompt") or ""),
        "edit_prompt": str(entry.get("edit_prompt") or ""),
        "psnr": _num(rec.get("psnr"), 2),
        "ssim": _num(rec.get("ssim"), 3),
        "notes": [str(x) for x in entry.get("notes") or []],
        "cells": cells,
        "n_samples": n,
        "samples_mean": _num(sum(finite) / len(finite), 3) if finite else None,
        "missing": not tensors,
    }


def edit_rows(summary: Mapping[str, Any], images: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of an edit summary as templates show them (also the audit report's edit section)."""
    return [_row(e, images.get(str(e.get("name")))) for e in summary.get("images") or []]


def render_edit_page(summary: dict, images: dict[str, dict[str, Any]], out_path: str | Path) -> Path:
    """Write the counterfactual-edit page for ``summary`` (the content of edit.json) to ``out_path``.

    ``images`` maps each image's ``name`` to its tensors ``{"source", "reconstruction", "edit": [3, H, W],
    "samples": [N, 3, H, W] or None}`` in [0, 1]. ``out_path`` is the HTML file (``OUT/index.html``) or a folder,
    in which case ``index.html`` is written there. The page is self-contained (inline images, no network), written
    atomically; returns its path.
    """
    if not isinstance(summary, Mapping):
        raise DiscoInspectError(
            f"The edit summary is a {type(summary).__name__}, not a dict; pass the content of edit.json."
        )
    missing = [k for k in _REQUIRED if k not in summary]
    if missing:
        raise DiscoInspectError(
            f"The edit summary lacks {', '.join(repr(k) for k in missing)}; pass the content of "
            "edit.json as written by the edit command."
        )
    out = Path(out_path)
    if out.is_dir() or out.suffix.lower() not in (".html", ".htm"):
        out = out / "index.html"
    method = str(summary["method"])
    rows = edit_rows(summary, images)
    failures = [
        {"file": str(f.get("file", "")), "error": str(f.get("error", ""))}
        for f in summary.get("failures") or []
    ]
    page = (
        _env()
        .get_template("edit.html.j2")
        .render(
            class_name=str(summary["class_name"]),
            target=format_value(summary["target"]),
            method=method,
            method_text=_METHODS.get(method, ""),
            token=str(summary["token"]),
            settings=_flatten(summary.get("settings") or {}),
            method_summary=_flatten(summary.get("summary") or {}),
            rows=rows,
            failures=failures,
            created=str(summary.get("created") or ""),
        )
    )
    return atomic_write_text(out, page)
