"""Counterfactual edits of the user's own images, end to end: load, invert, edit, measure, write.

``edit_images`` is what ``disco-inspect edit`` and ``report --images`` run. It writes, under ``out``:
``edit.json`` (per image: source file, conversions, reconstruction PSNR/SSIM, p(target) of every image, fidelity,
diversity, concept shifts; a per-method summary; unreadable files), ``index.html`` (rows: source |
reconstruction | deterministic edit | samples, p(target) under each) and the PNGs
``images/<name>/source.png``, ``reconstruction.png``, ``edit.png``, ``sample_NN.png``. The inversions are cached in
``out/cache`` (safetensors) and reused by the next run with the same images, prompt and settings; so are the edits
(per image, keyed by the token and the edit settings), so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigMixin
from .defaults import EDIT_GUIDANCE, EDIT_PROMPT, EDIT_STEPS, edit_defaults  # noqa: F401 - re-exported
from .errors import DiscoInspectError
from .io import shareable_source, write_json

logger = logging.getLogger(__name__)

EDIT_JSON = "edit.json"
EDIT_HTML = "index.html"
#: Written into an edit folder before any work: an interrupted edit (inversions cached, no edit.json yet) is ours.
EDIT_MARKER = ".disco-inspect-edit"


@dataclass
class EditJob:
    """What :func:`edit_images` wrote: ``doc`` is ``edit.json``; ``images`` the tensors per image name
    (``source``, ``reconstruction``, ``edit``, ``samples``); ``out`` the folder."""

    doc: dict[str, Any]
    images: dict[str, dict[str, Any]]
    out: Path
    inversion: Any = None
    """The :class:`~disco_inspect.editing.inversion.Inversion` of the images (edit them further with it)."""


@dataclass
class EditSettings(ConfigMixin):
    """Sampler and editing knobs of :func:`edit_images`; ``None`` = the pipeline's preset (see :func:`edit_defaults`)."""

    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    cross_replace: float | None = None
    self_replace: float | None = None
    inner_steps: int = 10
    inversion: str | None = None
    """How the images are inverted: ``direct``, ``null-text`` or ``negative-prompt`` (see docs/editing.md); default
    ``direct``, and ``null-text`` for ``method="null-vae"`` (it samples the tuned null embeddings)."""
    method: str = "noise"
    samples: int = 4
    sigma: float | None = None
    seed: int = 0
    vae_steps: int | None = None

    def validate(self) -> None:
        """Check every value; raise :class:`DiscoInspectError` naming the first bad one."""
        from .editing.edit import METHODS
        from .editing.inversion import check_inversion_method

        if self.inversion is not None:
            check_inversion_method(self.inversion, "inversion")
        if self.method == "null-vae" and self.inversion not in (None, "null-text"):
            raise DiscoInspectError(
                f"`method` = 'null-vae' samples the tuned null embeddings of null-text inversion; use `inversion` = "
                f"'null-text' with it, not {self.inversion!r} (or another `method`)."
            )
        if self.method not in METHODS:
            raise DiscoInspectError(
                f"`method` = {self.method!r} is unknown; use one of {', '.join(METHODS)}."
            )
        if self.samples < 0 or (self.method != "none" and self.samples < 1):
            raise DiscoInspectError(
                f"`samples` = {self.samples!r} is invalid for `method` = {self.method!r}; use >= 1 "
                "stochastic edits (or `method='none'`)."
            )
        for name in ("cross_replace", "self_replace"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1:
                raise DiscoInspectError(
                    f"`{name}` = {v!r} is invalid; use a fraction of the steps in [0, 1]."
                )
        for name in ("num_inference_steps", "inner_steps", "vae_steps"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "inner_steps" else 1)
            ):
                raise DiscoInspectError(f"`{name}` = {v!r} is invalid; use a positive integer.")

    def resolved(self, pipe: Any) -> dict[str, Any]:
        """Every knob with the preset filled in for ``pipe``."""
        from .editing.inversion import DEFAULT_INVERSION

        out = edit_defaults(pipe)
        out.update({k: v for k, v in self.__dict__.items() if v is not None})
        out.setdefault("inversion", "null-text" if self.method == "null-vae" else DEFAULT_INVERSION)
        return out


@dataclass
class _Request:
    """The checked inputs of one :func:`edit_images` call that every step reads."""

    pipe: Any
    classifier: Any
    target: int
    name: str
    prompt: str
    knobs: dict[str, Any]
    token: str
    out: Path
    progress: bool


