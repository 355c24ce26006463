"""`evaluate_accuracy`: the paper's Table-1 protocol (paired seeds, with vs without the token)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..errors import DiscoInspectError
from ..models.pipelines import recorded_scheduler
from .records import accuracy_summary, image_records
from .sampling import generate
from .token import install_token
from .token_run import TokenRun

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "A photo of a {token} {class_name}"
#: Default first evaluation seed: past the training seeds of default runs (``DiscoConfig.seed`` = 35).
EVAL_SEED = 1000
#: Paired seeds of an evaluation when the caller names none (the paper's Table 1 used 10 per class).
N_SEEDS = 10


@dataclass
class AccuracyResult:
    """Top-1/top-5 accuracy and mean target probability, baseline vs token, on the same seeds."""

    target: int
    class_name: str
    seeds: list[int]
    baseline: dict[str, float]
    token: dict[str, float]
    baseline_items: list[dict[str, Any]] = field(repr=False)
    token_items: list[dict[str, Any]] = field(repr=False)
    images: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    """``{"baseline": [N,3,H,W], "token": ...}`` when ``keep_images`` was asked (not in :meth:`to_dict`)."""

    @property
    def top1_gain(self) -> float:
        """Token top-1 minus baseline top-1."""
        return self.token["accuracy"] - self.baseline["accuracy"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (without the images)."""
        out = asdict(self)
        out.pop("images")
        return out


def evaluate_accuracy(
    pipe: Any,
    classifier: Any,
    target: str | int,
    token: TokenRun | str | Path,
    *,
    n_seeds: int = N_SEEDS,
    seed: int | None = None,
    template: str = DEFAULT_TEMPLATE,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    eval_classifier: Any = None,
    eval_class: str | int | None = None,
    batch_size: int = 5,
    keep_images: bool = False,
    progress: str | None = None,
) -> AccuracyResult:
    """Generate ``n_seeds`` images with and without the token and classify them.

    Args:
        token: a :class:`TokenRun`, a token file (textual-inversion format), or a token string already
            in ``pipe``'s tokenizer. A TokenRun loaded from its folder also brings its scheduler and
            timestep spacing: they are used for the evaluation and ``pipe``'s own are restored after.
        seed: first of the ``n_seeds`` consecutive seeds. Default: :data:`EVAL_SEED` (1000), or just past
            the last training seed of a TokenRun whose seeds reach that far, so evaluation images are
            never training images. A ``seed`` that overlaps a TokenRun's training seeds is used, with a
            warning. (A token file does not record its training seeds.)
        template: prompt with ``{token}`` and ``{class_name}``; the baseline drops ``{token}``
            ("A photo of a <S> lobster" vs "A photo of a lobster").
        num_inference_steps, guidance_scale, height, width: default to the training run's values when
            ``token`` is a TokenRun (the reference evaluated with different settings), else 30 / 7.0.
        eval_classifier: scores the images (default: the guiding ``classifier``); the class is looked up
            by name in its labels unless ``eval_class`` names it.
        eval_class: the class (name or index) in ``eval_classifier``'s labels, when its name differs (the paper
            scores iNaturalist images of a CUB-guided token: a label map gives each guiding class's name there).
        keep_images: also return the generated images (``result.images``), e.g. for FID against real images.
        progress: describes the generation's progress bars (``"<progress>: baseline"``, ...); ``None``: no bar.
    """
    from .optimize import as_classifier, check_pipeline

    # 1. check inputs
    check_pipeline(pipe)
    if n_seeds < 1:
        raise DiscoInspectError(f"`n_seeds` = {n_seeds} is invalid; use an integer >= 1.")
    if "{token}" not in template or "{class_name}" not in template:
        raise DiscoInspectError(f"`template` = {template!r} needs both '{{token}}' and '{{class_name}}'.")
    clf = as_classifier(classifier)
    target_idx = clf.resolve_class(target)
    class_name = clf.class_name(target_idx)
    # 2. sampling settings (a TokenRun's by default) and the token in the pipeline
    sampling = _Sampling.of(token, num_inference_steps, guidance_scale, height, width)
    token_str = _install(pipe, token)
    # 3. the scoring classifier and its class
    scorer, eval_target = _scorer(clf, target_idx, class_name, eval_classifier, eval_class)
    # 4. paired seeds and prompts
    seeds = _eval_seeds(token, n_seeds, seed)
    prompts = _paired_prompts(template, token_str, class_name, n_seeds)
    bars = {kind: None if progress is None else f"{progress}: {kind}" for kind in prompts}
    # 5. generate and score, with the run's scheduler
    score = partial(_generate_and_score, pipe, scorer, eval_target, seeds=seeds, sampling=sampling)
    with recorded_scheduler(pipe, token.pipeline if isinstance(token, TokenRun) else None):
        scored = {
            kind: score(ps, batch_size=batch_size, keep_images=keep_images, progress=bars[kind])
            for kind, ps in prompts.items()
        }
    # 6. the result
    out = {kind: records for kind, (records, _) in scored.items()}
    kept = {kind: images for kind, (_, images) in scored.items() if images is not None}
    return AccuracyResult(
        target=eval_target,
        class_name=class_name,
        seeds=seeds,
        baseline=accuracy_summary(out["baseline"], eval_target),
        token=accuracy_summary(out["token"], eval_target),
        baseline_items=out["baseline"],
        token_items=out["token"],
        images=kept or None,
    )


