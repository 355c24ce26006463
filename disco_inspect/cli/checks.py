"""Checks of every argument that needs no model, run before anything loads (diffusers' ``check_inputs`` pattern):
one ``check_<command>_args`` per command, each raising :class:`DiscoInspectError` with one line that names the flag
the user typed. Nothing here writes a file or creates a folder."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from ..errors import DiscoInspectError
from .options import config_from, flag_message, memory_from, parse_seeds, preset_config

#: The files ``generate`` writes (``seed_0000.png``), and the temporary files of their atomic writes.
_GENERATED = re.compile(r"\.?seed_\d+\.png(\.[0-9a-f]{12}\.tmp)?")
#: What marks a page or a report.json as written by disco-inspect.
_OUR_PAGE = '<meta name="generator" content="disco-inspect">'


# -- paths -------------------------------------------------------------------------------------------------------


def check_out_path(value: str | Path, flag: str = "--out", what: str = "folder") -> Path:
    """``value`` as a path that can become a ``what`` (``folder`` or ``file``): not an existing file (folder), not
    an existing folder (file), and no file where a parent folder must go."""
    path = Path(value)
    if what == "folder" and path.exists() and not path.is_dir():
        raise DiscoInspectError(f"`{flag}` = `{value}` is a file; pass a new or empty folder.")
    if what == "file" and path.is_dir():
        raise DiscoInspectError(f"`{flag}` = `{value}` is a folder; pass the path of the file to write.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DiscoInspectError(
                    f"`{flag}` = `{value}` lies inside `{parent}`, which is a file; pass a path in a folder."
                )
            break
    return path


def _entries(path: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """The names in folder ``path`` (none if it does not exist), without ``ignore``."""
    return sorted(c.name for c in path.iterdir() if c.name not in ignore) if path.is_dir() else []


def check_run_out(value: str | Path, flag: str = "--out") -> Path:
    """A token run folder: new, empty, or a disco-inspect run (:meth:`RunFolder.is_run`); never someone's folder."""
    from ..engine.run_folder import LOCK_FILE, RUN_MARKER, RunFolder

    path = check_out_path(value, flag)
    others = _entries(path, (LOCK_FILE, RUN_MARKER))
    if others and not RunFolder(path).is_run():
        raise DiscoInspectError(
            f"`{flag}` = `{value}` is not empty and is not a disco-inspect run (it holds {', '.join(others[:5])}); "
            "choose an empty or new folder (`--overwrite` never clears a folder that is not a run)."
        )
    return path


def check_generate_out(value: str | Path) -> Path:
    """``generate --out``: new, empty, or holding only images ``generate`` wrote (``seed_NNNN.png``)."""
    path = check_out_path(value)
    foreign = [n for n in _entries(path) if not _GENERATED.fullmatch(n)]
    if foreign:
        raise DiscoInspectError(
            f"`--out` = `{value}` holds files `generate` did not write ({', '.join(foreign[:5])}); pass a new or "
            "empty folder, or one that holds only earlier seed_NNNN.png images."
        )
    return path


def check_edit_out(value: str | Path, flag: str = "--out") -> Path:
    """An edit folder: new, empty, or an earlier edit (finished or interrupted: :func:`~..editor.is_edit_folder`)."""
    from ..editor import EDIT_JSON, is_edit_folder

    path = check_out_path(value, flag)
    if _entries(path) and not is_edit_folder(path):
        raise DiscoInspectError(
            f"`{flag}` = `{value}` holds other files and no {EDIT_JSON}; pass an empty or new folder (an earlier "
            "edit folder, finished or interrupted, is updated in place)."
        )
    return path


