"""`audit`: train (or reuse) the class token, then explain what it changed and whether the classifier uses it.

Data flows one way: train_token (run folder) -> paired evaluation images with/without the token ->
concept scores -> factor statistics -> interventions on the top factors -> Captum attributions with
cross-attention object masks -> :class:`AuditResult` (which the report module renders).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .config import ConfigMixin, DiscoConfig
from .defaults import default_config, default_scorer, is_world_pipeline  # noqa: F401 - re-exported
from .engine.counting import StageClock
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
    """False-discovery rate across concepts, of the token shifts and of the interventions (Benjamini–Hochberg)."""
    min_effect: float = 0.05
    """Smallest shift of concept presence that counts as a factor."""
    confirm_top: int = 3
    """Significant factors confirmed by intervention."""
    intervention_seeds: int = 16
    """Paired seeds per intervention (each concept's prompt vs its contrasts)."""
    saturated_intervention_seeds: int | None = None
    """Paired seeds per intervention when the classifier already recognises the class at baseline (the saturated
    regime compresses every effect, so the same test needs more seeds; e.g. 64). ``None``: ``intervention_seeds``."""
    adaptive_scan: str = "saturated"
    """Where the scan spends more paired seeds on the concepts its first ``intervention_seeds`` leave undecided:
    ``saturated`` (only when the classifier already recognises the class at baseline, where every effect is
    compressed), ``all`` (every regime) or ``off``. Not ``all`` by default: on the randomised benchmark (seed 0) it
    added confirmations in the learning regime that are not real on rendered scenes (docs/benchmarks.md). A two-stage
    design
    (stop for efficacy at p <= alpha / 2K or for futility at p > 0.2, else fresh seeds up to
    ``max_intervention_seeds``; Fisher's product with the stage-wise ordering keeps every p-value valid for
    Benjamini–Hochberg). Each concept records the seeds it used."""
    max_intervention_seeds: int = 48
    """The most paired seeds any concept gets with ``adaptive_scan`` (stage 1 plus stage 2); at the default, a first
    stage as large (e.g. ``saturated_intervention_seeds=64``) runs alone."""
    scan_steps: int | None = None
    """Denoising steps of the intervention scan's images (the audit's largest stage); ``None``: the token run's
    ``num_inference_steps``. Fewer steps make each scan image cheaper (UNet calls fall in proportion); the paired
    factor-vs-contrast design compares images sampled alike, so only the scan's decisions can change (measure them:
    docs/benchmarks.md)."""
    confirm_min_effect: float = 0.05
    """Smallest rise of the target probability that confirms a factor."""
    scan_scale: str = "p"
    """What the scan measures: ``p`` (the target probability), ``logodds`` (its log-odds, which keep a signal when
    the classifier already recognises the class) or ``auto`` (log-odds in the saturated regime, else p). Off by
    default: without a reference, log-odds also confirm what every classifier does on generated images (larger,
    whiter shapes raise confidence), see docs/benchmarks.md, "The saturated stratum"."""
    confirm_min_logodds: float = 1.0
    """Smallest rise of the target log-odds that confirms a factor when the scan runs on log-odds."""
    confirm_differential: bool = False
    """With a reference classifier: confirm a factor only when the audited model relies on it *more* than the
    reference does (the differential effect is significant too)."""
    real_edit_images: int = 16
    """The user's images (the first, in file order) edited toward each shortlisted concept and its contrasts (the
    real-image counterfactual scan); 0 turns it off."""
    real_edit_concepts: int = 4
    """Concepts in that scan's shortlist: those the generated scan confirmed, then those the real data support, then
    the rest by the generated effect."""
    real_data_scale: str = "p"
    """What the real-data slice of the user's images compares: ``p`` (the target probability), ``logodds`` or
    ``auto`` (log-odds when the classifier already recognises the class on them). ``p`` by default: log-odds also
    flag what a clean classifier is merely more confident of (see :func:`~disco_inspect.analysis.evidence.image_evidence`)."""
    attribution_images: int = 6
    """Images per side (baseline/token) with Captum attributions; 0 disables the section."""
    attribution_methods: tuple[str, ...] = ("integrated_gradients", "grad_cam", "occlusion")
    mask_threshold: float = 0.5
    strip_seeds: int = 4
    """Seeds shown in the trajectory strips of the report."""
    scan: bool = True
    """Intervene on every concept of the scorer's bank (false-discovery control across concepts), not only on the
    factors the token nominated: finds shortcuts the token optimisation missed. ``False``: test only the top
    ``confirm_top`` significant factors, with the same rule (Benjamini–Hochberg across those)."""
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
        stage1 = max(self.intervention_seeds, self.saturated_intervention_seeds or 0)
        default_max = next(f.default for f in fields(self) if f.name == "max_intervention_seeds")
        if self.max_intervention_seeds != default_max and int(self.max_intervention_seeds) <= stage1:
            raise DiscoInspectError(
                f"`max_intervention_seeds` = {self.max_intervention_seeds!r} leaves no seeds for a second stage after "
                f"the first {stage1}; raise it (e.g. to {2 * stage1 + 16}) or set `adaptive_scan` to 'off'."
            )
        for name in ("confirm_top", "attribution_images", "strip_seeds", "control_draws", "real_edit_images"):
            if int(getattr(self, name)) < 0:
                raise DiscoInspectError(
                    f"`{name}` = {getattr(self, name)!r} is invalid; use an integer >= 0."
                )
        if self.scan_steps is not None and int(self.scan_steps) < 1:
            raise DiscoInspectError(
                f"`scan_steps` = {self.scan_steps!r} is invalid; use a number of denoising steps >= 1 (e.g. 10), or "
                "None for the token run's steps."
            )
        if int(self.real_edit_concepts) < 1:
            raise DiscoInspectError(
                f"`real_edit_concepts` = {self.real_edit_concepts!r} is invalid; use at least 1 (or "
                "`real_edit_images` = 0 to turn the real-image counterfactual scan off)."
            )
        if not 0 < self.alpha < 1:
            raise DiscoInspectError(f"`alpha` = {self.alpha!r} is invalid; use a rate in (0, 1), e.g. 0.05.")
        if self.adaptive_scan not in ("all", "saturated", "off"):
            raise DiscoInspectError(
                f"`adaptive_scan` = {self.adaptive_scan!r} is invalid; use 'saturated', 'all' or 'off'."
            )
        for name in ("scan_scale", "real_data_scale"):
            if getattr(self, name) not in ("p", "logodds", "auto"):
                raise DiscoInspectError(
                    f"`{name}` = {getattr(self, name)!r} is invalid; use 'p', 'logodds' or 'auto'."
                )
        if not self.confirm_min_logodds >= 0:
            raise DiscoInspectError(
                f"`confirm_min_logodds` = {self.confirm_min_logodds!r} is invalid; use a number >= 0, e.g. 1.0."
            )
        if not 0 < self.mask_threshold < 1:
            raise DiscoInspectError(
                f"`mask_threshold` = {self.mask_threshold!r} is invalid; use a number in (0, 1)."
            )
        for name in ("min_effect", "confirm_min_effect"):
            if not 0 <= getattr(self, name) < 1:
                raise DiscoInspectError(
                    f"`{name}` = {getattr(self, name)!r} is invalid; use a probability change in [0, 1), e.g. 0.05."
                )
        self._validate_attribution_methods()
        self._refuse_ignored()

    def _validate_attribution_methods(self) -> None:
        """Every attribution method is one the analysis knows."""
        from .analysis.attribution import METHODS

        for m in self.attribution_methods:
            if m not in METHODS:
                raise DiscoInspectError(
                    f"`attribution_methods` has {m!r}; use some of {', '.join(repr(k) for k in METHODS)}."
                )

    def _refuse_ignored(self) -> None:
        """A value set away from its default that the audit would not use is an error, not a silent no-op."""
        defaults = {f.name: f.default for f in fields(self)}
        ignored = (
            (
                "control_draws",
                not self.null_control,
                "`null_control` is off; turn it on or drop `control_draws`",
            ),
            (
                "confirm_min_logodds",
                self.scan_scale == "p",
                "it applies on the log-odds scale only; set `scan_scale` to 'logodds' or 'auto'",
            ),
            (
                "attribution_methods",
                self.attribution_images == 0,
                "`attribution_images` is 0; give it images or drop `attribution_methods`",
            ),
            (
                "max_intervention_seeds",
                self.adaptive_scan == "off",
                "`adaptive_scan` is 'off'; set it to 'saturated' or 'all', or drop `max_intervention_seeds`",
            ),
            (
                "saturated_intervention_seeds",
                not self.scan and self.confirm_top == 0,
                "no intervention runs with `scan` off and `confirm_top` = 0",
            ),
        )
        for name, unused, why in ignored:
            value = getattr(self, name)
            if unused and value != defaults[name]:
                raise DiscoInspectError(f"`{name}` = {value!r} would be ignored: {why}.")


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
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per stage, the model calls it made (:mod:`~disco_inspect.engine.counting`): UNet evaluations with and without
    gradients, VAE decodes and encodes, classifier images."""
    versions: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    control: dict[str, Any] | None = None
    """The null control: the untrained token's and random-direction tokens' distance, and per control the mean
    target probability on the evaluation seeds."""
    reference: dict[str, Any] | None = None
    """The reference classifier (differential audit): its description and its target probabilities on the
    evaluation images."""
    real_edits: Any = None
    """The real-image counterfactual scan (:class:`~disco_inspect.analysis.counterfactual.CounterfactualScan`: the
    user's images edited toward each shortlisted concept and its contrasts); ``None`` without it."""
    evidence: Any = None
    """The user's images as evidence (:class:`~disco_inspect.analysis.evidence.ImageEvidence`: images read, those
    the classifier puts in another class, the real-data reliance per concept); ``None`` without images."""
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

    def save(self, out: str | Path | None = None, *, plotly: str | Path | None = None) -> Path:
        """Write ``index.html``, ``report.json`` and figures to ``out`` (default: the audit folder); how long that
        took is ``timings["report"]`` (in report.json too). ``plotly``: a plotly.js file shared by many reports
        (:func:`~disco_inspect.report.html.write_shared_plotly`) the page loads by a relative path; by default the
        page embeds it. Returns the path of ``index.html``."""
        from .report.html import write_report, write_report_json

        target = Path(out) if out is not None else self.out_dir
        if target is None:
            raise DiscoInspectError("This audit has no folder; pass `out=` to save the report.")
        t = time.perf_counter()
        page = write_report(self, target, plotly=plotly)
        self.timings["report"] = time.perf_counter() - t
        write_report_json(self, target)
        return page


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


@dataclass
class _Context:
    """What every step of one audit needs: the models, the settings and the generation arguments."""

    pipe: Any
    classifier: Any
    scorer: Any
    config: DiscoConfig
    settings: AuditSettings
    references: list[Any]
    progress: bool

    @property
    def gen(self) -> dict[str, Any]:
        """Generation arguments of every stage: the token run's steps, guidance and size."""
        cfg = self.config
        return {
            "num_inference_steps": cfg.num_inference_steps,
            "guidance_scale": cfg.guidance_scale,
            "height": cfg.height,
            "width": cfg.width,
        }


@dataclass
class _Evaluation:
    """The paired evaluation: seeds, prompts, images (with attention maps and object masks), the classifier's
    target probabilities, concept scores and the references' probabilities."""

    seeds: list[int]
    prompts: dict[str, list[str]]
    images: dict[str, torch.Tensor]
    probs: dict[str, torch.Tensor]
    scores: dict[str, torch.Tensor]
    reference: dict[str, Any] | None


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
        reference: reference classifiers, a list (one, several or none; a single classifier counts as a list of
            one), each anything :func:`load_classifier` accepts, e.g. clean models of the same task. The same
            images are scored by them and factors are ranked by how much *more* the audited classifier relies on
            them (a "bias" ranking); without them the ranking is of "reliance". With several, the spread between
            models is the null: with ``AuditSettings(confirm_differential=True)`` a factor is confirmed only when
            the audited model's effect lies beyond what the references show.
        user_images: the user's own images of the class (folder, glob, files), read once before training. They are
            evidence: the classifier on each (those it puts in another class are listed), and per concept its target
            probability on images with vs without the concept (``result.evidence``; a ``real_data`` line beside each
            factor's generated one). Then they are edited with the token (:func:`~.editor.edit_images`, ``out/edits``).
        edit_settings: :class:`~disco_inspect.editor.EditSettings` for ``user_images``.
    """
    # 1. check inputs (before minutes of training), then resolve the defaults and load the models
    settings = settings or AuditSettings()
    out_dir = Path(out) if out is not None else None
    _check_inputs(settings, _reference_list(reference), user_images, out_dir)
    ctx = _context(pipe, classifier, scorer, config, settings, reference, progress)
    clock, parts = StageClock(ctx.pipe, ctx.classifier), {}  # each stage timed, its model calls counted
    with clock.stage("user_images"):
        loaded, others = _load_user_images(ctx, target, user_images)  # read once, before training
    # 2. the class token (a matching finished run in out/run is reused)
    with clock.stage("token"):
        run = _train(ctx, target, out_dir, overwrite, allow_unfinished)
    # 3. paired evaluation images with and without the token
    with clock.stage("evaluation"):
        ev = _evaluate(ctx, run)
    # 4. the null control: concept scores under control tokens
    with clock.stage("null_control"):
        control_scores, parts["control"] = _control(ctx, run, ev)
    # 5. factors: concept shifts token vs control, along the trajectory
    with clock.stage("factors"):
        factors, parts["trajectory_concepts"] = _factors(ctx, run, ev, control_scores)
    # 6. interventions, one rule: the scan's test over every concept or over the top factors
    with clock.stage("interventions"):
        parts["factors"], examples = _interventions(ctx, run, factors)
    # 7. the user's images as evidence (real-data reliance per concept); each factor's evidence side by side
    with clock.stage("real_data"):
        parts["evidence"], parts["factors"] = _image_evidence(ctx, run, loaded, others, parts["factors"])
    # 8. Captum attributions against the object masks
    with clock.stage("attributions"):
        parts["attribution"], maps = _attributions(ctx.classifier, run.target, settings, ev.images, progress)
    if loaded is not None:  # 9. the user's images edited with the token, then toward each shortlisted concept
        parts.update(_edit_stages(ctx, run, loaded, out_dir, edit_settings, parts, clock))
    # 10. the result, and its report
    parts.update(images={**examples, **maps}, timings=clock.timings, calls=clock.calls, out_dir=out_dir)
    result = _result(ctx, run, ev, **parts)
    if save and out_dir is not None:
        result.save(out_dir)
    return result


def _result(
    ctx: _Context, run: Any, ev: _Evaluation, *, images: dict[str, torch.Tensor], **parts: Any
) -> AuditResult:
    """The :class:`AuditResult` of the steps' outputs (``parts``: factors, trajectory, attribution, control, edits,
    timings, out_dir)."""
    from .engine.optimize import package_versions, run_identity

    return AuditResult(
        class_name=run.class_name,
        target=run.target,
        **run_identity(ctx.classifier, ctx.pipe),
        config=ctx.config,
        settings=ctx.settings,
        run=run,
        scorer=type(ctx.scorer).__name__,
        concepts=list(ctx.scorer.concepts),
        eval_seeds=ev.seeds,
        intervention_seeds=intervention_seed_list(ctx.settings, run.regime),
        eval_prompts=ev.prompts,
        baseline_probs=ev.probs["baseline"],
        token_probs=ev.probs["token"],
        images={**ev.images, **images},
        versions=package_versions(),
        reference=ev.reference,
        **parts,
    )


def _control(ctx: _Context, run: Any, ev: _Evaluation) -> tuple[torch.Tensor | None, dict[str, Any] | None]:
    """The null control's concept scores and its record, or ``(None, None)`` when it is off or nothing was trained."""
    if not (ctx.settings.null_control and run.trajectory):
        return None, None
    return _null_control(
        ctx.pipe,
        ctx.classifier,
        run,
        ctx.scorer,
        ev.prompts["token"],
        ev.seeds,
        ctx.gen,
        ctx.settings,
        ctx.progress,
    )


def _context(
    pipe: Any,
    classifier: Any,
    scorer: Any,
    config: DiscoConfig | None,
    settings: AuditSettings,
    reference: Any,
    progress: bool,
) -> _Context:
    """The audit's context: the classifier and references loaded, the scorer and token settings defaulted for
    the pipeline."""
    from .engine.optimize import as_classifier

    return _Context(
        pipe=pipe,
        classifier=as_classifier(classifier),
        scorer=scorer if scorer is not None else default_scorer(pipe),
        config=config or default_config(pipe),
        settings=settings,
        references=[as_classifier(r) for r in _reference_list(reference)],
        progress=progress,
    )


def _reference_list(reference: Any) -> list[Any]:
    """The references as a list: none, one, or several."""
    if reference is None:
        return []
    return list(reference) if isinstance(reference, list | tuple) else [reference]


def _check_inputs(
    settings: AuditSettings, references: list[Any], user_images: Any, out_dir: Path | None
) -> None:
    """What can be checked before any model runs: settings that need a reference, the user's images."""
    if settings.confirm_differential and not references:
        raise DiscoInspectError(
            "`confirm_differential` needs a reference classifier; pass `reference=` (e.g. a clean model of the "
            "same task) or leave it False."
        )
    if user_images is not None:
        from .editing.images import class_folders, find_images

        if out_dir is None:
            raise DiscoInspectError("`user_images` are edited into the audit folder; pass `out` as well.")
        if class_folders(user_images) is None:  # a labelled tree DIR/<class>/ is resolved with the classifier
            find_images(user_images)


def _train(
    ctx: _Context, target: str | int, out_dir: Path | None, overwrite: bool, allow_unfinished: bool
) -> Any:
    """Train (or reuse) the class token; with ``allow_unfinished`` an interrupted run is returned as it stands."""
    from .engine.optimize import RunInterrupted, train_token

    try:
        return train_token(
            ctx.pipe,
            ctx.classifier,
            target,
            config=ctx.config,
            out=None if out_dir is None else out_dir / "run",
            overwrite=overwrite,
            progress=ctx.progress,
        )
    except RunInterrupted as e:
        if not allow_unfinished:
            raise
        logger.warning(
            "Reporting an unfinished token (interrupted after %d iterations).", len(e.run.trajectory)
        )
        return e.run


def _evaluate(ctx: _Context, run: Any) -> _Evaluation:
    """Paired images with and without the token (one pass each: images, cross-attention maps and object masks),
    scored by the classifier, the concept scorer and the references."""
    from .analysis.attention import object_masks
    from .engine.records import target_probabilities

    eval_cfg = ctx.config.replace(n_images=ctx.settings.eval_seeds, seed=ctx.settings.eval_seed, seed_pool=0)
    seeds = eval_cfg.seeds()
    prompts = {
        "baseline": eval_cfg.prompts(run.class_name, with_token=False),
        "token": eval_cfg.prompts(run.class_name),
    }
    images: dict[str, torch.Tensor] = {}
    for side in ("baseline", "token"):
        images[side], images[f"{side}_attention"], images[f"{side}_masks"] = object_masks(
            ctx.pipe,
            prompts[side],
            seeds,
            run.class_name,
            threshold=ctx.settings.mask_threshold,
            progress=f"evaluation images ({side})" if ctx.progress else None,
            **ctx.gen,
        )
    probs = {k: target_probabilities(ctx.classifier, images[k], run.target) for k in ("baseline", "token")}
    scores = {k: ctx.scorer.score(images[k]) for k in ("baseline", "token")}
    return _Evaluation(seeds, prompts, images, probs, scores, _reference_info(ctx, run, images))


def _reference_info(ctx: _Context, run: Any, images: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """The references on the evaluation images: the first's identity and index, target probabilities averaged
    over all of them, and with several every model's identity."""
    from .engine.optimize import run_identity
    from .engine.records import target_probabilities

    refs = ctx.references
    if not refs:
        return None
    targets = [r.resolve_class(run.class_name) for r in refs]
    info: dict[str, Any] = {
        "classifier": run_identity(refs[0], ctx.pipe)["classifier"],
        "target_index": targets[0],
    }
    for k in ("baseline", "token"):
        p = torch.stack([target_probabilities(r, images[k], t) for r, t in zip(refs, targets, strict=True)])
        info[f"{k}_target_probs"] = [float(v) for v in p.mean(0)]
    if len(refs) > 1:
        info["models"] = [run_identity(r, ctx.pipe)["classifier"] for r in refs]
    return info


def _factors(
    ctx: _Context, run: Any, ev: _Evaluation, control_scores: torch.Tensor | None
) -> tuple[Any, dict[str, list[float]]]:
    """Concept shifts with the token (against the null control) and their trajectory along the optimisation."""
    from .analysis.factors import discover_factors

    traj = _trajectory_scores(run, ctx.scorer)
    factors = discover_factors(
        ctx.scorer.concepts,
        ev.scores["baseline"],
        ev.scores["token"],
        control_scores=control_scores,
        trajectory_scores=None if traj is None else traj[1],
        trajectory_target=None if traj is None else traj[2],
        alpha=ctx.settings.alpha,
        min_effect=ctx.settings.min_effect,
    )
    if traj is None:
        return factors, {}
    concepts = {c: [float(v) for v in traj[1][:, i]] for i, c in enumerate(ctx.scorer.concepts)}
    return factors, {"steps": traj[0], "target_prob": traj[2], **concepts}


def _interventions(ctx: _Context, run: Any, factors: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Confirm factors by intervention under one rule, the scan's (a one-sided sign-flip test of "effect <= margin"
    on the chosen scale, Benjamini–Hochberg across the concepts tested, the differential against the references
    when required): every concept of the bank with ``scan``, else the top ``confirm_top`` significant factors.
    Returns the ranked factors and example images of the top reported ones."""
    from .analysis.scan import scan_interventions

    s = ctx.settings
    if not hasattr(ctx.scorer, "intervention"):
        return factors.with_interventions({}), {}
    concepts = [f.concept for f in (factors.factors if s.scan else factors.top(s.confirm_top))]
    if not concepts:
        return factors.with_interventions({}), {}
    seeds = intervention_seed_list(s, run.regime)
    scale = scan_scale(s, run.regime)
    margin = s.confirm_min_effect if scale == "p" else s.confirm_min_logodds
    differential = s.confirm_differential and bool(ctx.references)
    gen = scan_generation(ctx.gen, s)
    scan = scan_interventions(
        ctx.pipe,
        ctx.classifier,
        run.target,
        run.class_name,
        ctx.scorer,
        seeds,
        concepts=concepts,
        references=ctx.references,
        alpha=s.alpha,
        min_effect=margin,
        scale=scale,
        require_differential=differential,
        extra_seeds=extra_seed_list(s, seeds, run.regime),
        progress=ctx.progress,
        **gen,
    )
    scope = "every concept scanned" if s.scan else f"the top {len(concepts)} significant factors tested"
    method = _intervention_method(scope, len(seeds), scale, margin, differential, len(ctx.references) > 1)
    method["scan_steps"] = gen["num_inference_steps"]
    if scan.design:
        method["sequential"] = scan.design
    ranked = factors.with_interventions(scan.interventions, method)
    examples = {}
    for f in ranked.top(s.confirm_top):
        iv = f.intervention
        examples[f"intervention_{f.concept}_factor"] = scan.examples[iv.factor_prompt]
        examples[f"intervention_{f.concept}_contrast"] = scan.examples[iv.contrast_prompts[0]]
    return ranked, examples


def scan_generation(gen: dict[str, Any], settings: AuditSettings) -> dict[str, Any]:
    """The intervention scan's generation arguments: the audit's (``gen``), with ``settings.scan_steps`` steps when
    set."""
    if settings.scan_steps is None:
        return dict(gen)
    return {**gen, "num_inference_steps": int(settings.scan_steps)}


def _intervention_method(
    scope: str, n_seeds: int, scale: str, margin: float, differential: bool, between: bool
) -> dict[str, Any]:
    """The ``factors.method`` entries that state the intervention rule."""
    text = (
        f"{scope}: factor prompt vs its contrasts on {n_seeds} paired seeds, effect on "
        f"{'the target probability' if scale == 'p' else 'the log-odds of the target'}, one-sided sign-flip test "
        f"of H0: effect <= {margin}, Benjamini-Hochberg across concepts"
    )
    if differential:
        text += "; confirmed only when the differential effect (audited minus reference) is significant too"
        if between:
            text += " (between models: beyond the references' spread, Student's t prediction interval)"
    return {"interventions": text, "scan_scale": scale, "confirm_min": margin}


def _load_user_images(ctx: _Context, target: str | int, user_images: Any) -> tuple[Any, Any]:
    """The user's images of the class and, from a labelled tree ``DIR/<class>/...``, those of the other classes, each
    read once at the pipeline's size (an unreadable file is listed and skipped; none readable is an error, before any
    training); ``(None, None)`` without images."""
    if user_images is None:
        return None, None
    from .editing.images import class_folders, load_images
    from .engine.sampling import image_size

    size, tree = image_size(ctx.pipe)[0], class_folders(user_images)
    if tree is None:
        return load_images(user_images, size), None
    index = ctx.classifier.resolve_class(target)
    mine, other = [], []
    for name, folder in tree.items():
        try:
            (mine if ctx.classifier.resolve_class(name) == index else other).append(folder)
        except DiscoInspectError as e:
            raise DiscoInspectError(
                f"`user_images` folder '{folder}' is not a class of the classifier ({e}); name each subfolder by "
                "its class, or pass the folder of the audited class's images only."
            ) from e
    if not mine:
        raise DiscoInspectError(
            f"`user_images` = '{user_images}' holds class folders ({', '.join(tree)}) but none for the audited "
            f"class {ctx.classifier.class_name(index)!r}; add one named after it."
        )
    return load_images(mine, size), load_images(other, size) if other else None


def _image_evidence(ctx: _Context, run: Any, loaded: Any, others: Any, factors: Any) -> tuple[Any, Any]:
    """What the user's images show (:func:`~disco_inspect.analysis.evidence.image_evidence`, ``None`` without
    images) and the factors with their lines of evidence side by side (:func:`~.analysis.evidence.triangulate`)."""
    from .analysis.evidence import image_evidence, triangulate

    if loaded is None:
        return None, triangulate(factors, None)
    s = ctx.settings
    evidence = image_evidence(
        ctx.classifier,
        run.target,
        loaded,
        ctx.scorer,
        alpha=s.alpha,
        margin_p=s.confirm_min_effect,
        margin_logodds=s.confirm_min_logodds,
        scale=s.real_data_scale,
        others=others,
    )
    return evidence, triangulate(factors, evidence)


def _edit_user_images(
    ctx: _Context, run: Any, user_images: Any, out_dir: Path, edit_settings: Any
) -> tuple[dict[str, Any], Any]:
    """Invert and edit the user's images with the learned token (into ``out/edits``): the report's section, and the
    inversion (the counterfactual scan edits it further)."""
    from .editor import edit_images

    job = edit_images(
        ctx.classifier,
        run.target,
        user_images,
        run.token_path,
        pipe=ctx.pipe,
        out=out_dir / "edits",
        settings=edit_settings,
        scorer=ctx.scorer,
        progress=ctx.progress,
    )
    section = {
        "href": "edits/index.html",
        "method": job.doc["method"],
        "inversion": job.doc["settings"]["inversion"],
        "summary": job.doc["summary"],
        "images": job.doc["images"],
        "failures": job.doc["failures"],
        "tensors": job.images,
    }
    return section, job.inversion


def _edit_stages(
    ctx: _Context,
    run: Any,
    loaded: Any,
    out_dir: Path,
    edit_settings: Any,
    parts: dict[str, Any],
    clock: Any,
) -> dict[str, Any]:
    """The user's images edited with the token (``edits``), then the real-image counterfactual scan (``real_edits``)
    and the factors with its line (``factors``); each stage timed and counted on ``clock``."""
    with clock.stage("edits"):
        edits, inversion = _edit_user_images(ctx, run, loaded, out_dir, edit_settings)
    with clock.stage("real_edits"):
        real_edits, factors = _real_edits(
            ctx, run, inversion, parts, edit_settings, out_dir / "edits" / "cache"
        )
    return {"edits": edits, "real_edits": real_edits, "factors": factors}


def _real_edits(
    ctx: _Context, run: Any, inversion: Any, parts: dict[str, Any], edit_settings: Any, cache_dir: Path
) -> tuple[Any, Any]:
    """The real-image counterfactual scan on a shortlist (:func:`~.analysis.evidence.edit_shortlist`), and the factors with its line; ``None``
    (factors unchanged) when it is off, the scorer cannot intervene or too few images were usable."""
    from .analysis.counterfactual import counterfactual_scan
    from .analysis.evidence import MIN_USABLE, edit_shortlist, triangulate
    from .editor import EditSettings

    s, evidence = ctx.settings, parts["evidence"]
    n = min(s.real_edit_images, len(inversion))
    if not s.real_edit_images or not hasattr(ctx.scorer, "intervention") or n < MIN_USABLE:
        return None, parts["factors"]
    concepts, rule = edit_shortlist(parts["factors"], evidence, s.real_edit_concepts)
    knobs = (edit_settings or EditSettings()).resolved(ctx.pipe)
    scan = counterfactual_scan(
        ctx.pipe,
        inversion.select(range(n)),
        ctx.classifier,
        run.target,
        run.class_name,
        ctx.scorer,
        concepts,
        scale=evidence.scale,
        margin=s.confirm_min_effect if evidence.scale == "p" else s.confirm_min_logodds,
        alpha=s.alpha,
        shortlist_rule=rule,
        edit_options={
            "cross_replace": knobs["cross_replace"],
            "self_replace": knobs["self_replace"],
            "cache_dir": cache_dir,  # an interrupted run keeps the concept edits it finished
        },
        progress=ctx.progress,
    )
    return scan, triangulate(parts["factors"], evidence, scan)


def _null_control(
    pipe: Any,
    clf: Any,
    run: Any,
    scorer: Any,
    prompts: list[str],
    seeds: list[int],
    gen: dict[str, Any],
    settings: AuditSettings,
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Concept scores under control tokens, averaged per seed: the untrained token (its initial embedding) and
    ``control_draws`` tokens as far from it as the learned one, in random directions (seeded). Same prompts and
    seeds as the token images; the learned embedding is put back afterwards."""
    from tqdm.auto import tqdm

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
        for name, vec in tqdm(vectors.items(), desc="null control", unit="token", disable=not progress):
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


def extra_seed_list(settings: AuditSettings, seeds: list[int], regime: str) -> list[int]:
    """The stage-2 seeds of the adaptive scan: the ones after ``seeds`` up to ``max_intervention_seeds``, when
    ``adaptive_scan`` covers ``regime`` (``all``; ``saturated`` in the saturated regime only); else none."""
    if settings.adaptive_scan == "off" or (settings.adaptive_scan == "saturated" and regime != "saturated"):
        return []
    return [seeds[-1] + 1 + i for i in range(max(0, int(settings.max_intervention_seeds) - len(seeds)))]


def scan_scale(settings: AuditSettings, regime: str) -> str:
    """The scale the scan measures effects on: ``settings.scan_scale``, with ``auto`` resolved by the regime
    (log-odds when the classifier already recognises the class at baseline, else the probability)."""
    if settings.scan_scale == "auto":
        return "logodds" if regime == "saturated" else "p"
    return settings.scan_scale


def _attributions(
    clf: Any, target: int, settings: AuditSettings, images: dict[str, torch.Tensor], progress: bool = False
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Captum maps on the first evaluation images and their context reliance against the object masks; returns
    the report's record and the maps (``attr_<side>_<method>``)."""
    from tqdm.auto import tqdm

    from .analysis.attribution import attribute, context_reliance

    n = min(settings.attribution_images, len(images["baseline"]))
    if n == 0:
        return {}, {}
    out: dict[str, Any] = {"n_images": n, "methods": {}, "skipped": {}, "mask_area": {}}
    maps_by_name: dict[str, torch.Tensor] = {}
    for side in tqdm(("baseline", "token"), desc="attributions", unit="side", disable=not progress):
        imgs, masks = images[side][:n], images[f"{side}_masks"][:n]
        attrs = attribute(clf, imgs, target, methods=settings.attribution_methods)
        out["skipped"].update(attrs.skipped)
        for method, maps in attrs.maps.items():
            maps_by_name[f"attr_{side}_{method}"] = maps
            share = context_reliance(maps, masks)
            out["methods"].setdefault(method, {})[side] = {
                "context_reliance": float(share.mean()),
                "per_image": [float(v) for v in share],
            }
        out["mask_area"][side] = float(masks.mean())
    return out, maps_by_name
