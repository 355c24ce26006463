"""Load the user's own images for counterfactual editing: find the files, convert each to RGB, resize and crop.

``load_images`` accepts a folder, a glob pattern, one file, or a list of these. Every image becomes RGB (grey,
palette, CMYK and 1-bit images are converted; transparency is composited on white; 16-bit images are scaled to
8 bit by the full 16-bit range), is turned upright by its EXIF orientation, resized so its shorter side is
``size`` (bicubic, antialiased) and centre-cropped to ``size x size``. What was converted is recorded per image.
A file that cannot be read is reported and skipped; only when no file loads is that an error.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import DiscoInspectError

logger = logging.getLogger(__name__)

#: Extensions taken from a folder (case-insensitive). Files given one by one or by a glob may have any extension.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

_WHAT_TO_PASS = (
    "pass an image file, a folder of images (" + " ".join(IMAGE_EXTENSIONS) + "), a glob pattern "
    "such as 'photos/*.jpg', or a list of these"
)
_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_MAX_NAME = 100


@dataclass
class ImageLoad:
    """The images that loaded, with their files, folder-safe unique names, conversion notes, and the failures."""

    images: torch.Tensor  #: float32 [N, 3, size, size] in [0, 1]
    paths: list[Path] = field(default_factory=list)  #: the files that loaded, in the order of ``images``
    names: list[str] = field(
        default_factory=list
    )  #: unique, folder-safe names (file stems; _2, _3 ... on clashes)
    notes: list[list[str]] = field(default_factory=list)  #: per image, what was converted
    failures: list[dict[str, str]] = field(default_factory=list)  #: {"file", "error"} per unreadable file


def _specs(spec: Any) -> list[str | Path]:
    if isinstance(spec, (str, Path)):
        return [spec]
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        items = list(spec)
        if not items:
            raise DiscoInspectError(f"No images given (an empty list); {_WHAT_TO_PASS}.")
        for item in items:
            if not isinstance(item, (str, Path)):
                raise DiscoInspectError(
                    f"Cannot read images from {item!r} (a {type(item).__name__}); {_WHAT_TO_PASS}."
                )
        return items
    raise DiscoInspectError(f"Cannot read images from {spec!r} (a {type(spec).__name__}); {_WHAT_TO_PASS}.")


def _find_one(item: str | Path) -> list[tuple[Path, str]]:
    """(path, the path as the user gave or the glob/folder listing produced it) for one spec item."""
    given = os.fspath(item)
    if not given.strip():
        raise DiscoInspectError(f"The image path {given!r} is empty; {_WHAT_TO_PASS}.")
    expanded = os.path.expanduser(given)
    if os.path.isdir(expanded):
        with os.scandir(expanded) as it:
            names = sorted(e.name for e in it if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file())
        if not names:
            raise DiscoInspectError(
                f"The folder '{given}' holds no image files (looked for {', '.join(IMAGE_EXTENSIONS)}, not in "
                f"subfolders); put images there or {_WHAT_TO_PASS}."
            )
        return [(Path(expanded) / n, os.path.join(given, n)) for n in names]
    if os.path.exists(expanded):
        return [(Path(expanded), given)]
    if glob.has_magic(given):
        matches = sorted(m for m in glob.glob(expanded) if not os.path.isdir(m))
        if not matches:
            raise DiscoInspectError(
                f"The pattern '{given}' matches no files; check the folder and the pattern, or "
                f"{_WHAT_TO_PASS}."
            )
        return [(Path(m), m) for m in matches]
    raise DiscoInspectError(f"The image path '{given}' does not exist; {_WHAT_TO_PASS}.")


def _find(spec: Any) -> list[tuple[Path, str]]:
    seen: set[str] = set()
    out: list[tuple[Path, str]] = []
    for item in _specs(spec):
        for path, given in _find_one(item):
            key = os.path.normcase(os.path.abspath(path))
            if key not in seen:  # the same file named twice (e.g. a folder and a glob into it) loads once
                seen.add(key)
                out.append((path, given))
    return out


def class_folders(spec: Any) -> dict[str, Path] | None:
    """A labelled tree ``DIR/<class>/...``: ``{folder name: folder}`` of the subfolders holding images, when ``spec``
    is one folder with no images of its own; else ``None`` (``spec`` names the images themselves)."""
    if not isinstance(spec, (str, Path)):
        return None
    d = Path(os.path.expanduser(os.fspath(spec)))
    if not d.is_dir() or any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in d.iterdir()):
        return None
    subs = {
        e.name: e
        for e in sorted(d.iterdir())
        if e.is_dir() and any(f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS) for f in e.iterdir())
    }
    return subs or None


def find_images(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """The image files ``spec`` names: a folder (its image files, sorted, not recursive), a glob pattern (sorted
    matches, any extension), a single file, or a list of these (in order; a file named twice is kept once).

    Raises :class:`DiscoInspectError` naming the spec for an empty folder, a pattern matching nothing, or a
    path that does not exist.
    """
    return [p for p, _ in _find(spec)]


def _safe_name(stem: str) -> str:
    """A folder-safe version of a file stem: only ``[A-Za-z0-9._-]``, no leading dot, no reserved device name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:_MAX_NAME]
    name = name.lstrip(".")
    if not name:
        return "image"
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    return name