def _is_ours(path: Path) -> bool:
    """Whether ``path`` (an ``index.html`` or a ``report.json``) was written by disco-inspect."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if path.suffix == ".html":
        return _OUR_PAGE in text[:4096]
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and {"schema_version", "audited"} <= set(doc)


def check_report_folder(folder: Path) -> None:
    """A class folder of ``report``: no ``index.html``/``report.json`` that disco-inspect did not write, and a
    token run folder that is new, empty or a run."""
    if folder.exists() and not folder.is_dir():
        raise DiscoInspectError(f"`--out`: `{folder}` is a file, where the report of a class goes; move it.")
    for name in ("index.html", "report.json"):
        if (folder / name).exists() and not _is_ours(folder / name):
            raise DiscoInspectError(
                f"`--out`: `{folder / name}` was not written by disco-inspect and the report would replace it; "
                "pass another `--out` or move the file."
            )
    check_run_out(folder / "run")


# -- inputs ------------------------------------------------------------------------------------------------------


def check_token_file(value: str, flag: str = "--token-file") -> Path:
    """A learned token: a token file, or a run folder holding one; readable."""
    from ..engine.run_folder import TOKEN_FILE
    from ..engine.token import load_token

    path = Path(value)
    if path.is_dir():
        if not (path / TOKEN_FILE).is_file():
            raise DiscoInspectError(
                f"`{flag}` = `{value}` is a folder without {TOKEN_FILE}; pass a run folder of `train`/`report` "
                "or a token file."
            )
        path = path / TOKEN_FILE
    elif not path.exists():
        raise DiscoInspectError(
            f"`{flag}` = `{value}` does not exist; pass a token file (.safetensors) or a run folder written by "
            "`train`/`report`."
        )
    try:
        load_token(path)
    except DiscoInspectError as e:
        raise DiscoInspectError(f"`{flag}` = `{value}`: {e}") from e
    return path


def check_images(spec: str, flag: str = "--images") -> None:
    """``spec`` names image files and at least one of them is a readable image (as the edit needs)."""
    from PIL import Image

    from ..editing.images import class_folders, find_images

    tree = class_folders(spec) if flag == "--images" else None
    try:
        paths = [p for folder in tree.values() for p in find_images(folder)] if tree else find_images(spec)
    except DiscoInspectError as e:
        raise DiscoInspectError(f"`{flag}` = {spec!r}: {e}") from e
    failures = []
    for path in paths:
        try:
            with Image.open(path) as im:
                im.verify()
            return
        except Exception as e:  # noqa: BLE001 - any unreadable file counts as one
            failures.append(f"{path.name}: {type(e).__name__}: {e}")
    raise DiscoInspectError(
        f"`{flag}` = {spec!r}: none of its {len(paths)} files is a readable image ({'; '.join(failures[:3])}); pass "
        "PNG, JPEG, BMP, WebP or TIFF files."
    )


def _check_file(value: str | None, flag: str) -> None:
    """A weights file given by ``flag`` exists."""
    if value is not None and not Path(value).is_file():
        raise DiscoInspectError(f"`{flag}` = `{value}` does not exist; pass a local weights file.")


def check_concepts(args: argparse.Namespace) -> None:
    """``--concepts`` parses and has the open_clip scorer it needs; ``--clip-weights`` exists."""
    _check_file(args.clip_weights, "--clip-weights")
    if args.concepts:
        from ..analysis.concepts import load_concept_file

        load_concept_file(args.concepts)
        if not args.clip_weights:
            raise DiscoInspectError(
                "`--concepts` needs an open_clip scorer: add --clip-weights FILE (and --clip-arch)."
            )


def _sampler_config(args: argparse.Namespace) -> Any:
    """The ``--pipeline``'s preset with ``--steps``/``--guidance``/``--height``/``--width``: checks their values."""
    given = {
        "num_inference_steps": getattr(args, "steps", None),
        "guidance_scale": getattr(args, "guidance", None),
        "height": getattr(args, "height", None),
        "width": getattr(args, "width", None),
    }
    return preset_config(args.pipeline).replace(**{k: v for k, v in given.items() if v is not None})


# -- one check per command ----------------------------------------------------------------------------------------


def check_train_args(args: argparse.Namespace) -> Any:
    """``train``: the config (the ``--pipeline``'s preset and the flags) and ``--out``; returns the config."""
    cfg = config_from(args)
    if args.out:
        check_run_out(args.out)
    return cfg


def check_generate_args(args: argparse.Namespace) -> tuple[list[int], Any]:
    """``generate``: seeds, sampler values, the token file and ``--out``; returns the seeds and the sampler config."""
    seeds = parse_seeds(args.seeds)
    cfg = _sampler_config(args)
    check_token_file(args.token_file)
    check_generate_out(args.out)
    return seeds, cfg


def check_evaluate_args(args: argparse.Namespace) -> None:
    """``evaluate``: seeds, sampler values, the token file, the label map, ``--fid-real`` and ``--json``."""
    from .tasks import load_label_map

    if args.n_seeds < 1:
        raise DiscoInspectError(f"`--eval-seeds` = {args.n_seeds} is invalid; use a number of seeds >= 1.")
    _sampler_config(args)
    if load_label_map(args.label_map) and not args.eval_model:
        raise DiscoInspectError("`--label-map` maps classes to --eval-model's labels; pass --eval-model too.")
    if args.classes and args.token_file:
        raise DiscoInspectError(
            "`--token-file` is for one class; with `--classes` each class's token comes from `--runs` (report's "
            "--out)."
        )
    if not args.classes:
        if not args.target or not args.token_file:
            raise DiscoInspectError(
                "Pass `--class NAME --token-file RUN` for one class, or `--classes a,b|all` (tokens from `--runs`)."
            )
        check_token_file(args.token_file)
    if args.fid_real and not Path(args.fid_real).is_dir():
        raise DiscoInspectError(
            f"`--fid-real` = {args.fid_real!r} is not a folder; give one subfolder per class."
        )
    if args.json:
        check_out_path(args.json, "--json", what="file")


