"""The world's scene generator: coloured shapes on textured backgrounds with a corner object.

Every scene has six known factors (see :data:`FACTORS`); the class is ``shape``. Rendering is
vectorised torch (signed distance fields on a coordinate grid), seeded through ``torch.Generator``
only, and fast: a few thousand 32x32 scenes take well under a second on one core.

Colour choice: shape colours and background colours share two names (green, blue), so the palettes
are disjoint shades: shapes are bright and saturated, backgrounds muted or dark; in addition every shape
and object gets a thin dark outline. Equal names are therefore *not* forbidden: all factor
combinations can be sampled, and a bias on one factor never constrains another.

Geometry (in units of the image width): small shapes are 35 % wide, large ones 60 % (squares 0.83x
that, so their area is close to the circle's; triangles 1.05x). The sun is a disk of diameter 16 % centred
at (90 %, 10 %) (top right); the tree is a crown of diameter 16 % centred at (10 %, 83 %) on a trunk
reaching the bottom edge (bottom left); positions are fixed. The shape's centre is jittered and squares,
triangles and crosses are rotated by up to 15 degrees; the placement (rejection sampling, with the
always-valid centred pose as fallback) keeps the shape inside the image and clear of *both* object
corners whatever the ``object`` factor, so the shape's pose carries no information about the object.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import torch
from torch import Tensor

from ..errors import DiscoInspectError
from .vocabulary import (  # noqa: F401 - re-exported: the scene vocabulary lives in factors.py
    BACKGROUNDS,
    COLORS,
    DETAILS,
    FACTOR_VALUES,
    FACTORS,
    OBJECT_PROBS,
    OBJECTS,
    SHAPES,
    SIZES,
    TEXTURES,
)

if TYPE_CHECKING:
    from .bias import BiasSpec

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- palette
COLOR_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.12, 0.12),
    "green": (0.35, 0.92, 0.25),
    "blue": (0.30, 0.60, 1.00),
    "yellow": (1.00, 0.92, 0.15),
    "purple": (0.70, 0.28, 0.95),
    "white": (1.00, 1.00, 1.00),
}
"""Shape fill colours (bright, saturated)."""
BACKGROUND_RGB: dict[str, tuple[float, float, float]] = {
    "black": (0.05, 0.05, 0.05),
    "green": (0.10, 0.40, 0.15),
    "blue": (0.10, 0.18, 0.50),
    "gray": (0.50, 0.50, 0.50),
    "orange": (0.90, 0.48, 0.08),
    "brown": (0.42, 0.25, 0.10),
}
"""Background base colours (muted or dark, disjoint from the shape colours)."""
BACKGROUND_ALT_RGB: dict[str, tuple[float, float, float]] = {
    "black": (0.26, 0.26, 0.26),
    "green": (0.20, 0.56, 0.26),
    "blue": (0.22, 0.32, 0.68),
    "gray": (0.66, 0.66, 0.66),
    "orange": (0.70, 0.32, 0.04),
    "brown": (0.58, 0.38, 0.18),
}
"""Second colour of stripes and dots: a lighter (or, for orange, darker) variant of the background."""
OUTLINE_RGB: tuple[float, float, float] = (0.03, 0.03, 0.03)
SUN_RGB: tuple[float, float, float] = (1.00, 0.80, 0.10)
CROWN_RGB: tuple[float, float, float] = (0.25, 0.75, 0.20)
TRUNK_RGB: tuple[float, float, float] = (0.55, 0.32, 0.12)

# ---------------------------------------------------------------------------------------------- geometry
# Coordinates are normalised: x, y in [-1, 1] across the image, y pointing down.
SIZE_HALF_WIDTH: dict[str, float] = {"small": 0.35, "large": 0.60}
"""Half the nominal shape width in normalised units (= fraction of the image width)."""
_SQUARE_SCALE = 0.83  # half-side = 0.83 h (area close to the circle's)
_TRIANGLE_SCALE = 1.05  # half-side = 1.05 h (equilateral, pointing up)
_CROSS_THICKNESS = 0.36  # half-thickness of the arms = 0.36 h
_MAX_ROTATION = math.radians(15.0)
_OUTLINE = 0.065  # outline width (~1 px at 32x32)
_EDGE_MARGIN = 0.06  # shape (without outline) stays this far inside the image border
_OBJECT_MARGIN = 0.13  # shape stays this far from the keep-out disks below (its outline + anti-aliasing)
_CANDIDATES = 16  # placement candidates per image (rejection sampling; fallback = centre, unrotated)

_SUN = (0.80, -0.80, 0.16)  # centre x, centre y, radius
_CROWN = (-0.80, 0.66, 0.16)
_TRUNK = (-0.80, 0.88, 0.06, 0.10)  # centre x, centre y, half-width, half-height
# Disks (x, y, r) that cover both objects *with* their outlines; placement keeps the shape off them.
_KEEP_OUT: tuple[tuple[float, float, float], ...] = (
    (_SUN[0], _SUN[1], _SUN[2] + _OUTLINE),
    (_CROWN[0], _CROWN[1], _CROWN[2] + _OUTLINE),
    (_TRUNK[0], _TRUNK[1], math.hypot(_TRUNK[2], _TRUNK[3]) + _OUTLINE),
)
_STRIPE_PERIOD = 0.40  # ~6.4 px at 32x32
_STRIPE_ANGLES = (0.0, 45.0, 90.0, 135.0)
_DOT_PERIOD = 0.40
_DOT_RADIUS = 0.11
_DOT_JITTER = 0.06
_NOISE_STD = 0.02

_TEXTURE_WORDS = {"plain": "plain", "stripes": "striped", "dots": "dotted"}
_SUN_PHRASES = ("with a sun", "next to a sun", "under a sun")
_TREE_PHRASES = ("with a tree", "next to a tree")


# ---------------------------------------------------------------------------------------------- names
def _hint(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _check_factor(factor: str) -> tuple[str, ...]:
    if factor not in FACTOR_VALUES:
        raise DiscoInspectError(
            f"Unknown factor {factor!r}; {_hint(str(factor), FACTORS)}valid factors are {', '.join(FACTORS)}."
        )
    return FACTOR_VALUES[factor]


def parse_factor_value(factor: str, value: str | int) -> int:
    """Index of ``value`` (a name, case-insensitive, or an index) among the values of ``factor``."""
    values = _check_factor(factor)
    if isinstance(value, bool):
        raise DiscoInspectError(f"`{factor}` = {value!r} is invalid; use one of {', '.join(values)}.")
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, str)):
        index = int(value)  # type: ignore[arg-type]
        if not 0 <= index < len(values):
            raise DiscoInspectError(
                f"`{factor}` = {index} is out of range; use an index 0..{len(values) - 1} "
                f"or a name ({', '.join(values)})."
            )
        return index
    if not isinstance(value, str):
        raise DiscoInspectError(f"`{factor}` = {value!r} is invalid; use one of {', '.join(values)}.")
    name = value.strip().lower()
    if name in values:
        return values.index(name)
    if name.isdigit():
        return parse_factor_value(factor, int(name))
    raise DiscoInspectError(
        f"Unknown {factor} {value!r} for `{factor}`; {_hint(name, values)}valid values are {', '.join(values)}."
    )


def _resolve_bias(bias: BiasSpec | str | None) -> BiasSpec | None:
    from .bias import BiasSpec

    if bias is None or isinstance(bias, BiasSpec):
        return bias
    if isinstance(bias, str):
        return BiasSpec.parse(bias)
    raise DiscoInspectError(
        f"`bias` = {bias!r} is invalid; pass a BiasSpec or a string like 'circle: background=green @ 0.99'."
    )


# ---------------------------------------------------------------------------------------------- batch
@dataclass(frozen=True)
class SceneBatch:
    """Rendered scenes with their factor labels and captions."""

    images: Tensor
    """float32 ``[N, 3, H, W]`` in ``[0, 1]``."""
    factors: dict[str, Tensor]
    """Factor name -> int64 ``[N]`` label indices (see :data:`FACTOR_VALUES`)."""
    captions: list[str]

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor):
            raise DiscoInspectError(
                f"`images` is a {type(self.images).__name__}; pass a tensor [N, 3, H, W]."
            )
        n = self.images.shape[0] if self.images.dim() == 4 else -1
        if n < 0 or self.images.shape[1] != 3:
            raise DiscoInspectError(
                f"`images` has shape {tuple(self.images.shape)}; SceneBatch needs [N, 3, H, W]."
            )
        if set(self.factors) != set(FACTORS):
            raise DiscoInspectError(
                f"`factors` has keys {sorted(self.factors)}; SceneBatch needs exactly {list(FACTORS)}."
            )
        bad = [k for k, v in self.factors.items() if v.shape != (n,)]
        if bad or len(self.captions) != n:
            raise DiscoInspectError(
                f"SceneBatch of {n} images has factors {bad} / {len(self.captions)} captions of another "
                f"length; give every factor shape [{n}] and one caption per image."
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: int | slice | Sequence[int] | Tensor) -> SceneBatch:
        """The scenes at ``idx`` (int, slice, index list, or int/bool tensor), in that order."""
        n = len(self)
        if isinstance(idx, slice):
            index = torch.arange(n)[idx]
        elif isinstance(idx, Tensor) and idx.dtype == torch.bool:
            if idx.shape != (n,):
                raise DiscoInspectError(
                    f"Boolean `idx` has shape {tuple(idx.shape)}; it must have shape [{n}]."
                )
            index = idx.nonzero().flatten()
        else:
            index = torch.as_tensor([idx] if isinstance(idx, int) else idx, dtype=torch.long).flatten()
            if index.numel() and (index.min() < -n or index.max() >= n):
                raise DiscoInspectError(
                    f"`idx` contains {int(index.max()) if index.max() >= n else int(index.min())}, "
                    f"out of range for a batch of {n}; use indices in -{n}..{n - 1}."
                )
            index = index % max(n, 1)
        return SceneBatch(
            images=self.images[index],
            factors={k: v[index] for k, v in self.factors.items()},
            captions=[self.captions[i] for i in index.tolist()],
        )

    def factor_names(self, i: int) -> dict[str, str]:
        """Factor name -> value name of scene ``i``."""
        if not -len(self) <= i < len(self):
            raise DiscoInspectError(f"`i` = {i} is out of range for a batch of {len(self)} scenes.")
        return {k: FACTOR_VALUES[k][int(v[i])] for k, v in self.factors.items()}


# ---------------------------------------------------------------------------------------------- sampling
def _base_probs(factor: str) -> Tensor:
    k = len(FACTOR_VALUES[factor])
    if factor == "object":
        return torch.tensor(OBJECT_PROBS, dtype=torch.float64)
    return torch.full((k,), 1.0 / k, dtype=torch.float64)


def _inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    cdf = probs.cumsum(-1)
    return (u.unsqueeze(-1) >= cdf).sum(-1).clamp_max(probs.shape[-1] - 1).to(torch.int64)


def sample_factors(
    n: int,
    *,
    generator: torch.Generator,
    bias: BiasSpec | str | None = None,
    fixed: Mapping[str, str | int] | None = None,
) -> dict[str, Tensor]:
    """Sample ``n`` scenes' factors (int64 ``[n]`` each).

    Without a bias every factor is independent: uniform, except ``object`` = none 50 %, sun 25 %,
    tree 25 % (:data:`OBJECT_PROBS`). ``fixed`` pins factors (name or index) and wins over the bias.

    Bias rule, for ``bias = shape: factor=v @ rate`` with ``K`` values of ``factor`` and base
    distribution ``p``: scenes of class ``shape`` take ``v`` with probability ``rate`` and any other
    value ``u`` with ``(1 - rate) * p(u) / (1 - p(v))``; scenes of every *other* class take ``v`` with
    probability ``q = (1 - rate) / (K - 1)`` and ``u != v`` with ``(1 - q) * p(u) / (1 - p(v))``. So
    ``v`` predicts the class (with rate 0.99 and uniform base, ``v`` is ~500x likelier under the biased
    class), ``rate = 1`` is a perfect shortcut, and ``rate = 1/K`` on a uniform factor means no bias.

    One uniform number per scene and factor is always drawn, in :data:`FACTORS` order, so pinning a
    factor leaves the other factors' draws unchanged.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DiscoInspectError(f"`n` = {n!r} is invalid; ask for at least 1 scene.")
    spec = _resolve_bias(bias)
    pinned = {}
    for name, value in (fixed or {}).items():
        pinned[name] = parse_factor_value(name, value)
    u = torch.rand(len(FACTORS), n, generator=generator, dtype=torch.float64)
    out: dict[str, Tensor] = {}
    for row, factor in enumerate(FACTORS):
        if factor in pinned:
            out[factor] = torch.full((n,), pinned[factor], dtype=torch.int64)
            continue
        p = _base_probs(factor)
        if spec is not None and factor == spec.factor:
            k = p.numel()
            v = FACTOR_VALUES[factor].index(spec.value)
            rest = p.clone()
            rest[v] = 0.0
            rest = rest / rest.sum()
            biased = rest * (1.0 - spec.rate)
            biased[v] = spec.rate
            q = (1.0 - spec.rate) / (k - 1)
            other = rest * (1.0 - q)
            other[v] = q
            is_biased = (out["shape"] == SHAPES.index(spec.shape)).unsqueeze(-1)
            probs = torch.where(is_biased, biased, other)
        else:
            probs = p.expand(n, -1)
        out[factor] = _inverse_cdf(probs, u[row])
    return out