def _unique_names(stems: list[str]) -> list[str]:
    """Folder-safe names, unique even on case-insensitive file systems: the second ``x`` becomes ``x_2``."""
    used: set[str] = set()
    out = []
    for stem in stems:
        base = _safe_name(stem)
        name, k = base, 1
        while name.lower() in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name.lower())
        out.append(name)
    return out


_ALPHA_MODES = {"RGBA": "RGBA", "RGBa": "RGBA", "LA": "grey+alpha", "La": "grey+alpha", "PA": "palette+alpha"}
_MODE_NAMES = {
    "L": "grey",
    "P": "palette",
    "1": "1-bit",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "RGBX": "RGBX",
    "HSV": "HSV",
    "LAB": "LAB",
    "RGB": "RGB",
}


def _high_bit_to_8bit(img: Any, notes: list[str]) -> Any:
    """Modes I;16*, I and F to 8-bit grey, scaled by the format's range (not clipped)."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(img)
    if img.mode.startswith("I;16") or (
        img.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 65535
    ):
        # PNG and TIFF 16-bit images open as I;16 (or I in older Pillow): 0..65535
        scaled = arr.astype(np.float64) / 65535.0
        notes.append("16-bit -> 8-bit")
    elif img.mode == "F" and arr.size and np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1:
        scaled = arr.astype(np.float64)
        notes.append("32-bit float (0..1) -> 8-bit")
    else:
        finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = (np.nan_to_num(arr.astype(np.float64), nan=lo) - lo) / max(hi - lo, 1e-12)
        kind = "32-bit float" if img.mode == "F" else "32-bit integer"
        notes.append(f"{kind} -> 8-bit (scaled by the image's own range {lo:g}..{hi:g})")
    out = np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)
    notes.append("grey -> RGB")
    return Image.fromarray(out, mode="L").convert("RGB")


def _to_rgb(img: Any, notes: list[str]) -> Any:
    """``img`` (any PIL mode) as an RGB image; transparency composited on white."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I") or mode == "F":
        return _high_bit_to_8bit(img, notes)
    has_alpha = mode in _ALPHA_MODES or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        alpha_min = rgba.getchannel("A").getextrema()[0]
        label = _ALPHA_MODES.get(mode) or f"{_MODE_NAMES.get(mode, mode)} with transparency"
        if alpha_min == 255:
            notes.append(f"{label} -> RGB (fully opaque)")
            return rgba.convert("RGB")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"{label} composited on white")
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return img
    if mode == "CMYK":
        notes.append("CMYK -> RGB")
        return img.convert("RGB")
    notes.append(f"{_MODE_NAMES.get(mode, mode)} -> RGB")
    return img.convert("RGB")


