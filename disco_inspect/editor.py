"""Counterfactual edits of the user's own images, end to end: load, invert, edit, measure, write.

``edit_images`` is what ``disco-inspect edit`` and ``report --images`` run. It writes, under ``out``:
``edit.json`` (per image: source file, conversions, reconstruction PSNR/SSIM, p(target) of every image, fidelity,
diversity, concept shifts; a per-method summary; unreadable files), ``index.html`` (rows: source |
reconstruction | deterministic edit | samples, p(target) under each) and the PNGs
``images/<name>/source.png``, ``reconstruction.png``, ``edit.png``, ``sample_NN.png``. The inversions are cached in
``out/cache`` (safetensors) and reused by the next run with the same images, prompt and settings.
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


@dataclass
class EditJob:
    """What :func:`edit_images` wrote: ``doc`` is ``edit.json``; ``images`` the tensors per image name
    (``source``, ``reconstruction``, ``edit``, ``samples``); ``out`` the folder."""

    doc: dict[str, Any]
    images: dict[str, dict[str, Any]]
    out: Path


@dataclass
class EditSettings(ConfigMixin):
    """Sampler and editing knobs of :func:`edit_images`; ``None`` = the pipeline's preset (see :func:`edit_defaults`)."""

    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    cross_replace: float | None = None
    self_replace: float | None = None
    inner_steps: int = 10
    method: str = "noise"
    samples: int = 4
    sigma: float | None = None
    seed: int = 0
    vae_steps: int | None = None

    def validate(self) -> None:
        """Check every value; raise :class:`DiscoInspectError` naming the first bad one."""
        from .editing.edit import METHODS

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
        out = edit_defaults(pipe)
        out.update({k: v for k, v in self.__dict__.items() if v is not None})
        return out


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DiscoInspectError(f"`--out` = `{out}` is a file; pass a folder for the edits.")
    if out.is_dir() and any(out.iterdir()) and not (out / EDIT_JSON).is_file():
        raise DiscoInspectError(
            f"`--out` folder `{out}` holds other files and no {EDIT_JSON}; pass an empty or new "
            "folder (an earlier edit folder is updated in place)."
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
        images: a folder, a glob, a file, or a list of them (see :func:`~disco_inspect.editing.images.load_images`).
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
    from .editing.edit import METHODS, edit, resolve_token
    from .editing.images import load_images
    from .editing.inversion import invert, reconstruct, vae_roundtrip
    from .editing.measure import measure_edits
    from .editing.metrics import classifier_features
    from .engine.run_folder import save_png
    from .engine.sampling import image_size
    from .report.edit_page import render_edit_page

    settings = settings or EditSettings()
    prompt = prompt or str(edit_defaults(pipe)["prompt"])
    if settings.method not in METHODS:
        raise DiscoInspectError(
            f"`method` = {settings.method!r} is unknown; use one of {', '.join(METHODS)}."
        )
    if "{class_name}" not in prompt:
        raise DiscoInspectError(
            f"`prompt` = {prompt!r} needs '{{class_name}}' where the class goes, e.g. {EDIT_PROMPT!r}."
        )
    out = Path(out)
    _check_out(out)
    target = classifier.resolve_class(class_name)
    name = classifier.class_name(target)
    knobs = settings.resolved(pipe)
    token_str, _ = resolve_token(pipe, token)  # refuses another pipeline's token before any work
    size = image_size(pipe)[0]
    loaded = load_images(images, size, max_images=max_images)
    if scorer is None:
        from .defaults import default_scorer, is_world_pipeline

        scorer = default_scorer(pipe) if is_world_pipeline(pipe) else None
    t0 = time.perf_counter()
    source_prompt = prompt.format(class_name=name)
    inv = invert(
        pipe,
        loaded.images,
        source_prompt,
        names=loaded.names,
        num_inference_steps=knobs["num_inference_steps"],
        guidance_scale=knobs["guidance_scale"],
        inner_steps=knobs["inner_steps"],
        cache_dir=out / "cache",
        progress=progress,
    )
    t_inv = time.perf_counter() - t0
    distance = classifier_features(classifier)
    vae_opts = {"steps": knobs["vae_steps"]} if knobs.get("vae_steps") else {}
    result = edit(
        pipe,
        inv,
        token_str,  # installed above; edit() reads its row instead of installing it again
        class_name=name,
        method=knobs["method"],
        samples=knobs["samples"] if knobs["method"] != "none" else 0,
        sigma=knobs["sigma"],
        cross_replace=knobs["cross_replace"],
        self_replace=knobs["self_replace"],
        seed=knobs["seed"],
        vae_options=vae_opts,
        scorer=scorer,
        features=distance.features,
        classifier=classifier,
        target=target,
        progress=progress,
    )
    t_edit = time.perf_counter() - t0 - t_inv
    measured = measure_edits(
        result,
        classifier,
        target,
        scorer=scorer,
        distance=distance,
        lpips=lpips,
        clip=clip,
        vae_ceiling=vae_roundtrip(pipe, inv.images),
        plain_reconstructions=reconstruct(pipe, inv, use_null=False),
    )
    for row, path, notes, cached in zip(
        measured["images"], loaded.paths, loaded.notes, inv.cached, strict=True
    ):
        row["source_file"] = path.name
        row["notes"] = list(notes)
        row["inversion_cached"] = bool(cached)
    summary = {
        "class_name": name,
        "target": target,
        "token": token_str,
        "method": knobs["method"],
        "classifier": shareable_source(getattr(classifier, "source", None)),
        "pipeline": shareable_source(getattr(pipe, "_disco_source", None)),
        "settings": {**{k: v for k, v in knobs.items() if k != "prompt"}, "prompt": prompt},
        "images": measured["images"],
        "summary": measured["summary"],
        "failures": loaded.failures,
        "seconds": {"inversion": t_inv, "edit": t_edit},
    }
    if result.vae_history:
        summary["vae_training"] = {
            "first": result.vae_history[0],
            "last": result.vae_history[-1],
            "steps": len(result.vae_history),
        }
    tensors: dict[str, dict[str, Any]] = {}
    for i, img_name in enumerate(inv.names):
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
    write_json(out / EDIT_JSON, summary)
    render_edit_page(summary, tensors, out / EDIT_HTML)
    logger.info("Edited %d images into %s (%d unreadable).", len(inv), out, len(loaded.failures))
    return EditJob(doc=summary, images=tensors, out=out)
