"""The world's vocabulary: factor names and their values (index = label). No imports, so every world module
can use it (scenes and bias used to import each other for these)."""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""The classes, in label order."""
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "white")
"""Shape colours."""
BACKGROUNDS: tuple[str, ...] = ("black", "green", "blue", "gray", "orange", "brown")
"""Background colours."""
TEXTURES: tuple[str, ...] = ("plain", "stripes", "dots")
"""Background textures."""
OBJECTS: tuple[str, ...] = ("none", "sun", "tree")
"""Small co-occurring object: sun in the top-right corner, tree in the bottom-left corner."""
SIZES: tuple[str, ...] = ("small", "large")
"""Shape sizes."""

FACTORS: tuple[str, ...] = ("shape", "color", "background", "texture", "object", "size")
"""Factor names, in the order they are sampled."""
FACTOR_VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": COLORS,
    "background": BACKGROUNDS,
    "texture": TEXTURES,
    "object": OBJECTS,
    "size": SIZES,
}
"""Factor name -> its value names (index = label)."""
OBJECT_PROBS: tuple[float, ...] = (0.5, 0.25, 0.25)
"""Base distribution of ``object`` (none, sun, tree); every other factor is uniform."""
DETAILS: tuple[str, ...] = ("random", "full", "shape")
"""Valid ``detail`` levels of :func:`disco_inspect.world.scenes.make_captions`."""
