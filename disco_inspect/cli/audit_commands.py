"""`report`, `benchmark`, `train`, `generate` and `evaluate`: the audit subcommands and their parsers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import DiscoInspectError
from .options import (
    Formatter,
    add_config_args,
    add_model_args,
    add_pipeline_args,
    add_scale_args,
    add_scan_args,
    class_folder,
    classifier_from,
    logger,
    setup,
)


def cmd_report(args: argparse.Namespace) -> int:
    """Audit one or more classes of one or more models (each a task: sequential, or on Ray) and write
    self-contained HTML reports plus report.json, and an index page when there are several."""
    from functools import partial

    from ..report.html import write_index, write_shared_plotly
    from ..report.requirements import check_report_dependencies
    from ..runner import run_tasks
    from .checks import check_report_args, check_report_folder
    from .tasks import audit_job, clear_runs, model_list, model_root, new_run_id, plan_job, plan_tasks

    check_report_args(args)  # every flag that needs no model, before anything loads
    new_run_id(args)  # one command: the class-name check and in-process tasks share loaded models
    tasks = plan_tasks(args)  # every class name checked against every model before any work
    if args.plan:  # the cost of each audit, and nothing generated or written
        print("\n".join(plan_job(args, task) for task in tasks), flush=True)
        return 0
    for task in tasks:
        check_report_folder(task.folder)  # no foreign index.html/report.json, a run folder that is ours
    models = model_list(args)
    root = Path(args.out) if len(models) > 1 else model_root(args.out, models[0])
    if len(tasks) > 1:
        check_report_folder(root)
    check_report_dependencies(attributions=not args.no_attributions)  # before minutes of training
    if args.overwrite:
        clear_runs(tasks)
    if len(tasks) > 1:  # the reports load one plotly.js beside the index (relative path, offline)
        args.shared_plotly = str(write_shared_plotly(root))

    def show(outcome: Any) -> None:
        if outcome.status == "done":
            print("\n".join(outcome.result["lines"]), flush=True)
        else:
            print(f"{outcome.task.label}: FAILED ({outcome.error})", flush=True)

    workers = args.workers
    outcomes = run_tasks(
        tasks,
        partial(audit_job, args, progress=not args.no_progress and len(tasks) == 1),
        executor="local" if workers == 1 and not args.ray_address else "auto",
        workers=workers,
        threads=args.threads,
        ray_address=args.ray_address,
        progress=not args.no_progress,
        on_done=show,
    )
    if len(outcomes) > 1:
        entries = [
            {
                "model": o.task.model,
                "class_name": o.task.class_name,
                "href": str(o.task.folder.relative_to(Path(args.out)) / "index.html")
                if len(models) > 1
                else o.result["href"]
                if o.result
                else f"{o.task.folder.name}/index.html",
                "doc": o.result["doc"] if o.result else None,
                "status": o.status,
                "error": o.error,
                "seconds": o.seconds,
            }
            for o in outcomes
        ]
        title = f"disco-inspect audit of {', '.join(Path(str(m)).name for m in models)}"
        print(f"index: {write_index(entries, root, title)}")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(
            f"{len(failed)} of {len(outcomes)} tasks failed: "
            + "; ".join(f"{o.task.label}: {o.error}" for o in failed)
        )
        return 1
    return 0


def _benchmark_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """The audit settings and reference classifiers of ``world benchmark --random/--saturated`` (checked first)."""
    if args.random is not None and args.saturated is not None:
        raise DiscoInspectError("`--random` and `--saturated` are two benchmarks; pass one of them.")
    scan = {
        "scan_scale": args.scan_scale,
        "confirm_differential": args.confirm_differential or None,
        "intervention_seeds": args.intervention_seeds,
        "saturated_intervention_seeds": args.saturated_intervention_seeds,
        "max_intervention_seeds": args.max_intervention_seeds,
        "adaptive_scan": args.adaptive_scan,
        "scan_steps": args.scan_steps,
        "real_edit_images": args.real_edit_images,
    }
    scan = {k: v for k, v in scan.items() if v is not None}
    if (scan or args.reference) and args.random is None and args.saturated is None:
        raise DiscoInspectError(
            "`--reference`, `--scan-scale`, `--confirm-differential`, `--scan-steps`, `--real-edit-images` and the "
            "intervention seeds apply to `--random`/`--saturated`; the shipped examples have their own settings."
        )
    if args.confirm_differential and not args.reference:
        raise DiscoInspectError(
            "`--confirm-differential` needs `--reference REF_MODEL` (e.g. a clean classifier)."
        )
    if args.images is not None and (args.images < 1 or (args.random is None and args.saturated is None)):
        raise DiscoInspectError(
            f"`--images` = {args.images} is invalid: give a number of images >= 1 (e.g. 64) together with "
            "`--random N` or `--saturated N`."
        )
    from ..auditor import AuditSettings

    settings = AuditSettings(**scan) if scan else None
    from .tasks import reference_list

    refs = reference_list(args.reference)
    references = refs[0] if len(refs) == 1 else refs or None
    return settings, references


def cmd_benchmark(args: argparse.Namespace) -> int:
    """``disco-inspect world benchmark``: the planted-bias benchmark on the bundled world."""
    import torch

    from ..world.benchmarks.handpicked import HEADER, run_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"max_iters": args.max_iters} if args.max_iters else {}
    settings, references = _benchmark_settings(args)
    pipe = _benchmark_pipeline(args)
    if args.saturated is not None:
        from ..world.benchmarks.randomised import run_saturated_benchmark

        out = args.out if args.out != "reports/world-benchmark" else "reports/world-saturated-benchmark"
        doc = run_saturated_benchmark(
            args.saturated,
            args.seed,
            out=out,
            steps=args.train_steps,
            pipe=pipe,
            settings=settings,
            reference=references,
            config_overrides=overrides,
            progress=not args.no_progress,
            device=args.device or "cpu",
            images=args.images or 0,
        )
        return 0 if doc["cases"] else 1
    if args.random is not None:
        from ..world.benchmarks.randomised import run_random_benchmark

        out = args.out if args.out != "reports/world-benchmark" else "reports/world-random-benchmark"
        run_random_benchmark(
            args.random,
            args.seed,
            clean=args.clean,
            out=out,
            steps=args.train_steps,
            pipe=pipe,
            settings=settings,
            reference=references,
            config_overrides=overrides,
            progress=not args.no_progress,
            device=args.device or "cpu",
            images=args.images or 0,
        )
        return 0
    print(HEADER)
    rows = run_benchmark(
        pipe=pipe,
        names=args.only.split(",") if args.only else None,
        out=args.out,
        config_overrides=overrides,
        progress=not args.no_progress,
    )
    passed = sum(r["passed"] for r in rows)
    print(f"{passed}/{len(rows)} passed; reports in {args.out}/index.html")
    return 0 if passed == len(rows) else 1


def _benchmark_pipeline(args: argparse.Namespace) -> Any:
    """``world benchmark --device``: the world pipeline on that device (``None`` without the flag: the benchmark loads
    it on the CPU)."""
    if args.device is None:
        return None
    from ..models import pipelines
    from .options import device_from

    return pipelines.load_pipeline("world", device=str(device_from(args)))


def cmd_train(args: argparse.Namespace) -> int:
    """Train a class token and write a run folder."""
    from ..engine.optimize import train_token
    from .checks import check_run_out, check_train_args

    cfg = check_train_args(args)  # the --pipeline's preset and the flags, before any load
    clf = classifier_from(args)
    idx = clf.resolve_class(args.target)
    out = check_run_out(args.out or Path("runs") / class_folder(idx, clf.class_name(idx)))
    pipe = setup(args)
    run = train_token(
        pipe, clf, idx, config=cfg, out=out, overwrite=args.overwrite, progress=not args.no_progress
    )
    first, last = run.trajectory[0] if run.trajectory else {}, run.trajectory[-1] if run.trajectory else {}
    print(f"run folder: {out}")
    print(f"token: {run.token_path}  (stopped: {run.stopped}, best step {run.best_step})")
    if run.trajectory:
        print(
            f"target probability: baseline {run.baseline.get('target_prob_mean', float('nan')):.3f}, "
            f"first {first['target_prob_mean']:.3f}, last {last['target_prob_mean']:.3f}; "
            f"accuracy first {first['accuracy']:.2f}, last {last['accuracy']:.2f}"
        )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate images with a learned token."""
    from ..engine.run_folder import save_png
    from ..engine.sampling import generate
    from ..engine.token import install_token
    from .checks import check_generate_args, check_token_file

    seeds, cfg = check_generate_args(args)  # every flag, before loading anything
    pipe = setup(args)
    token = install_token(pipe, check_token_file(args.token_file))
    if token not in args.prompt:
        logger.warning("The prompt does not contain the token %r; images will not use it.", token)
    images = generate(
        pipe,
        [args.prompt] * len(seeds),
        seeds,
        num_inference_steps=cfg.num_inference_steps,
        guidance_scale=cfg.guidance_scale,
        height=args.height,
        width=args.width,
        progress=None if args.no_progress else "generate",
    )
    out = Path(args.out)
    for s, img in zip(seeds, images, strict=False):
        save_png(out / f"seed_{s:04d}.png", img)
    print(f"wrote {len(seeds)} images to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Paper Table-1 protocol: accuracy with and without the token on paired seeds, for one class (``--token-file``) or
    many (``--classes``, tokens from ``report``'s run folders), with bootstrap intervals."""
    from ..analysis.accuracy import accuracy_table, format_accuracy_table
    from .checks import check_evaluate_args

    check_evaluate_args(args)  # every flag that needs no model, before anything loads
    results = _evaluate_many(args) if args.classes else [_evaluate_one(args)]
    table = accuracy_table(results)
    print(format_accuracy_table(table))
    fid = None
    if args.fid_real:
        from ..analysis.fid import format_fid_table, merge_fid_tables

        fid = merge_fid_tables([r["fid"] for r in results])
        print(format_fid_table(fid))
    if args.json:
        from ..io import write_json

        doc = {"table": table, "classes": results} if args.classes else {**results[0], "table": table}
        if fid is not None:
            doc["fid_table"] = fid
        write_json(Path(args.json), doc)  # one class: its AccuracyResult fields, as before, plus the table
        print(f"wrote {args.json}")
    return 0


def _evaluate_one(args: argparse.Namespace) -> dict[str, Any]:
    from ..engine.evaluate import evaluate_accuracy
    from ..engine.token_run import TokenRun
    from .tasks import Task, class_fid, fid_real_folders, load_label_map

    clf = classifier_from(args)
    label_map = load_label_map(args.label_map)
    idx = clf.resolve_class(args.target)
    real_dirs = fid_real_folders(
        args, [Task(args.model, idx, clf.class_name(idx), Path(class_folder(idx, clf.class_name(idx))))]
    )
    pipe = setup(args)
    token: Any = Path(args.token_file)
    if token.is_dir():
        token = TokenRun.load(token)
    eval_clf = classifier_from(args, args.eval_model) if args.eval_model else None
    res = evaluate_accuracy(
        pipe,
        clf,
        args.target,
        token,
        n_seeds=args.n_seeds,
        seed=args.seed,
        template=args.template,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        eval_classifier=eval_clf,
        eval_class=label_map.get(clf.class_name(idx)) if eval_clf else None,
        keep_images=bool(real_dirs),
        progress=None if args.no_progress else f"evaluate {clf.class_name(idx)}",
    )
    print(f"class {res.class_name!r} on seeds {res.seeds[0]}..{res.seeds[-1]}")
    out = {"model": args.model, **res.to_dict()}
    if real_dirs:
        out["fid"] = class_fid(
            args, real_dirs[clf.class_name(idx)], res, eval_clf or clf, progress=not args.no_progress
        )
    return out


def _evaluate_many(args: argparse.Namespace) -> list[dict[str, Any]]:
    from functools import partial

    from ..runner import run_tasks
    from .tasks import (
        check_label_map,
        check_token_runs,
        evaluate_job,
        fid_real_folders,
        load_label_map,
        new_run_id,
        plan_tasks,
    )

    args.out = args.runs
    new_run_id(args)
    tasks = plan_tasks(args)
    check_token_runs(tasks)
    label_map = load_label_map(args.label_map)
    check_label_map(args, tasks, label_map)
    real_dirs = fid_real_folders(args, tasks)
    outcomes = run_tasks(
        tasks,
        partial(evaluate_job, args, label_map, real_dirs=real_dirs),
        executor="local" if args.workers == 1 and not args.ray_address else "auto",
        workers=args.workers,
        threads=args.threads,
        ray_address=args.ray_address,
        progress=not getattr(args, "no_progress", False),
    )
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise DiscoInspectError(
            f"{len(failed)} of {len(outcomes)} evaluations failed: "
            + "; ".join(f"{o.task.label}: {o.error}" for o in failed)
        )
    return [o.result for o in outcomes]


# The parsers of these subcommands (``parser.build_parser`` calls them in the order ``--help`` lists them).


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """``disco-inspect train``: its flags."""
    p = sub.add_parser("train", help="learn a class token for a classifier", formatter_class=Formatter)
    add_model_args(p)
    add_pipeline_args(p)
    add_config_args(p)
    p.add_argument("--out", help="run folder (default: runs/<index>-<class>, e.g. runs/0-circle)")
    p.add_argument(
        "--overwrite", action="store_true", help="restart a run folder that holds another or finished run"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    """``disco-inspect generate``: its flags."""
    p = sub.add_parser("generate", help="generate images with a learned token", formatter_class=Formatter)
    p.add_argument(
        "--token-file", required=True, help="learned token: a token file (.safetensors) or a run folder"
    )
    p.add_argument(
        "--prompt", required=True, help='prompt containing the token, e.g. "a photo of a <S> lobster"'
    )
    add_pipeline_args(p, classifier=False)
    p.add_argument("--seeds", default="0-3", help="noise seeds: a range '0-7' or a list '1,5,9'")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="denoising steps (default: the paper's 30; world: the world preset's 10)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale (default: the paper's 7.0; world: 4.0)",
    )
    p.add_argument("--height", type=int, default=None, help="image height (default: the pipeline's)")
    p.add_argument("--width", type=int, default=None, help="image width (default: the pipeline's)")
    p.add_argument("--out", default="generated", help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_generate)


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """``disco-inspect evaluate``: its flags."""
    from ..engine.evaluate import DEFAULT_TEMPLATE, N_SEEDS

    p = sub.add_parser(
        "evaluate", help="top-1/top-5 with vs without the token (paired seeds)", formatter_class=Formatter
    )
    add_model_args(p, required=False)
    p.add_argument(
        "--token-file",
        default=None,
        help="learned token: a run folder or token file (one class, with --class)",
    )
    add_scale_args(p, "evaluate")
    p.add_argument(
        "--runs",
        default="reports",
        help="with --classes: the folder `report --out` wrote; each class's token is OUT/<model>/<index>-<class>/run "
        "(e.g. reports/clean/0-circle/run)",
    )
    add_pipeline_args(p)
    p.add_argument(
        "--eval-seeds",
        dest="n_seeds",
        type=int,
        default=N_SEEDS,
        help="number of paired seeds (with/without the token)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="first seed (default: 1000, or past the run's training seeds)"
    )
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt template")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the run's, else 30)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the run's, else 7.0)")
    p.add_argument("--eval-model", default=None, help="another classifier to score with (default: MODEL)")
    p.add_argument(
        "--label-map",
        default=None,
        help="JSON {class name: --eval-model class name} when the two label sets differ",
    )
    p.add_argument(
        "--fid-real",
        default=None,
        help="also FID without/with the token against your real images: a folder with one subfolder per class "
        "(named as the class, e.g. circle, or <index>-<class>, e.g. 0-circle)",
    )
    p.add_argument(
        "--fid-features",
        default="classifier",
        help="features for --fid-real: 'classifier' (penultimate layer of the scoring classifier), 'oracle' (the "
        "world's oracle), or a model file whose penultimate layer to use",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--json", default=None, help="also write the result as JSON here")
    p.set_defaults(func=cmd_evaluate)


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    """``disco-inspect report``: its flags, in groups: audit, many classes and models, device, optimisation, analysis
    (:func:`_add_analysis_args`), output."""
    p = sub.add_parser(
        "report",
        help="audit a class: token, factors, interventions, attributions, HTML report",
        formatter_class=Formatter,
    )
    audit = p.add_argument_group("audit (the classifier, the class and your images)")
    add_model_args(p, required=False, group=audit)
    add_scale_args(p, "audit")
    add_pipeline_args(p, group=p.add_argument_group("device (the pipeline, where and how it runs)"))
    add_config_args(p)
    _add_analysis_args(p, audit)
    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        default="reports",
        help="reports go to OUT/<model>/<index>-<class>/ (index.html, report.json; "
        "e.g. reports/clean/0-circle/)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain the token even if the class's run folder holds a finished run",
    )
    out.add_argument(
        "--report-unfinished",
        action="store_true",
        help="on Ctrl-C during training, report the best token so far instead of stopping",
    )
    out.add_argument(
        "--plan",
        action="store_true",
        help="print what each audit will cost per stage (images, UNet evaluations with and without gradients, VAE "
        "decodes, an estimated time from one probed call of each model) and exit: nothing is generated or written",
    )
    out.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_report)


def _add_analysis_args(p: argparse.ArgumentParser, audit: argparse._ActionsContainer) -> None:
    """``report``'s "analysis" group (and ``--images``, in the ``audit`` group), defaults from
    :class:`~disco_inspect.auditor.AuditSettings`."""
    from ..analysis.concepts import DEFAULT_CLIP_ARCH
    from ..auditor import AuditSettings
    from .edit_commands import add_inversion_arg

    a = AuditSettings()
    g = p.add_argument_group("analysis")
    g.add_argument(
        "--eval-seeds",
        type=int,
        default=None,
        help=f"paired evaluation images with/without the token (default: {a.eval_seeds})",
    )
    g.add_argument(
        "--intervention-seeds",
        type=int,
        default=None,
        help=f"paired seeds per intervention (default: {a.intervention_seeds})",
    )
    g.add_argument(
        "--alpha", type=float, default=None, help=f"false-discovery rate across concepts (default: {a.alpha})"
    )
    g.add_argument(
        "--min-effect",
        type=float,
        default=None,
        help=f"smallest concept-presence shift that counts (default: {a.min_effect})",
    )
    g.add_argument(
        "--concepts", default=None, help="concept file (one per line; 'concept | prompt | contrasts')"
    )
    audit.add_argument(
        "--images",
        default=None,
        help="your own images of the class (a folder or glob) as evidence: the classifier on each, a real-data "
        "slice per concept (with vs without it) and edits toward each shortlisted concept, beside the generated "
        "interventions; also edited with the learned token (OUT/.../edits/, see `disco-inspect edit`)",
    )
    add_inversion_arg(audit)
    g.add_argument("--clip-arch", default=DEFAULT_CLIP_ARCH, help="open_clip architecture of --clip-weights")
    g.add_argument(
        "--clip-weights", default=None, help="local open_clip weights (needed for non-world pipelines)"
    )
    g.add_argument("--no-attributions", action="store_true", help="skip Captum attributions")
    g.add_argument(
        "--reference",
        default=None,
        help="a reference classifier (e.g. a clean model of the same task), or several comma-separated: rank "
        "factors by how much more the audited model relies on them (differential audit)",
    )
    add_scan_args(g)
    g.add_argument(
        "--no-scan",
        action="store_true",
        help="confirm only the top factors the token nominated, instead of scanning every concept by "
        "intervention",
    )
    g.add_argument(
        "--control-draws",
        type=int,
        default=None,
        help=f"random-direction control tokens besides the untrained one (default: {a.control_draws}); -1 "
        "disables the null control",
    )
