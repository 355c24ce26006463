"""Flags and helpers the subcommands share: model/pipeline/config flags, device and dtype, output folders."""

from __future__ import annotations

import argparse
import logging
import re
import unicodedata
from typing import Any

from ..config import DiscoConfig
from ..errors import DiscoInspectError

logger = logging.getLogger("disco_inspect")


#: CLI flag -> DiscoConfig field
CONFIG_FLAGS = {
    "token": "token",
    "initializer": "initializer",
    "n_images": "n_images",
    "seed": "seed",
    "seed_pool": "seed_pool",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "grad_steps": "grad_steps",
    "height": "height",
    "width": "width",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "max_iters": "max_iters",
    "patience": "patience",
    "accuracy_threshold": "accuracy_threshold",
    "image_save_size": "image_save_size",
    "objective": "objective",
    "gradient_checkpointing": "gradient_checkpointing",
}


#: Field names that errors of the configs, settings and loaders use -> the flag a user types (messages of the CLI
#: name the flag: :func:`flag_message`). Names without an underscore are replaced only between backticks.
FIELD_FLAGS = {
    **{field: "--" + flag.replace("_", "-") for flag, field in CONFIG_FLAGS.items()},
    "target": "--class",
    "out": "--out",
    "concepts": "--concepts",
    "prompt": "--prompt",
    "method": "--method",
    "inversion": "--inversion",
    "samples": "--samples",
    "sigma": "--sigma",
    "cross_replace": "--cross-replace",
    "self_replace": "--self-replace",
    "vae_steps": "--vae-steps",
    "max_images": "--max-images",
    "n_seeds": "--eval-seeds",
    "eval_seeds": "--eval-seeds",
    "intervention_seeds": "--intervention-seeds",
    "saturated_intervention_seeds": "--saturated-intervention-seeds",
    "max_intervention_seeds": "--max-intervention-seeds",
    "scan_steps": "--scan-steps",
    "real_edit_images": "--real-edit-images",
    "adaptive_scan": "--adaptive-scan",
    "alpha": "--alpha",
    "min_effect": "--min-effect",
    "scan_scale": "--scan-scale",
    "control_draws": "--control-draws",
    "overwrite": "--overwrite",
    "labels": "--labels",
    "arch": "--arch",
    "trust_pickle": "--trust-pickle",
}


def flag_message(text: str, fields: dict[str, str] | None = None) -> str:
    """``text`` with the field names of :data:`FIELD_FLAGS` (or ``fields``) replaced by their flags, on one line:
    "`target`/`--class`" -> "`--class`", "`num_inference_steps` = 0" -> "`--steps` = 0"."""
    table = FIELD_FLAGS if fields is None else fields
    text = " ".join(text.split())
    text = re.sub(r"`([A-Za-z_]\w*)`/`(--[\w-]+)`", r"`\2`", text)
    text = re.sub(r"`([A-Za-z_]\w*)`", lambda m: f"`{table.get(m.group(1), m.group(1))}`", text)
    names = sorted((n for n in table if "_" in n), key=len, reverse=True)
    if names:
        text = re.sub(
            r"(?<![\w`-])(" + "|".join(map(re.escape, names)) + r")(?![\w`])",
            lambda m: table[m.group(1)],
            text,
        )
    return text


#: ``--dtype`` names -> torch dtypes.
DTYPES = ("float32", "float16", "bfloat16")


#: Exit code after Ctrl-C (128 + SIGINT), as shells use.
EXIT_INTERRUPTED = 130


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows a flag's default once: argparse's "(default: X)" unless the help already states it or there is none
    (``None``, a switch's ``False``); a default of 0 is shown."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text  # `is`: a default of 0 (== False) is shown
        return super()._get_help_string(action)


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "class"


def class_folder(index: int, name: str) -> str:
    """Folder name of a class's report or run: ``<index>-<slug>``, so that ImageNet's two "crane" classes (134, 517)
    and names without ASCII letters never share a folder."""
    return f"{int(index)}-{slug(name)}"


def parse_seeds(text: str) -> list[int]:
    """'0-3' -> [0,1,2,3]; '1,5,9' -> [1,5,9]; an empty range or list is an error."""
    try:
        if "-" in text and "," not in text:
            a, b = text.split("-")
            seeds = list(range(int(a), int(b) + 1))
        else:
            seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise DiscoInspectError(
            f"`--seeds` = {text!r} is invalid; use a range '0-7' or a list '1,5,9'."
        ) from e
    if not seeds:
        raise DiscoInspectError(
            f"`--seeds` = {text!r} names no seed; use a rising range such as '0-7' or a list '1,5,9'."
        )
    return seeds


def add_model_args(
    p: argparse.ArgumentParser, required: bool = True, group: argparse._ActionsContainer | None = None
) -> None:
    """MODEL, ``--class``, ``--arch``, ``--labels`` and ``--trust-pickle`` (into ``group`` if given)."""
    p = group or p
    p.add_argument(
        "model",
        help="classifier: TorchScript file, state dict (+ --arch), .safetensors (+ --arch), .onnx, "
        "a pickled module (+ --trust-pickle), or world:NAME for a shipped world classifier "
        "(world:biased_circle_green, world:clean, ...)",
    )
    p.add_argument("--class", dest="target", required=required, help="target class: a label name or an index")
    p.add_argument(
        "--arch", help="timm architecture name for a state-dict file, e.g. resnet50 (default: none)"
    )
    p.add_argument(
        "--labels", help="label names: a text file (one per line) or JSON list (default: from the model)"
    )
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow loading a pickled nn.Module (runs code from the file)",
    )


