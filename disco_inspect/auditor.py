"""`audit`: train (or reuse) the class token, then explain what it changed and whether the classifier uses it.

Data flows one way: train_token (run folder) -> paired evaluation images with/without the token ->
concept scores -> factor statistics -> interventions on the top factors -> Captum attributions with
cross-attention object masks -> :class:`AuditResult` (which the report module renders).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ConfigMixin, DiscoConfig
from .defaults import default_config, default_scorer, is_world_pipeline  # noqa: F401 - re-exported
from .errors import DiscoInspectError

logger = logging.getLogger(__name__)


@dataclass
class AuditSettings(ConfigMixin):
    """Settings of the analysis that follows the token optimisation."""

    eval_seeds: int = 32
    """Paired evaluation images (baseline and token, same seed and template)."""
    eval_seed: int = 1000
    """First evaluation seed (distinct from the training seeds)."""
    alpha: float = 0.05
    """False-discovery rate across concepts; also the level of the intervention tests (Bonferroni)."""
    min_effect: float = 0.05
    """Smallest shift of concept presence that counts as a factor."""
    confirm_top: int = 3
    """Significant factors confirmed by intervention."""
    intervention_seeds: int = 16
    """Paired seeds per intervention (each concept's prompt vs its contrasts)."""
    saturated_intervention_seeds: int | None = None
    """Paired seeds per intervention when the classifier already recognises the class at baseline (the saturated
    regime compresses every effect, so the same test needs more seeds; e.g. 64). ``None``: ``intervention_seeds``."""
    confirm_min_effect: float = 0.05
    """Smallest rise of the target probability that confirms a factor."""
    scan_scale: str = "p"
    """What the scan measures: ``p`` (the target probability), ``logodds`` (its log-odds, which keep a signal when
    the classifier already recognises the class) or ``auto`` (log-odds in the saturated regime, else p). Off by
    default: without a reference, log-odds also confirm what every classifier does on generated images (larger,
    whiter shapes raise confidence), see README "The saturated stratum"."""
    confirm_min_logodds: float = 1.0
    """Smallest rise of the target log-odds that confirms a factor when the scan runs on log-odds."""
    confirm_differential: bool = False
    """With a reference classifier: confirm a factor only when the audited model relies on it *more* than the
    reference does (the differential effect is significant too)."""
    attribution_images: int = 6
    """Images per side (baseline/token) with Captum attributions; 0 disables the section."""
    attribution_methods: tuple[str, ...] = ("integrated_gradients", "grad_cam", "occlusion")
    mask_threshold: float = 0.5
    strip_seeds: int = 4
    """Seeds shown in the trajectory strips of the report."""
    scan: bool = True
    """Intervene on every concept of the scorer's bank (false-discovery control across concepts), not only on the
    factors the token nominated: finds shortcuts the token optimisation missed. ``False``: confirm the top
    ``confirm_top`` significant factors only (Bonferroni)."""
    null_control: bool = True
    """Test concept shifts against control tokens (the untrained token and ``control_draws`` tokens moved as far
    as the learned one in random directions), so drift alone is never significant."""
    control_draws: int = 3
    """Random-direction control tokens (besides the untrained one)."""

    def __post_init__(self) -> None:
        self.attribution_methods = tuple(self.attribution_methods)
        self.validate()

    def validate(self) -> None:
        """Check every value; raise :class:`DiscoInspectError` naming the first bad one."""
        for name in ("eval_seeds", "intervention_seeds"):
            if int(getattr(self, name)) < 4:
                raise DiscoInspectError(
                    f"`{name}` = {getattr(self, name)!r} is too small; use at least 4 paired seeds."
                )
        if self.saturated_intervention_seeds is not None and int(self.saturated_intervention_seeds) < 4:
            raise DiscoInspectError(
                f"`saturated_intervention_seeds` = {self.saturated_intervention_seeds!r} is too small; use at least "
                "4 paired seeds, or None for `intervention_seeds`."
            )
        for name in ("confirm_top", "attribution_images", "strip_seeds", "control_draws"):
            if int(getattr(self, name)) < 0:
                raise DiscoInspectError(
                    f"`{name}` = {getattr(self, name)!r} is invalid; use an integer >= 0."
                )
        if not 0 < self.alpha < 1:
            raise DiscoInspectError(f"`alpha` = {self.alpha!r} is invalid; use a rate in (0, 1), e.g. 0.05.")
        if self.scan_scale not in ("p", "logodds", "auto"):
            raise DiscoInspectError(
                f"`scan_scale` = {self.scan_scale!r} is invalid; use 'p', 'logodds' or 'auto'."
            )
        if not self.confirm_min_logodds >= 0:
            raise DiscoInspectError(
                f"`confirm_min_logodds` = {self.confirm_min_logodds!r} is invalid; use a number >= 0, e.g. 1.0."
            )
        if not 0 < self.mask_threshold < 1:
            raise DiscoInspectError(
                f"`mask_threshold` = {self.mask_threshold!r} is invalid; use a number in (0, 1)."
            )


@dataclass
class AuditResult:
    """Everything the report shows; :meth:`to_dict` is ``report.json``."""

    class_name: str
    target: int
    classifier: dict[str, Any]
    pipeline: dict[str, Any]
    config: DiscoConfig
    settings: AuditSettings
    run: Any
    """The :class:`~disco_inspect.engine.token_run.TokenRun`."""
    scorer: str
    concepts: list[str]
    eval_seeds: list[int]
    intervention_seeds: list[int]
    """The paired seeds of every intervention (more in the saturated regime with ``saturated_intervention_seeds``)."""
    eval_prompts: dict[str, list[str]]
    baseline_probs: torch.Tensor
    token_probs: torch.Tensor
    factors: Any
    """The :class:`~disco_inspect.analysis.factors.FactorAudit`."""
    trajectory_concepts: dict[str, list[float]] = field(default_factory=dict)
    attribution: dict[str, Any] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    """``baseline``/``token`` evaluation images, their ``*_masks``/``*_attention``, ``attr_*`` saliency maps and
    ``intervention_*`` examples."""
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    control: dict[str, Any] | None = None
    """The null control: the untrained token's and random-direction tokens' distance, and per control the mean
    target probability on the evaluation seeds."""
    reference: dict[str, Any] | None = None
    """The reference classifier (differential audit): its description and its target probabilities on the
    evaluation images."""
    edits: dict[str, Any] = field(default_factory=dict, repr=False)
    """Edits of the user's images (``audit(..., images=...)``): ``href``, ``method``, ``summary``, per-image
    ``images`` rows, ``failures`` and the image ``tensors``; empty without images."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``report.json`` (schema: :data:`disco_inspect.report.schema.REPORT_SCHEMA`)."""
        from .report.build import report_dict

        return report_dict(self)

    def _repr_html_(self) -> str:
        from .report.html import render_report

        return render_report(self, inline=True)

    def save(self, out: str | Path | None = None) -> Path:
        """Write ``index.html``, ``report.json`` and figures to ``out`` (default: the audit folder)."""
        from .report.html import write_report

        target = Path(out) if out is not None else self.out_dir
        if target is None:
            raise DiscoInspectError("This audit has no folder; pass `out=` to save the report.")
        return write_report(self, target)


def _trajectory_scores(run: Any, scorer: Any) -> tuple[list[int], torch.Tensor, list[float]] | None:
    """Mean concept presence and target probability per recorded iteration (baseline first, as step -1)."""
    from .engine.run_folder import load_pngs

    if run.run_dir is None:
        return None
    steps, rows, targets = [], [], []
    base = load_pngs(run.image_paths("baseline"))
    if base is not None and run.baseline.get("target_prob_mean") is not None:
        steps.append(-1)
        rows.append(scorer.score(base).mean(0))
        targets.append(float(run.baseline["target_prob_mean"]))
    for rec in run.trajectory:
        if not rec.get(
            "validation", True
        ):  # with a seed pool: only iterations on the baseline's seeds compare
            continue
        imgs = load_pngs(run.image_paths(rec["step"]))
        if imgs is None:
            continue
        steps.append(rec["step"])
        rows.append(scorer.score(imgs).mean(0))
        targets.append(float(rec["target_prob_mean"]))
    if len(rows) < 3:
        return None
    return steps, torch.stack(rows), targets


def audit(
    pipe: Any,
    classifier: Any,
    target: str | int,
    *,
    scorer: Any = None,
    config: DiscoConfig | None = None,
    settings: AuditSettings | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    save: bool = True,
    overwrite: bool = False,
    allow_unfinished: bool = False,
    reference: Any = None,
    user_images: Any = None,
    edit_settings: Any = None,
) -> AuditResult:
    """Audit ``classifier`` for class ``target`` through ``pipe``.

    Args:
        pipe: a diffusers Stable Diffusion pipeline (:func:`load_pipeline`; ``"world"`` offline).
        classifier: a :class:`Classifier` or anything :func:`load_classifier` accepts.
        target: class name or index.
        scorer: a :class:`ConceptScorer` (default: the world's oracle on the world pipeline).
        config: token optimisation settings (default: :func:`default_config` for the pipeline).
        settings: analysis settings (:class:`AuditSettings`).
        out: audit folder; the token run lives in ``out/run`` and is reused when it matches.
        save: write ``index.html`` and ``report.json`` into ``out``.
        overwrite: retrain the token even if ``out/run`` holds a finished (or a different) run.
        allow_unfinished: on Ctrl-C during training, go on and report the best token so far (the report says the
            run was interrupted). By default the interrupt propagates and nothing is reported.
        reference: a reference classifier (e.g. a clean model of the same task, anything :func:`load_classifier`
            accepts): the same images are scored by it and factors are ranked by how much *more* the audited
            classifier relies on them (a "bias" ranking). Without it the ranking is of "reliance". A list of them
            (e.g. clean classifiers trained with different seeds) makes the spread between models the null: with
            ``AuditSettings(confirm_differential=True)`` a factor is confirmed only when the audited model's effect
            lies beyond what the references show.
        user_images: the user's own images (folder, glob, files): after the audit they are inverted and edited with the
            learned token (:func:`disco_inspect.editor.edit_images`, into ``out/edits``) and the report gains their
            section. Needs ``out``.
        edit_settings: :class:`~disco_inspect.editor.EditSettings` for ``user_images``.
    """
    from .analysis.attention import object_masks
    from .analysis.factors import discover_factors
    from .engine.optimize import RunInterrupted, as_classifier, package_versions, run_identity, train_token
    from .engine.records import target_probabilities

    settings = settings or AuditSettings()
    if settings.confirm_differential and reference is None:
        raise DiscoInspectError(
            "`confirm_differential` needs a reference classifier; pass `reference=` (e.g. a clean model of the "
            "same task) or leave it False."
        )
    cfg = config or default_config(pipe)
    clf = as_classifier(classifier)
    refs = (
        []
        if reference is None
        else [as_classifier(r) for r in (reference if isinstance(reference, list | tuple) else [reference])]
    )
    ref = refs[0] if len(refs) == 1 else refs or None
    scorer = scorer if scorer is not None else default_scorer(pipe)
    timings: dict[str, float] = {}
    out_dir = Path(out) if out is not None else None
    if user_images is not None:  # checked before minutes of training
        from .editing.images import find_images

        if out_dir is None:
            raise DiscoInspectError("`user_images` are edited into the audit folder; pass `out` as well.")
        find_images(user_images)

    t = time.perf_counter()
    try:
        run = train_token(
            pipe,
            clf,
            target,
            config=cfg,
            out=None if out_dir is None else out_dir / "run",
            overwrite=overwrite,
            progress=progress,
        )
    except RunInterrupted as e:
        if not allow_unfinished:
            raise
        logger.warning(
            "Reporting an unfinished token (interrupted after %d iterations).", len(e.run.trajectory)
        )
        run = e.run
    timings["token"] = time.perf_counter() - t
    target_idx, class_name = run.target, run.class_name
    ref_targets = [r.resolve_class(class_name) for r in refs]
    ref_target = ref_targets[0] if len(refs) == 1 else ref_targets or None

    t = time.perf_counter()
    eval_cfg = cfg.replace(n_images=settings.eval_seeds, seed=settings.eval_seed, seed_pool=0)
    seeds = eval_cfg.seeds()
    prompts = {
        "baseline": eval_cfg.prompts(class_name, with_token=False),
        "token": eval_cfg.prompts(class_name),
    }
    gen = {
        "num_inference_steps": cfg.num_inference_steps,
        "guidance_scale": cfg.guidance_scale,
        "height": cfg.height,
        "width": cfg.width,
    }
    images: dict[str, torch.Tensor] = {}
    for side in ("baseline", "token"):  # one pass: images plus cross-attention object masks
        images[side], images[f"{side}_attention"], images[f"{side}_masks"] = object_masks(
            pipe, prompts[side], seeds, class_name, threshold=settings.mask_threshold, **gen
        )
    probs = {k: target_probabilities(clf, images[k], target_idx) for k in ("baseline", "token")}
    scores = {k: scorer.score(images[k]) for k in ("baseline", "token")}
    reference_info = None
    if refs:
        reference_info = {  # several references: the first's identity and index, probabilities over all
            "classifier": run_identity(refs[0], pipe)["classifier"],
            "target_index": ref_targets[0],
            **{
                f"{k}_target_probs": [
                    float(v)
                    for v in torch.stack(
                        [
                            target_probabilities(r, images[k], t)
                            for r, t in zip(refs, ref_targets, strict=True)
                        ]
                    ).mean(0)
                ]
                for k in ("baseline", "token")
            },
        }
        if len(refs) > 1:
            reference_info["models"] = [run_identity(r, pipe)["classifier"] for r in refs]
    timings["evaluation"] = time.perf_counter() - t

    t = time.perf_counter()
    control_scores, control = None, None
    if settings.null_control and run.trajectory:
        control_scores, control = _null_control(
            pipe, clf, run, scorer, prompts["token"], seeds, gen, settings
        )
    timings["null_control"] = time.perf_counter() - t

    t = time.perf_counter()
    traj = _trajectory_scores(run, scorer)
    factors = discover_factors(
        scorer.concepts,
        scores["baseline"],
        scores["token"],
        control_scores=control_scores,
        trajectory_scores=None if traj is None else traj[1],
        trajectory_target=None if traj is None else traj[2],
        alpha=settings.alpha,
        min_effect=settings.min_effect,
    )
    trajectory_concepts: dict[str, list[float]] = {}
    if traj is not None:
        trajectory_concepts = {
            "steps": traj[0],
            "target_prob": traj[2],
            **{c: [float(v) for v in traj[1][:, i]] for i, c in enumerate(scorer.concepts)},
        }
    timings["factors"] = time.perf_counter() - t

    t = time.perf_counter()
    if settings.scan and hasattr(scorer, "intervention"):
        _scan(
            pipe,
            clf,
            target_idx,
            class_name,
            scorer,
            factors,
            settings,
            gen,
            images,
            progress,
            ref,
            ref_target,
            scan_scale(settings, run.regime),
            run.regime,
        )
    else:
        _confirm(
            pipe, clf, target_idx, class_name, scorer, factors, settings, gen, images, progress, run.regime
        )
    timings["interventions"] = time.perf_counter() - t

    t = time.perf_counter()
    attribution = _attributions(clf, target_idx, settings, images)
    timings["attributions"] = time.perf_counter() - t

    edits: dict[str, Any] = {}
    if user_images is not None:
        from .editor import edit_images

        t = time.perf_counter()
        job = edit_images(
            clf,
            target_idx,
            user_images,
            run.token_path,
            pipe=pipe,
            out=out_dir / "edits",
            settings=edit_settings,
            scorer=scorer,
            progress=progress,
        )
        edits = {
            "href": "edits/index.html",
            "method": job.doc["method"],
            "summary": job.doc["summary"],
            "images": job.doc["images"],
            "failures": job.doc["failures"],
            "tensors": job.images,
        }
        timings["edits"] = time.perf_counter() - t

    result = AuditResult(
        class_name=class_name,
        target=target_idx,
        **run_identity(clf, pipe),
        config=cfg,
        settings=settings,
        run=run,
        scorer=type(scorer).__name__,
        concepts=list(scorer.concepts),
        eval_seeds=seeds,
        intervention_seeds=intervention_seed_list(settings, run.regime),
        eval_prompts=prompts,
        baseline_probs=probs["baseline"],
        token_probs=probs["token"],
        factors=factors,
        trajectory_concepts=trajectory_concepts,
        attribution=attribution,
        images=images,
        timings=timings,
        versions=package_versions(),
        out_dir=out_dir,
        control=control,
        reference=reference_info,
        edits=edits,
    )
    if save and out_dir is not None:
        t = time.perf_counter()
        result.save(out_dir)
        timings["report"] = time.perf_counter() - t
    return result


def _confirm(
    pipe: Any,
    clf: Any,
    target: int,
    class_name: str,
    scorer: Any,
    factors: Any,
    settings: AuditSettings,
    gen: dict[str, Any],
    images: dict[str, torch.Tensor],
    progress: bool,
    regime: str = "learning",
) -> None:
    """Intervene on the top significant factors (Bonferroni over those tested)."""
    from tqdm.auto import tqdm

    from .analysis.intervention import intervene

    top = factors.top(settings.confirm_top)
    if not top or not hasattr(scorer, "intervention"):
        factors.rank_by_reliance()  # nothing to confirm: still rank (and say which ranking the report shows)
        return
    seeds = intervention_seed_list(settings, regime)
    for f in tqdm(top, desc="interventions", disable=not progress):
        factor_prompt, contrasts = scorer.intervention(f.concept, class_name)
        f.intervention, with_f, without_f = intervene(
            pipe,
            clf,
            target,
            factor_prompt,
            contrasts,
            seeds,
            alpha=settings.alpha / len(top),
            min_effect=settings.confirm_min_effect,
            **gen,
        )
        images[f"intervention_{f.concept}_factor"] = with_f[:4]
        images[f"intervention_{f.concept}_contrast"] = without_f[:4]
    factors.rank_by_reliance()


def _null_control(
    pipe: Any,
    clf: Any,
    run: Any,
    scorer: Any,
    prompts: list[str],
    seeds: list[int],
    gen: dict[str, Any],
    settings: AuditSettings,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Concept scores under control tokens, averaged per seed: the untrained token (its initial embedding) and
    ``control_draws`` tokens as far from it as the learned one, in random directions (seeded). Same prompts and
    seeds as the token images; the learned embedding is put back afterwards."""
    from .engine.records import target_probabilities
    from .engine.sampling import generate
    from .engine.token import put_token

    init = run.initial_embedding.float().reshape(-1)
    learned = run.embedding.float().reshape(-1)
    distance = float((learned - init).norm())
    gen_rng = torch.Generator().manual_seed(settings.eval_seed)
    vectors = {"untrained": init}
    for i in range(settings.control_draws):
        u = torch.randn(init.shape, generator=gen_rng)
        vectors[f"random_{i}"] = init + distance * u / u.norm()
    scores, per_control = [], {}
    try:
        for name, vec in vectors.items():
            put_token(pipe, run.token, vec, source=f"The {name} control")
            imgs = generate(pipe, prompts, seeds, **gen)
            scores.append(scorer.score(imgs))
            per_control[name] = {"target_prob": float(target_probabilities(clf, imgs, run.target).mean())}
    finally:
        put_token(pipe, run.token, learned, source="The learned token")
    info = {
        "distance": distance,
        "draws": settings.control_draws,
        "controls": per_control,
        "method": "untrained token + tokens moved the learned distance in random directions; concept presence "
        "averaged over controls per seed",
    }
    return torch.stack(scores).mean(0), info


def intervention_seed_list(settings: AuditSettings, regime: str) -> list[int]:
    """The paired seeds of every intervention: ``settings.intervention_seeds`` of them, or
    ``settings.saturated_intervention_seeds`` in the saturated regime when set (the same first seed either way)."""
    n = settings.intervention_seeds
    if regime == "saturated" and settings.saturated_intervention_seeds is not None:
        n = settings.saturated_intervention_seeds
    return [settings.eval_seed + 10_000 + i for i in range(int(n))]


def scan_scale(settings: AuditSettings, regime: str) -> str:
    """The scale the scan measures effects on: ``settings.scan_scale``, with ``auto`` resolved by the regime
    (log-odds when the classifier already recognises the class at baseline, else the probability)."""
    if settings.scan_scale == "auto":
        return "logodds" if regime == "saturated" else "p"
    return settings.scan_scale


def _scan(
    pipe: Any,
    clf: Any,
    target: int,
    class_name: str,
    scorer: Any,
    factors: Any,
    settings: AuditSettings,
    gen: dict[str, Any],
    images: dict[str, torch.Tensor],
    progress: bool,
    ref: Any,
    ref_target: int | list[int] | None,
    scale: str = "p",
    regime: str = "learning",
) -> None:
    """Intervene on every concept (BH across concepts); example images for the top reported factors."""
    from .analysis.scan import scan_interventions

    seeds = intervention_seed_list(settings, regime)
    margin = settings.confirm_min_effect if scale == "p" else settings.confirm_min_logodds
    differential = settings.confirm_differential and ref is not None
    scan = scan_interventions(
        pipe,
        clf,
        target,
        class_name,
        scorer,
        seeds,
        concepts=[f.concept for f in factors.factors],
        reference=ref,
        reference_target=ref_target,
        alpha=settings.alpha,
        min_effect=margin,
        scale=scale,
        require_differential=differential,
        progress=progress,
        **gen,
    )
    for f in factors.factors:
        f.intervention = scan.interventions[f.concept]
    factors.rank_by_reliance()
    factors.method["interventions"] = (
        f"every concept scanned: factor prompt vs its contrasts on {len(seeds)} paired "
        f"seeds, effect on {'the target probability' if scale == 'p' else 'the log-odds of the target'}, "
        f"one-sided sign-flip test of H0: effect <= {margin}, Benjamini-Hochberg across concepts"
        + (
            "; confirmed only when the differential effect (audited minus reference) is significant too"
            + (
                " (between models: beyond the references' spread, Student's t prediction interval)"
                if isinstance(ref, list)
                else ""
            )
            if differential
            else ""
        )
    )
    factors.method["scan_scale"] = scale
    factors.method["confirm_min"] = margin
    for f in factors.top(settings.confirm_top):
        iv = f.intervention
        images[f"intervention_{f.concept}_factor"] = scan.examples[iv.factor_prompt]
        images[f"intervention_{f.concept}_contrast"] = scan.examples[iv.contrast_prompts[0]]


def _attributions(
    clf: Any, target: int, settings: AuditSettings, images: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Captum maps on the first evaluation images and their context reliance against the object masks."""
    from .analysis.attribution import attribute, context_reliance

    n = min(settings.attribution_images, len(images["baseline"]))
    if n == 0:
        return {}
    out: dict[str, Any] = {"n_images": n, "methods": {}, "skipped": {}, "mask_area": {}}
    for side in ("baseline", "token"):
        imgs, masks = images[side][:n], images[f"{side}_masks"][:n]
        attrs = attribute(clf, imgs, target, methods=settings.attribution_methods)
        out["skipped"].update(attrs.skipped)
        for method, maps in attrs.maps.items():
            images[f"attr_{side}_{method}"] = maps
            share = context_reliance(maps, masks)
            out["methods"].setdefault(method, {})[side] = {
                "context_reliance": float(share.mean()),
                "per_image": [float(v) for v in share],
            }
        out["mask_area"][side] = float(masks.mean())
    return out
