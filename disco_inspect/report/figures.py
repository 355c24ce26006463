"""Static matplotlib figures of an audit (PNG and PDF, for papers): trajectory curves and factor shifts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import missing_extra
from ..io import atomic_write


def _plt() -> Any:
    try:  # no matplotlib.use(): keep Jupyter's inline backend; headless runs fall back to Agg by themselves
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise missing_extra("matplotlib") from e
    return plt


def trajectory_figure(doc: dict[str, Any]) -> Any:
    """Mean target probability and top-1/top-5 accuracy per iteration (from report.json)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    traj = doc["trajectory"]
    steps = [r["step"] for r in traj]
    for key, label in (
        ("target_prob_mean", "mean p(target)"),
        ("accuracy", "top-1 acc."),
        ("top5_accuracy", "top-5 acc."),
    ):
        ax.plot(steps, [r[key] for r in traj], label=label, marker="." if len(steps) < 30 else None)
    ax.set_xlabel("iteration")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"DisCo for “{doc['audited']['class_name']}”", fontsize=10, parse_math=False)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def factor_figure(doc: dict[str, Any], k: int = 10) -> Any:
    """Horizontal bars of the top ``k`` presence shifts with 95 % intervals; significant ones in red."""
    plt = _plt()
    ranked = doc["factors"]["ranked"][:k][::-1]
    fig, ax = plt.subplots(figsize=(5, 0.9 + 0.28 * len(ranked)))
    y = range(len(ranked))
    err = [[f["effect"] - f["ci_low"] for f in ranked], [f["ci_high"] - f["effect"] for f in ranked]]
    ax.barh(
        list(y),
        [f["effect"] for f in ranked],
        xerr=err,
        color=["#c0392b" if f["significant"] else "#95a5a6" for f in ranked],
    )
    ax.set_yticks(
        list(y),
        [f["concept"] + (" ✓" if f["confirmed"] else "") for f in ranked],
        fontsize=8,
        parse_math=False,
    )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("presence shift (token − baseline)")
    fig.tight_layout()
    return fig


def save_figures(result: Any, doc: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``trajectory.{png,pdf}`` and ``factors.{png,pdf}`` into ``out``."""
    plt = _plt()
    out = Path(out)
    written = []
    figs = {"factors": factor_figure(doc)}
    if doc["trajectory"]:
        figs["trajectory"] = trajectory_figure(doc)
    for name, fig in figs.items():
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            atomic_write(path, lambda tmp, fig=fig, ext=ext: fig.savefig(tmp, format=ext, dpi=150))
            written.append(path)
        plt.close(fig)
    return written