def add_pipeline_args(
    p: argparse.ArgumentParser, classifier: bool = True, group: argparse._ActionsContainer | None = None
) -> None:
    """``--pipeline``, its sampler, ``--device``, ``--dtype`` and ``--threads`` (into ``group`` if given);
    ``classifier``: the command also runs a classifier (``generate`` does not)."""
    from ..models.pipelines import SCHEDULERS, SPACINGS

    p = group or p

    dtype_note = (
        "the classifier keeps its own dtype, its inputs are cast"
        if classifier
        else "no classifier is involved"
    )

    p.add_argument("--pipeline", default="world", help="'world', a diffusers folder, or a hub id")
    p.add_argument("--scheduler", default="ddim", choices=SCHEDULERS, help="sampler")
    p.add_argument(
        "--timestep-spacing", default="trailing", choices=SPACINGS, help="timestep spacing of the sampler"
    )
    p.add_argument(
        "--device",
        default=None,
        help=f"where the pipeline{' and classifier' if classifier else ''} run{'' if classifier else 's'}: cpu, "
        "cuda, cuda:1, mps "
        "(default: cuda if available, else cpu)",
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=DTYPES,
        help=f"pipeline weights dtype (default: float16 on cuda, float32 elsewhere; {dtype_note})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (per task when tasks run in parallel; default: torch's choice, 1 per Ray task)",
    )
    p.add_argument(
        "--memory",
        default="",
        help="memory options for one GPU, comma-separated: attention-slicing, vae-slicing, vae-tiling, "
        "cpu-offload (CUDA only); e.g. --memory attention-slicing,vae-slicing",
    )


def preset_config(pipeline: str | None) -> DiscoConfig:
    """:func:`~disco_inspect.defaults.default_config` of the pipeline ``--pipeline`` names, without loading it (the
    world preset for ``world``, else the paper's settings with ``objective="auto"``)."""
    from types import SimpleNamespace

    from ..defaults import default_config

    return default_config(SimpleNamespace(_disco_source=str(pipeline or "")))


