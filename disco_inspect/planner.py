"""`plan_audit`: what one audit will cost, per stage, before anything is generated.

Each stage's model calls are counted as :mod:`~disco_inspect.engine.counting` counts them during the audit (rows,
not calls: a guided step on 8 images is 16 UNet evaluations), as a range ``(least, most)``: the token loop stops
early (accuracy or patience), the adaptive scan spends its second stage only on undecided concepts and only in the
regime it covers (the regime is known after the token's baseline), so the plan gives both ends. The time is an
*estimate*: each count times the cost of one UNet row, one VAE decode and one classifier image, measured by one
probe call each on the user's device (:func:`probe_costs`); a UNet row under autograd is counted as
:data:`GRAD_COST` forward rows (forward plus backward). The attributions and the stages of the user's images (the
real-data slice, inversion and token edits, the real-image counterfactual scan) are planned in
:mod:`~disco_inspect.planner_images`; report.json's ``calls`` has every stage's actual counts.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .engine.counting import COUNTS, StagePlan, add_counts, stage

#: Rows of the probe's batches (the audit generates in batches of 8 to 16).
PROBE_ROWS = 8
#: A UNet row with gradients costs about this many forward rows (forward, backward through activations).
GRAD_COST = 3.0


@dataclass
class AuditPlan:
    """The audit's stages (:class:`StagePlan`), the probed unit costs (seconds) and the estimated time."""

    stages: dict[str, StagePlan]
    unit_seconds: dict[str, float] = field(default_factory=dict)
    not_planned: list[str] = field(default_factory=list)

    def total(self) -> dict[str, tuple[int, int]]:
        """Every count summed over the stages."""
        return {k: tuple(sum(s.calls[k][i] for s in self.stages.values()) for i in (0, 1)) for k in COUNTS}

    def seconds(self) -> tuple[float, float] | None:
        """The estimated time ``(least, most)`` from the probed unit costs (``None`` without a probe)."""
        if not self.unit_seconds:
            return None
        u, t = self.unit_seconds, self.total()
        weight = {
            "unet": u["unet"],
            "unet_grad": GRAD_COST * u["unet"],
            "vae_decode": u["vae_decode"],
            "vae_encode": u["vae_decode"],
            "classifier_images": u["classifier_images"],
        }
        return tuple(sum(weight[k] * t[k][i] for k in COUNTS) for i in (0, 1))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plan, with the totals and the estimate."""
        return {
            "stages": {k: s.to_dict() for k, s in self.stages.items()},
            "total": {k: list(v) for k, v in self.total().items()},
            "unit_seconds": self.unit_seconds,
            "estimated_seconds": None if self.seconds() is None else list(self.seconds()),
            "not_planned": self.not_planned,
        }

    def format(self) -> str:
        """The plan as a table: one line per stage, then the totals and the estimate."""
        lines = [
            f"{'stage':<14} {'images':>13} {'UNet evals':>17} {'with grad':>15} {'VAE decodes':>13} "
            f"{'classifier':>13}"
        ]

        def r(v: tuple[int, int]) -> str:
            return f"{v[0]}" if v[0] == v[1] else f"{v[0]}-{v[1]}"

        for name, s in [*self.stages.items(), ("total", None)]:
            c = self.total() if s is None else s.calls
            images = (
                r(tuple(sum(x.images[i] for x in self.stages.values()) for i in (0, 1)))
                if s is None
                else r(s.images)
            )
            lines.append(
                f"{name:<14} {images:>13} {r(c['unet']):>17} {r(c['unet_grad']):>15} {r(c['vae_decode']):>13} "
                f"{r(c['classifier_images']):>13}"
            )
        secs = self.seconds()
        if secs is not None:
            lines.append(
                f"estimated time {secs[0] / 60:.1f}-{secs[1] / 60:.1f} min (an estimate: each count times one "
                "probed call on this device)"
            )
        if self.not_planned:
            lines.append("not planned (counted in report.json when they run): " + ", ".join(self.not_planned))
        return "\n".join(lines)


def _generation(pipe: Any, n: int, steps: int, guidance: float, grad_steps: int = 0) -> dict[str, int]:
    """The counts of generating ``n`` images (the last ``grad_steps`` UNet steps under autograd)."""
    from .engine.sampling import uses_cfg

    sched = copy.deepcopy(pipe.scheduler)
    sched.set_timesteps(steps)
    rows = n * (2 if uses_cfg(pipe, guidance) else 1)
    k = min(grad_steps, len(sched.timesteps))
    return {
        "unet": rows * (len(sched.timesteps) - k),
        "unet_grad": rows * k,
        "vae_decode": n,
        "vae_encode": 0,
        "classifier_images": n,
    }


def _token_stage(pipe: Any, cfg: Any) -> StagePlan:
    """The classifier's output check, the token's baseline images, then 1 to ``max_iters`` iterations."""
    n = cfg.n_images
    base = _generation(pipe, n, cfg.num_inference_steps, cfg.guidance_scale)
    it = _generation(pipe, n, cfg.num_inference_steps, cfg.guidance_scale, cfg.effective_grad_steps)
    check = {"classifier_images": 2}
    most = add_counts(check, base, *[it] * cfg.max_iters)
    note = "at most max_iters iterations (accuracy or patience may stop it sooner); 0 when out/run is reused"
    return stage((2 * n, n * (1 + cfg.max_iters)), add_counts(check, base, it), most, note)


def _scan_stage(
    pipe: Any, cfg: Any, settings: Any, scorer: Any, class_name: str, regimes: list[str]
) -> StagePlan:
    """The intervention scan: its distinct prompts on stage 1's seeds, plus stage 2's at most (the adaptive design
    in the regimes it covers)."""
    from .analysis.scan import scan_prompts
    from .auditor import extra_seed_list, intervention_seed_list, scan_generation

    if not hasattr(scorer, "intervention"):
        return stage((0, 0), {}, {}, "the scorer cannot intervene")
    concepts = list(scorer.concepts)
    if not settings.scan:  # the top significant factors only: none at least, the widest at most
        widest = sorted(concepts, key=lambda c: -len(scan_prompts(scorer, class_name, [c])))
        concepts = widest[: settings.confirm_top]
    n_prompts = len(scan_prompts(scorer, class_name, concepts))
    ends = []
    for regime in regimes:
        seeds = intervention_seed_list(settings, regime)
        ends += [len(seeds), len(seeds) + len(extra_seed_list(settings, seeds, regime))]
    lo, hi = (0 if not settings.scan else n_prompts * min(ends)), n_prompts * max(ends)

    steps = scan_generation({"num_inference_steps": cfg.num_inference_steps}, settings)["num_inference_steps"]

    def gen(n: int) -> dict[str, int]:
        return _generation(pipe, n, steps, cfg.guidance_scale)

    note = f"{n_prompts} prompts at {steps} steps; regime(s): {', '.join(regimes)}"
    return stage((lo, hi), gen(lo), gen(hi), note)


def plan_audit(
    pipe: Any,
    class_name: str,
    *,
    scorer: Any = None,
    config: Any = None,
    settings: Any = None,
    regime: str | None = None,
    classifier: Any = None,
    probe: bool = True,
    user_images: Any = None,
    edit_settings: Any = None,
) -> AuditPlan:
    """What :func:`~disco_inspect.auditor.audit` of ``class_name`` through ``pipe`` will cost, per stage, without
    generating anything (the same defaults as the audit for ``scorer``, ``config`` and ``settings``).

    Args:
        regime: ``learning`` or ``saturated`` when known (the token's baseline tells); ``None`` plans both.
        classifier: with ``probe``, timed on one image for the estimate.
        probe: time one UNet row, one VAE decode and one classifier image on the pipeline's device
            (:func:`probe_costs`) for the estimated time; ``False``: counts only.
        user_images: the audit's ``user_images`` (folder, glob, files, labelled tree) or their number: plans the
            real-data slice, the inversion and edits and the counterfactual scan (files are counted, not read).
        edit_settings: the audit's :class:`~disco_inspect.editor.EditSettings` for ``user_images``.
    """
    from .auditor import AuditSettings
    from .defaults import default_config, default_scorer
    from .planner_images import attribution_stage, count_user_images, image_stages

    cfg, s = config or default_config(pipe), settings or AuditSettings()
    scorer = scorer if scorer is not None else default_scorer(pipe)
    regimes = [regime] if regime else ["learning", "saturated"]

    def gen(n: int) -> dict[str, int]:
        return _generation(pipe, n, cfg.num_inference_steps, cfg.guidance_scale)

    e = s.eval_seeds
    controls = (1 + s.control_draws) * e if s.null_control else 0
    stages = {
        "token": _token_stage(pipe, cfg),
        "evaluation": stage((2 * e, 2 * e), add_counts(gen(e), gen(e)), add_counts(gen(e), gen(e))),
        "null_control": stage((controls, controls), gen(controls), gen(controls)),
        "interventions": _scan_stage(pipe, cfg, s, scorer, class_name, regimes),
    }
    stages["attributions"] = attribution_stage(pipe, s, classifier)
    not_planned: list[str] = []
    if user_images is not None:
        found = count_user_images(user_images, class_name, classifier)
        more, not_planned = image_stages(
            pipe,
            class_name,
            found,
            scorer=scorer,
            settings=s,
            edit_settings=edit_settings,
            classifier=classifier,
        )
        stages.update(more)
    units = probe_costs(pipe, classifier) if probe else {}
    return AuditPlan(stages, units, not_planned)


@torch.no_grad()
def probe_costs(pipe: Any, classifier: Any = None) -> dict[str, float]:
    """Seconds of one UNet row, one VAE decode and one classifier image on the pipeline's device and dtype: a batch
    of :data:`PROBE_ROWS` as the audit batches them, one warm-up call, then the median of three, per row."""
    from .engine.sampling import encode, image_size, unet_conditioning

    h, w = image_size(pipe)
    unet, vae = pipe.unet, pipe.vae
    shape = (PROBE_ROWS, unet.config.in_channels, h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    lat = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(pipe.device, unet.dtype)
    hidden = encode(pipe, [""]).expand(PROBE_ROWS, -1, -1)
    t = torch.tensor(pipe.scheduler.config.num_train_timesteps // 2, device=pipe.device)
    text = unet_conditioning(pipe, hidden, lat)
    calls = {
        "unet": lambda: unet(lat, t, return_dict=False, **text),
        "vae_decode": lambda: vae.decode(lat.to(vae.dtype), return_dict=False),
    }
    if classifier is not None:
        x = torch.rand(PROBE_ROWS, 3, h, w, generator=torch.Generator().manual_seed(0))
        calls["classifier_images"] = lambda: classifier(x)
    out = {k: _median_seconds(f) / PROBE_ROWS for k, f in calls.items()}
    out.setdefault("classifier_images", 0.0)
    return out


def _median_seconds(f: Any) -> float:
    """Median wall time of three calls of ``f`` after one warm-up (synchronising CUDA when it is used)."""
    f()
    times = []
    for _ in range(3):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        f()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[1]
