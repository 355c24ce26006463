"""Many (model, class) jobs from one command: resolve the classes of every model, then run one job per pair through
:func:`disco_inspect.runner.run_tasks` (sequentially, or as Ray tasks)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import DiscoInspectError
from ..runner import Task
from .options import class_folder, classifier_from, config_from, scorer_from, setup, slug

#: Objects a process loads once per command and reuses across that command's tasks (a Ray worker runs several tasks
#: in turn): ``(run id, {key: object})``. A new command (run id) starts empty, so no pipeline carries another
#: command's installed token into the next (in a notebook or a test session, one process runs many commands).
_CACHE: tuple[str | None, dict[tuple[Any, ...], Any]] = (None, {})


def new_run_id(args: argparse.Namespace) -> None:
    """Mark ``args`` as one command: the objects its tasks load are shared by them and by no other command."""
    import uuid

    args.run_id = uuid.uuid4().hex


def _cached(args: argparse.Namespace, key: tuple[Any, ...], make: Any) -> Any:
    global _CACHE
    run_id = getattr(args, "run_id", None)
    if _CACHE[0] != run_id or run_id is None:
        _CACHE = (run_id, {})
    store = _CACHE[1]
    if key not in store:
        store[key] = make()
    return store[key]


def _pipeline(args: argparse.Namespace) -> Any:
    """The pipeline of ``args``, loaded once per command in this process."""
    return _cached(
        args,
        ("pipe", args.pipeline, args.scheduler, args.timestep_spacing, args.device, args.dtype),
        lambda: setup(args),
    )


def _classifier(args: argparse.Namespace, source: str | None) -> Any:
    """The classifier ``source`` (``None`` -> ``None``), loaded once per command in this process."""
    if not source:
        return None
    return _cached(
        args, ("clf", source, args.arch, args.labels, args.device), lambda: classifier_from(args, source)
    )


def reference_list(source: str | None) -> list[str]:
    """``--reference a.pt`` or ``--reference a.pt,b.pt,c.pt`` (several: the spread between them is the null)."""
    return [r.strip() for r in (source or "").split(",") if r.strip()]


def _references(args: argparse.Namespace) -> Any:
    """The ``--reference`` classifier, a list of them, or ``None``."""
    refs = [_classifier(args, r) for r in reference_list(args.reference)]
    return refs[0] if len(refs) == 1 else refs or None


def model_list(args: argparse.Namespace) -> list[str]:
    """MODEL followed by ``--models a,b`` (each once, in order)."""
    extra = [m.strip() for m in (getattr(args, "models", None) or "").split(",") if m.strip()]
    out: list[str] = []
    for m in [args.model, *extra]:
        if m not in out:
            out.append(m)
    return out


def class_list(args: argparse.Namespace) -> list[str] | None:
    """``--class NAME`` or ``--classes a,b|all`` as names (``None`` = every class of each model)."""
    if bool(args.target) == bool(args.classes):
        raise DiscoInspectError(
            "Pass exactly one of `--class NAME` or `--classes a,b,c` (or `--classes all`)."
        )
    if args.target:
        return [args.target]
    if args.classes.strip().lower() == "all":
        return None
    names = [c.strip() for c in args.classes.split(",") if c.strip()]
    if not names:
        raise DiscoInspectError(
            f"`--classes` = {args.classes!r} names no class; write e.g. --classes circle,square."
        )
    return names


def model_root(out: str | Path, model: str) -> Path:
    """``OUT/<model-slug>``: where one model's class folders go."""
    from ..world.make import resolve_model

    return Path(out) / slug(Path(str(resolve_model(model))).stem)


def plan_tasks(args: argparse.Namespace) -> list[Task]:
    """One task per (model, class), every class name checked against every model before any work: all unknown
    names are reported at once."""
    names = class_list(args)
    tasks: list[Task] = []
    problems: list[str] = []
    for model in model_list(args):
        clf = _classifier(args, model)  # the same object in-process tasks use (one load per command)
        wanted: list[str | int] = list(range(clf.num_classes)) if names is None else list(names)
        unknown = []
        root = model_root(args.out, model)
        for name in wanted:
            try:
                idx = clf.resolve_class(name)
            except DiscoInspectError:
                unknown.append(str(name))
                continue
            cls = clf.class_name(idx)
            tasks.append(
                Task(model=model, class_index=idx, class_name=cls, folder=root / class_folder(idx, cls))
            )
        if unknown:
            unknown = [_with_suggestion(u, clf.label_names) for u in unknown]
            shown = ", ".join(repr(n) for n in clf.label_names[:8]) + (", ..." if clf.num_classes > 8 else "")
            problems.append(f"{model}: {', '.join(unknown)} (its classes: {shown})")
    if problems:
        raise DiscoInspectError(
            "Unknown class names, nothing was run: " + "; ".join(problems) + ". Use label names or indices."
        )
    return tasks