def is_edit_folder(path: Path) -> bool:
    """Whether folder ``path`` is an edit's (finished: ``edit.json``; interrupted: the marker written first)."""
    return (path / EDIT_JSON).is_file() or (path / EDIT_MARKER).is_file()


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding other files and no earlier edit."""
    if out.exists() and not out.is_dir():
        raise DiscoInspectError(f"`--out` = `{out}` is a file; pass a folder for the edits.")
    if out.is_dir() and any(out.iterdir()) and not is_edit_folder(out):
        raise DiscoInspectError(
            f"`--out` folder `{out}` holds other files and no {EDIT_JSON}; pass an empty or new "
            "folder (an earlier edit folder, finished or interrupted, is updated in place)."
        )


def edit_images(
    classifier: Any,
    class_name: str | int,
    images: str | Path | Sequence[str | Path],
    token: Any,
    *,
    pipe: Any,
    out: str | Path,
    prompt: str | None = None,
    settings: EditSettings | None = None,
    scorer: Any = None,
    lpips: Any = None,
    clip: Any = None,
    max_images: int | None = None,
    progress: bool = True,
) -> EditJob:
    """Invert the user's ``images``, edit them with the learned ``token``, measure and write the results.

    Args:
        classifier: the audited :class:`~disco_inspect.models.classifiers.Classifier`.
        class_name: the class (name or index) the token was learned for.
        images: a folder, a glob, a file, or a list of them (see :func:`~disco_inspect.editing.images.load_images`),
            or images already read (an :class:`~disco_inspect.editing.images.ImageLoad`, as ``audit`` passes them).
        token: token file, run folder or ``(string, vector)``; a token of another pipeline is refused before work.
        pipe: the diffusion pipeline the token was learned on.
        out: output folder (created; an earlier edit folder is updated).
        prompt: source prompt template with ``{class_name}``; the token is inserted before the class name (default:
            :data:`EDIT_PROMPT`; on the world, its caption style "a {class_name}").
        settings: :class:`EditSettings` (default: the pipeline's preset, 4 ``noise`` samples).
        scorer: concept scorer for concept shifts and Method 2 (default: the world's oracle on the world).
        lpips: an LPIPS distance built from the user's backbone weights (optional).
        clip: ``(model, tokenizer, preprocess)`` of a local open_clip model for CLIP-T/CLIP-I (optional).
        max_images: edit at most this many images.

    Returns:
        An :class:`EditJob` (``.doc`` is the content of ``edit.json``).
    """
    from .editing.edit import resolve_token
    from .editing.images import ImageLoad, load_images
    from .editing.metrics import classifier_features
    from .engine.sampling import image_size

    # 1. check the inputs (a token of another pipeline before any work) and load the images
    settings = settings or EditSettings()
    prompt = _checked_prompt(pipe, prompt, settings)
    out = Path(out)
    _check_out(out)
    target = classifier.resolve_class(class_name)
    name = classifier.class_name(target)
    knobs = settings.resolved(pipe)
    token_str, _ = resolve_token(pipe, token)
    loaded = (
        images
        if isinstance(images, ImageLoad)
        else load_images(images, image_size(pipe)[0], max_images=max_images)
    )
    scorer = scorer if scorer is not None else _default_scorer(pipe)
    req = _Request(pipe, classifier, target, name, prompt, knobs, token_str, out, progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / EDIT_MARKER).touch()  # the folder is ours from here: an interrupted edit resumes in it
    # 2. invert
    t0 = time.perf_counter()
    inv = _invert(req, loaded)
    t_inv = time.perf_counter() - t0
    # 3. edit
    distance = classifier_features(classifier)
    result = _edit(req, inv, scorer, distance)
    t_edit = time.perf_counter() - t0 - t_inv
    # 4. measure
    measured = _measure(req, inv, result, scorer, distance, lpips, clip)
    rows = _with_sources(measured["images"], loaded, inv)
    # 5. write edit.json, the PNGs and the page
    seconds = {"inversion": t_inv, "edit": t_edit}
    doc = _document(req, rows, measured["summary"], loaded.failures, seconds, result.vae_history)
    tensors = _write(out, doc, inv.names, result)
    logger.info("Edited %d images into %s (%d unreadable).", len(inv), out, len(loaded.failures))
    return EditJob(doc=doc, images=tensors, out=out, inversion=inv)


def _checked_prompt(pipe: Any, prompt: str | None, settings: EditSettings) -> str:
    """The source prompt template (the pipeline's preset by default), after checking the method and the template."""
    from .editing.edit import METHODS

    prompt = prompt or str(edit_defaults(pipe)["prompt"])
    if settings.method not in METHODS:
        raise DiscoInspectError(
            f"`method` = {settings.method!r} is unknown; use one of {', '.join(METHODS)}."
        )
    if "{class_name}" not in prompt:
        raise DiscoInspectError(
            f"`prompt` = {prompt!r} needs '{{class_name}}' where the class goes, e.g. {EDIT_PROMPT!r}."
        )
    return prompt


def _default_scorer(pipe: Any) -> Any:
    """The world's oracle scorer on the world; no scorer elsewhere."""
    from .defaults import default_scorer, is_world_pipeline

    return default_scorer(pipe) if is_world_pipeline(pipe) else None


def _invert(req: _Request, loaded: Any) -> Any:
    """Step 2: the inversion (direct by default) of the loaded images with the source prompt (cached in
    ``out/cache``, keyed by the method)."""
    from .editing.inversion import invert

    return invert(
        req.pipe,
        loaded.images,
        req.prompt.format(class_name=req.name),
        names=loaded.names,
        num_inference_steps=req.knobs["num_inference_steps"],
        guidance_scale=req.knobs["guidance_scale"],
        inner_steps=req.knobs["inner_steps"],
        method=req.knobs["inversion"],
        cache_dir=req.out / "cache",
        progress=req.progress,
    )


def _edit(req: _Request, inv: Any, scorer: Any, distance: Any) -> Any:
    """Step 3: the deterministic edit and the stochastic samples of every inverted image."""
    from .editing.edit import edit

    knobs = req.knobs
    vae_opts = {"steps": knobs["vae_steps"]} if knobs.get("vae_steps") else {}
    return edit(
        req.pipe,
        inv,
        req.token,  # installed in step 1; edit() reads its row instead of installing it again
        class_name=req.name,
        method=knobs["method"],
        samples=knobs["samples"] if knobs["method"] != "none" else 0,
        sigma=knobs["sigma"],
        cross_replace=knobs["cross_replace"],
        self_replace=knobs["self_replace"],
        seed=knobs["seed"],
        vae_options=vae_opts,
        scorer=scorer,
        features=distance.features,
        classifier=req.classifier,
        target=req.target,
        cache_dir=req.out / "cache",
        progress=req.progress,
    )


def _measure(
    req: _Request, inv: Any, result: Any, scorer: Any, distance: Any, lpips: Any, clip: Any
) -> dict[str, Any]:
    """Step 4: per-image and summary measurements, with the VAE's ceiling and plain DDIM as baselines."""
    from .editing.inversion import reconstruct, vae_roundtrip
    from .editing.measure import measure_edits

    return measure_edits(
        result,
        req.classifier,
        req.target,
        scorer=scorer,
        distance=distance,
        lpips=lpips,
        clip=clip,
        vae_ceiling=vae_roundtrip(req.pipe, inv.images),
        plain_reconstructions=reconstruct(req.pipe, inv, use_null=False),
    )


def _with_sources(rows: list[dict[str, Any]], loaded: Any, inv: Any) -> list[dict[str, Any]]:
    """``rows`` with each image's source file, conversion notes and whether its inversion came from the cache."""
    return [
        {**row, "source_file": path.name, "notes": list(notes), "inversion_cached": bool(cached)}
        for row, path, notes, cached in zip(rows, loaded.paths, loaded.notes, inv.cached, strict=True)
    ]


def _document(
    req: _Request,
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    failures: list[Any],
    seconds: dict[str, float],
    vae_history: list[dict[str, float]],
) -> dict[str, Any]:
    """The content of ``edit.json``."""
    knobs = req.knobs
    doc = {
        "class_name": req.name,
        "target": req.target,
        "token": req.token,
        "method": knobs["method"],
        "classifier": shareable_source(getattr(req.classifier, "source", None)),
        "pipeline": shareable_source(getattr(req.pipe, "_disco_source", None)),
        "settings": {**{k: v for k, v in knobs.items() if k != "prompt"}, "prompt": req.prompt},
        "images": rows,
        "summary": summary,
        "failures": failures,
        "seconds": seconds,
    }
    if vae_history:
        doc["vae_training"] = {"first": vae_history[0], "last": vae_history[-1], "steps": len(vae_history)}
    return doc


def _write(out: Path, doc: dict[str, Any], names: list[str], result: Any) -> dict[str, dict[str, Any]]:
    """Step 5: write every image's PNGs, ``edit.json`` and the page; return the tensors per image name."""
    from .engine.run_folder import save_png
    from .report.edit_page import render_edit_page

    tensors: dict[str, dict[str, Any]] = {}
    for i, img_name in enumerate(names):
        folder = out / "images" / img_name
        save_png(folder / "source.png", result.sources[i])
        save_png(folder / "reconstruction.png", result.reconstructions[i])
        save_png(folder / "edit.png", result.edits[i])
        if result.samples is not None:
            for k in range(result.samples.shape[1]):
                save_png(folder / f"sample_{k:02d}.png", result.samples[i, k])
        tensors[img_name] = {
            "source": result.sources[i],
            "reconstruction": result.reconstructions[i],
            "edit": result.edits[i],
            "samples": None if result.samples is None else result.samples[i],
        }
    write_json(out / EDIT_JSON, doc)
    render_edit_page(doc, tensors, out / EDIT_HTML)
    return tensors
