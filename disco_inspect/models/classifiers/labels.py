"""Class names: label files (text or JSON), ImageNet defaults and the synonym keys class lookup matches on."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import DiscoInspectError

__all__ = ["imagenet_label_names", "load_label_file"]

logger = logging.getLogger(__name__)


def _norm_key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text).casefold()


def _synonyms(label: str) -> list[str]:
    parts = [p.strip() for p in label.split(",")]
    return [p for p in parts if p] or [label.strip()]


def load_label_file(path: str | Path) -> list[str]:
    """Read class names: a text file (one per line) or JSON (a list, or a dict index → name).

    JSON dicts may also map name → index, hold ``id2label`` (Hugging Face ``config.json``) or
    ``label_names`` (disco-inspect metadata), or map index → ``[wnid, name]`` (Keras ImageNet index).
    Text lines of the form ``n01440764 tench, Tinca tinca`` (``synset_words.txt``) drop the WordNet id.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DiscoInspectError(
            f"Label file `{path}` (`labels`/`--labels`) does not exist; pass a text file with one class name per "
            "line or a JSON list."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DiscoInspectError(f"Cannot read label file `{path}` as UTF-8 text: {e}.") from e
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DiscoInspectError(
                f"Label file `{path}` is not valid JSON ({e}); fix it or use a text file."
            ) from e
        return _labels_from_json(data, path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if not lines or blank:
        where = f"line {blank[0]} is blank" if blank else "it is empty"
        raise DiscoInspectError(
            f"Label file `{path}` must hold one class name per line (line i = class i-1), but {where}."
        )
    labels = [line.strip() for line in lines]
    if all(re.match(r"^n\d{8}\s+\S", label) for label in labels):
        labels = [label.split(None, 1)[1].strip() for label in labels]
    return labels


def _labels_from_json(data: Any, path: Path) -> list[str]:
    if isinstance(data, dict):
        for key in ("label_names", "id2label"):
            if key in data:
                return _labels_from_json(data[key], path)
    if isinstance(data, list):
        labels = data
    elif isinstance(data, dict) and data:
        items = list(data.items())
        if all(isinstance(v, int) and not isinstance(v, bool) for _, v in items) and not all(
            str(k).strip().isdigit() for k, _ in items
        ):
            items = [(v, k) for k, v in items]  # name -> index
        try:
            indexed = {int(k): v for k, v in items}
        except (TypeError, ValueError) as e:
            raise DiscoInspectError(
                f"Label file `{path}`: a JSON dict must map class indices (0..N-1) to names; found key "
                f"{items[0][0]!r}."
            ) from e
        missing = sorted(set(range(len(indexed))) - set(indexed))
        if missing:
            raise DiscoInspectError(
                f"Label file `{path}`: the JSON dict must cover indices 0..{len(indexed) - 1} without gaps; "
                f"missing {missing[:5]}."
            )
        labels = [indexed[i] for i in range(len(indexed))]
    else:
        raise DiscoInspectError(
            f"Label file `{path}` must hold a JSON list of names or a dict index → name, got {type(data).__name__}."
        )
    labels = [
        v[-1] if isinstance(v, list) and v and all(isinstance(s, str) for s in v) else v for v in labels
    ]
    return _check_labels(labels, f"label file `{path}`")


def _check_labels(labels: Any, what: str = "`labels`") -> list[str]:
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise DiscoInspectError(f"{what} must be a list of class names, got {type(labels).__name__}.")
    out = list(labels)
    if not out:
        raise DiscoInspectError(f"{what} is empty; give one name per classifier output.")
    for i, label in enumerate(out):
        if not isinstance(label, str) or not label.strip():
            raise DiscoInspectError(f"{what}: entry {i} must be a non-empty string, got {label!r}.")
    return [label.strip() for label in out]


def _coerce_labels(labels: str | os.PathLike[str] | Sequence[str] | None) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        return load_label_file(labels)
    return _check_labels(labels)


def imagenet_label_names(num_classes: int) -> list[str] | None:
    """ImageNet class descriptions (timm's tables) for a known ImageNet class count, else ``None``."""
    try:
        from timm.data import ImageNetInfo
        from timm.data.imagenet_info import infer_imagenet_subset
    except ImportError:  # pragma: no cover - timm is a core dependency
        return None
    subset = infer_imagenet_subset({"num_classes": num_classes})
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(num_classes)]


def _default_labels(num_classes: int) -> list[str]:
    names = imagenet_label_names(num_classes)
    if names is not None:
        logger.info(
            "No labels given; assuming the %d ImageNet classes (pass `labels` otherwise).", num_classes
        )
        return names
    logger.info("No labels given; naming the %d outputs class_0..class_%d.", num_classes, num_classes - 1)
    return [f"class_{i}" for i in range(num_classes)]
