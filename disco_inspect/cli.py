"""`disco-inspect` command line: a thin layer over the public API."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

from .config import DiscoConfig
from .errors import DiscoInspectError

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
#: ``--dtype`` names -> torch dtypes.
DTYPES = ("float32", "float16", "bfloat16")
#: Exit code after Ctrl-C (128 + SIGINT), as shells use.
EXIT_INTERRUPTED = 130


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows a flag's default once: argparse's "(default: X)" unless the help already states it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "class"


def class_folder(index: int, name: str) -> str:
    """Folder name of a class's report or run: ``<index>-<slug>``, so that ImageNet's two "crane" classes (134, 517)
    and names without ASCII letters never share a folder."""
    return f"{int(index)}-{_slug(name)}"


def _seeds(text: str) -> list[int]:
    """'0-3' -> [0,1,2,3]; '1,5,9' -> [1,5,9]."""
    try:
        if "-" in text and "," not in text:
            a, b = text.split("-")
            return list(range(int(a), int(b) + 1))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise DiscoInspectError(
            f"`--seeds` = {text!r} is invalid; use a range '0-7' or a list '1,5,9'."
        ) from e


def _add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
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


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    from .models.pipelines import SCHEDULERS, SPACINGS

    p.add_argument("--pipeline", default="world", help="'world', a diffusers folder, or a hub id")
    p.add_argument("--scheduler", default="ddim", choices=SCHEDULERS, help="sampler")
    p.add_argument(
        "--timestep-spacing", default="trailing", choices=SPACINGS, help="timestep spacing of the sampler"
    )
    p.add_argument(
        "--device",
        default=None,
        help="where the pipeline and classifier run: cpu, cuda, cuda:1, mps "
        "(default: cuda if available, else cpu)",
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=DTYPES,
        help="pipeline weights dtype (default: float16 on cuda, float32 elsewhere; the classifier keeps "
        "its own dtype, its inputs are cast)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    from .world.presets import world_config

    d, w = DiscoConfig(), world_config()

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
    from .engine.objectives import OBJECTIVE_CHOICES

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


def _config_from(args: argparse.Namespace, base: DiscoConfig | None = None) -> DiscoConfig:
    cfg = DiscoConfig.load(args.config) if getattr(args, "config", None) else (base or DiscoConfig())
    changes = {
        field: getattr(args, flag)
        for flag, field in CONFIG_FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    return cfg.replace(**changes) if changes else cfg


def _device(args: argparse.Namespace) -> Any:
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


def _dtype(args: argparse.Namespace, device: Any) -> Any:
    import torch

    name = getattr(args, "dtype", None) or ("float16" if device.type == "cuda" else "float32")
    if device.type == "cpu" and name != "float32":
        logger.warning(
            "--dtype %s on the CPU is slow (bfloat16 ~100x) or unsupported; float32 is advised.", name
        )
    return getattr(torch, name)


def _setup(args: argparse.Namespace) -> Any:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    from .models import pipelines

    device = _device(args)
    return pipelines.load_pipeline(
        args.pipeline,
        scheduler=args.scheduler,
        timestep_spacing=args.timestep_spacing,
        device=str(device),
        torch_dtype=_dtype(args, device),
    )


def _classifier(args: argparse.Namespace, source: str | None = None) -> Any:
    from .models.classifiers import load_classifier
    from .world.make import resolve_model

    clf = load_classifier(
        resolve_model(source or args.model),
        arch=args.arch,
        labels=args.labels,
        trust_pickle=args.trust_pickle,
    )
    return clf.to(_device(args))


def _scorer(args: argparse.Namespace, pipe: Any) -> Any:
    from .analysis.concepts import OpenClipScorer, load_concept_file

    concepts, interventions = load_concept_file(args.concepts) if args.concepts else (None, {})
    if args.clip_weights:
        return OpenClipScorer.from_pretrained(
            args.clip_arch, args.clip_weights, concepts, interventions=interventions
        )
    if concepts:
        raise DiscoInspectError(
            "`--concepts` needs an open_clip scorer: add --clip-weights FILE (and --clip-arch)."
        )
    from .auditor import default_scorer

    return default_scorer(pipe)


def cmd_report(args: argparse.Namespace) -> int:
    """Audit one or more classes and write self-contained HTML reports plus report.json."""
    from .auditor import AuditSettings, audit, default_config
    from .report.html import write_index
    from .report.requirements import check_report_dependencies

    if bool(args.target) == bool(args.classes):
        raise DiscoInspectError("Pass exactly one of `--class NAME` or `--classes a,b,c`.")
    names = [args.target] if args.target else [c.strip() for c in args.classes.split(",") if c.strip()]
    if not names:
        raise DiscoInspectError(
            f"`--classes` = {args.classes!r} names no class; write e.g. --classes circle,square."
        )
    clf = _classifier(args)
    targets = [clf.resolve_class(n) for n in names]  # fail on a bad name before loading the pipeline
    given = {
        "eval_seeds": args.eval_seeds,
        "intervention_seeds": args.intervention_seeds,
        "alpha": args.alpha,
        "min_effect": args.min_effect,
        "attribution_images": 0 if args.no_attributions else None,
        "scan": not args.no_scan,
    }
    if args.control_draws is not None:
        given.update(null_control=args.control_draws >= 0, control_draws=max(args.control_draws, 0))
    settings = AuditSettings(
        **{k: v for k, v in given.items() if v is not None}
    )  # unset flags: AuditSettings' own
    reference = _classifier(args, args.reference) if args.reference else None
    check_report_dependencies(attributions=not args.no_attributions)  # before minutes of training
    pipe = _setup(args)
    cfg = _config_from(args, default_config(pipe))
    scorer = _scorer(args, pipe)
    from .world.make import resolve_model

    model_file = Path(str(resolve_model(args.model)))
    root = Path(args.out) / _slug(model_file.stem)
    entries = []
    for idx in targets:
        name = clf.class_name(idx)
        folder = root / class_folder(idx, name)
        res = audit(
            pipe,
            clf,
            idx,
            scorer=scorer,
            config=cfg,
            settings=settings,
            out=folder,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            allow_unfinished=args.report_unfinished,
            reference=reference,
            user_images=args.images,
        )
        top = res.factors.top(3)
        print(f"{name}: report {folder / 'index.html'}")
        kind = res.factors.method.get("ranking_kind", "reliance")
        print(
            f"  target probability {float(res.baseline_probs.mean()):.3f} -> {float(res.token_probs.mean()):.3f} "
            f"({res.run.regime}, objective {res.run.objective}); "
            + (f"{kind}: " + ", ".join(_describe_factor(f) for f in top) if top else "no confirmed factor")
            + (
                "; token only (not confirmed): "
                + ", ".join(f"{f.concept} ({f.effect:+.2f})" for f in res.factors.candidates[:3])
                if res.factors.candidates
                else ""
            )
        )
        if res.edits:
            e = res.edits["summary"]
            print(
                f"  edits of your images: {folder / res.edits['href']} (p {e['p_target_source']:.3f} -> "
                f"{e['p_target_edit']:.3f}; {e['n_images']} images)"
            )
        entries.append(
            {"class_name": name, "href": f"{class_folder(idx, name)}/index.html", "doc": res.to_dict()}
        )
    if len(entries) > 1:
        print(f"index: {write_index(entries, root, f'disco-inspect audit of {model_file.name}')}")
    return 0


def _describe_factor(f: Any) -> str:
    """One factor for the console: intervention effect (and differential) if confirmed, token shift, who found it."""
    parts = []
    if f.confirmed:
        parts.append(f"confirmed, dp {f.intervention.effect:+.2f}")
        if f.intervention.reference:
            parts.append(f"{f.intervention.reference['differential']['effect']:+.2f} vs reference")
    parts.append(f"token shift {f.effect:+.2f}, q={f.q_value:.3g}")
    return f"{f.concept} ({'; '.join(parts)}; found by {f.nominated_by})"


def cmd_benchmark(args: argparse.Namespace) -> int:
    """``disco-inspect world benchmark``: the planted-bias benchmark on the bundled world."""
    import torch

    from .world.benchmark import HEADER, run_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"max_iters": args.max_iters} if args.max_iters else {}
    if args.random is not None:
        from .world.random_benchmark import run_random_benchmark

        out = args.out if args.out != "reports/world-benchmark" else "reports/world-random-benchmark"
        run_random_benchmark(
            args.random,
            args.seed,
            clean=args.clean,
            out=out,
            steps=args.steps,
            config_overrides=overrides,
            progress=not args.no_progress,
        )
        return 0
    print(HEADER)
    rows = run_benchmark(
        names=args.only.split(",") if args.only else None,
        out=args.out,
        config_overrides=overrides,
        progress=not args.no_progress,
    )
    passed = sum(r["passed"] for r in rows)
    print(f"{passed}/{len(rows)} passed; reports in {args.out}/index.html")
    return 0 if passed == len(rows) else 1


def cmd_train(args: argparse.Namespace) -> int:
    """Train a class token and write a run folder."""
    from .engine.optimize import train_token

    cfg = _config_from(args)
    clf = _classifier(args)
    idx = clf.resolve_class(args.target)
    out = Path(args.out) if args.out else Path("runs") / class_folder(idx, clf.class_name(idx))
    pipe = _setup(args)
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
    from .auditor import default_config
    from .engine.run import TOKEN_FILE, save_png
    from .engine.sampling import generate
    from .engine.token import install_token

    seeds = _seeds(args.seeds)  # validate flags before loading anything
    pipe = _setup(args)
    defaults = default_config(pipe)
    token_file = Path(args.token)
    if token_file.is_dir():
        token_file = token_file / TOKEN_FILE
    token = install_token(pipe, token_file)
    if token not in args.prompt:
        logger.warning("The prompt does not contain the token %r; images will not use it.", token)
    images = generate(
        pipe,
        [args.prompt] * len(seeds),
        seeds,
        num_inference_steps=args.steps or defaults.num_inference_steps,
        guidance_scale=defaults.guidance_scale if args.guidance is None else args.guidance,
        height=args.height,
        width=args.width,
    )
    out = Path(args.out)
    for s, img in zip(seeds, images, strict=False):
        save_png(out / f"seed_{s:04d}.png", img)
    print(f"wrote {len(seeds)} images to {out}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    """Counterfactual edits of the user's images with a learned token (inversion, prompt-to-prompt, samples)."""
    from .editor import EditSettings, edit_images

    settings = EditSettings(
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        cross_replace=args.cross_replace,
        self_replace=args.self_replace,
        method=args.method,
        samples=args.samples,
        sigma=args.sigma,
        seed=args.seed,
        vae_steps=args.vae_steps,
    )
    pipe = _setup(args)
    clf = _classifier(args)
    scorer = _scorer(args, pipe) if (args.clip_weights or args.concepts) else None
    clip = None
    if args.clip_weights:
        clip = (scorer.model, scorer.tokenizer, scorer.preprocess)
    lpips = None
    if args.lpips_weights:
        from .editing.metrics import lpips_distance

        lpips = lpips_distance(args.lpips_weights, args.lpips_net)
    out = (
        Path(args.out)
        if args.out
        else Path("edits")
        / class_folder(clf.resolve_class(args.target), clf.class_name(clf.resolve_class(args.target)))
    )
    result = edit_images(
        clf,
        args.target,
        args.images,
        args.token,
        pipe=pipe,
        out=out,
        prompt=args.prompt,
        settings=settings,
        scorer=scorer,
        lpips=lpips,
        clip=clip,
        max_images=args.max_images,
        progress=not args.no_progress,
    ).doc
    s = result["summary"]
    print(
        f"edited {s['n_images']} images of {result['class_name']!r} ({result['method']}) -> {out / 'index.html'}"
    )
    print(
        f"  reconstruction PSNR {s['reconstruction_psnr']:.2f} dB (VAE ceiling {s.get('vae_psnr', float('nan')):.2f}, "
        f"plain DDIM under CFG {s.get('plain_ddim_psnr', float('nan')):.2f})"
    )
    lo, hi = s["delta_p_edit_ci95"]
    ci = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None else ""
    print(
        f"  p({result['class_name']}) {s['p_target_source']:.3f} -> edit {s['p_target_edit']:.3f} "
        f"(delta {s['delta_p_edit']:+.3f}{ci})"
    )
    if "diversity" in s:
        print(
            f"  samples: p {s['p_target_samples']:.3f}, diversity {s['diversity']:.4f} (upper bound "
            f"{s['upper_bound']:.4f}; {s['distance']})"
        )
    if s.get("top_concepts"):
        shifts = ", ".join(f"{c} {s['concept_shift'][c]:+.2f}" for c in s["top_concepts"])
        print(f"  the edit changed: {shifts}")
    if result["failures"]:
        print(
            f"  {len(result['failures'])} file(s) could not be read: "
            + ", ".join(f["file"] for f in result["failures"])
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Paper Table-1 protocol: accuracy with and without the token on paired seeds."""
    from .engine.evaluate import evaluate_accuracy
    from .engine.result import TokenRun

    clf = _classifier(args)
    pipe = _setup(args)
    token: Any = Path(args.token)
    if token.is_dir():
        token = TokenRun.load(token)
    eval_clf = _classifier(args, args.eval_model) if args.eval_model else None
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
    )
    print(f"class {res.class_name!r} on seeds {res.seeds[0]}..{res.seeds[-1]}")
    print(f"{'':10s} {'top-1':>7s} {'top-5':>7s} {'p(target)':>10s}")
    for name, r in (("baseline", res.baseline), ("token", res.token)):
        print(f"{name:10s} {r['accuracy']:7.3f} {r['top5_accuracy']:7.3f} {r['target_prob_mean']:10.3f}")
    if args.json:
        from .io import write_json

        write_json(Path(args.json), res.to_dict())
    return 0


def cmd_world(args: argparse.Namespace) -> int:
    """``disco-inspect world ...``: forwards to the world's own commands."""
    if args.world_command == "benchmark":
        return cmd_benchmark(args)
    if args.world_command == "train":
        from .world.train import run

        return run(args)
    from .world.make import run as make_run

    return make_run(args.world_command.removeprefix("make-"), args)


def _add_world_parsers(p: argparse.ArgumentParser) -> None:
    from .world import make, train

    sub = p.add_subparsers(
        dest="world_command",
        required=True,
        metavar="{train,make-classifier,make-oracle,make-examples,benchmark}",
    )
    q = sub.add_parser(
        "train",
        help="(re)train the world's text-to-image model (resumable)",
        formatter_class=_Formatter,
        description="Train the bundled world's VAE and UNet; resumes from --work.",
    )
    train.add_arguments(q)
    for what, text in make.WHAT.items():
        q = sub.add_parser(
            f"make-{what}",
            help=text,
            description=text[0].upper() + text[1:] + ".",
            formatter_class=_Formatter,
        )
        make.add_arguments(q, what)
    q = sub.add_parser(
        "benchmark",
        help="the planted-bias benchmark of the audit",
        formatter_class=_Formatter,
        description="Audit every shipped world classifier; check the planted bias is found.",
    )
    q.add_argument("--out", default="reports/world-benchmark", help="output folder")
    q.add_argument(
        "--only", default=None, help="comma-separated classifier files, e.g. clean.pt (default: all)"
    )
    q.add_argument(
        "--max-iters", type=int, default=None, help="DisCo iterations (default: the world preset's)"
    )
    q.add_argument(
        "--random",
        type=int,
        default=None,
        metavar="N",
        help="the randomised benchmark: draw N biases by --seed, train a classifier for each, measure its "
        "reliance on rendered scenes, audit it (default: the shipped examples instead)",
    )
    q.add_argument("--seed", type=int, default=0, help="with --random: the seed that draws the cases")
    q.add_argument(
        "--clean", type=int, default=5, help="with --random: clean classifiers (false confirmations)"
    )
    q.add_argument("--steps", type=int, default=500, help="with --random: training steps of each classifier")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    q.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``disco-inspect``."""
    parser = argparse.ArgumentParser(
        prog="disco-inspect",
        formatter_class=_Formatter,
        description="Audit an image classifier by learning a discriminative class token.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="learn a class token for a classifier", formatter_class=_Formatter)
    _add_model_args(p)
    _add_pipeline_args(p)
    _add_config_args(p)
    p.add_argument("--out", help="run folder (default: runs/<class>)")
    p.add_argument(
        "--overwrite", action="store_true", help="restart a run folder that holds another or finished run"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="generate images with a learned token", formatter_class=_Formatter)
    p.add_argument("--token", required=True, help="token file (.safetensors) or a run folder")
    p.add_argument(
        "--prompt", required=True, help='prompt containing the token, e.g. "a photo of a <S> lobster"'
    )
    _add_pipeline_args(p)
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
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "evaluate", help="top-1/top-5 with vs without the token (paired seeds)", formatter_class=_Formatter
    )
    _add_model_args(p)
    p.add_argument("--token", required=True, help="run folder or token file")
    _add_pipeline_args(p)
    from .engine.evaluate import DEFAULT_TEMPLATE, N_SEEDS

    p.add_argument("--n-seeds", type=int, default=N_SEEDS, help="number of seeds")
    p.add_argument(
        "--seed", type=int, default=None, help="first seed (default: 1000, or past the run's training seeds)"
    )
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt template")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the run's, else 30)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the run's, else 7.0)")
    p.add_argument("--eval-model", default=None, help="another classifier to score with (default: MODEL)")
    p.add_argument("--json", default=None, help="also write the result as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "edit",
        help="edit your own images with a learned token (inversion + prompt-to-prompt)",
        formatter_class=_Formatter,
    )
    _add_model_args(p)
    from .editing.edit import CROSS_REPLACE, METHODS, NOISE_SIGMA, SELF_REPLACE
    from .editor import EDIT_GUIDANCE, EDIT_PROMPT, EDIT_STEPS
    from .world.presets import WORLD_EDIT as W

    p.add_argument("--images", required=True, help="a folder, a glob ('val/*.jpg') or a file of your images")
    p.add_argument("--token", required=True, help="run folder or token file (learned_embeds.safetensors)")
    p.add_argument(
        "--prompt",
        default=None,
        help=f"source prompt; the token goes before {{class_name}} (default: {EDIT_PROMPT!r}; world: "
        f"{W['prompt']!r})",
    )
    from .analysis.concepts import DEFAULT_CLIP_ARCH
    from .editing.metrics import LPIPS_NETS
    from .editor import EditSettings

    e = EditSettings()
    p.add_argument(
        "--method",
        default=e.method,
        choices=METHODS,
        help="stochastic edits: none, noise on the token, null-text VAE, edit-prompt VAE",
    )
    p.add_argument("--samples", type=int, default=e.samples, help="stochastic edits per image")
    p.add_argument(
        "--sigma",
        type=float,
        default=None,
        help=f"noise method: scale x the token's RMS (default: {NOISE_SIGMA})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"DDIM steps (default: {EDIT_STEPS}; world: {W['num_inference_steps']})",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help=f"CFG scale (default: {EDIT_GUIDANCE}; world: {W['guidance_scale']})",
    )
    p.add_argument(
        "--cross-replace",
        type=float,
        default=None,
        help=f"fraction of steps with the source's cross-attention (default: {CROSS_REPLACE}; world: "
        f"{W['cross_replace']})",
    )
    p.add_argument(
        "--self-replace",
        type=float,
        default=None,
        help=f"fraction of steps with the source's self-attention (default: {SELF_REPLACE}; world: "
        f"{W['self_replace']})",
    )
    p.add_argument("--vae-steps", type=int, default=None, help="training steps of the null-vae/cond-vae VAE")
    p.add_argument("--seed", type=int, default=e.seed, help="seed of the stochastic edits")
    p.add_argument("--max-images", type=int, default=None, help="edit at most this many images")
    p.add_argument(
        "--lpips-weights", default=None, help="torchvision backbone state dict for LPIPS (optional)"
    )
    p.add_argument("--lpips-net", default=LPIPS_NETS[0], choices=LPIPS_NETS, help="LPIPS backbone")
    p.add_argument(
        "--concepts", default=None, help="concept file for the concept shifts (with --clip-weights)"
    )
    p.add_argument("--clip-arch", default=DEFAULT_CLIP_ARCH, help="open_clip architecture of --clip-weights")
    p.add_argument(
        "--clip-weights", default=None, help="local open_clip weights: CLIP-T/CLIP-I and concept shifts"
    )
    _add_pipeline_args(p)
    p.add_argument("--out", default=None, help="output folder (default: edits/<class>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser(
        "report",
        help="audit a class: token, factors, interventions, attributions, HTML report",
        formatter_class=_Formatter,
    )
    _add_model_args(p, required=False)
    p.add_argument("--classes", default=None, help="audit several classes into one index page: 'a,b,c'")
    _add_pipeline_args(p)
    _add_config_args(p)
    from .analysis.concepts import DEFAULT_CLIP_ARCH
    from .auditor import AuditSettings

    a = AuditSettings()
    g = p.add_argument_group("analysis")
    g.add_argument(
        "--out", default="reports", help="reports go to OUT/<model>/<class>/ (index.html, report.json)"
    )
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
    p.add_argument(
        "--images",
        default=None,
        help="also edit your own images with the learned token (a folder or glob): adds an edit section "
        "(and OUT/.../edits/) to the report; see `disco-inspect edit`",
    )
    g.add_argument("--clip-arch", default=DEFAULT_CLIP_ARCH, help="open_clip architecture of --clip-weights")
    g.add_argument(
        "--clip-weights", default=None, help="local open_clip weights (needed for non-world pipelines)"
    )
    g.add_argument("--no-attributions", action="store_true", help="skip Captum attributions")
    g.add_argument(
        "--reference",
        default=None,
        help="a reference classifier (e.g. a clean model of the same task): rank factors by how much more "
        "the audited model relies on them (differential audit)",
    )
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
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain the token even if the class's run folder holds a finished run",
    )
    p.add_argument(
        "--report-unfinished",
        action="store_true",
        help="on Ctrl-C during training, report the best token so far instead of stopping",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "world",
        help="the bundled world: train its model, make classifiers, run the benchmark",
        formatter_class=_Formatter,
    )
    _add_world_parsers(p)
    p.set_defaults(func=cmd_world)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``disco-inspect`` console script.

    Exit codes: 0 done, 1 a benchmark case failed, 2 a user error (one line on stderr), 130 interrupted (Ctrl-C;
    every finished iteration is saved and the same command resumes).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.func(args)
    except DiscoInspectError as e:
        print(f"disco-inspect: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "disco-inspect: interrupted; finished work is saved, run the same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