def _resize_crop(img: Any, size: int, notes: list[str]) -> Any:
    """Resize so the shorter side is ``size`` (bicubic, antialiased), then centre-crop to ``size x size``."""
    from PIL import Image

    w, h = img.size
    if (w, h) == (size, size):
        return img
    if min(w, h) != size:
        scale = size / min(w, h)
        nw, nh = (size, max(size, round(h * scale))) if w <= h else (max(size, round(w * scale)), size)
        img = img.resize(
            (nw, nh), Image.Resampling.BICUBIC
        )  # PIL's resize filters the whole support: antialiased
        if nw == nh:
            notes.append(f"resized {w}x{h} -> {size}x{size}")
            return img
        resized = f"resized {w}x{h} -> shorter side {size}, "
    else:
        nw, nh, resized = w, h, f"{w}x{h} "
    left, top = (nw - size) // 2, (nh - size) // 2
    notes.append(f"{resized}centre-cropped to {size}x{size}")
    return img.crop((left, top, left + size, top + size))


def _load_one(path: Path, size: int) -> tuple[torch.Tensor, list[str]]:
    import numpy as np
    from PIL import Image, ImageOps

    notes: list[str] = []
    with Image.open(path) as im:
        n_frames = getattr(im, "n_frames", 1)
        im.load()  # truncated or corrupt data fails here, not later
        if min(im.size) < size:
            logger.warning(
                "The image '%s' is %dx%d, smaller than %d px: it is upscaled (expect a blurry edit).",
                path,
                *im.size,
                size,
            )
        if n_frames > 1:
            notes.append(f"first of {n_frames} frames")
        orientation = im.getexif().get(0x0112, 1)
        img = ImageOps.exif_transpose(im) if orientation not in (None, 1) else im
        if img is not im:
            notes.append(f"EXIF orientation {orientation} applied")
        img = _to_rgb(img, notes)
        img = _resize_crop(img, size, notes)
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    x = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
    return x, notes


def load_images(
    spec: str | Path | Sequence[str | Path], size: int, *, max_images: int | None = None
) -> ImageLoad:
    """Load the images ``spec`` names (see :func:`find_images`) as float32 [N, 3, size, size] in [0, 1].

    Each image is converted to RGB, turned upright by its EXIF orientation, resized so its shorter side is
    ``size`` (bicubic, antialiased) and centre-cropped; the conversions are listed in ``notes``. ``max_images``
    keeps the first N files (after sorting). A file that cannot be read is logged, listed in ``failures`` and
    skipped; if no file loads, :class:`DiscoInspectError` lists why.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DiscoInspectError(f"Image size {size!r} is not a positive whole number; pass e.g. size=512.")
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1
    ):
        raise DiscoInspectError(
            f"max_images={max_images!r} is not a positive whole number; pass e.g. 8, or None for all images."
        )
    found = _find(spec)
    if max_images is not None and len(found) > max_images:
        logger.warning(
            "Using the first %d of %d images; skipped %d (from %s on). Raise max_images to use more.",
            max_images,
            len(found),
            len(found) - max_images,
            found[max_images][1],
        )
        found = found[:max_images]
    tensors, paths, notes, stems, failures = [], [], [], [], []
    for path, given in found:
        try:
            x, note = _load_one(path, size)
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported, the others still load
            error = f"{type(e).__name__}: {e}"
            logger.warning("Could not read the image '%s' (%s); skipping it.", given, error)
            failures.append({"file": given, "error": error})
            continue
        tensors.append(x)
        paths.append(path)
        notes.append(note)
        stems.append(path.stem)
    if not tensors:
        listed = "; ".join(f"'{f['file']}': {f['error']}" for f in failures[:10])
        more = f"; and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise DiscoInspectError(
            f"None of the {len(failures)} files given as {spec!r} could be read as an image "
            f"({listed}{more}); pass readable image files (PNG, JPEG, BMP, WebP, TIFF)."
        )
    return ImageLoad(
        images=torch.stack(tensors), paths=paths, names=_unique_names(stems), notes=notes, failures=failures
    )
