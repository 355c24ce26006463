"""The argument parser of `disco-inspect` (every subcommand and flag)."""

from __future__ import annotations

import argparse

from .audit_commands import cmd_evaluate, cmd_generate, cmd_report, cmd_train
from .edit_commands import cmd_edit
from .options import Formatter, add_config_args, add_model_args, add_pipeline_args, add_scan_args
from .world_commands import add_world_parsers, cmd_world


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``disco-inspect``."""
    parser = argparse.ArgumentParser(
        prog="disco-inspect",
        formatter_class=Formatter,
        description="Audit an image classifier by learning a discriminative class token.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="learn a class token for a classifier", formatter_class=Formatter)
    add_model_args(p)
    add_pipeline_args(p)
    add_config_args(p)
    p.add_argument("--out", help="run folder (default: runs/<class>)")
    p.add_argument(
        "--overwrite", action="store_true", help="restart a run folder that holds another or finished run"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="generate images with a learned token", formatter_class=Formatter)
    p.add_argument("--token", required=True, help="token file (.safetensors) or a run folder")
    p.add_argument(
        "--prompt", required=True, help='prompt containing the token, e.g. "a photo of a <S> lobster"'
    )
    add_pipeline_args(p)
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
        "evaluate", help="top-1/top-5 with vs without the token (paired seeds)", formatter_class=Formatter
    )
    add_model_args(p, required=False)
    p.add_argument("--token", default=None, help="run folder or token file (one class, with --class)")
    add_scale_args(p, "evaluate")
    p.add_argument(
        "--runs",
        default="reports",
        help="with --classes: the folder `report --out` wrote; each class's token is OUT/<model>/<class>/run",
    )
    add_pipeline_args(p)
    from ..engine.evaluate import DEFAULT_TEMPLATE, N_SEEDS

    p.add_argument("--n-seeds", type=int, default=N_SEEDS, help="number of seeds")
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
        "(named as the class)",
    )
    p.add_argument(
        "--fid-features",
        default="classifier",
        help="features for --fid-real: 'classifier' (penultimate layer of the scoring classifier), 'oracle' (the "
        "world's oracle), or a model file whose penultimate layer to use",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the task progress bar")
    p.add_argument("--json", default=None, help="also write the result as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "edit",
        help="edit your own images with a learned token (inversion + prompt-to-prompt)",
        formatter_class=Formatter,
    )
    add_model_args(p)
    from ..editing.edit import CROSS_REPLACE, METHODS, NOISE_SIGMA, SELF_REPLACE
    from ..editor import EDIT_GUIDANCE, EDIT_PROMPT, EDIT_STEPS
    from ..world.presets import WORLD_EDIT as W

    p.add_argument("--images", required=True, help="a folder, a glob ('val/*.jpg') or a file of your images")
    p.add_argument("--token", required=True, help="run folder or token file (learned_embeds.safetensors)")
    p.add_argument(
        "--prompt",
        default=None,
        help=f"source prompt; the token goes before {{class_name}} (default: {EDIT_PROMPT!r}; world: "
        f"{W['prompt']!r})",
    )
    from ..analysis.concepts import DEFAULT_CLIP_ARCH
    from ..editing.metrics import LPIPS_NETS
    from ..editor import EditSettings

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
    add_pipeline_args(p)
    p.add_argument("--out", default=None, help="output folder (default: edits/<class>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser(
        "report",
        help="audit a class: token, factors, interventions, attributions, HTML report",
        formatter_class=Formatter,
    )
    add_model_args(p, required=False)
    add_scale_args(p, "audit")
    add_pipeline_args(p)
    add_config_args(p)
    from ..analysis.concepts import DEFAULT_CLIP_ARCH
    from ..auditor import AuditSettings

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
        formatter_class=Formatter,
    )
    add_world_parsers(p)
    p.set_defaults(func=cmd_world)
    return parser


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


def version() -> str:
    from .. import __version__

    return __version__
