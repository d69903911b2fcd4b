"""How the command line reports failures: one line, and an exit code."""

from __future__ import annotations

import sys
from typing import Final, TypeVar

from triostream._exceptions import APIError, APIStatusError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "describe",
    "find",
    "report",
]

_E = TypeVar("_E", bound=BaseException)

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


def find(exc: BaseException, kind: type[_E]) -> _E | None:
    """``exc`` itself or the first exception of ``kind`` inside (nested) exception groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find(inner, kind)
            if found is not None:
                return found
    return None


def describe(exc: BaseException) -> str:
    """One line: the error's class and message (status and request id for API errors)."""
    message = exc.message if isinstance(exc, APIError) else str(exc)
    details = []
    if isinstance(exc, APIStatusError):
        details.append(f"status {exc.status_code}")
    if isinstance(exc, APIError) and exc.request_id:
        details.append(f"request-id {exc.request_id}")
    line = f"{type(exc).__name__}: {message}"
    if details:
        line += f" ({', '.join(details)})"
    return " ".join(line.split())


def report(command: str, text: str) -> None:
    """Print ``triostream <command>: <text>`` on stderr."""
    prefix = f"triostream {command}" if command else "triostream"
    print(f"{prefix}: {text}", file=sys.stderr, flush=True)
