"""The argument parser of `disco-inspect`: global flags here, each subcommand's flags in its command module."""

from __future__ import annotations

import argparse

from . import audit_commands, edit_commands, world_commands
from .options import Formatter

#: One function per subcommand, each registering its flags, in the order ``disco-inspect --help`` lists them.
COMMANDS = (
    audit_commands.add_train_parser,
    audit_commands.add_generate_parser,
    audit_commands.add_evaluate_parser,
    edit_commands.add_parser,
    audit_commands.add_report_parser,
    world_commands.add_parser,
)


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
    for add_parser in COMMANDS:
        add_parser(sub)
    return parser


def version() -> str:
    """The package's version, for ``--version``."""
    from .. import __version__

    return __version__