def _with_suggestion(name: str, labels: list[str]) -> str:
    """``'circel' (did you mean 'circle'?)``: an unknown class name with its closest label names (difflib)."""
    import difflib

    by_key = {label.casefold(): label for label in labels}
    close = difflib.get_close_matches(name.strip().casefold(), list(by_key), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(by_key[c]) for c in close)}?)" if close else ""
    return f"{name!r}{hint}"


def audit_settings(args: argparse.Namespace) -> Any:
    """The analysis flags as :class:`AuditSettings` (unset flags: its own defaults); validated here, in the
    driver, so a bad value fails before any task starts."""
    from ..auditor import AuditSettings

    given = {
        "eval_seeds": args.eval_seeds,
        "intervention_seeds": args.intervention_seeds,
        "saturated_intervention_seeds": args.saturated_intervention_seeds,
        "max_intervention_seeds": args.max_intervention_seeds,
        "adaptive_scan": args.adaptive_scan,
        "scan_steps": args.scan_steps,
        "real_edit_images": args.real_edit_images,
        "alpha": args.alpha,
        "min_effect": args.min_effect,
        "attribution_images": 0 if args.no_attributions else None,
        "scan": not args.no_scan,
        "scan_scale": args.scan_scale,
        "confirm_differential": args.confirm_differential or None,
    }
    if args.confirm_differential and not args.reference:
        raise DiscoInspectError(
            "`--confirm-differential` needs `--reference REF_MODEL` (e.g. a clean classifier)."
        )
    if args.control_draws is not None and args.control_draws < -1:
        raise DiscoInspectError(
            f"`--control-draws` = {args.control_draws} is invalid; use -1 (no null control) or a number of "
            "control tokens >= 0."
        )
    if args.control_draws == -1:
        given["null_control"] = False
    elif args.control_draws is not None:
        given["control_draws"] = args.control_draws
    return AuditSettings(**{k: v for k, v in given.items() if v is not None})


def _audit_models(args: argparse.Namespace, task: Task) -> tuple[Any, Any, Any]:
    """The pipeline, ``task``'s classifier and the concept scorer of an audit (loaded once per process)."""
    pipe, clf = _pipeline(args), _classifier(args, task.model)
    scorer = _cached(
        args,
        ("scorer", args.pipeline, args.concepts, args.clip_arch, args.clip_weights),
        lambda: scorer_from(args, pipe),
    )
    return pipe, clf, scorer


def audit_job(args: argparse.Namespace, task: Task, progress: bool = False) -> dict[str, Any]:
    """Audit ``task``'s class into its folder (resuming a token run there) and return what the index needs.

    ``progress``: the audit's own progress bars (for a single task; many tasks share one task bar)."""
    from ..auditor import audit, default_config
    from ..editor import EditSettings

    settings = audit_settings(args)
    pipe, clf, scorer = _audit_models(args, task)
    reference = _references(args)
    res = audit(
        pipe,
        clf,
        task.class_index,
        scorer=scorer,
        config=config_from(args, default_config(pipe)),
        settings=settings,
        out=task.folder,
        progress=progress,
        overwrite=False,  # the driver cleared the run folders once; a retried task must resume, not restart
        allow_unfinished=args.report_unfinished,
        reference=reference,
        user_images=args.images,
        edit_settings=EditSettings(inversion=args.inversion) if args.images and args.inversion else None,
        save=False,
    )
    res.save(task.folder, plotly=getattr(args, "shared_plotly", None))  # many classes share one plotly.js
    return {
        "doc": res.to_dict(),
        "lines": summary_lines(res, task.folder),
        "href": f"{task.folder.name}/index.html",
    }


