"""The user's images in the world benchmark: a validation split per case, and each evidence channel judged on its own.

``world benchmark --random N --images K`` (and ``--saturated N --images K``) gives every audited case K images of its
class drawn from that classifier's *training distribution* — the same bias at the same rate, fresh seeds — as a real
validation split is, where bias-conflicting images are rare; never the uniform ground-truth scene sets. Each channel
(the generated intervention, the real-data slice, the real-image edits) then gets its own recall (the planted factor
among its significant concepts, over relied-on cases), precision (its significant concepts that are real reliances
on rendered scenes) and false positives on the clean classifiers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DiscoInspectError

#: The evidence channels, as every factor's ``evidence`` names them.
CHANNELS = ("generated", "real_data", "real_edit", "other_classes")
#: Seed offset of the validation split (the classifier trains on seeds ``20_000_033 * (seed + 1) + step``).
SPLIT_SEED = 7_000_001


def validation_split(case: dict[str, Any], k: int, folder: Path) -> Path:
    """``folder`` holding ``k`` PNGs of the case's class drawn with the case's bias and rate (uniform for a clean
    case), from seeds the classifier never trained on; written once and reused (resumable)."""
    from ...engine.run_folder import save_png
    from ..scenes import SHAPES, generate_scenes

    if k < 1:
        raise DiscoInspectError(f"`--images` = {k} is invalid; give a number of images >= 1, e.g. 64.")
    files = [folder / f"{case['name']}_{i:03d}.png" for i in range(k)]
    if all(f.is_file() for f in files):
        return folder
    target, drawn, batch = SHAPES.index(case["class_name"]), [], 0
    while sum(len(x) for x in drawn) < k:  # draw until k scenes of the class (a quarter of scenes are)
        scenes = generate_scenes(8 * k, seed=SPLIT_SEED + case["train_seed"] + batch, bias=case["bias"])
        drawn.append(scenes.images[scenes.factors["shape"] == target])
        batch += 1
    import torch

    images = torch.cat(drawn)[:k]
    for f, x in zip(files, images, strict=True):
        save_png(f, x)
    return folder


def channel_row(factors: Any, truth: dict[str, dict[str, float]], real_gap: float) -> dict[str, Any]:
    """Per channel: the concepts it calls significant (``supports``) and whether each is real on scenes."""
    out: dict[str, Any] = {}
    for ch in CHANNELS:
        found = [
            f.concept for f in factors.factors if f.evidence and (f.evidence.get(ch) or {}).get("supports")
        ]
        out[ch] = {
            "significant": found,
            "real": {c: truth[c]["gap"] >= real_gap for c in found if c in truth},
        }
    return out


def channel_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each channel's recall of the planted factor (relied-on cases), precision and clean false positives."""
    with_channels = [r for r in rows if r.get("channels")]
    if not with_channels:
        return {}
    relied = [r for r in with_channels if r["planted"] and r["relied"]]
    clean = [r for r in with_channels if not r["planted"]]
    none: dict[str, Any] = {"significant": [], "real": {}}
    out = {}
    for ch in CHANNELS:
        line = {id(r): r["channels"].get(ch, none) for r in with_channels}
        judged = [v for r in with_channels if r["planted"] for v in line[id(r)]["real"].values()]
        hits = [r["planted"] in line[id(r)]["significant"] for r in relied]
        out[ch] = {
            "recall": sum(hits) / len(hits) if hits else None,
            "precision": sum(judged) / len(judged) if judged else None,
            "n_significant": len(judged),
            "clean_false_positives": sum(len(line[id(r)]["significant"]) for r in clean),
        }
    return out
