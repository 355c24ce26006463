"""The argument parser of `disco-inspect`: global flags here, each subcommand's flags in its command module."""

from __future__ import annotations

import argparse
from typing import NoReturn

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


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are two lines: a short usage line and the error (``report``'s full usage is
    20 lines); ``-h`` shows the rest. Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        """Print ``usage: PROG [options] POSITIONALS`` and ``PROG: error: MESSAGE (see PROG -h)``, exit 2."""
        positionals = [
            a.metavar or (a.dest if not isinstance(a, argparse._SubParsersAction) else "COMMAND")
            for a in self._actions
            if not a.option_strings and a.help is not argparse.SUPPRESS
        ]
        usage = " ".join([self.prog, "[options]", *map(str, positionals)])
        self.exit(2, f"usage: {usage}\n{self.prog}: error: {message} (see `{self.prog} -h`)\n")


def add_logging_args(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``-v/--verbose`` and ``-q/--quiet``; on a subcommand they default to nothing, so that a flag given before the
    subcommand is kept and one given after it counts too."""
    default: dict = {"default": False} if top else {"default": argparse.SUPPRESS}
    g = parser.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging", **default)
    g.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only", **default)


def _add_logging_everywhere(parser: argparse.ArgumentParser) -> None:
    """:func:`add_logging_args` on every subcommand's parser, nested ones (``world train``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_logging_args(sub)
                _add_logging_everywhere(sub)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``disco-inspect``."""
    parser = Parser(
        prog="disco-inspect",
        formatter_class=Formatter,
        description="Audit an image classifier by learning a discriminative class token.",
    )
    add_logging_args(parser, top=True)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in COMMANDS:
        add_parser(sub)
    _add_logging_everywhere(parser)
    return parser


def version() -> str:
    """The package's version, for ``--version``."""
    from .. import __version__

    return __version__