def _check_factors(factors: Mapping[str, Tensor]) -> int:
    missing = [f for f in FACTORS if f not in factors]
    if missing:
        raise DiscoInspectError(
            f"`factors` lacks {missing}; pass all of {list(FACTORS)} (see `sample_factors`)."
        )
    n = int(factors["shape"].shape[0]) if factors["shape"].dim() == 1 else -1
    for f in FACTORS:
        t = factors[f]
        if t.shape != (n,) or t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise DiscoInspectError(
                f"`factors[{f!r}]` has shape {tuple(t.shape)} and dtype {t.dtype}; "
                f"every factor must be an integer tensor of shape [N] with the same N."
            )
        if n and (int(t.min()) < 0 or int(t.max()) >= len(FACTOR_VALUES[f])):
            raise DiscoInspectError(
                f"`factors[{f!r}]` holds {int(t.max())}, outside 0..{len(FACTOR_VALUES[f]) - 1} "
                f"({', '.join(FACTOR_VALUES[f])})."
            )
    return n


# ---------------------------------------------------------------------------------------------- SDFs
def _sd_box(px: Tensor, py: Tensor, bx: Tensor | float, by: Tensor | float) -> Tensor:
    qx = px.abs() - bx
    qy = py.abs() - by
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return outside + torch.maximum(qx, qy).clamp_max(0)


