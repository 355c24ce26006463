"""`world`: train the bundled world's model, make classifiers, run the benchmarks."""

from __future__ import annotations

import argparse

from .audit_commands import cmd_benchmark
from .options import Formatter, add_scan_args


def cmd_world(args: argparse.Namespace) -> int:
    """``disco-inspect world ...``: forwards to the world's own commands."""
    if args.world_command == "benchmark":
        return cmd_benchmark(args)
    from .checks import check_make_args, check_world_train_args

    if args.world_command == "train":
        from ..world.train import run

        check_world_train_args(args)  # the folder and the config, before the folder is made
        return run(args)
    from ..world.make import run as make_run

    what = args.world_command.removeprefix("make-")
    check_make_args(what, args)  # before minutes of training
    return make_run(what, args)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``disco-inspect world``: its subcommands (:func:`add_world_parsers`)."""
    p = sub.add_parser(
        "world",
        help="the bundled world: train its model, make classifiers, run the benchmark",
        formatter_class=Formatter,
    )
    add_world_parsers(p)
    p.set_defaults(func=cmd_world)


def add_world_parsers(p: argparse.ArgumentParser) -> None:
    """``world train``, ``world make-*`` (flags from the world's own modules) and ``world benchmark``."""
    from ..world import make, train

    sub = p.add_subparsers(
        dest="world_command",
        required=True,
        metavar="{train,make-classifier,make-oracle,make-examples,benchmark}",
    )
    q = sub.add_parser(
        "train",
        help="(re)train the world's text-to-image model (resumable)",
        formatter_class=Formatter,
        description="Train the bundled world's VAE and UNet; resumes from --work.",
    )
    train.add_arguments(q)
    for what, text in make.WHAT.items():
        q = sub.add_parser(
            f"make-{what}",
            help=text,
            description=text[0].upper() + text[1:] + ".",
            formatter_class=Formatter,
        )
        make.add_arguments(q, what)
    _add_benchmark_parser(sub)


def _add_benchmark_parser(sub: argparse._SubParsersAction) -> None:
    """``world benchmark``: the shipped examples, or the randomised benchmark (``--random``/``--saturated``)."""
    q = sub.add_parser(
        "benchmark",
        help="the planted-bias benchmark of the audit",
        formatter_class=Formatter,
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
    q.add_argument(
        "--saturated",
        type=int,
        default=None,
        metavar="N",
        help="the randomised benchmark's saturated stratum: draw biases the generator renders by default, train "
        "each classifier, audit those already recognising the class at baseline (p >= 0.9) until N are audited",
    )
    q.add_argument(
        "--seed", type=int, default=0, help="with --random/--saturated: the seed that draws the cases"
    )
    q.add_argument(
        "--clean", type=int, default=5, help="with --random: clean classifiers (false confirmations)"
    )
    q.add_argument(
        "--images",
        type=int,
        default=None,
        metavar="K",
        help="with --random/--saturated: give every audited case K images of its class from its classifier's "
        "training distribution (same bias and rate, fresh seeds) as the user's images",
    )
    q.add_argument(
        "--train-steps",
        type=int,
        default=500,
        help="with --random/--saturated: training steps of each classifier",
    )
    q.add_argument(
        "--reference",
        default=None,
        help="with --random/--saturated: audit every case against this reference classifier, or several "
        "comma-separated (differential audit)",
    )
    add_scan_args(q)
    q.add_argument(
        "--intervention-seeds",
        type=int,
        default=None,
        help="with --random/--saturated: paired seeds per intervention of every audit (default: the audit's, 16)",
    )
    q.add_argument(
        "--device",
        default=None,
        help="where the world pipeline of the audits runs: cpu, cuda, cuda:1, mps (default: cpu)",
    )
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    q.add_argument("--no-progress", action="store_true", help="hide progress bars")
