"""Parser, dispatch and the error contract: exit 0 on success, 2 with one stderr line naming the flag on a
user error (see `validation`)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from pydantic import ValidationError

from .._version import __version__
from ..project.errors import ProjectError
from ..project.masks import MaskWarning
from . import (
    assign_commands,
    dataset_commands,
    model_commands,
    project_commands,
    sam3_commands,
    training_commands,
)
from .errors import UserError
from .validation import error_line, flag_names, subcommand_parser

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader went away


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line with a pointer to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = " ".join(message.removeprefix("argument ").split())  # "--lr: must be ..."
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nta",
        description="napari-training-assistant: the Training Project Folder from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"napari-training-assistant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for module in (project_commands, dataset_commands, model_commands, training_commands, assign_commands, sam3_commands):
        module.register(sub)
    return parser


def _warning_line(command: str, usual):
    """A `warnings.showwarning` that tells what the user should know about saved data (a mask that looks
    semantic) in one stderr line, and shows other warnings as Python usually does."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, MaskWarning):
            print(f"nta {command}: warning: {message}", file=sys.stderr)
        else:
            usual(message, category, filename, lineno, file, line)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # option values are checked against the schemas here (exit 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", MaskWarning)
            warnings.showwarning = _warning_line(args.command, warnings.showwarning)
            code = int(args.handler(args) or EXIT_OK)
        sys.stdout.flush()  # a closed pipe shows here, inside the error contract, not at interpreter exit
        return code
    except (ProjectError, UserError, ValidationError) as exc:
        command = subcommand_parser(parser, args.command)
        print(f"nta {args.command}: error: {error_line(exc, flag_names(command) if command else {})}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"nta {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`nta status P | head`): end quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
