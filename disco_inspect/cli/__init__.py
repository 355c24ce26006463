"""`disco-inspect` command line: a thin layer over the public API.

One module per group of subcommands (``audit``, ``edit``, ``world``), each with the parsers of its subcommands; the
shared flags in ``options``; ``parser.build_parser`` adds the global flags and calls each module's parsers;
``python -m disco_inspect.cli`` runs :func:`main`."""

from __future__ import annotations

import logging
import sys

from ..errors import DiscoInspectError
from .options import EXIT_INTERRUPTED, class_folder, flag_message
from .parser import build_parser

__all__ = ["main", "build_parser", "class_folder"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``disco-inspect`` console script.

    Exit codes: 0 done, 1 a benchmark case failed, 2 a user error (one line on stderr), 130 interrupted (Ctrl-C;
    every finished iteration is saved and the same command resumes).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.func(args)
    except DiscoInspectError as e:
        print(f"disco-inspect: error: {flag_message(str(e))}", file=sys.stderr)  # one line, the flags' names
        return 2
    except KeyboardInterrupt:
        print(
            "disco-inspect: interrupted; finished work is saved, run the same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
