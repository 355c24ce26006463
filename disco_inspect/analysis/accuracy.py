"""The paper's Table 1 over many classes: top-1/top-5 accuracy of generated images without and with the token,
per class and on average, with bootstrap confidence intervals.

Each class contributes paired images (the same seeds with and without the token). A class's interval resamples its
seeds; the mean row's interval resamples seeds within every class (a stratified bootstrap: the classes are the
ones audited, not a sample of classes), so the mean of many classes with 100 seeds each gets a narrow interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import DiscoInspectError

#: Metrics of a Table-1 row: top-1 and top-5 accuracy.
METRICS = ("top1", "top5")


def correctness(items: Sequence[Mapping[str, Any]], target: int) -> dict[str, torch.Tensor]:
    """Per-image 0/1 top-1 and top-5 correctness of evaluation records (``pred`` and ``topk`` fields)."""
    return {
        "top1": torch.tensor([float(r["pred"] == target) for r in items], dtype=torch.float64),
        "top5": torch.tensor(
            [float(any(t[0] == target for t in r["topk"][:5])) for r in items], dtype=torch.float64
        ),
    }


def _interval(boot: torch.Tensor, level: float) -> list[float]:
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=boot.dtype)
    lo, hi = torch.quantile(boot, q)
    return [float(lo), float(hi)]


def accuracy_table(
    results: Sequence[Mapping[str, Any]], *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Table 1 from per-class evaluations.

    Args:
        results: one mapping per class with ``class_name``, ``target`` (index in the scoring classifier),
            ``baseline_items`` and ``token_items`` (paired evaluation records, as
            :meth:`disco_inspect.engine.evaluate.AccuracyResult.to_dict` gives), and optionally ``model``.
        level: confidence level of the percentile bootstrap intervals.
        n_boot: bootstrap resamples.

    Returns:
        ``{"level", "n_boot", "rows": [...], "mean": {...}}``. Each row (and the mean) holds, for ``top1`` and
        ``top5``: ``baseline``, ``token``, ``gain`` (token - baseline, paired) and a ``[low, high]`` interval of each,
        plus ``n_seeds``.
    """
    if not results:
        raise DiscoInspectError("`results` is empty; evaluate at least one class.")
    if not 0 < level < 1:
        raise DiscoInspectError(f"`level` = {level!r} is invalid; use a number in (0, 1) such as 0.95.")
    if n_boot < 1:
        raise DiscoInspectError(f"`n_boot` = {n_boot} is invalid; use an integer >= 1 (e.g. 2000).")
    gen = torch.Generator().manual_seed(seed)
    rows = []
    strata = []
    for r in results:
        base, tok = correctness(r["baseline_items"], r["target"]), correctness(r["token_items"], r["target"])
        n = len(base["top1"])
        if n == 0 or n != len(tok["top1"]):
            raise DiscoInspectError(
                f"class {r['class_name']!r} has {n} baseline and {len(tok['top1'])} token images; the evaluation "
                "needs the same seeds (>= 1) with and without the token."
            )
        idx = torch.randint(0, n, (n_boot, n), generator=gen)
        row: dict[str, Any] = {"class_name": r["class_name"], "n_seeds": n}
        if r.get("model") is not None:
            row["model"] = r["model"]
        boots = {}
        for m in METRICS:
            b, t = base[m], tok[m]
            bb, tb = b[idx].mean(1), t[idx].mean(1)
            boots[m] = (bb, tb)
            row[m] = {
                "baseline": float(b.mean()),
                "token": float(t.mean()),
                "gain": float((t - b).mean()),
                "baseline_ci": _interval(bb, level),
                "token_ci": _interval(tb, level),
                "gain_ci": _interval(tb - bb, level),
            }
        rows.append(row)
        strata.append(boots)
    mean: dict[str, Any] = {"n_classes": len(rows), "n_seeds": sum(r["n_seeds"] for r in rows)}
    for m in METRICS:
        bb = torch.stack([s[m][0] for s in strata]).mean(0)
        tb = torch.stack([s[m][1] for s in strata]).mean(0)
        base_mean = sum(r[m]["baseline"] for r in rows) / len(rows)
        tok_mean = sum(r[m]["token"] for r in rows) / len(rows)
        mean[m] = {
            "baseline": base_mean,
            "token": tok_mean,
            "gain": tok_mean - base_mean,
            "baseline_ci": _interval(bb, level),
            "token_ci": _interval(tb, level),
            "gain_ci": _interval(tb - bb, level),
        }
    return {"level": level, "n_boot": n_boot, "rows": rows, "mean": mean}


def format_accuracy_table(table: Mapping[str, Any]) -> str:
    """Markdown: one row per class and the mean, top-1 and top-5 without/with the token and the gain with its
    interval."""
    pct = int(round(table["level"] * 100))
    with_model = any("model" in r for r in table["rows"])
    head = ["model"] if with_model else []
    head += ["class", "seeds", "top-1 baseline", "top-1 with token", f"top-1 gain [{pct}% CI]"]
    head += ["top-5 baseline", "top-5 with token", f"top-5 gain [{pct}% CI]"]

    def cells(r: Mapping[str, Any]) -> list[str]:
        out = []
        for m in METRICS:
            g = r[m]
            out += [
                f"{g['baseline']:.3f}",
                f"{g['token']:.3f}",
                f"{g['gain']:+.3f} [{g['gain_ci'][0]:+.3f}, {g['gain_ci'][1]:+.3f}]",
            ]
        return out

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        lines.append(
            "| "
            + " | ".join(
                ([r.get("model", "")] if with_model else []) + [r["class_name"], str(r["n_seeds"])] + cells(r)
            )
            + " |"
        )
    m = table["mean"]
    lines.append(
        "| "
        + " | ".join(
            ([""] if with_model else []) + [f"**mean of {m['n_classes']}**", str(m["n_seeds"])] + cells(m)
        )
        + " |"
    )
    return "\n".join(lines)
