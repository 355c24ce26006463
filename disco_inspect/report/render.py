"""Shared rendering helpers of the report layer: the Jinja environment (autoescaping, strict) and inline images."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import torch

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: Longest side of an image embedded in a page: larger ones (a 512-px pipeline's) are downscaled (area averaging).
#: A full-size 512-px PNG is ~0.67 MB inline and a page embeds ~130 images; the run folder keeps the full images.
MAX_EMBED_SIDE = 256
#: Images up to this side (the world's 32 px) are embedded exactly, as PNG; larger ones as WebP at
#: :data:`WEBP_QUALITY` (~25 KB for a 256-px photo instead of ~170 KB).
LOSSLESS_SIDE = 128
WEBP_QUALITY = 90


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


def image_uri(image: torch.Tensor) -> str:
    """``data:`` URI of an image [3, H, W] (or [H, W]) in [0, 1] for a page: exact PNG up to
    :data:`LOSSLESS_SIDE`, else downscaled to at most :data:`MAX_EMBED_SIDE` and WebP-encoded."""
    import torch.nn.functional as F
    from PIL import Image

    x = image.detach().float().cpu().clamp(0, 1)
    if x.ndim == 2:
        x = x[None].expand(3, -1, -1)
    side = max(x.shape[-2:])
    if side > MAX_EMBED_SIDE:
        h, w = (round(d * MAX_EMBED_SIDE / side) for d in x.shape[-2:])
        x = F.interpolate(x[None], size=(h, w), mode="area")[0]
    arr = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    if side <= LOSSLESS_SIDE:
        Image.fromarray(arr).save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    Image.fromarray(arr).save(buf, format="WEBP", quality=WEBP_QUALITY, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()
