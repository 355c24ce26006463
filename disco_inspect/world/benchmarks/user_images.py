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


#: The parts of an evidence line a benchmark row keeps (enough to judge any candidate rule afterwards).
LINE_KEYS = (
    "effect",
    "ci_low",
    "ci_high",
    "q_value",
    "n",
    "supports",
    "contradicts",
    "took_rate",
    "editable",
    "also_moved",
)


def channel_row(factors: Any, truth: dict[str, dict[str, float]], real_gap: float) -> dict[str, Any]:
    """Per channel: the concepts it calls significant (``supports``), whether each is real on scenes, and every
    concept's evidence line in that channel (``lines``, with the concept's gap on scenes) so that candidate
    confirmation rules (:data:`CANDIDATE_RULES`) can be judged on the stored rows."""
    out: dict[str, Any] = {}
    for ch in CHANNELS:
        lines = {f.concept: (f.evidence or {}).get(ch) for f in factors.factors}
        lines = {c: v for c, v in lines.items() if v}
        found = [c for c, v in lines.items() if v.get("supports")]
        out[ch] = {
            "significant": found,
            "real": {c: truth[c]["gap"] >= real_gap for c in found if c in truth},
            "lines": {
                c: {**{k: v[k] for k in LINE_KEYS if k in v}, "gap": truth[c]["gap"] if c in truth else None}
                for c, v in lines.items()
            },
        }
    return out


def _supports(lines: dict[str, Any], ch: str, min_low: float = 0.0) -> bool:
    """Whether channel ``ch`` supports the concept, with its interval's lower end at least ``min_low``."""
    line = lines.get(ch) or {}
    return bool(line.get("supports")) and (line.get("ci_low") or 0.0) >= min_low


def _agrees(lines: dict[str, Any], ch: str) -> bool:
    """Whether channel ``ch`` points the same way (a positive point effect) without necessarily being significant."""
    return ((lines.get(ch) or {}).get("effect") or 0.0) > 0


def _unexplained_edit(lines: dict[str, Any], by_generated: set[str]) -> bool:
    """The real-image edits support the concept and their factor edits moved no concept the generated scan
    confirms (an edit toward a blue background that also turns a blue-reliant shape blue is explained by it)."""
    moved = (lines.get("real_edit") or {}).get("also_moved") or []
    return _supports(lines, "real_edit") and not set(moved) & by_generated


#: Candidate confirmation rules over a concept's evidence lines (channel -> line) and the concepts the generated
#: channel supports in the same audit, judged by :func:`rule_summary` on the benchmark with images; the audit's own
#: rule is ``evidence.TRIANGULATION_RULE``.
CANDIDATE_RULES = {
    "generated": lambda ls, gen: _supports(ls, "generated"),
    "generated or edit": lambda ls, gen: _supports(ls, "generated") or _supports(ls, "real_edit"),
    "generated or edit (CI low >= 0.02)": lambda ls, gen: (
        _supports(ls, "generated") or _supports(ls, "real_edit", 0.02)
    ),
    "generated or edit with generated agreeing": lambda ls, gen: (
        _supports(ls, "generated") or (_supports(ls, "real_edit") and _agrees(ls, "generated"))
    ),
    "generated or edit not explained by a generated finding": lambda ls, gen: (
        _supports(ls, "generated") or _unexplained_edit(ls, gen)
    ),
    "two channels": lambda ls, gen: sum(_supports(ls, ch) for ch in CHANNELS) >= 2,
}


def _by_concept(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A row's evidence lines regrouped per concept: concept -> channel -> line."""
    out: dict[str, dict[str, Any]] = {}
    for ch, c in row["channels"].items():
        for concept, line in c.get("lines", {}).items():
            out.setdefault(concept, {})[ch] = line
    return out


def _has_also_moved(row: dict[str, Any]) -> bool:
    """Whether a row's edit lines record what else the edits moved (rows before it was measured do not)."""
    return any(
        "also_moved" in line for line in row["channels"].get("real_edit", {}).get("lines", {}).values()
    )


def rule_summary(rows: list[dict[str, Any]], real_gap: float) -> dict[str, Any]:
    """Per candidate rule: recall of the planted factor (relied-on cases), precision of what it confirms (real when
    the concept's gap on scenes is >= ``real_gap``) and confirmations on the clean classifiers; rows recorded
    before lines were kept are skipped (``n_rows`` says how many were judged; ``n_rows_with_also_moved`` how many
    record what else the edits moved: on the others the "not explained" rule is "generated or edit")."""
    judged = [r for r in rows if r.get("channels") and any("lines" in c for c in r["channels"].values())]
    out = {}
    for name, rule in CANDIDATE_RULES.items():
        hits, real, clean = [], [], 0
        for r in judged:
            lines = _by_concept(r)
            by_generated = {c for c, ls in lines.items() if _supports(ls, "generated")}
            confirmed = {c: ls for c, ls in lines.items() if rule(ls, by_generated)}
            if not r["planted"]:
                clean += len(confirmed)
                continue
            gaps = [next(iter(ls.values()))["gap"] for ls in confirmed.values()]
            real += [g is not None and g >= real_gap for g in gaps]
            if r["relied"]:
                hits.append(r["planted"] in confirmed)
        out[name] = {
            "recall": sum(hits) / len(hits) if hits else None,
            "precision": sum(real) / len(real) if real else None,
            "n_confirmed": len(real),
            "clean_confirmations": clean,
            "n_rows": len(judged),
            "n_rows_with_also_moved": sum(_has_also_moved(r) for r in judged),
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
