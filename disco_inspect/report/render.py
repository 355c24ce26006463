"""Shared rendering helpers of the report layer: the Jinja environment (autoescaping, strict) and inline PNGs."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import torch

TEMPLATES = Path(__file__).resolve().parent / "templates"


def env() -> Any:
    """The templates' Jinja2 environment: autoescape on, undefined names are errors; ``num``/``pval`` filters."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, d=3: (
        "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{d}f}"
    )
    env.filters["pval"] = lambda v: "–" if v is None else ("<0.001" if v < 0.001 else f"{v:.3f}")
    return env


def png_uri(image: torch.Tensor) -> str:
    """``data:`` URI of an image [3, H, W] (or [H, W]) in [0, 1]."""
    from PIL import Image

    x = image.detach().float().clamp(0, 1)
    if x.ndim == 2:
        x = x[None].expand(3, -1, -1)
    arr = (x * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