def add_config_args(p: argparse.ArgumentParser) -> None:
    d, w = preset_config(None), preset_config("world")

    def dflt(field: str) -> str:
        """'(default: paper value; world: preset value)' -- the world preset applies with --pipeline world."""
        a, b = getattr(d, field), getattr(w, field)
        return f"(default: {a})" if a == b else f"(default: {a}; world: {b})"

    g = p.add_argument_group(
        "optimisation (defaults: the paper's; with --pipeline world, the world preset's)"
    )
    g.add_argument("--config", help="JSON file with DiscoConfig fields; flags override it")
    g.add_argument("--token", help=f"new token string {dflt('token')}")
    g.add_argument("--initializer", help=f"word that initialises the token {dflt('initializer')}")
    g.add_argument(
        "--n-images", type=int, help=f"images per iteration, one batched forward {dflt('n_images')}"
    )
    g.add_argument("--seed", type=int, help=f"first noise seed {dflt('seed')}")
    g.add_argument(
        "--seed-pool",
        type=int,
        help="cycle each iteration through a pool of this many seeds; 0 = the "
        f"paper's fixed seeds {dflt('seed_pool')}",
    )
    g.add_argument("--steps", type=int, help=f"denoising steps {dflt('num_inference_steps')}")
    g.add_argument(
        "--guidance",
        type=float,
        help=f"classifier-free guidance scale, <=1 disables {dflt('guidance_scale')}",
    )
    g.add_argument(
        "--grad-steps", type=int, help=f"final steps with gradients, -1 = all {dflt('grad_steps')}"
    )
    g.add_argument("--height", type=int, help="image height (default: the pipeline's)")
    g.add_argument("--width", type=int, help="image width (default: the pipeline's)")
    g.add_argument("--lr", type=float, help=f"AdamW learning rate {dflt('lr')}")
    g.add_argument(
        "--weight-decay", type=float, help=f"AdamW weight decay on the token {dflt('weight_decay')}"
    )
    g.add_argument("--max-grad-norm", type=float, help=f"gradient clipping {dflt('max_grad_norm')}")
    g.add_argument("--max-iters", type=int, help=f"maximum iterations {dflt('max_iters')}")
    g.add_argument(
        "--patience",
        type=int,
        help=f"validation iterations without a better loss before stopping {dflt('patience')}",
    )
    g.add_argument(
        "--accuracy-threshold",
        type=float,
        help=f"stop once batch accuracy exceeds this {dflt('accuracy_threshold')}",
    )
    g.add_argument(
        "--image-save-size", type=int, help="downsample saved PNGs to this longer side (default: full size)"
    )
    from ..engine.objectives import OBJECTIVE_CHOICES

    g.add_argument(
        "--objective",
        choices=OBJECTIVE_CHOICES,
        help="toward: cross-entropy to the class (paper); margin: log-odds, keeps a gradient when the class "
        "is already recognised; auto: margin if the baseline mean p(target) >= 0.9, else toward; "
        f"away: push away from the class {dflt('objective')}",
    )
    g.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        default=None,
        help="recompute UNet activations in the backward pass (less GPU memory, slower)",
    )


def add_scale_args(p: argparse.ArgumentParser, verb: str) -> None:
    """``--classes``, ``--models``, ``--workers`` and ``--ray-address``: many (model, class) tasks from one command."""
    g = p.add_argument_group("many classes and models (each pair is one task; Ray runs them in parallel)")
    g.add_argument(
        "--classes",
        default=None,
        help=f"{verb} several classes into one index page: 'a,b,c' (names or indices) or 'all'",
    )
    g.add_argument(
        "--models",
        default=None,
        help="more classifiers to treat the same way, 'm1.pt,m2.pt' (MODEL is the first)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="tasks at once (default: one per GPU, else CPUs / --threads); 1 runs them in this process",
    )
    g.add_argument(
        "--ray-address",
        default=None,
        help="join a running Ray cluster ('auto' or host:port); default: a local Ray started in-process when "
        "Ray is installed (the [scale] extra), else one task after another",
    )


#: Endings of a file name that ``--token`` (the new token's text) must not look like.
_FILE_ENDINGS = (".safetensors", ".bin", ".pt", ".pth", ".json")


def check_token_text(value: str | None) -> None:
    """Refuse a ``--token`` (the new token's text, e.g. '<S>') that looks like a path to a learned token file."""
    import os

    if value is None:
        return
    if any(c in value for c in "/\\") or value.lower().endswith(_FILE_ENDINGS) or os.path.isfile(value):
        raise DiscoInspectError(
            f"`--token` = {value!r} looks like a file, but `--token` is the new token's text (e.g. '<S>'); to use "
            "a learned token file, pass it as `--token-file` to edit, evaluate or generate."
        )