@dataclass(frozen=True)
class _Sampling:
    """How an evaluation samples: the caller's settings, else the training run's, else 30 steps / guidance 7."""

    steps: int
    guidance: float
    height: int | None
    width: int | None

    @classmethod
    def of(
        cls,
        token: Any,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        height: int | None,
        width: int | None,
    ) -> _Sampling:
        """The settings for ``token`` (a TokenRun brings its config) and the caller's overrides."""
        cfg = token.config if isinstance(token, TokenRun) else None
        return cls(
            steps=num_inference_steps or (cfg.num_inference_steps if cfg else 30),
            guidance=guidance_scale if guidance_scale is not None else (cfg.guidance_scale if cfg else 7.0),
            height=height or (cfg.height if cfg else None),
            width=width or (cfg.width if cfg else None),
        )


def _install(pipe: Any, token: TokenRun | str | Path) -> str:
    """Put ``token`` (a TokenRun, a token file, or a token already in the tokenizer) in ``pipe``; its string."""
    if isinstance(token, TokenRun):
        return token.install(pipe)
    if isinstance(token, Path) or (
        isinstance(token, str) and (token.endswith((".safetensors", ".bin", ".pt")))
    ):
        return install_token(pipe, token)
    token_str = str(token)
    if token_str not in pipe.tokenizer.get_vocab():
        raise DiscoInspectError(
            f"`token` = {token_str!r} is not in the pipeline's tokenizer; pass the token file instead."
        )
    return token_str


def _scorer(
    clf: Any, target_idx: int, class_name: str, eval_classifier: Any, eval_class: str | int | None
) -> tuple[Any, int]:
    """The classifier that scores the images (``eval_classifier`` or the guiding one) and its target index."""
    from .optimize import as_classifier

    scorer = clf if eval_classifier is None else as_classifier(eval_classifier)
    if eval_class is not None and eval_classifier is None:
        raise DiscoInspectError(
            "`eval_class` names a class of `eval_classifier`; pass that classifier as well."
        )
    eval_target = (
        target_idx
        if eval_classifier is None
        else scorer.resolve_class(class_name if eval_class is None else eval_class)
    )
    return scorer, eval_target


def _paired_prompts(template: str, token_str: str, class_name: str, n: int) -> dict[str, list[str]]:
    """``n`` prompts without (``baseline``) and with (``token``) the token."""
    base_t = template.replace("{token} ", "").replace("{token}", "")
    return {
        "baseline": [base_t.format(class_name=class_name)] * n,
        "token": [template.format(token=token_str, class_name=class_name)] * n,
    }


def _generate_and_score(
    pipe: Any,
    scorer: Any,
    eval_target: int,
    prompts: list[str],
    seeds: list[int],
    sampling: _Sampling,
    batch_size: int,
    keep_images: bool,
    progress: str | None = None,
) -> tuple[list[dict[str, Any]], torch.Tensor | None]:
    """Images of ``prompts`` on ``seeds`` (a bar described ``progress``), scored in batches: their per-image
    records, and the images if kept."""
    images = generate(
        pipe,
        prompts,
        seeds,
        num_inference_steps=sampling.steps,
        guidance_scale=sampling.guidance,
        height=sampling.height,
        width=sampling.width,
        batch_size=batch_size,
        progress=progress,
    )
    with torch.no_grad():
        logits = torch.cat([scorer(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    records = image_records(logits, eval_target, scorer.label_names, seeds, prompts)
    return records, images.detach().float().cpu() if keep_images else None


def _eval_seeds(token: Any, n_seeds: int, seed: int | None) -> list[int]:
    """The evaluation seeds: disjoint from a TokenRun's training seeds unless ``seed`` says otherwise."""
    trained = token.training_seeds() if isinstance(token, TokenRun) else set()
    if seed is None:
        seed = max(EVAL_SEED, max(trained, default=-1) + 1)
    seeds = [seed + i for i in range(n_seeds)]
    overlap = sorted(trained.intersection(seeds))
    if overlap:
        logger.warning(
            "Evaluation seeds %d..%d overlap %d of the run's training seeds (%d..%d): those images are not held out. "
            "Omit `seed` to start past them (at %d).",
            seeds[0],
            seeds[-1],
            len(overlap),
            overlap[0],
            overlap[-1],
            max(EVAL_SEED, max(trained) + 1),
        )
    return seeds
