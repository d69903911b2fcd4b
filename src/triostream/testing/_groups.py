"""One exception out of a nursery: users see their error, not a group around it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["lone_exception"]


@contextmanager
def lone_exception() -> Iterator[None]:
    """Let an exception group holding a single exception out as that exception alone.

    Groups of several exceptions pass unchanged. The exception keeps its
    traceback, cause and context.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        lone = group.exceptions[0]
        context = lone.__context__
        try:
            raise lone
        finally:
            lone.__context__ = context
            del lone, context