def config_from(args: argparse.Namespace, base: DiscoConfig | None = None) -> DiscoConfig:
    """The config of ``train``/``report``: ``--config`` or ``base`` (default: the ``--pipeline``'s preset,
    :func:`preset_config`) with the flags on top; validated."""
    check_token_text(getattr(args, "token", None))
    if getattr(args, "config", None):
        cfg = DiscoConfig.load(args.config)
    else:
        cfg = base or preset_config(getattr(args, "pipeline", None))
    changes = {
        field: getattr(args, flag)
        for flag, field in CONFIG_FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    return cfg.replace(**changes) if changes else cfg


def device_from(args: argparse.Namespace) -> Any:
    """``--device`` as a torch.device (default: cuda if available, else cpu); a bad name is one clear error."""
    import torch

    name = getattr(args, "device", None)
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise DiscoInspectError(
            f"`--device` = {name!r} is not a torch device; use cpu, cuda, cuda:1 or mps."
        ) from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DiscoInspectError(f"`--device` = {name!r}, but CUDA is not available here; use `--device cpu`.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DiscoInspectError(f"`--device` = {name!r}, but MPS is not available here; use `--device cpu`.")
    return device


def dtype_from(args: argparse.Namespace, device: Any) -> Any:
    import torch

    name = getattr(args, "dtype", None) or ("float16" if device.type == "cuda" else "float32")
    if device.type == "cpu" and name != "float32":
        logger.warning(
            "--dtype %s on the CPU is slow (bfloat16 ~100x) or unsupported; float32 is advised.", name
        )
    return getattr(torch, name)


def memory_from(args: argparse.Namespace) -> list[str]:
    """``--memory`` as a checked list of :data:`~disco_inspect.models.pipelines.MEMORY_OPTIONS` (before any model
    loads)."""
    from ..models.pipelines import check_memory_options

    return check_memory_options(
        str(getattr(args, "memory", "") or "").split(","), device_from(args), flag="--memory"
    )


def setup(args: argparse.Namespace) -> Any:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    from ..models import pipelines

    device = device_from(args)
    return pipelines.load_pipeline(
        args.pipeline,
        scheduler=args.scheduler,
        timestep_spacing=args.timestep_spacing,
        device=str(device),
        torch_dtype=dtype_from(args, device),
        memory=memory_from(args),
    )


def classifier_from(args: argparse.Namespace, source: str | None = None) -> Any:
    from ..models.classifiers import load_classifier
    from ..world.make import resolve_model

    clf = load_classifier(
        resolve_model(source or args.model),
        arch=args.arch,
        labels=args.labels,
        trust_pickle=args.trust_pickle,
    )
    if clf.num_classes < 2:
        raise DiscoInspectError(
            f"The classifier `{source or args.model}` has {clf.num_classes} output; an audit needs at least 2 "
            "classes (p(target) is a softmax over them); pass a classifier with one output per class."
        )
    return clf.to(device_from(args))


def scorer_from(args: argparse.Namespace, pipe: Any) -> Any:
    from ..analysis.concepts import OpenClipScorer, load_concept_file

    concepts, interventions = load_concept_file(args.concepts) if args.concepts else (None, {})
    if args.clip_weights:
        return OpenClipScorer.from_pretrained(
            args.clip_arch, args.clip_weights, concepts, interventions=interventions
        )
    if concepts:
        raise DiscoInspectError(
            "`--concepts` needs an open_clip scorer: add --clip-weights FILE (and --clip-arch)."
        )
    from ..auditor import default_scorer

    return default_scorer(pipe)


def _audit_default(name: str) -> Any:
    """One :class:`~disco_inspect.auditor.AuditSettings` default (written once, there)."""
    from ..auditor import AuditSettings

    return getattr(AuditSettings(), name)


def add_scan_args(g: argparse._ActionsContainer) -> None:
    """How the intervention scan measures and confirms (``report`` and ``world benchmark``)."""
    g.add_argument(
        "--scan-scale",
        choices=("p", "logodds", "auto"),
        default=None,
        help="what the scan measures: the target probability (p, default), its log-odds, or auto (log-odds when "
        "the classifier already recognises the class at baseline)",
    )
    g.add_argument(
        "--confirm-differential",
        action="store_true",
        help="with --reference: confirm a factor only when the audited model relies on it more than the reference "
        "(several references, comma-separated: more than their spread between models)",
    )
    g.add_argument(
        "--saturated-intervention-seeds",
        type=int,
        default=None,
        metavar="K",
        help="paired seeds per intervention when the classifier already recognises the class at baseline (the "
        "saturated regime compresses effects; e.g. 64; default: the same as --intervention-seeds)",
    )
    g.add_argument(
        "--scan-steps",
        type=int,
        default=None,
        metavar="N",
        help="denoising steps of the scan's images (the audit's largest stage; fewer are cheaper, e.g. 10; default: "
        "the token run's --steps)",
    )
    g.add_argument(
        "--real-edit-images",
        type=int,
        default=None,
        metavar="N",
        help="with --images: how many of your images (the first, in file order) the real-image counterfactual scan "
        f"edits toward each shortlisted concept (0 turns it off; default: {_audit_default('real_edit_images')})",
    )
    g.add_argument(
        "--max-intervention-seeds",
        type=int,
        default=None,
        metavar="K",
        help="adaptive seeds: the most paired seeds a concept the first stage leaves undecided gets (default: "
        f"{_audit_default('max_intervention_seeds')})",
    )
    g.add_argument(
        "--adaptive-scan",
        choices=("saturated", "all", "off"),
        default=None,
        help="where the scan measures undecided concepts again on fresh seeds, up to --max-intervention-seeds: only "
        "when the classifier already recognises the class at baseline (saturated, default), in every regime (all), "
        "or never (off)",
    )
