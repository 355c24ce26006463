"""`disco-inspect` command line: a thin layer over the public API."""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any

from .config import DiscoConfig
from .errors import DiscoInspectError

logger = logging.getLogger("disco_inspect")

#: CLI flag -> DiscoConfig field
CONFIG_FLAGS = {
    "token": "token", "initializer": "initializer", "n_images": "n_images", "seed": "seed", "seed_pool": "seed_pool",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale", "grad_steps": "grad_steps", "height": "height", "width": "width", "lr": "lr",
    "weight_decay": "weight_decay", "max_grad_norm": "max_grad_norm", "max_iters": "max_iters", "patience": "patience",
    "accuracy_threshold": "accuracy_threshold", "image_save_size": "image_save_size", "objective": "objective",
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "class"


def _seeds(text: str) -> list[int]:
    """'0-3' -> [0,1,2,3]; '1,5,9' -> [1,5,9]."""
    try:
        if "-" in text and "," not in text:
            a, b = text.split("-")
            return list(range(int(a), int(b) + 1))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise DiscoInspectError(f"`--seeds` = {text!r} is invalid; use a range '0-7' or a list '1,5,9'.") from e


def _add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("model", help="classifier: TorchScript file, state dict (+ --arch), .safetensors (+ --arch), .onnx, "
                                 "a pickled module (+ --trust-pickle), or world:NAME for a shipped world classifier "
                                 "(world:biased_circle_green, world:clean, ...)")
    p.add_argument("--class", dest="target", required=required, help="target class: a label name or an index")
    p.add_argument("--arch", help="timm architecture name for a state-dict file, e.g. resnet50 (default: none)")
    p.add_argument("--labels", help="label names: a text file (one per line) or JSON list (default: from the model)")
    p.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled nn.Module (runs code from the file)")


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", default="world", help="'world', a diffusers folder, or a hub id")
    p.add_argument("--scheduler", default="ddim", choices=["ddim", "euler", "euler-ancestral", "shipped"])
    p.add_argument("--timestep-spacing", default="trailing", choices=["trailing", "leading", "linspace"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    d = DiscoConfig()
    g = p.add_argument_group("optimisation (defaults: the paper's)")
    g.add_argument("--config", help="JSON file with DiscoConfig fields; flags override it")
    g.add_argument("--token", help=f"new token string (default: {d.token})")
    g.add_argument("--initializer", help=f"word that initialises the token (default: {d.initializer})")
    g.add_argument("--n-images", type=int, help=f"images per iteration, one batched forward (default: {d.n_images})")
    g.add_argument("--seed", type=int, help=f"first noise seed (default: {d.seed})")
    g.add_argument("--seed-pool", type=int, help="cycle each iteration through a pool of this many seeds; 0 = the "
                                                 f"paper's fixed seeds (default: {d.seed_pool}; world preset: 40)")
    g.add_argument("--steps", type=int, help=f"denoising steps (default: {d.num_inference_steps})")
    g.add_argument("--guidance", type=float, help=f"classifier-free guidance scale, <=1 disables (default: {d.guidance_scale})")
    g.add_argument("--grad-steps", type=int, help=f"final steps with gradients, -1 = all (default: {d.grad_steps})")
    g.add_argument("--height", type=int, help="image height (default: the pipeline's)")
    g.add_argument("--width", type=int, help="image width (default: the pipeline's)")
    g.add_argument("--lr", type=float, help=f"AdamW learning rate (default: {d.lr})")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay on the token (default: {d.weight_decay})")
    g.add_argument("--max-grad-norm", type=float, help=f"gradient clipping (default: {d.max_grad_norm})")
    g.add_argument("--max-iters", type=int, help=f"maximum iterations (default: {d.max_iters})")
    g.add_argument("--patience", type=int, help=f"iterations without a better loss before stopping (default: {d.patience})")
    g.add_argument("--accuracy-threshold", type=float,
                   help=f"stop once batch accuracy exceeds this (default: {d.accuracy_threshold})")
    g.add_argument("--image-save-size", type=int, help="downsample saved PNGs to this longer side (default: full size)")
    g.add_argument("--objective", choices=["toward", "away"], help="toward the class (paper) or away (default: toward)")


def _config_from(args: argparse.Namespace, base: DiscoConfig | None = None) -> DiscoConfig:
    cfg = DiscoConfig.load(args.config) if getattr(args, "config", None) else (base or DiscoConfig())
    changes = {field: getattr(args, flag) for flag, field in CONFIG_FLAGS.items() if getattr(args, flag, None) is not None}
    return cfg.replace(**changes) if changes else cfg


def _setup(args: argparse.Namespace) -> Any:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    from .models.pipelines import load_pipeline

    return load_pipeline(args.pipeline, scheduler=args.scheduler, timestep_spacing=args.timestep_spacing)


def _classifier(args: argparse.Namespace, source: str | None = None) -> Any:
    from .models.classifiers import load_classifier
    from .world.make import resolve_model

    return load_classifier(resolve_model(source or args.model), arch=args.arch, labels=args.labels,
                           trust_pickle=args.trust_pickle)


def _scorer(args: argparse.Namespace, pipe: Any) -> Any:
    from .analysis.concepts import OpenClipScorer, load_concept_file

    concepts, interventions = load_concept_file(args.concepts) if args.concepts else (None, {})
    if args.clip_weights:
        return OpenClipScorer.from_pretrained(args.clip_arch, args.clip_weights, concepts, interventions=interventions)
    if concepts:
        raise DiscoInspectError("`--concepts` needs an open_clip scorer: add --clip-weights FILE (and --clip-arch).")
    from .auditor import default_scorer

    return default_scorer(pipe)


def cmd_report(args: argparse.Namespace) -> int:
    """Audit one or more classes and write self-contained HTML reports plus report.json."""
    from .auditor import AuditSettings, audit, default_config
    from .report.html import write_index

    if bool(args.target) == bool(args.classes):
        raise DiscoInspectError("Pass exactly one of `--class NAME` or `--classes a,b,c`.")
    names = [args.target] if args.target else [c.strip() for c in args.classes.split(",") if c.strip()]
    if not names:
        raise DiscoInspectError(f"`--classes` = {args.classes!r} names no class; write e.g. --classes circle,square.")
    clf = _classifier(args)
    targets = [clf.resolve_class(n) for n in names]  # fail on a bad name before loading the pipeline
    settings = AuditSettings(eval_seeds=args.eval_seeds, intervention_seeds=args.intervention_seeds, alpha=args.alpha,
                             min_effect=args.min_effect, attribution_images=0 if args.no_attributions else 6)
    pipe = _setup(args)
    cfg = _config_from(args, default_config(pipe))
    scorer = _scorer(args, pipe)
    from .world.make import resolve_model

    model_file = Path(str(resolve_model(args.model)))
    root = Path(args.out) / _slug(model_file.stem)
    entries = []
    for idx in targets:
        name = clf.class_name(idx)
        folder = root / _slug(name)
        res = audit(pipe, clf, idx, scorer=scorer, config=cfg, settings=settings, out=folder,
                    progress=not args.no_progress)
        top = res.factors.top(3)
        print(f"{name}: report {folder / 'index.html'}")
        print(f"  target probability {float(res.baseline_probs.mean()):.3f} -> {float(res.token_probs.mean()):.3f}; "
              + ("factors: " + ", ".join(f"{f.concept} ({f.effect:+.2f}, q={f.q_value:.3g}"
                                         f"{', confirmed' if f.confirmed else ''})" for f in top) if top
                 else "no factor passed the false-discovery threshold"))
        entries.append({"class_name": name, "href": f"{_slug(name)}/index.html", "doc": res.to_dict()})
    if len(entries) > 1:
        print(f"index: {write_index(entries, root, f'disco-inspect audit of {model_file.name}')}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """``disco-inspect world benchmark``: the planted-bias benchmark on the bundled world."""
    import torch

    from .world.benchmark import HEADER, run_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"max_iters": args.max_iters} if args.max_iters else {}
    print(HEADER)
    rows = run_benchmark(names=args.only.split(",") if args.only else None, out=args.out, config_overrides=overrides,
                         progress=not args.no_progress)
    passed = sum(r["passed"] for r in rows)
    print(f"{passed}/{len(rows)} passed; reports in {args.out}/index.html")
    return 0 if passed == len(rows) else 1


def cmd_train(args: argparse.Namespace) -> int:
    """Train a class token and write a run folder."""
    from .engine.optimize import train_token

    cfg = _config_from(args)
    clf = _classifier(args)
    idx = clf.resolve_class(args.target)
    out = Path(args.out) if args.out else Path("runs") / _slug(clf.class_name(idx))
    pipe = _setup(args)
    run = train_token(pipe, clf, idx, config=cfg, out=out, overwrite=args.overwrite, progress=not args.no_progress)
    first, last = run.trajectory[0] if run.trajectory else {}, run.trajectory[-1] if run.trajectory else {}
    print(f"run folder: {out}")
    print(f"token: {run.token_path}  (stopped: {run.stopped}, best step {run.best_step})")
    if run.trajectory:
        print(f"target probability: baseline {run.baseline.get('target_prob_mean', float('nan')):.3f}, "
              f"first {first['target_prob_mean']:.3f}, last {last['target_prob_mean']:.3f}; "
              f"accuracy first {first['accuracy']:.2f}, last {last['accuracy']:.2f}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate images with a learned token."""
    from .engine.run import save_png
    from .engine.sampling import generate
    from .engine.token import install_token

    seeds = _seeds(args.seeds)  # validate flags before loading anything
    pipe = _setup(args)
    token_file = Path(args.token)
    if token_file.is_dir():
        token_file = token_file / "learned_embeds.safetensors"
    token = install_token(pipe, token_file)
    if token not in args.prompt:
        logger.warning("The prompt does not contain the token %r; images will not use it.", token)
    images = generate(pipe, [args.prompt] * len(seeds), seeds, num_inference_steps=args.steps,
                      guidance_scale=args.guidance, height=args.height, width=args.width)
    out = Path(args.out)
    for s, img in zip(seeds, images, strict=False):
        save_png(out / f"seed_{s:04d}.png", img)
    print(f"wrote {len(seeds)} images to {out}")
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
    res = evaluate_accuracy(pipe, clf, args.target, token, n_seeds=args.n_seeds, seed=args.seed, template=args.template,
                            num_inference_steps=args.steps, guidance_scale=args.guidance, eval_classifier=eval_clf)
    print(f"class {res.class_name!r} on seeds {res.seeds[0]}..{res.seeds[-1]}")
    print(f"{'':10s} {'top-1':>7s} {'top-5':>7s} {'p(target)':>10s}")
    for name, r in (("baseline", res.baseline), ("token", res.token)):
        print(f"{name:10s} {r['accuracy']:7.3f} {r['top5_accuracy']:7.3f} {r['target_prob_mean']:10.3f}")
    if args.json:
        from .io import write_json

        write_json(Path(args.json), res.to_dict())
    return 0


def cmd_world(args: argparse.Namespace) -> int:
    """``disco-inspect world train ...``: forwards to :mod:`disco_inspect.world.train`."""
    if args.world_command == "benchmark":
        bp = argparse.ArgumentParser(prog="disco-inspect world benchmark", formatter_class=_Formatter,
                                     description="Audit every shipped world classifier; check the planted bias is found.")
        bp.add_argument("--out", default="reports/world-benchmark", help="output folder")
        bp.add_argument("--only", default=None, help="comma-separated classifier files, e.g. clean.pt (default: all)")
        bp.add_argument("--max-iters", type=int, default=None, help="DisCo iterations (default: the world preset's)")
        bp.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        bp.add_argument("--no-progress", action="store_true")
        return cmd_benchmark(bp.parse_args(args.rest))
    if args.world_command == "train":
        from .world.train import main as train_main

        return train_main(args.rest)
    if args.world_command.startswith("make-"):
        from .world.make import main as make_main

        return make_main([args.world_command.removeprefix("make-"), *args.rest])
    raise DiscoInspectError(f"Unknown `world` command {args.world_command!r}; use `disco-inspect world train --help`.")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``disco-inspect``."""
    parser = argparse.ArgumentParser(prog="disco-inspect", formatter_class=_Formatter,
                                     description="Audit an image classifier by learning a discriminative class token.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="learn a class token for a classifier", formatter_class=_Formatter)
    _add_model_args(p)
    _add_pipeline_args(p)
    _add_config_args(p)
    p.add_argument("--out", help="run folder (default: runs/<class>)")
    p.add_argument("--overwrite", action="store_true", help="restart a run folder that holds another or finished run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="generate images with a learned token", formatter_class=_Formatter)
    p.add_argument("--token", required=True, help="token file (.safetensors) or a run folder")
    p.add_argument("--prompt", required=True, help='prompt containing the token, e.g. "a photo of a <S> lobster"')
    _add_pipeline_args(p)
    p.add_argument("--seeds", default="0-3", help="noise seeds: a range '0-7' or a list '1,5,9'")
    p.add_argument("--steps", type=int, default=30, help="denoising steps")
    p.add_argument("--guidance", type=float, default=7.0, help="classifier-free guidance scale")
    p.add_argument("--height", type=int, default=None, help="image height (default: the pipeline's)")
    p.add_argument("--width", type=int, default=None, help="image width (default: the pipeline's)")
    p.add_argument("--out", default="generated", help="output folder")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="top-1/top-5 with vs without the token (paired seeds)", formatter_class=_Formatter)
    _add_model_args(p)
    p.add_argument("--token", required=True, help="run folder or token file")
    _add_pipeline_args(p)
    p.add_argument("--n-seeds", type=int, default=10, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--template", default="A photo of a {token} {class_name}", help="prompt template")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the run's, else 30)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the run's, else 7.0)")
    p.add_argument("--eval-model", default=None, help="another classifier to score with (default: MODEL)")
    p.add_argument("--json", default=None, help="also write the result as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="audit a class: token, factors, interventions, attributions, HTML report",
                       formatter_class=_Formatter)
    _add_model_args(p, required=False)
    p.add_argument("--classes", default=None, help="audit several classes into one index page: 'a,b,c'")
    _add_pipeline_args(p)
    _add_config_args(p)
    g = p.add_argument_group("analysis")
    g.add_argument("--out", default="reports", help="reports go to OUT/<model>/<class>/ (index.html, report.json)")
    g.add_argument("--eval-seeds", type=int, default=32, help="paired evaluation images with/without the token")
    g.add_argument("--intervention-seeds", type=int, default=16, help="paired seeds per intervention")
    g.add_argument("--alpha", type=float, default=0.05, help="false-discovery rate across concepts")
    g.add_argument("--min-effect", type=float, default=0.05, help="smallest concept-presence shift that counts")
    g.add_argument("--concepts", default=None, help="concept file (one per line; 'concept | prompt | contrasts')")
    g.add_argument("--clip-arch", default="ViT-B-32", help="open_clip architecture of --clip-weights")
    g.add_argument("--clip-weights", default=None, help="local open_clip weights (needed for non-world pipelines)")
    g.add_argument("--no-attributions", action="store_true", help="skip Captum attributions")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("world", help="the bundled world: train its model, make classifiers, run the benchmark",
                       formatter_class=_Formatter)
    p.add_argument("world_command", choices=["train", "make-classifier", "make-oracle", "make-examples", "benchmark"],
                   help="train: (re)train the world model (resumable); make-classifier --bias SPEC --out FILE: a "
                        "shape classifier with a planted bias; make-oracle / make-examples: rebuild shipped models; "
                        "benchmark: the planted-bias benchmark of the audit")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of the world command (see `world train --help`)")
    p.set_defaults(func=cmd_world)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``disco-inspect`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.func(args)
    except DiscoInspectError as e:
        print(f"disco-inspect: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