def plan_job(args: argparse.Namespace, task: Task) -> str:
    """``report --plan``: what auditing ``task`` will cost, per stage (the audit's own defaults), as a table;
    nothing is generated (one probed call of the UNet, the VAE and the classifier times the estimate)."""
    from ..auditor import default_config
    from ..editor import EditSettings
    from ..planner import plan_audit

    pipe, clf, scorer = _audit_models(args, task)
    plan = plan_audit(
        pipe,
        task.class_name,
        scorer=scorer,
        config=config_from(args, default_config(pipe)),
        settings=audit_settings(args),
        classifier=clf,
        user_images=args.images,
        edit_settings=EditSettings(inversion=args.inversion) if args.images and args.inversion else None,
    )
    return f"{task.label}: the audit's cost plan\n{plan.format()}"


def summary_lines(res: Any, folder: Path) -> list[str]:
    """The console summary of one audit."""
    top = res.factors.top(3)
    kind = res.factors.method.get("ranking_kind", "reliance")
    lines = [
        f"{res.run.class_name}: report {folder / 'index.html'}",
        f"  target probability {float(res.baseline_probs.mean()):.3f} -> {float(res.token_probs.mean()):.3f} "
        f"({res.run.regime}, objective {res.run.objective}); "
        + (f"{kind}: " + ", ".join(describe_factor(f) for f in top) if top else "no confirmed factor")
        + (
            "; token only (not confirmed): "
            + ", ".join(f"{f.concept} ({f.effect:+.2f})" for f in res.factors.candidates[:3])
            if res.factors.candidates
            else ""
        ),
    ]
    from ..report.build import evidence_summary

    lines.append(f"  evidence: {evidence_summary(res)['summary']}")
    if res.edits:
        e = res.edits["summary"]
        lines.append(
            f"  edits of your images: {folder / res.edits['href']} (p {e['p_target_source']:.3f} -> "
            f"{e['p_target_edit']:.3f}; {e['n_images']} images)"
        )
    return lines


def describe_factor(f: Any) -> str:
    """One factor for the console: intervention effect (and differential) if confirmed, token shift, who found it."""
    parts = []
    if f.confirmed:
        parts.append(f"confirmed, dp {f.intervention.effect:+.2f}")
        if f.intervention.reference:
            parts.append(f"{f.intervention.reference['differential']['effect']:+.2f} vs reference")
    parts.append(f"token shift {f.effect:+.2f}, q={f.q_value:.3g}")
    return f"{f.concept} ({'; '.join(parts)}; found by {f.nominated_by})"


def clear_runs(tasks: list[Task]) -> None:
    """``--overwrite``: clear each task's token run once, in the driver (a retried task then resumes)."""
    from ..engine.run_folder import RunFolder

    for task in tasks:
        run = task.folder / "run"
        if run.is_dir() and any(run.iterdir()):
            with RunFolder(run) as folder:
                folder.clear()


def token_run_folder(task: Task) -> Path:
    """Where ``report`` left the class's token run: ``OUT/<model>/<index-class>/run``."""
    return task.folder / "run"


def check_token_runs(tasks: list[Task]) -> None:
    """Every task needs a learned token (``report`` with the same ``--out`` as ``evaluate --runs``): all missing
    ones are listed at once, before any work."""
    from ..engine.run_folder import TOKEN_FILE

    missing = [t for t in tasks if not (token_run_folder(t) / TOKEN_FILE).is_file()]
    if missing:
        shown = "; ".join(f"{t.label} ({token_run_folder(t)})" for t in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise DiscoInspectError(
            f"No learned token for {len(missing)} of {len(tasks)} classes: {shown}{more}. Learn them first with "
            "`disco-inspect report MODEL --classes ... --out DIR` and pass the same folder as `--runs DIR`."
        )


def load_label_map(path: str | None) -> dict[str, str]:
    """``--label-map FILE``: a JSON object {guiding class name: class name in --eval-model}."""
    if not path:
        return {}
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DiscoInspectError(
            f"`--label-map` = {path!r} is unreadable ({e}); write a JSON object such as "
            '{"Cardinal": "Cardinalis cardinalis"}.'
        ) from e
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int)) for k, v in data.items()
    ):
        raise DiscoInspectError(
            f"`--label-map` = {path!r} must be a JSON object mapping class names to names (or indices) of "
            "--eval-model's labels."
        )
    return {k: v for k, v in data.items()}