def _sd_triangle(px: Tensor, py: Tensor, r: Tensor) -> Tensor:
    """Equilateral triangle of half-side ``r``, centroid at 0, apex up (``py`` points down)."""
    k = math.sqrt(3.0)
    x = px.abs() - r
    y = -py + r / k
    flip = x + k * y > 0
    x, y = torch.where(flip, (x - k * y) / 2, x), torch.where(flip, (-k * x - y) / 2, y)
    x = x - torch.maximum(torch.minimum(x, torch.zeros_like(x)), -2 * r)
    return -torch.sqrt(x * x + y * y) * torch.sign(y)


def _shape_sdf(kind: int, px: Tensor, py: Tensor, h: Tensor) -> Tensor:
    if kind == 0:
        return torch.sqrt(px * px + py * py) - h
    if kind == 1:
        b = _SQUARE_SCALE * h
        return _sd_box(px, py, b, b)
    if kind == 2:
        return _sd_triangle(px, py, _TRIANGLE_SCALE * h)
    t = _CROSS_THICKNESS * h
    return torch.minimum(_sd_box(px, py, h, t), _sd_box(px, py, t, h))


def _shape_vertices(kind: int) -> Tensor:
    """Local vertices (in units of ``h``) of the polygonal shapes, for the inside-image test."""
    if kind == 1:
        s = _SQUARE_SCALE
        return torch.tensor([[s, s], [s, -s], [-s, s], [-s, -s]])
    if kind == 2:
        r = _TRIANGLE_SCALE
        return torch.tensor([[-r, r / math.sqrt(3)], [r, r / math.sqrt(3)], [0.0, -2 * r / math.sqrt(3)]])
    t = _CROSS_THICKNESS
    pts = [(a * 1.0, b * t) for a in (1, -1) for b in (1, -1)] + [
        (b * t, a * 1.0) for a in (1, -1) for b in (1, -1)
    ]
    return torch.tensor(pts)