def check_edit_args(args: argparse.Namespace) -> Any:
    """``edit``: the edit settings, the images, the token file, the prompt, ``--out`` and the metric files; returns
    the :class:`~disco_inspect.editor.EditSettings`."""
    from ..editor import EditSettings

    settings = EditSettings(
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        cross_replace=args.cross_replace,
        self_replace=args.self_replace,
        method=args.method,
        inversion=args.inversion,
        samples=args.samples,
        sigma=args.sigma,
        seed=args.seed,
        vae_steps=args.vae_steps,
    )
    if args.max_images is not None and args.max_images < 1:
        raise DiscoInspectError(
            f"`--max-images` = {args.max_images} is invalid; use a number of images >= 1."
        )
    if args.prompt is not None and "{class_name}" not in args.prompt:
        raise DiscoInspectError(
            f"`--prompt` = {args.prompt!r} needs '{{class_name}}' where the class goes, e.g. 'a photo of a "
            "{class_name}'."
        )
    check_images(args.images)
    check_token_file(args.token_file)
    if args.out:
        check_edit_out(args.out)
    check_concepts(args)
    _check_file(args.lpips_weights, "--lpips-weights")
    return settings


def _check_images_per_class(args: argparse.Namespace) -> None:
    """With several classes, ``--images`` must say which images are of which class: a tree DIR/<class>/..."""
    from ..editing.images import class_folders

    several = bool(args.classes) and (args.classes.strip().lower() == "all" or "," in args.classes)
    if several and class_folders(args.images) is None:
        raise DiscoInspectError(
            f"`--images` = {args.images!r} with `--classes` {args.classes!r}: each class needs its own images; pass a "
            "folder of class folders (DIR/<class>/...), and each audit takes its class's folder."
        )


def check_report_args(args: argparse.Namespace) -> None:
    """``report``: the config, the analysis settings, ``--images``, the concepts and their scorer, and ``--out``
    (the class folders are checked by :func:`check_report_folder` once the classes are known)."""
    from .tasks import audit_settings

    config_from(args)
    audit_settings(args)
    memory_from(args)
    if args.images:
        check_images(args.images)
        _check_images_per_class(args)
    check_concepts(args)
    if not args.clip_weights:
        _check_default_scorer(args.pipeline)
    check_out_path(args.out)


def _check_default_scorer(pipeline: str) -> None:
    """A pipeline without a registered concept scorer needs ``--clip-weights`` (the message of ``default_scorer``)."""
    from types import SimpleNamespace

    from .. import registry
    from ..defaults import default_scorer

    if not registry.has("scorer", str(pipeline)):
        default_scorer(SimpleNamespace(_disco_source=str(pipeline)))  # raises, naming how to give one


def check_world_train_args(args: argparse.Namespace) -> None:
    """``world train``: ``--work`` is new, empty or a world-training folder, and its config with the flags is valid."""
    from ..world.train import WorldTrainConfig

    fields = {f: "--" + f.replace("_", "-") for f in WorldTrainConfig.__dataclass_fields__}
    work = check_out_path(args.work, "--work")
    saved = _world_train_config(work)
    if saved is None:
        raise DiscoInspectError(
            f"`--work` = `{args.work}` is not empty and is not a world-training folder (it holds "
            f"{', '.join(_entries(work)[:5])}); pass a new or empty folder, or one `world train` wrote."
        )
    try:
        cfg = WorldTrainConfig.from_dict(saved)
        cfg.replace(**{k: getattr(args, k) for k in cfg.to_dict() if getattr(args, k, None) is not None})
    except DiscoInspectError as e:
        raise DiscoInspectError(flag_message(str(e), fields)) from e


def _world_train_config(work: Path) -> dict[str, Any] | None:
    """The saved config of a world-training folder (``{}`` for a new or empty one); None for another folder."""
    from ..world.train import WorldTrainConfig

    if not _entries(work):
        return {}
    try:
        saved = json.loads((work / "config.json").read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(saved, dict) and set(saved) <= set(WorldTrainConfig.__dataclass_fields__)
    return saved if ok else None


def check_make_args(what: str, args: argparse.Namespace) -> None:
    """``world make-*``: training steps, and for ``make-classifier`` the bias and ``--out`` (a TorchScript file)."""
    import zipfile

    if args.train_steps < 1:
        raise DiscoInspectError(
            f"`--train-steps` = {args.train_steps} is invalid; use a number of training steps >= 1."
        )
    if what != "classifier":
        return
    from .options import device_from

    device_from(args)  # a bad --device is one line, before minutes of training
    if args.bias:
        from ..world.bias import BiasSpec

        BiasSpec.parse(args.bias)
    out = check_out_path(args.out, "--out", what="file")
    if out.is_file() and not zipfile.is_zipfile(out):
        raise DiscoInspectError(
            f"`--out` = `{args.out}` is a file that is not a TorchScript classifier; pass a new path (an earlier "
            "classifier is replaced)."
        )
