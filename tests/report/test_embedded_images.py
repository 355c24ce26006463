"""Images embedded in a report page: a 512-px pipeline's images are thumbnails, small images stay exact."""

import base64
import io

import torch
from PIL import Image

from disco_inspect.report.render import MAX_EMBED_SIDE, image_uri


def _decoded(uri: str) -> tuple[Image.Image, int]:
    head, data = uri.split(",", 1)
    raw = base64.b64decode(data)
    return Image.open(io.BytesIO(raw)), len(raw)


def _photo(side: int) -> torch.Tensor:
    """A smooth photo-like image with some texture (what a Stable Diffusion sample looks like to an encoder)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    noise = torch.rand(3, side, side, generator=torch.Generator().manual_seed(0)) * 0.08
    return (torch.stack([x, y, (x + y) / 2]) * 0.9 + noise).clamp(0, 1)


def test_a_512px_image_is_embedded_as_a_small_thumbnail():
    img, size = _decoded(image_uri(_photo(512)))
    assert max(img.size) == MAX_EMBED_SIDE
    # 128 such images (a report page) stay within a few MB; as full-size PNGs they were ~0.6 MB each
    assert size < 40_000, size


def test_small_images_are_embedded_exactly():
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    uri = image_uri(x)
    img, _ = _decoded(uri)
    assert uri.startswith("data:image/png;base64,") and img.size == (32, 32)
    back = torch.from_numpy(__import__("numpy").array(img)).permute(2, 0, 1).float() / 255
    assert torch.equal((back * 255).round(), (x * 255).round())