def _local(x: Tensor, y: Tensor, cx: Tensor, cy: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    dx, dy = x - cx, y - cy
    return cos * dx + sin * dy, -sin * dx + cos * dy


def _place_shapes(factors: Mapping[str, Tensor], generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image centre (cx, cy) and rotation, by rejection sampling; all draws are factor-independent."""
    shape, size = factors["shape"].long(), factors["size"].long()
    n = shape.shape[0]
    h_of = torch.tensor([SIZE_HALF_WIDTH[s] for s in SIZES])
    h = h_of[size]
    r = torch.rand(n, _CANDIDATES, 3, generator=generator)
    # Jitter range: as far as the shape's circumradius allows inside the border.
    circum = torch.tensor(
        [
            1.0,
            _SQUARE_SCALE * math.sqrt(2),
            2 * _TRIANGLE_SCALE / math.sqrt(3),
            math.sqrt(1 + _CROSS_THICKNESS**2),
        ]
    )
    span = (1.0 - _EDGE_MARGIN - circum[shape] * h).clamp_min(0.05).unsqueeze(1)
    cx = (2 * r[..., 0] - 1) * span
    cy = (2 * r[..., 1] - 1) * span
    angle = (2 * r[..., 2] - 1) * _MAX_ROTATION * (shape != 0).unsqueeze(1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    valid = torch.ones(n, _CANDIDATES, dtype=torch.bool)
    hk = h.unsqueeze(1)
    for kind in range(len(SHAPES)):
        sel = shape == kind
        if not sel.any():
            continue
        c_x, c_y, co, si, hs = cx[sel], cy[sel], cos[sel], sin[sel], hk[sel]
        ok = torch.ones_like(c_x, dtype=torch.bool)
        for ox, oy, orad in _KEEP_OUT:
            lx, ly = _local(torch.tensor(ox), torch.tensor(oy), c_x, c_y, co, si)
            ok &= _shape_sdf(kind, lx, ly, hs) >= orad + _OBJECT_MARGIN
        if kind == 0:
            reach_x = c_x.abs() + hs
            reach_y = c_y.abs() + hs
        else:
            v = _shape_vertices(kind)  # [V, 2] local; world = R(angle) @ v * h + c
            vx = (co.unsqueeze(-1) * v[:, 0] - si.unsqueeze(-1) * v[:, 1]) * hs.unsqueeze(-1)
            vy = (si.unsqueeze(-1) * v[:, 0] + co.unsqueeze(-1) * v[:, 1]) * hs.unsqueeze(-1)
            reach_x = (c_x.unsqueeze(-1) + vx).abs().amax(-1)
            reach_y = (c_y.unsqueeze(-1) + vy).abs().amax(-1)
        ok &= (reach_x <= 1 - _EDGE_MARGIN) & (reach_y <= 1 - _EDGE_MARGIN)
        valid[sel] = ok
    first = valid.to(torch.uint8).argmax(1, keepdim=True)
    found = valid.any(1)
    zero = torch.zeros(n)
    cx_s = torch.where(found, cx.gather(1, first).squeeze(1), zero)
    cy_s = torch.where(found, cy.gather(1, first).squeeze(1), zero)
    angle_s = torch.where(found, angle.gather(1, first).squeeze(1), zero)
    return cx_s, cy_s, angle_s


def _alpha(d: Tensor, px: float) -> Tensor:
    """Soft coverage (about one pixel of anti-aliasing) of the region ``d < 0``."""
    return (0.5 - d / px).clamp_(0.0, 1.0)


def _rgb(table: Mapping[str, tuple[float, float, float]], names: Sequence[str]) -> Tensor:
    return torch.tensor([table[name] for name in names], dtype=torch.float32)


def _over(img: Tensor, alpha: Tensor, color: Tensor) -> Tensor:
    """Composite ``color`` ([3] or [N, 3]) over ``img`` [N, 3, H, W] with coverage ``alpha`` [N, H, W]."""
    c = color.view(-1, 3, 1, 1) if color.dim() > 1 else color.view(1, 3, 1, 1)
    return torch.lerp(img, c.expand_as(img), alpha.unsqueeze(1))


# ---------------------------------------------------------------------------------------------- render
@overload
def render_scenes(
    factors: Mapping[str, Tensor],
    *,
    size: int = 32,
    generator: torch.Generator,
    return_masks: Literal[False] = False,
) -> Tensor: ...


@overload
def render_scenes(
    factors: Mapping[str, Tensor],
    *,
    size: int = 32,
    generator: torch.Generator,
    return_masks: Literal[True],
) -> tuple[Tensor, dict[str, Tensor]]: ...


def render_scenes(
    factors: Mapping[str, Tensor],
    *,
    size: int = 32,
    generator: torch.Generator,
    return_masks: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Render scenes as float32 ``[N, 3, size, size]`` in ``[0, 1]`` (vectorised over images).

    With ``return_masks=True`` also returns float ``[N, size, size]`` coverages in ``[0, 1]``:
    ``shape`` (the fill), ``shape_outline`` (fill plus outline), ``object`` (object plus its outline,
    zero when there is none) and ``background`` (pixels covered by neither).

    All random draws (placement, texture phase, noise) have factor-independent shapes, so two calls
    with equal generator states and factors that differ in one factor differ only where it is drawn.
    """
    # 1. check inputs
    n = _check_factors(factors)
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise DiscoInspectError(f"`size` = {size!r} is invalid; use an integer of at least 16 (e.g. 32).")
    f = {k: factors[k].long() for k in FACTORS}
    grid = _pixel_grid(size)
    # 2. all random draws up front, with factor-independent shapes
    draws = _draw(f, n, size, generator)
    # 3. background with texture
    img = _background(f, grid, draws)
    # 4. corner object (fixed positions)
    img, obj_cover = _corner_object(img, f, grid)
    # 5. the shape
    img, shape_fill, shape_out = _shape(img, f, grid, draws)
    # 6. sensor noise, masks
    img = (img + draws.noise).clamp_(0.0, 1.0)
    if not return_masks:
        return img
    masks = {
        "shape": shape_fill,
        "shape_outline": shape_out,
        "object": obj_cover,
        "background": (1 - shape_out) * (1 - obj_cover),
    }
    return img, masks


@dataclass(frozen=True)
class _Grid:
    """Pixel-centre coordinates of a square image in ``[-1, 1]`` and the width of one pixel."""

    size: int
    px: float
    gx: Tensor  # [1, 1, size]: x, columns
    gy: Tensor  # [1, size, 1]: y, rows, pointing down


def _pixel_grid(size: int) -> _Grid:
    """The :class:`_Grid` of a ``size`` x ``size`` image."""
    coords = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    return _Grid(size=size, px=2.0 / size, gx=coords.view(1, 1, size), gy=coords.view(1, size, 1))


@dataclass(frozen=True)
class _Draws:
    """Every random draw of one batch: placement, texture phases, dot jitter and noise."""

    cx: Tensor
    cy: Tensor
    angle: Tensor
    tex: Tensor  # [N, 4]: stripe angle, stripe phase, dot offsets x and y
    dot_jitter: Tensor  # [N, cells, cells, 2]
    noise: Tensor  # [N, 3, size, size]


def _draw(f: Mapping[str, Tensor], n: int, size: int, generator: torch.Generator) -> _Draws:
    """Draw placement, texture phases, dot jitter and noise, in this order, from ``generator``."""
    cx, cy, angle = _place_shapes(f, generator)
    tex = torch.rand(n, 4, generator=generator)
    grid_cells = math.ceil(2.0 / _DOT_PERIOD) + 2
    dot_jitter = (torch.rand(n, grid_cells, grid_cells, 2, generator=generator) * 2 - 1) * _DOT_JITTER
    noise = torch.randn(n, 3, size, size, generator=generator) * _NOISE_STD
    return _Draws(cx=cx, cy=cy, angle=angle, tex=tex, dot_jitter=dot_jitter, noise=noise)


def _stripe_cover(grid: _Grid, tex: Tensor) -> Tensor:
    """Coverage ``[M, H, W]`` of the stripes for the ``tex`` rows of striped scenes."""
    angles = torch.tensor(_STRIPE_ANGLES)[(tex[:, 0] * len(_STRIPE_ANGLES)).long().clamp_max(3)]
    theta = torch.deg2rad(angles).view(-1, 1, 1)
    phase = tex[:, 1].view(-1, 1, 1) * _STRIPE_PERIOD
    # Distance along the stripe normal, folded into a square wave of period _STRIPE_PERIOD.
    s = grid.gx * torch.cos(theta) + grid.gy * torch.sin(theta) + phase
    frac = torch.remainder(s, _STRIPE_PERIOD) / _STRIPE_PERIOD  # [0, 1)
    dist = (torch.abs(frac - 0.5) - 0.25) * _STRIPE_PERIOD  # <0 inside the stripe
    return _alpha(dist, grid.px)


def _dot_cover(grid: _Grid, tex: Tensor, dot_jitter: Tensor) -> Tensor:
    """Coverage ``[M, H, W]`` of the jittered dots for the ``tex``/``dot_jitter`` rows of dotted scenes."""
    size = grid.size
    ox = tex[:, 2].view(-1, 1, 1) * _DOT_PERIOD
    oy = tex[:, 3].view(-1, 1, 1) * _DOT_PERIOD
    ux = grid.gx + 1 + ox
    uy = grid.gy + 1 + oy
    ix = torch.div(ux, _DOT_PERIOD, rounding_mode="floor").long()
    iy = torch.div(uy, _DOT_PERIOD, rounding_mode="floor").long()
    lx = ux - (ix + 0.5) * _DOT_PERIOD
    ly = uy - (iy + 0.5) * _DOT_PERIOD
    rows = torch.arange(tex.shape[0]).view(-1, 1, 1)
    jit = dot_jitter[rows, iy.expand(-1, -1, size), ix.expand(-1, size, -1)]  # [n, H, W, 2]
    d = torch.sqrt((lx - jit[..., 0]) ** 2 + (ly - jit[..., 1]) ** 2) - _DOT_RADIUS
    return _alpha(d, grid.px)


def _background(f: Mapping[str, Tensor], grid: _Grid, draws: _Draws) -> Tensor:
    """The background colour of every scene with its texture (stripes or dots) in the alternate colour."""
    n, size = f["background"].shape[0], grid.size
    bg = f["background"]
    base = _rgb(BACKGROUND_RGB, BACKGROUNDS)[bg]
    alt = _rgb(BACKGROUND_ALT_RGB, BACKGROUNDS)[bg]
    img = base.view(n, 3, 1, 1).expand(n, 3, size, size).clone()
    t_amount = torch.zeros(n, size, size)
    stripes = (f["texture"] == TEXTURES.index("stripes")).nonzero().flatten()
    if stripes.numel():
        t_amount[stripes] = _stripe_cover(grid, draws.tex[stripes])
    dots = (f["texture"] == TEXTURES.index("dots")).nonzero().flatten()
    if dots.numel():
        t_amount[dots] = _dot_cover(grid, draws.tex[dots], draws.dot_jitter[dots])
    return torch.lerp(img, alt.view(n, 3, 1, 1).expand_as(img), t_amount.unsqueeze(1))


def _paint_sun(img: Tensor, grid: _Grid) -> tuple[Tensor, Tensor]:
    """The sun (with its outline) over ``img`` [M, 3, H, W]; returns (images, coverage [M, H, W])."""
    gx, gy, px, m = grid.gx, grid.gy, grid.px, img.shape[0]
    d_sun = torch.sqrt((gx - _SUN[0]) ** 2 + (gy - _SUN[1]) ** 2) - _SUN[2]
    a_out = _alpha(d_sun - _OUTLINE, px).expand(m, -1, -1)
    a_fill = _alpha(d_sun, px).expand(m, -1, -1)
    sub = _over(img, a_out, torch.tensor(OUTLINE_RGB))
    return _over(sub, a_fill, torch.tensor(SUN_RGB)), a_out


def _paint_tree(img: Tensor, grid: _Grid) -> tuple[Tensor, Tensor]:
    """The tree (crown, trunk and outline) over ``img`` [M, 3, H, W]; returns (images, coverage [M, H, W])."""
    gx, gy, px, m = grid.gx, grid.gy, grid.px, img.shape[0]
    d_crown = torch.sqrt((gx - _CROWN[0]) ** 2 + (gy - _CROWN[1]) ** 2) - _CROWN[2]
    d_trunk = _sd_box(gx - _TRUNK[0], gy - _TRUNK[1], _TRUNK[2], _TRUNK[3])
    a_out = _alpha(torch.minimum(d_crown, d_trunk) - _OUTLINE, px).expand(m, -1, -1)
    sub = _over(img, a_out, torch.tensor(OUTLINE_RGB))
    sub = _over(sub, _alpha(d_trunk, px).expand(m, -1, -1), torch.tensor(TRUNK_RGB))
    return _over(sub, _alpha(d_crown, px).expand(m, -1, -1), torch.tensor(CROWN_RGB)), a_out


def _corner_object(img: Tensor, f: Mapping[str, Tensor], grid: _Grid) -> tuple[Tensor, Tensor]:
    """Paint each scene's corner object; returns (new images, object coverage [N, H, W], zero without one)."""
    img = img.clone()
    obj_cover = torch.zeros(img.shape[0], grid.size, grid.size)
    for name, paint in (("sun", _paint_sun), ("tree", _paint_tree)):
        sel = (f["object"] == OBJECTS.index(name)).nonzero().flatten()
        if sel.numel():
            img[sel], obj_cover[sel] = paint(img[sel], grid)
    return img, obj_cover


def _shape(img: Tensor, f: Mapping[str, Tensor], grid: _Grid, draws: _Draws) -> tuple[Tensor, Tensor, Tensor]:
    """Paint each scene's shape with its outline; returns (images, fill coverage, fill-plus-outline coverage)."""
    n, size = img.shape[0], grid.size
    h = torch.tensor([SIZE_HALF_WIDTH[s] for s in SIZES])[f["size"]].view(n, 1, 1)
    lx, ly = _local(
        grid.gx,
        grid.gy,
        draws.cx.view(n, 1, 1),
        draws.cy.view(n, 1, 1),
        torch.cos(draws.angle).view(n, 1, 1),
        torch.sin(draws.angle).view(n, 1, 1),
    )
    d_shape = torch.empty(n, size, size)
    for kind in range(len(SHAPES)):
        sel = (f["shape"] == kind).nonzero().flatten()
        if sel.numel():
            d_shape[sel] = _shape_sdf(kind, lx[sel], ly[sel], h[sel])
    shape_out = _alpha(d_shape - _OUTLINE, grid.px)
    shape_fill = _alpha(d_shape, grid.px)
    img = _over(img, shape_out, torch.tensor(OUTLINE_RGB))
    img = _over(img, shape_fill, _rgb(COLOR_RGB, COLORS)[f["color"]])
    return img, shape_fill, shape_out


# ---------------------------------------------------------------------------------------------- captions
def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _compose(names: Mapping[str, str], object_phrase: str | None = None) -> str:
    """Caption mentioning exactly the factors in ``names`` (object 'none' is never mentioned)."""
    noun = names.get("shape", "shape")
    head = " ".join(w for w in (names.get("size"), names.get("color"), noun) if w)
    parts = [f"{_article(head)} {head}"]
    bg, texture = names.get("background"), names.get("texture")
    if bg is not None or texture is not None:
        if texture == "plain":
            words = ["plain", bg] if bg else ["plain"]
        else:
            words = [w for w in (bg, _TEXTURE_WORDS.get(texture or "")) if w]
        desc = " ".join(words)
        parts.append(f"on {_article(desc)} {desc} background")
    obj = names.get("object")
    if obj is not None and obj != "none":
        parts.append(object_phrase or f"with a {obj}")
    return " ".join(parts)


def caption_for(fixed: Mapping[str, str | int]) -> str:
    """Caption that mentions exactly the given factors, e.g. ``{"shape": "circle", "background": "green"}``
    -> ``"a circle on a green background"``.

    Without ``shape`` the noun is "shape" ("a red shape"); ``object`` "none" cannot be said and is
    omitted; ``texture`` "plain" is said as "plain". Values may be names or indices.
    """
    names = {}
    for factor, value in fixed.items():
        names[factor] = FACTOR_VALUES[factor][parse_factor_value(factor, value)]
    return _compose(names)


def make_captions(
    factors: Mapping[str, Tensor], *, generator: torch.Generator, detail: str = "random"
) -> list[str]:
    """One lowercase English caption per scene.

    ``detail``: ``"shape"`` ("a circle"); ``"full"`` (every factor, texture "plain" included, object
    "none" omitted: "a large red circle on a green striped background with a sun"); ``"random"`` (the
    shape plus each other factor independently with probability 1/2, and a random object phrasing
    "with/next to/under a sun", "with/next to a tree").
    """
    if detail not in DETAILS:
        raise DiscoInspectError(
            f"`detail` = {detail!r} is invalid; {_hint(str(detail), DETAILS)}use one of {', '.join(DETAILS)}."
        )
    n = _check_factors(factors)
    others = FACTORS[1:]
    mention = torch.rand(n, len(others), generator=generator) < 0.5
    phrase = torch.rand(n, generator=generator)
    cols = {k: factors[k].tolist() for k in FACTORS}
    mention_rows = mention.tolist()
    phrase_rows = phrase.tolist()
    captions = []
    for i in range(n):
        names = {k: FACTOR_VALUES[k][cols[k][i]] for k in FACTORS}
        if detail == "shape":
            captions.append(_compose({"shape": names["shape"]}))
            continue
        if detail == "full":
            captions.append(_compose(names))
            continue
        said = {"shape": names["shape"]}
        said.update({k: names[k] for k, m in zip(others, mention_rows[i], strict=True) if m})
        object_phrase = None
        if said.get("object") == "sun":
            object_phrase = _SUN_PHRASES[min(int(phrase_rows[i] * len(_SUN_PHRASES)), len(_SUN_PHRASES) - 1)]
        elif said.get("object") == "tree":
            object_phrase = _TREE_PHRASES[
                min(int(phrase_rows[i] * len(_TREE_PHRASES)), len(_TREE_PHRASES) - 1)
            ]
        captions.append(_compose(said, object_phrase))
    return captions


_CAPTION_RE = re.compile(
    r"^an? (?:(?P<size>small|large) )?(?:(?P<color>" + "|".join(COLORS) + r") )?"
    r"(?P<shape>" + "|".join(SHAPES) + r"|shape)"
    r"(?: on an? (?:(?P<plain>plain) )?(?:(?P<background>" + "|".join(BACKGROUNDS) + r") )?"
    r"(?:(?P<pattern>striped|dotted) )?background)?"
    r"(?: (?:with|next to|under) a (?P<object>sun|tree))?$"
)


def parse_caption(caption: str) -> dict[str, str]:
    """Inverse of the caption grammar: factor name -> value name for each factor the caption mentions."""
    match = _CAPTION_RE.match(caption.strip())
    if match is None:
        raise DiscoInspectError(
            f"`caption` = {caption!r} does not follow the world's caption grammar, e.g. "
            f"'a large red circle on a green striped background with a sun'."
        )
    out = {k: v for k, v in match.groupdict().items() if v and k in FACTOR_VALUES}
    if out.get("shape") == "shape":
        del out["shape"]
    if match["plain"]:
        out["texture"] = "plain"
    elif match["pattern"]:
        out["texture"] = {"striped": "stripes", "dotted": "dots"}[match["pattern"]]
    return out


# ---------------------------------------------------------------------------------------------- entry point
def _stream(seed: int, k: int) -> torch.Generator:
    """Independent generator number ``k`` for ``seed`` (factors, render and captions don't share draws)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + 7_919 * k) % (2**63 - 1))


def generate_scenes(
    n: int,
    *,
    seed: int,
    size: int = 32,
    bias: BiasSpec | str | None = None,
    fixed: Mapping[str, str | int] | None = None,
    detail: str = "random",
) -> SceneBatch:
    """Sample, render and caption ``n`` scenes; deterministic in all arguments.

    Factors, images and captions use three generators derived from ``seed``, so e.g. changing
    ``size`` or ``detail`` leaves the factors unchanged. ``bias`` may be a :class:`BiasSpec` or its
    text ("circle: background=green @ 0.99"); see :func:`sample_factors` for ``bias`` and ``fixed``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DiscoInspectError(f"`seed` = {seed!r} is invalid; use an integer.")
    if detail not in DETAILS:
        raise DiscoInspectError(
            f"`detail` = {detail!r} is invalid; {_hint(str(detail), DETAILS)}use one of {', '.join(DETAILS)}."
        )
    factors = sample_factors(n, generator=_stream(seed, 0), bias=bias, fixed=fixed)
    images = render_scenes(factors, size=size, generator=_stream(seed, 1))
    captions = make_captions(factors, generator=_stream(seed, 2), detail=detail)
    logger.debug("generated %d scenes (seed=%d, size=%d, bias=%s, fixed=%s)", n, seed, size, bias, fixed)
    return SceneBatch(images=images, factors=factors, captions=captions)