def check_label_map(args: argparse.Namespace, tasks: list[Task], label_map: dict[str, Any]) -> None:
    """Every evaluated class must exist in ``--eval-model`` (under its own name or the label map's): all that do
    not are listed at once."""
    if not args.eval_model:
        if label_map:
            raise DiscoInspectError(
                "`--label-map` maps classes to --eval-model's labels; pass --eval-model too."
            )
        return
    other = _classifier(args, args.eval_model)
    bad = []
    for t in tasks:
        name = label_map.get(t.class_name, t.class_name)
        try:
            other.resolve_class(name)
        except DiscoInspectError:
            bad.append(f"{t.class_name!r} -> {name!r}")
    if bad:
        raise DiscoInspectError(
            f"--eval-model has no class for: {', '.join(bad)}. Add them to `--label-map` (JSON: "
            '{"guiding class": "eval-model class"}).'
        )


def evaluate_job(
    args: argparse.Namespace, label_map: dict[str, Any], task: Task, real_dirs: dict[str, Path] | None = None
) -> dict[str, Any]:
    """Table 1 for one class: paired seeds without/with the class's learned token (cached in the audit folder, so
    a rerun or a retried task does not generate again)."""
    import hashlib
    import json

    from ..engine.evaluate import evaluate_accuracy
    from ..engine.run_folder import TOKEN_FILE
    from ..engine.token_run import TokenRun
    from ..io import write_json

    run_dir = token_run_folder(task)
    real_dir = (real_dirs or {}).get(task.class_name)
    eval_class = label_map.get(task.class_name) if args.eval_model else None
    key = {
        "token": hashlib.sha256((run_dir / TOKEN_FILE).read_bytes()).hexdigest()[:16],
        "n_seeds": args.n_seeds,
        "seed": args.seed,
        "template": args.template,
        "steps": args.steps,
        "guidance": args.guidance,
        "eval_model": args.eval_model,
        "eval_class": eval_class,
        "pipeline": args.pipeline,
        "fid_real": str(real_dir) if real_dir else None,
        "fid_features": args.fid_features if real_dir else None,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache = task.folder / "evaluations" / f"{digest}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    pipe, clf, other = _pipeline(args), _classifier(args, task.model), _classifier(args, args.eval_model)
    res = evaluate_accuracy(
        pipe,
        clf,
        task.class_index,
        TokenRun.load(run_dir),
        n_seeds=args.n_seeds,
        seed=args.seed,
        template=args.template,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        eval_classifier=other,
        eval_class=eval_class,
        keep_images=real_dir is not None,
    )
    out = {"model": task.model, **res.to_dict(), "settings": key}
    if real_dir is not None:
        out["fid"] = class_fid(args, real_dir, res, other or clf)
    write_json(cache, out)
    return out


def fid_real_folders(args: argparse.Namespace, tasks: list[Task]) -> dict[str, Path]:
    """``--fid-real DIR``: each class's folder of real images (``DIR/<class name>`` or ``DIR/<index>-<slug>``);
    every class without one is listed at once, before any work."""
    if not args.fid_real:
        return {}
    root = Path(args.fid_real)
    if not root.is_dir():
        raise DiscoInspectError(
            f"`--fid-real` = {args.fid_real!r} is not a folder; give one subfolder per class."
        )
    found, missing = {}, []
    for t in tasks:
        for candidate in (root / t.class_name, root / t.folder.name):
            if candidate.is_dir():
                found[t.class_name] = candidate
                break
        else:
            missing.append(f"{t.class_name!r} ({root / t.class_name})")
    if missing:
        raise DiscoInspectError(f"`--fid-real` has no folder of real images for {', '.join(missing)}.")
    return found


def fid_features(args: argparse.Namespace, scoring: Any) -> Any:
    """``--fid-features``: the feature network FID is computed in."""
    from ..analysis.fid import features_from_classifier

    choice = args.fid_features
    if choice == "classifier":
        return features_from_classifier(scoring)
    if choice == "oracle":
        from ..world.benchmarks.oracle_fid import OracleFeatures

        return OracleFeatures()
    return features_from_classifier(_classifier(args, choice))


def class_fid(
    args: argparse.Namespace, real_dir: Path, result: Any, scoring: Any, progress: bool = False
) -> dict[str, Any]:
    """The FID table row of one class: its generated images (without/with the token) against ``real_dir``
    (``progress``: a bar over the images)."""
    from ..analysis.fid import fid_table
    from ..editing.images import load_images

    size = int(result.images["baseline"].shape[-1])
    real = load_images(real_dir, size).images
    generated = {result.class_name: result.images}
    return fid_table({result.class_name: real}, generated, fid_features(args, scoring), progress=progress)
