"""The ``triostream`` command line: ``demo``, ``chat`` and ``replay``.

One module per command, :mod:`._args` for the arguments and :mod:`._render`
for the terminal output. Exit codes: 0 ok, 1 API or stream error, 2 usage
error or no API key, 130 interrupted.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

from ._args import build_parser
from ._errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, find, report

__all__ = ["main"]


def _tolerant_output() -> None:
    """Print characters the terminal's encoding lacks as replacements instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")


def _silence_stdout() -> None:
    """After a broken pipe: send what is left of stdout nowhere, so exiting does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``triostream`` and ``python -m triostream``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        report("", "choose a command: demo, chat or replay (see --help)")
        return EXIT_USAGE
    _tolerant_output()
    # Imported here so that `triostream --help` stays quick.
    if args.command == "demo":
        from ._demo import run
    elif args.command == "chat":
        from ._chat import run
    else:
        from ._replay import run
    try:
        return run(args)
    except BaseException as exc:
        if find(exc, KeyboardInterrupt) is not None:
            report(args.command, "interrupted")
            return EXIT_INTERRUPTED
        if find(exc, BrokenPipeError) is not None:
            _silence_stdout()
            return EXIT_ERROR
        raise
