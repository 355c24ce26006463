"""`report_dict`: the JSON document of an audit (``report.json``), every number of the report in it."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .schema import SCHEMA_VERSION


def _mean(xs: Any) -> float:
    return float(xs.float().mean()) if len(xs) else float("nan")


def report_dict(result: Any) -> dict[str, Any]:
    """Build ``report.json`` from an :class:`~disco_inspect.auditor.AuditResult` (see :data:`REPORT_SCHEMA`)."""
    from ..analysis.stats import paired_shift

    run, cfg = result.run, result.config
    shift = paired_shift(result.baseline_probs, result.token_probs, alternative="two-sided", seed=0)
    traj = [
        {k: r.get(k) for k in ("step", "loss", "accuracy", "top5_accuracy", "target_prob_mean", "token_dist")}
        for r in run.trajectory
    ]
    token_file = None
    if run.token_path is not None and run.token_path.exists() and result.out_dir is not None:
        try:
            token_file = str(run.token_path.relative_to(result.out_dir))
        except ValueError:
            token_file = str(run.token_path)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "audited": {
            "class_name": result.class_name,
            "target_index": result.target,
            "classifier": result.classifier,
            "pipeline": result.pipeline,
            "config": cfg.to_dict(),
            "settings": result.settings.to_dict(),
            "scorer": result.scorer,
            "concepts": result.concepts,
            "versions": result.versions,
            "seeds": {
                "train": cfg.seeds() if not cfg.seed_pool else [cfg.seed + i for i in range(cfg.seed_pool)],
                "eval": result.eval_seeds,
                "intervention": result.intervention_seeds,
            },
            "prompts": result.eval_prompts,
        },
        "token": {
            "token": run.token,
            "stopped": run.stopped,
            "best_step": run.best_step,
            "iterations": len(run.trajectory),
            "token_file": token_file,
            "objective": run.objective,
            "regime": run.regime,
            "baseline_target_prob": run.baseline.get("target_prob_mean"),
        },
        "control": result.control,
        "reference": result.reference,
        "trajectory": traj,
        "evaluation": {
            "n_pairs": len(result.eval_seeds),
            "baseline_target_prob": _mean(result.baseline_probs),
            "token_target_prob": _mean(result.token_probs),
            "target_prob_shift": {
                "effect": float(shift.effect[0]),
                "ci_low": float(shift.ci_low[0]),
                "ci_high": float(shift.ci_high[0]),
                "p_value": float(shift.p_value[0]),
            },
            "baseline_target_probs": [float(v) for v in result.baseline_probs],
            "token_target_probs": [float(v) for v in result.token_probs],
        },
        "factors": {
            **{k: v for k, v in result.factors.to_dict().items() if k != "factors"},
            "ranked": result.factors.to_dict()["factors"],
            "reported": [f.concept for f in result.factors.reported],
            "candidates": [f.concept for f in result.factors.candidates],
        },
        "trajectory_concepts": result.trajectory_concepts or None,
        "attribution": result.attribution or None,
        "evidence": evidence_summary(result),
        "timings": result.timings,
        "calls": {**result.calls, "total": _total_calls(result.calls)} if result.calls else None,
        **({"edits": {k: v for k, v in result.edits.items() if k != "tensors"}} if result.edits else {}),
    }


def _total_calls(calls: dict[str, dict[str, int]]) -> dict[str, int]:
    """The per-stage model calls summed over the stages."""
    keys = sorted({k for c in calls.values() for k in c})
    return {k: sum(c.get(k, 0) for c in calls.values()) for k in keys}


def evidence_summary(result: Any) -> dict[str, Any]:
    """report.json's ``evidence``: which evidence the audit had (generated seeds per concept, the user's images) and
    the one-line ``summary`` the console and the HTML show."""
    ivs = [f.intervention for f in result.factors.factors if f.intervention is not None]
    seeds = sorted({iv.n for iv in ivs})
    images = result.evidence.to_dict() if result.evidence is not None else None
    parts = []
    if seeds:
        parts.append(
            f"{seeds[0]}{'-' + str(seeds[-1]) if len(seeds) > 1 else ''} generated seeds per concept"
        )
    if images is not None:
        text = f"{images['n_read']} of your images"
        if images["n_off_class"]:
            text += f" ({images['n_off_class']} put in another class)"
        if images["n_unreadable"]:
            text += f", {images['n_unreadable']} unreadable"
        parts.append(text)
        real = images["real_data"]
        if real is None:
            parts.append(f"real data: {images['cannot_conclude']}")
        else:
            judged = sum(1 for s in real["slices"].values() if s["judgeable"])
            sig = [c for c, s in real["slices"].items() if s["significant"]]
            parts.append(
                f"real data: {len(sig)} of {judged} judgeable concepts significant"
                + (f" ({', '.join(sig[:3])})" if sig else "")
                + f", {len(real['slices']) - judged} not judgeable"
            )
        other = images.get("other_classes")
        if images.get("n_other"):
            raised = [c for c, s in (other or {}).get("slices", {}).items() if s["significant"]]
            parts.append(
                f"{images['n_other']} images of other classes: "
                + (f"{len(raised)} concepts raise p(target) there" if other else "too few to conclude")
                + (f" ({', '.join(raised[:3])})" if raised else "")
            )
    edits = result.real_edits.to_dict() if getattr(result, "real_edits", None) is not None else None
    if edits is not None:
        took = [e["took_rate"] for e in edits["concepts"].values()]
        sig = [c for c, e in edits["concepts"].items() if e["significant"]]
        parts.append(
            f"edits of {edits['n_images']} of your images toward {len(took)} concepts took on "
            f"{sum(took) / len(took):.0%}; {len(sig)} significant"
            + (f" ({', '.join(sig[:3])})" if sig else "")
        )
    return {
        "summary": "; ".join(parts) if parts else "no intervention ran",
        "generated_seeds": {"min": seeds[0], "max": seeds[-1]} if seeds else None,
        "images": images,
        "real_edits": edits,
    }
